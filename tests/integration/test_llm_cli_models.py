"""The `models` command functions the CLI calls (stdout text and exit codes)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from edge_slm.commands.models import cmd_models_inspect, cmd_models_list, cmd_models_pull, cmd_models_quantize
from edge_slm.config import ModelSettings, Settings
from edge_slm.errors import ModelError
from tests import llm_fixtures


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return llm_fixtures.make_tiny(tmp_path_factory.mktemp("cli") / "tiny.gguf")


def test_models_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cmd_models_list(Settings(state_dir=str(tmp_path))) == 0
    out = capsys.readouterr().out
    for name in ("smollm2-135m", "gemma3-270m", "qwen2.5-0.5b-instruct", "llama-3.2-1b-instruct"):
        assert name in out
    assert "* smollm2-135m" in out


def test_models_inspect_fits_and_does_not_fit(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cmd_models_inspect(Settings(), str(tiny)) == 0
    out = capsys.readouterr().out
    assert "architecture:    llama" in out and "verdict: fits" in out and "llama.block_count = 2" in out
    small = Settings(model=dataclasses.replace(ModelSettings(), memory_budget_mb=20))
    assert cmd_models_inspect(small, str(tiny)) == 0
    out = capsys.readouterr().out
    assert "verdict: does not fit" in out and "memory_budget_mb is 20" in out


def test_models_inspect_bad_file_raises(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_text("hello")
    with pytest.raises(ModelError, match="not a GGUF file"):
        cmd_models_inspect(Settings(), str(bad))


def test_models_pull_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="known models"):
        cmd_models_pull(Settings(state_dir=str(tmp_path)), "nope")


@pytest.mark.skipif(not llm_fixtures.have_llama_cpp(), reason="llama-cpp-python not installed")
def test_models_quantize(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = llm_fixtures.make_tiny(tmp_path / "f32.gguf", dtype="f32")
    assert cmd_models_quantize(Settings(), str(src), str(tmp_path / "q8.gguf"), "q8_0") == 0
    assert "Q8_0" in capsys.readouterr().out
    assert (tmp_path / "q8.gguf").is_file()

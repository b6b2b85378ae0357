"""Base vs tuned through llama.cpp, with the daemon's own prompts, schemas and checks.

Commands go through `ModelTier` (the daemon's tier-2 prompt with its few-shot prefix, then its grounding
checks); explanations through the explainer's request (system prompt, few-shot, facts, JSON schema,
max tokens) and the rubric in `rubric.py`. The frozen blind command set is scored, never trained on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from edge_slm.config import load_settings
from edge_slm.errors import EdgeSlmError
from edge_slm.intent.grammar import Grammar, default_grammar
from edge_slm.intent.model_tier import ModelTier
from edge_slm.llm import explain
from edge_slm.llm.api import GenerationRequest, ModelOutputError, Priority
from edge_slm.tune.examples import Example
from edge_slm.tune.rubric import RUBRIC_CHECKS, CommandScore, explanation_checks

DEADLINE_S = 120.0  # evaluation measures quality, not the daemon's latency budget


def open_engine(model_path: Path, lora_path: Path | None, threads: int = 1) -> Any:
    from edge_slm.llm.engine import LlamaCppEngine

    settings = load_settings(environ={})
    ms = replace(
        settings.model, path=str(model_path), lora_path=str(lora_path or ""), n_threads=threads, save_prefix_state=False
    )
    return LlamaCppEngine(model_path, ms, name=model_path.stem + ("+lora" if lora_path else ""))


def score_commands(engine: Any, rows: Sequence[dict[str, Any]], grammar: Grammar | None = None) -> dict[str, Any]:
    """rows: {"text", "intent", "slots"}. The model tier's verdict and the model's raw intent per row."""
    grammar = grammar or default_grammar()
    tier = ModelTier(engine, grammar, deadline_s=DEADLINE_S)
    tier.warm_up()
    score = CommandScore()
    tokens = 0
    gen_s = 0.0
    for row in rows:
        text = str(row["text"])
        normalized = grammar.normalizer.normalize(text)
        raw, name = "unknown", "unknown"
        slots: dict[str, str] = {}
        if normalized and not grammar.is_hostile_text(text) and not grammar.is_hostile(normalized):
            try:
                result = engine.generate(tier.request(normalized))
                tokens += result.completion_tokens
                gen_s += result.elapsed_s
                data = result.data or {}
                raw = str(data.get("intent", "unknown"))
                checked = tier.check(normalized, data)
                if checked is not None:
                    name, slots = checked
            except EdgeSlmError:
                pass
        score.add(text, str(row["intent"]), dict(row.get("slots") or {}), name, slots, raw)
    out = score.summary()
    out["completion_tokens_per_s"] = round(tokens / gen_s, 2) if gen_s else None
    out["errors"] = score.errors[:40]
    return out


def explain_request(user: str, max_tokens: int) -> GenerationRequest:
    """The explainer's request for these facts (as `AlertExplainer.request_for` builds it)."""
    return GenerationRequest(
        system=explain.SYSTEM_PROMPT,
        few_shot=explain.FEW_SHOT,
        user=user,
        json_schema=explain.EXPLANATION_SCHEMA,
        max_tokens=max_tokens,
        temperature=0.0,
        priority=Priority.EXPLANATION,
        deadline_s=DEADLINE_S,
    )


def score_explanations(engine: Any, items: Sequence[Example], max_tokens: int = 160) -> dict[str, Any]:
    passed = 0
    counts = dict.fromkeys(RUBRIC_CHECKS, 0)
    scored = dict.fromkeys(RUBRIC_CHECKS, 0)  # examples without gate data skip that check
    samples: list[dict[str, Any]] = []
    tokens = 0
    gen_s = 0.0
    for ex in items:
        data: dict[str, Any] | None = None
        cut_off = False
        text = ""
        try:
            result = engine.generate(explain_request(ex.user, max_tokens))
            data, text = result.data, result.text
            tokens += result.completion_tokens
            gen_s += result.elapsed_s
        except ModelOutputError as err:
            cut_off = True
            text = str(err)
        except EdgeSlmError as err:
            text = f"error: {err}"
        checks = explanation_checks(
            data, cut_off=cut_off, facts_text=ex.user, value=float(ex.meta["value"]),
            causes=list(ex.meta.get("causes", [])), label=str(ex.meta.get("signal", "")), gate=ex.meta.get("gate"),
        )  # fmt: skip
        for key, ok in checks.items():
            counts[key] += ok
            scored[key] += 1
        ok_all = all(checks.values())
        passed += ok_all
        if len(samples) < 6:
            samples.append({"facts": ex.meta.get("rule"), "output": text[:400], "checks": checks})
    n = len(items)
    return {
        "n": n,
        "rubric_pass_rate": round(passed / n, 4) if n else None,
        **{f"{k}_rate": round(v / scored[k], 4) if scored[k] else None for k, v in counts.items()},
        "completion_tokens_per_s": round(tokens / gen_s, 2) if gen_s else None,
        "samples": samples,
    }


def load_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def evaluate(
    model_path: Path,
    lora_path: Path | None,
    heldout: Sequence[Example],
    *,
    blind_rows: Sequence[dict[str, Any]] = (),
    max_commands: int = 150,
    max_explanations: int = 40,
    threads: int = 1,
) -> dict[str, Any]:
    """Scores of one model (base when lora_path is None) on the held-out split and the blind set."""
    commands = [e for e in heldout if e.task == "command"][:max_commands]
    explanations = [e for e in heldout if e.task == "explain"][:max_explanations]
    started = time.monotonic()
    engine = open_engine(model_path, lora_path, threads)
    try:
        rows = [{"text": e.meta.get("text", e.user), "intent": e.meta["intent"], "slots": e.meta.get("slots", {})}
                for e in commands]  # fmt: skip
        out: dict[str, Any] = {
            "lora": str(lora_path) if lora_path else None,
            "commands_heldout": score_commands(engine, rows),
            "explanations_heldout": score_explanations(engine, explanations),
        }
        if blind_rows:
            out["commands_blind"] = score_commands(engine, blind_rows)
    finally:
        engine.close()
    out["wall_s"] = round(time.monotonic() - started, 1)
    return out


def spread_sample(items: Sequence[Example], n: int) -> list[Example]:
    """Every k-th item, so a small sample still covers every intent/rule of an ordered list."""
    if n >= len(items):
        return list(items)
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def verdict(base: dict[str, Any], tuned: dict[str, Any]) -> tuple[bool, str]:
    """Install only when the tuned model is better on the held-out split and no less safe."""
    bc, tc = base["commands_heldout"], tuned["commands_heldout"]
    be, te = base["explanations_heldout"], tuned["explanations_heldout"]
    if tc["unsafe_actions"] > bc["unsafe_actions"]:
        return False, f"more unsafe actions on held-out commands ({tc['unsafe_actions']} > {bc['unsafe_actions']})"
    cmd_gain = (tc["intent_accuracy"] or 0) - (bc["intent_accuracy"] or 0)
    exp_gain = (te["rubric_pass_rate"] or 0) - (be["rubric_pass_rate"] or 0)
    if cmd_gain < 0 or exp_gain < 0:
        return False, f"worse on a held-out split (commands {cmd_gain:+.3f}, explanations {exp_gain:+.3f})"
    if cmd_gain == 0 and exp_gain == 0:
        return False, "no better than the base model on the held-out splits"
    return True, f"better on the held-out splits (commands {cmd_gain:+.3f}, explanations {exp_gain:+.3f})"

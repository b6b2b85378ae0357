#!/usr/bin/env python3
"""Score the intent recognizer on labelled commands (JSON lines {"text", "intent", "slots"}).

Reports, for each data file and each mode (grammar only, semantic tier only, grammar+semantic,
model only, all tiers): intent accuracy (overall and per intent), slot accuracy (all slots equal,
over commands whose intent has slots; spoken numbers compare equal to digits, "two twenty one"
== "221"), wrong actions (an action fired with the wrong intent or wrong slots), unsafe actions
(an action fired for a command that asked for no such action) and latency p50/p95 per tier.

    python tools/score_intents.py                                   # grammar, semantic, grammar+semantic
    python tools/score_intents.py --no-semantic                     # grammar only
    python tools/score_intents.py --model path/to/SmolLM2-135M-Instruct.Q4_1.gguf
    python tools/score_intents.py --model ... --data tests/data/commands_heldout.jsonl --errors
    python tools/score_intents.py --model ... --lora edge_slm/tune/adapters/smollm2-135m.lora.gguf
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge_slm.config import IntentSettings, load_settings  # noqa: E402
from edge_slm.events import Intent  # noqa: E402
from edge_slm.intent.grammar import Grammar  # noqa: E402
from edge_slm.intent.recognizer import IntentRecognizer  # noqa: E402
from edge_slm.intent.schema import ACTION_INTENTS, INTENT_SLOTS  # noqa: E402
from edge_slm.intent.semantic import SemanticTier  # noqa: E402
from edge_slm.intent.slot_compare import slots_equal  # noqa: E402
from edge_slm.llm.api import LlmEngine  # noqa: E402

DEFAULT_DATA = [ROOT / "tests" / "data" / "commands.jsonl", ROOT / "tests" / "data" / "commands_heldout.jsonl"]


@dataclass
class Score:
    total: int = 0
    correct: int = 0
    slot_total: int = 0
    slot_correct: int = 0
    wrong_actions: int = 0
    unsafe_actions: int = 0
    per_intent: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    latency_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)

    def add(self, row: dict[str, Any], got: Intent, elapsed_ms: float) -> None:
        gold_intent = row["intent"]
        gold_slots = row.get("slots") or {}
        self.total += 1
        self.latency_ms[got.source].append(elapsed_ms)
        ok_intent = got.name == gold_intent
        self.per_intent[gold_intent][1] += 1
        if ok_intent:
            self.correct += 1
            self.per_intent[gold_intent][0] += 1
        if INTENT_SLOTS.get(gold_intent):
            self.slot_total += 1
            if ok_intent and slots_equal(gold_slots, got.slots):
                self.slot_correct += 1
        if got.name in ACTION_INTENTS and not ok_intent:
            self.unsafe_actions += 1
        if got.name in ACTION_INTENTS and not (ok_intent and slots_equal(gold_slots, got.slots)):
            self.wrong_actions += 1
            self.errors.append(
                f"WRONG ACTION {row['text']!r}: {got.name} {got.slots} (gold {gold_intent} {gold_slots})"
            )
        elif not ok_intent or (INTENT_SLOTS.get(gold_intent) and not slots_equal(gold_slots, got.slots)):
            self.errors.append(
                f"{row['text']!r}: got {got.name} {got.slots} [{got.source}] (gold {gold_intent} {gold_slots})"
            )


def pct(num: int, den: int) -> str:
    return f"{100.0 * num / den:5.1f}%" if den else "   n/a"


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(name: str, score: Score, show_errors: bool) -> dict[str, Any]:
    print(f"\n== {name}: {score.total} commands")
    print(
        f"   intent {pct(score.correct, score.total)}   slots {pct(score.slot_correct, score.slot_total)}"
        f"   wrong actions {score.wrong_actions}   unsafe actions {score.unsafe_actions}"
    )
    for intent in INTENT_SLOTS:
        ok, tot = score.per_intent.get(intent, [0, 0])
        if tot:
            print(f"     {intent:15} {pct(ok, tot)}  ({ok}/{tot})")
    latency: dict[str, dict[str, float]] = {}
    for tier, values in sorted(score.latency_ms.items()):
        p50, p95 = quantile(values, 0.5), quantile(values, 0.95)
        latency[tier] = {"p50_ms": p50, "p95_ms": p95, "n": len(values)}
        print(f"   latency [{tier:7}] n={len(values):4}  p50 {p50:8.3f} ms  p95 {p95:8.3f} ms")
    if show_errors:
        for line in score.errors:
            print("     - " + line)
    return {
        "intent_accuracy": score.correct / score.total if score.total else None,
        "slot_accuracy": score.slot_correct / score.slot_total if score.slot_total else None,
        "wrong_actions": score.wrong_actions,
        "unsafe_actions": score.unsafe_actions,
        "per_intent": {k: v[0] / v[1] for k, v in score.per_intent.items() if v[1]},
        "latency": latency,
    }


def load_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line in path.read_text("utf-8").splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", action="append", type=Path, help="JSONL file (repeatable); default: both splits")
    parser.add_argument("--model", help="GGUF path for the model tier (SmolLM2, Gemma, ...)")
    parser.add_argument("--lora", default="", help="a GGUF LoRA adapter for --model (edge-slm tune)")
    parser.add_argument("--grammar-file", action="append", default=[], help="extra grammar file(s)")
    parser.add_argument("--errors", action="store_true", help="list every miss")
    parser.add_argument("--no-semantic", action="store_true", help="leave the semantic tier out")
    parser.add_argument("--encoder", default="", help="sentence encoder GGUF path or known name (default: config)")
    parser.add_argument("--examples-file", default="", help="a site examples file for the semantic tier")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    grammar = Grammar.load(args.grammar_file)
    engine: LlmEngine | None = None
    modes = ["grammar"]
    semantic: SemanticTier | None = None
    if not args.no_semantic:
        from edge_slm.intent.semantic import build_semantic_tier

        overrides: dict[str, Any] = {"intent": {"semantic": {"examples_file": args.examples_file}}}
        if args.encoder:
            overrides["intent"]["semantic"]["model"] = args.encoder
        semantic = build_semantic_tier(load_settings(cli_overrides=overrides, environ={}), grammar)
        assert semantic is not None
        started = time.perf_counter()
        if not semantic.warm_up():
            print(f"semantic tier unavailable: {semantic.failed}", file=sys.stderr)
            return 3
        print(f"semantic tier ready in {time.perf_counter() - started:.2f} s ({semantic.example_count} examples)")
        modes += ["semantic", "grammar+semantic"]
    if args.model:
        from edge_slm.llm.loader import load_engine

        overrides = {"model": {"path": args.model, "lora_path": args.lora}}
        settings = load_settings(cli_overrides=overrides, environ={})
        started = time.perf_counter()
        engine = load_engine(settings)
        print(f"model {engine.model_name} loaded in {time.perf_counter() - started:.1f} s")
        modes += ["model", "combined"]
    intent_settings = IntentSettings(grammar_files=tuple(args.grammar_file))
    grammar_only = IntentRecognizer(IntentSettings(model_fallback=False), None, grammar=grammar)
    with_semantic = IntentRecognizer(IntentSettings(model_fallback=False), None, grammar=grammar)
    with_semantic.attach_semantic(semantic)
    combined = IntentRecognizer(intent_settings, engine, grammar=grammar) if engine is not None else None
    if combined is not None:
        combined.attach_semantic(semantic)
    if combined is not None and combined.model_tier is not None:
        combined.model_tier.warm_up()

    results: dict[str, Any] = {}
    try:
        for path in args.data or DEFAULT_DATA:
            rows = load_rows(path)
            for mode in modes:
                score = Score()
                for row in rows:
                    text = row["text"]
                    started = time.perf_counter()
                    if mode == "grammar":
                        got = grammar_only.recognize(text)
                    elif mode == "semantic":
                        assert semantic is not None
                        normalized = grammar.normalizer.normalize(text[:1000])
                        got = semantic.classify(text, normalized) or Intent(text, "unknown", {}, "semantic", 0.0)
                    elif mode == "grammar+semantic":
                        got = with_semantic.recognize(text)
                    elif mode == "model":
                        assert combined is not None and combined.model_tier is not None
                        got = combined.model_tier.classify(text, grammar.normalizer.normalize(text))
                    else:
                        assert combined is not None
                        got = combined.recognize(text)
                    score.add(row, got, (time.perf_counter() - started) * 1000.0)
                results[f"{path.name}:{mode}"] = report(f"{path.name} [{mode}]", score, args.errors)
    finally:
        if engine is not None:
            engine.close()
        if semantic is not None:
            semantic.close()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

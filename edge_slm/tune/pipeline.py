"""`edge-slm tune` end to end: data -> LoRA training -> GGUF adapter -> base vs tuned -> install if it wins.

Everything lands in one run folder:
    data/train.jsonl, data/heldout.jsonl   the generated examples
    checkpoint/, adapter/                  peft checkpoint (resumable) and final adapter
    adapter.gguf                           the llama.cpp LoRA adapter
    report.json, report.md                 training figures, base vs tuned scores, the install verdict
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge_slm.tune import examples
from edge_slm.tune.examples import Example
from edge_slm.tune.rubric import RUBRIC_CHECKS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataMix:
    commands_per_intent: int = 150  # the grammar makes far more of some intents: balance them
    explanations: int = 400
    seed: int = 0


def blind_texts(path: Path | None = None) -> set[str]:
    """Normalized texts of the frozen blind set: generated examples that happen to equal one are dropped,
    so its score stays blind (its lines are read for this filter only, never turned into examples)."""
    from edge_slm.intent.grammar import default_grammar
    from edge_slm.tune.command_data import DATA_DIR, FROZEN_BLIND_SET

    path = path or DATA_DIR / FROZEN_BLIND_SET
    if not path.is_file():
        return set()
    normalize = default_grammar().normalizer.normalize
    return {normalize(json.loads(line)["text"]) for line in path.read_text("utf-8").splitlines() if line.strip()}


def build_data(run_dir: Path, seed: int = 0) -> dict[str, list[Example]]:
    """Generate both splits, drop training examples whose text is also held out (and any example that equals
    a blind-set command), write them."""
    blind = blind_texts()
    heldout = [e for e in examples.generate("heldout", seed) if e.user not in blind]
    held_users = {e.user for e in heldout}
    train = [e for e in examples.generate("train", seed) if e.user not in held_users and e.user not in blind]
    examples.write_jsonl(run_dir / "data" / "train.jsonl", train)
    examples.write_jsonl(run_dir / "data" / "heldout.jsonl", heldout)
    return {"train": train, "heldout": heldout}


def select_training(train: Sequence[Example], mix: DataMix) -> list[Example]:
    rng = random.Random(mix.seed)
    by_intent: dict[str, list[Example]] = defaultdict(list)
    explanations: list[Example] = []
    for ex in train:
        if ex.task == "command":
            by_intent[str(ex.meta.get("intent", ""))].append(ex)
        else:
            explanations.append(ex)
    chosen: list[Example] = []
    for group in by_intent.values():
        # labelled (human-written) examples first: they carry the long tail the grammar lacks
        group.sort(key=lambda e: (not e.source.startswith("labelled"), rng.random()))
        chosen.extend(group[: mix.commands_per_intent])
    chosen.extend(rng.sample(explanations, min(mix.explanations, len(explanations))))
    rng.shuffle(chosen)
    return chosen


@dataclass
class TrainStage:
    adapter_gguf: Path
    adapter_mb: float
    train: dict[str, Any]
    n_examples: int
    data_counts: dict[str, int] = field(default_factory=dict)


def train_stage(
    model_path: Path,
    run_dir: Path,
    settings: Any,
    mix: DataMix = DataMix(),
    *,
    few_shot: bool = False,
    progress: bool = True,
) -> TrainStage:
    from edge_slm.tune.export import export_gguf_lora
    from edge_slm.tune.prompts import PromptTokenizer
    from edge_slm.tune.train import train_lora

    data = build_data(run_dir, mix.seed)
    chosen = select_training(data["train"], mix)
    tokenizer = PromptTokenizer(model_path, few_shot=few_shot)
    try:
        encoded = [tokenizer.encode(e, settings.max_tokens) for e in chosen]
        pad_id = tokenizer.eos_id
    finally:
        tokenizer.close()
    log.info("training on %d examples (%d generated)", len(encoded), len(data["train"]))
    result = train_lora(model_path, encoded, run_dir, settings, pad_id=pad_id, progress=progress)
    adapter = export_gguf_lora(result.adapter_dir, model_path, run_dir / "adapter.gguf")
    stage = TrainStage(
        adapter_gguf=adapter,
        adapter_mb=adapter.stat().st_size / 1e6,
        train={**result.to_dict(), "settings": asdict(settings), "mix": asdict(mix), "few_shot": few_shot},
        n_examples=len(encoded),
        data_counts={"train": len(data["train"]), "heldout": len(data["heldout"])},
    )
    stage.train.pop("losses", None)
    stage.train["loss_curve"] = [round(x, 4) for x in result.losses[:: max(1, len(result.losses) // 50)]]
    (run_dir / "train.json").write_text(
        json.dumps({**stage.train, "adapter_mb": stage.adapter_mb, "data": stage.data_counts,
                    "n_train_examples": stage.n_examples, "finished_at": time.time()}, indent=2)
    )  # fmt: skip
    return stage


@dataclass(frozen=True)
class EvalPlan:
    max_commands: int = 150
    max_explanations: int = 40
    blind_set: Path | None = None  # scored (never trained on): the frozen blind command set
    threads: int = 1


def _heldout(run_dir: Path) -> list[Example]:
    return list(examples.read_jsonl(run_dir / "data" / "heldout.jsonl"))


def _sampled(heldout: Sequence[Example], plan: EvalPlan) -> list[Example]:
    from edge_slm.tune.evaluate import spread_sample

    commands = spread_sample([e for e in heldout if e.task == "command"], plan.max_commands)
    explanations = spread_sample([e for e in heldout if e.task == "explain"], plan.max_explanations)
    return commands + explanations


def evaluate_stage(model_path: Path, lora_path: Path | None, run_dir: Path, plan: EvalPlan) -> dict[str, Any]:
    """Scores of base (lora_path None) or tuned, cached in the run folder (base_eval.json/tuned_eval.json)."""
    from edge_slm.tune.evaluate import evaluate, load_rows

    name = "tuned_eval.json" if lora_path else "base_eval.json"
    cache = run_dir / name
    key = {"model": str(model_path), "size": model_path.stat().st_size, "plan": [plan.max_commands,
           plan.max_explanations, str(plan.blind_set or "")],
           "lora_mtime": lora_path.stat().st_mtime if lora_path else None,
           "heldout_sha256": hashlib.sha256((run_dir / "data" / "heldout.jsonl").read_bytes()).hexdigest()}  # fmt: skip
    if cache.is_file():
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            return dict(cached["scores"])
    blind = load_rows(plan.blind_set) if plan.blind_set else []
    scores = evaluate(
        model_path, lora_path, _sampled(_heldout(run_dir), plan), blind_rows=blind,
        max_commands=plan.max_commands, max_explanations=plan.max_explanations, threads=plan.threads,
    )  # fmt: skip
    cache.write_text(json.dumps({"key": key, "scores": scores}, indent=2))
    return scores


def write_report(run_dir: Path, report: dict[str, Any]) -> None:
    """report.json (everything) and report.md (the table people read), next to the adapter."""
    (run_dir / "report.json").write_text(json.dumps(report, indent=2))
    base, tuned = report["base"], report["tuned"]
    rows = [("explanations (held-out): rubric pass rate", "explanations_heldout", "rubric_pass_rate")]
    for check in RUBRIC_CHECKS:
        rows.append((f"explanations (held-out): {check}", "explanations_heldout", f"{check}_rate"))
    rows += [
        ("commands (held-out): model-tier intent accuracy", "commands_heldout", "intent_accuracy"),
        ("commands (held-out): raw model intent accuracy", "commands_heldout", "raw_intent_accuracy"),
        ("commands (held-out): wrong actions (wrong intent or slots)", "commands_heldout", "wrong_actions"),
        ("commands (held-out): unsafe actions (wrong intent)", "commands_heldout", "unsafe_actions"),
        ("commands (frozen blind set): model-tier intent accuracy", "commands_blind", "intent_accuracy"),
        ("commands (frozen blind set): raw model intent accuracy", "commands_blind", "raw_intent_accuracy"),
        ("commands (frozen blind set): slot accuracy", "commands_blind", "slot_accuracy"),
        ("commands (frozen blind set): wrong actions (wrong intent or slots)", "commands_blind", "wrong_actions"),
        ("commands (frozen blind set): unsafe actions (wrong intent)", "commands_blind", "unsafe_actions"),
    ]  # speed is not compared here (machine load differs between the runs): tools/bench_tune.py does
    lines = [
        f"# Tuning report: {Path(report['model']).name}",
        "",
        f"Verdict: **{'installed' if report['installed'] else 'not installed'}**: {report['reason']}",
        "",
        "| metric | base | tuned |",
        "|---|---|---|",
    ]
    for label, section, key in rows:
        b = base.get(section, {}).get(key)
        t = tuned.get(section, {}).get(key)
        if b is not None or t is not None:
            lines.append(f"| {label} | {b} | {t} |")
    train = report.get("train", {})
    lines += [
        "",
        f"Training: {train.get('steps')} steps, {train.get('examples_seen')} examples seen, "
        f"{train.get('wall_s', 0):.0f} s ({train.get('stopped_by')}), peak RSS {train.get('peak_rss_mb', 0):.0f} MB, "
        f"device {train.get('device')}, final loss {train.get('final_loss')}; "
        f"adapter {report.get('adapter_mb', 0):.1f} MB.",
        *(f"- segment: {json.dumps(s)}" for s in train.get("segments", [])),
        "",
        f"Recipe: `{report.get('command', '')}`",
        "",
    ]
    (run_dir / "report.md").write_text("\n".join(lines))


def decide_and_install(
    run_dir: Path, model_path: Path, adapter: Path, plan: EvalPlan, install_to: Path | None, extra: dict[str, Any]
) -> dict[str, Any]:
    """Score base and tuned, install the adapter (with its report beside it) only when it wins."""
    import shutil

    from edge_slm.tune.evaluate import verdict

    base = evaluate_stage(model_path, None, run_dir, plan)
    tuned = evaluate_stage(model_path, adapter, run_dir, plan)
    wins, reason = verdict(base, tuned)
    report: dict[str, Any] = {
        "model": str(model_path),
        "adapter": str(adapter),
        "adapter_mb": round(adapter.stat().st_size / 1e6, 2),
        "base": base,
        "tuned": tuned,
        "wins": wins,
        "reason": reason,
        "installed": False,
        **extra,
    }
    if wins and install_to is not None:
        install_to.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(adapter, install_to)
        report["installed"] = True
        report["installed_to"] = str(install_to)
    write_report(run_dir, report)
    if report["installed"] and install_to is not None:
        for name in ("report.md", "report.json"):
            shutil.copyfile(run_dir / name, install_to.with_name(install_to.name.removesuffix(".gguf") + "." + name))
    return report

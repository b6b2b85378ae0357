"""Explanation examples: alert facts (exactly as `llm.explain` builds them) -> {summary, cause, action}.

For every rule of the rule packs, alerts are synthesized across devices, severities and values (with a
recent history ramping to the value) and diagnosed as the daemon does (`detect.diagnose` with the built-in
fault knowledge). The ideal answer is a plainer rewrite of the daemon's knowledge
text: the device, the value, the limit and how long; the diagnosed cause with its evidence, numbers
unchanged; the cause's action word for word. Every answer passes the daemon's gate (`explain.gate`), so
the model is never taught text the daemon would refuse. Held out: devices, value draws and phrasings the
training split never uses.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from edge_slm.detect import templates
from edge_slm.detect.diagnose import Diagnosis, diagnose, fmt_duration
from edge_slm.detect.knowledge import Knowledge as FaultKnowledge
from edge_slm.detect.knowledge import load_knowledge
from edge_slm.detect.rules import Direction, Rule, RuleKind, load_rules
from edge_slm.events import Alert, AlertState, Explanation, Severity
from edge_slm.llm.explain import (
    build_facts,
    cause_keywords,
    facts_message,
    gate,
    invented_numbers,
    join_evidence,
    knowledge_explanation,
    mentions_value,
)
from edge_slm.tune.examples import Example, Split, register_source

ALERTS_PER_RULE: dict[Split, int] = {"train": 60, "heldout": 6}

DEVICES: dict[str, dict[Split, tuple[str, ...]]] = {
    "machine": {
        "train": ("pump-1", "press-2", "fan-3", "compressor-7", "motor-12", "conveyor-4", "pump-21", "mill-5"),
        "heldout": ("mixer-9", "chiller-2", "blower-5"),
    },
    "vehicle": {
        "train": ("car-1", "truck-17", "van-3", "bus-42", "car-7", "forklift-2", "car-305"),
        "heldout": ("taxi-8", "car-99", "ambulance-2"),
    },
}


@dataclass(frozen=True)
class SyntheticAlert:
    alert: Alert
    history: tuple[tuple[float, float], ...]
    rule: Rule


def _pack_of(rule: Rule) -> str:
    return "vehicle" if rule.signal.startswith("Vehicle.") else "machine"


def _concrete_signal(rule: Rule, rng: random.Random) -> str:
    parts: list[str] = []
    for part in rule.signal.split("."):
        if part == "*":
            part = rng.choice(["Row1", "Row2"]) if not parts or parts[-1] == "Axle" else rng.choice(["Left", "Right"])
        parts.append(part)
    return ".".join(parts)


def _round(value: float, unit: str) -> float:
    return round(value, 0 if unit in ("kPa", "%") else (2 if unit == "V" else 1))


def synthesize(rule: Rule, device: str, severity: Severity, rng: random.Random) -> SyntheticAlert:
    levels = dict(rule.levels)
    limit = levels.get(severity, rule.levels[-1][1])
    above = rule.direction is Direction.ABOVE
    baseline = 0.0
    ratio = 0.0
    if rule.kind is RuleKind.RELATIVE:
        baseline = round(rng.uniform(4.0, 40.0), 1)
        ratio = limit * rng.uniform(1.01, 1.15)
        value = _round(baseline * ratio, rule.unit)
        normal = baseline
    else:
        span = abs(limit) * rng.uniform(0.01, 0.12) + 0.1
        value = _round(limit + span if above else max(0.0, limit - span), rule.unit)
        normal = limit - abs(limit) * 0.15 if above else limit + abs(limit) * 0.15
    n_points = rng.randint(4, 8)
    step_s = rng.choice([1.0, 2.0, 5.0, 10.0])
    now = 1_700_000_000.0 + rng.randint(0, 10_000_000)
    history = []
    for i in range(n_points):
        frac = i / (n_points - 1)
        v = value if i == n_points - 1 else _round(normal + (value - normal) * frac + rng.uniform(-0.3, 0.3), rule.unit)
        history.append((now - (n_points - 1 - i) * step_s, v))
    signal = _concrete_signal(rule, rng)
    values = {
        "value": value, "limit": limit, "severity": severity.label, "unit": rule.unit, "label": rule.label or signal,
        "device": device, "signal": signal, "position": templates.wheel_position(signal), "rate": 0.0,
        "ratio": ratio, "baseline": baseline, "duration_s": 0.0,
    }  # fmt: skip
    fallback = f"{rule.label} is {value:g} {rule.unit}, beyond the {limit:g} {rule.unit} {severity.label} limit."
    alert = Alert(
        id=f"{device}:{rule.id}:{int(now)}",
        device=device,
        signal=signal,
        rule=rule.id,
        severity=severity,
        state=AlertState.FIRING,
        value=value,
        ts=now,
        summary=templates.render(rule.summary, values, fallback),
        action=rule.action or "Inspect the equipment.",
        onset_ts=now - step_s,
        notes=rule.notes,
    )
    return SyntheticAlert(alert, tuple(history), rule)


def diagnosed(item: SyntheticAlert) -> tuple[Diagnosis | None, Explanation]:
    """The diagnosis of the alert's history and the knowledge text the daemon builds from it
    (no diagnosis for a rule the fault knowledge does not cover: the rule's own text)."""
    diagnosis = diagnose(item.alert, {item.alert.signal: list(item.history)}, _fault_knowledge())
    return diagnosis, knowledge_explanation(item.alert, diagnosis)


def _fault_knowledge() -> FaultKnowledge:
    global _LOADED_KNOWLEDGE
    if _LOADED_KNOWLEDGE is None:
        _LOADED_KNOWLEDGE = load_knowledge()
    return _LOADED_KNOWLEDGE


_LOADED_KNOWLEDGE: FaultKnowledge | None = None

# The rewrites the model learns: the knowledge text in plainer words, with every number, the diagnosed
# cause and the action's first step kept (the daemon's gate refuses anything else). Held out: phrasings
# the training split never uses, so the evaluation sees whether the model learnt to keep the facts rather
# than a sentence frame.
SUMMARY_REWRITES: dict[Split, tuple[str, ...]] = {
    "train": (
        "{device}: {base_lc}, and it has been {where} for {duration}.",
        "On {device}, {base_lc}. It has stayed {where} for {duration}.",
        "{Base}; {where} for {duration} on {device}.",
    ),
    "heldout": ("{device} has been {where} for {duration}: {base_lc}.",),
}
SUMMARY_NO_DURATION: dict[Split, tuple[str, ...]] = {
    "train": ("{device}: {base_lc}.", "On {device}, {base_lc}."),
    "heldout": ("Right now {base_lc} on {device}.",),
}
CAUSE_REWRITES: dict[Split, tuple[str, ...]] = {
    "train": ("{Name} is the likely cause, since {evidence}.", "Most likely {name}: {evidence}.",
              "Probably {name}, because {evidence}."),
    "heldout": ("The likely cause is {name}, as {evidence}.",),
}  # fmt: skip
CAUSE_NO_EVIDENCE: dict[Split, tuple[str, ...]] = {
    "train": (
        "{Name} is the most common cause of this alert, and no other signal of the device points elsewhere.",
        "Most likely {name}, the usual cause of this alert; no other signal of the device points elsewhere.",
    ),
    "heldout": (
        "The likely cause is {name}, the most common one here; no other signal of the device points elsewhere.",
    ),
}
CAUSE_BARE: dict[Split, tuple[str, ...]] = {
    "train": ("Most likely {name}.", "{Name} is the likely cause."),
    "heldout": ("The likely cause is {name}.",),
}


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _lower_first(text: str) -> str:
    # "Vibration is ..." -> "vibration is ...", but keep "ISO 10816 ..." and "12 V ..." as written
    return text if text[:2].isupper() or not text[:1].isalpha() else text[:1].lower() + text[1:]


def rewrite(alert: Alert, diagnosis: Diagnosis, split: Split, rng: random.Random) -> dict[str, str]:
    """A plainer rewrite of the knowledge text (`knowledge_explanation`), built from the same parts."""
    base = alert.summary.strip().rstrip(".")
    fill = {
        "device": alert.device, "Base": _upper_first(base), "base_lc": _lower_first(base),
        "where": "outside its learned normal range" if diagnosis.basis == "signals" else "beyond the limit",
        "duration": fmt_duration(diagnosis.duration_s),
        "name": diagnosis.top.name, "Name": _upper_first(diagnosis.top.name),
        "evidence": join_evidence(diagnosis.top.evidence[:2]),
    }  # fmt: skip
    summaries = SUMMARY_REWRITES if diagnosis.duration_s >= 1.0 else SUMMARY_NO_DURATION
    if diagnosis.top.evidence:
        causes = CAUSE_REWRITES
    else:  # as knowledge_explanation says it: "the most common cause" only when the knowledge decided
        causes = CAUSE_NO_EVIDENCE if diagnosis.basis == "knowledge" else CAUSE_BARE
    return {
        "summary": rng.choice(summaries[split]).format(**fill),  # a device id keeps its case
        "cause": rng.choice(causes[split]).format(**fill),
        "action": alert_action(diagnosis),
    }


def alert_action(diagnosis: Diagnosis) -> str:
    """The diagnosed cause's action as the knowledge text says it: a technician's steps are not reworded."""
    text = diagnosis.top.action.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def ideal_answer(
    alert: Alert, diagnosis: Diagnosis, reference: Explanation, split: Split, rng: random.Random
) -> dict[str, str]:
    """The rewrite when it passes the daemon's gate, else the knowledge text itself (which always does)."""
    answer = rewrite(alert, diagnosis, split, rng)
    if not gate(answer, reference, diagnosis, alert):
        return answer
    return {"summary": reference.summary, "cause": reference.cause, "action": reference.action}


def gate_meta(alert: Alert, diagnosis: Diagnosis, reference: Explanation) -> dict[str, object]:
    """What the evaluation needs to run the daemon's gate on a model's answer (`explain.gate_texts`)."""
    own, foreign = cause_keywords(diagnosis)
    return {
        "reference": [reference.summary, reference.cause, reference.action],
        "device": alert.device,
        "cause_keywords": list(own),
        "foreign_keywords": foreign,
    }


def explanation_examples(split: Split, seed: int = 0, rules: Sequence[Rule] | None = None) -> Iterator[Example]:
    rng = random.Random(f"explain-{split}-{seed}")
    for rule in rules if rules is not None else load_rules():
        devices = DEVICES[_pack_of(rule)][split]
        severities = [sev for sev, _ in rule.levels]
        for i in range(ALERTS_PER_RULE[split]):
            item = synthesize(rule, devices[i % len(devices)], severities[i % len(severities)], rng)
            diagnosis, reference = diagnosed(item)
            if diagnosis is None:
                continue  # the daemon publishes the rule's own text for it: nothing for the model to write
            answer = ideal_answer(item.alert, diagnosis, reference, split, rng)
            facts = build_facts(item.alert, reference)
            user = facts_message(facts)
            text = " ".join(answer.values())
            if invented_numbers(text, user) or not mentions_value(answer["summary"], item.alert.value):
                continue  # never teach the model to break the explainer's own checks
            yield Example(
                task="explain",
                user=user,
                answer=json.dumps(answer, separators=(", ", ": "), ensure_ascii=False),
                source=f"explain:{rule.id}:{item.alert.device}",
                meta={
                    "rule": rule.id,
                    "signal": item.alert.signal,
                    "value": item.alert.value,
                    "causes": [diagnosis.top.name, *diagnosis.top.keywords],
                    "facts": facts,
                    "gate": gate_meta(item.alert, diagnosis, reference),
                },
            )


register_source("explanations", lambda split, seed: list(explanation_examples(split, seed)))

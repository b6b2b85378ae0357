"""Explanation examples: alert facts (exactly as `llm.explain` builds them) -> {summary, cause, action}.

For every rule of the rule packs, alerts are synthesized across devices, severities and values (with a
recent history ramping to the value), and the ideal answer is written from the rule's own knowledge:
the summary states the device, the signal and the measured value; the cause names causes from the pack's
notes; the action is the rule's action, cut to the schema's 140 characters without numbers the facts do
not contain. Knowledge is pluggable (`register_knowledge`): a diagnosis module can supply richer causes
per rule. Held out: devices, value draws and answer phrasings the training split never uses.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from edge_slm.detect import templates
from edge_slm.detect.diagnose import diagnose
from edge_slm.detect.knowledge import Knowledge as FaultKnowledge
from edge_slm.detect.knowledge import load_knowledge
from edge_slm.detect.rules import Direction, Rule, RuleKind, load_rules
from edge_slm.events import Alert, AlertState, Severity
from edge_slm.llm.explain import (
    EXPLANATION_SCHEMA,
    build_facts,
    facts_message,
    invented_numbers,
    knowledge_explanation,
    mentions_value,
)
from edge_slm.tune.examples import Example, Split, register_source

MAX_FIELD = int(EXPLANATION_SCHEMA["properties"]["summary"]["maxLength"])
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

SUMMARIES: dict[Split, tuple[str, ...]] = {
    "train": (
        "{Label} on {device} is {value}{unit}, {beyond} the {severity} limit.",
        "{device}: {label} reached {value}{unit} and is {trend}.",
        "{Label} of {device} is at {value}{unit} ({severity}).",
    ),
    "heldout": ("The {label} on {device} measured {value}{unit}, a {severity} level.",),
}
CAUSES: dict[Split, tuple[str, ...]] = {
    "train": ("Likely cause: {c1} or {c2}.", "{C1} or {c2} is the most likely cause.", "Probably {c1}."),
    "heldout": ("The usual causes are {c1} and {c2}.",),
}

Knowledge = Callable[[Rule], list[str]]  # rule -> known causes, most likely first
_KNOWLEDGE: list[Knowledge] = []

_CAUSE_LEADS = (
    re.compile(r"(?:common causes|causes|caused by|means|point to|indicates?)\s*:?\s*(.+)", re.IGNORECASE),
    re.compile(r"^(.+?)\s+(?:raise|raises|lead to|leads to)\b", re.IGNORECASE),  # "X, Y and Z raise the temperature"
)


def register_knowledge(source: Knowledge) -> None:
    """Add a source of causes per rule (e.g. a diagnosis module); the first non-empty answer wins."""
    _KNOWLEDGE.insert(0, source)


def causes_from_notes(rule: Rule) -> list[str]:
    """Cause phrases from the pack's notes: the list after "Causes:", "means", "point to" ..."""
    sentences = re.split(r"(?<=\.)\s+", rule.notes)
    for pattern, sentence in ((p, s) for p in _CAUSE_LEADS for s in sentences):
        match = pattern.search(sentence)
        if not match:
            continue
        body = match.group(1).rstrip(". ")
        parts = re.split(r",\s*|\s+or\s+|\s+and\s+", body)
        parts = [re.sub(r"^(or|and)\s+", "", p.strip(), flags=re.IGNORECASE) for p in parts]  # ", or x"
        causes = [re.sub(r"^(a|an|the)\s+", "", p, flags=re.IGNORECASE) for p in parts]
        # "over- or under-greasing": a dangling prefix is no cause of its own
        causes = [
            c[:1].lower() + c[1:]
            for c in causes
            if c and not c.endswith("-") and not re.search(r"\d", c) and len(c) <= 60
        ]
        if causes:
            return causes
    return []


def fallback_causes(rule: Rule) -> list[str]:
    label = rule.label or rule.signal
    if rule.direction is Direction.BELOW:
        return [f"a {label} drop", "a supply or charging problem"]
    return [f"an overload raising the {label}", "a fault in the cooling or supply"]


def known_causes(rule: Rule) -> list[str]:
    sources: list[Knowledge] = [*_KNOWLEDGE, causes_from_notes]
    for source in sources:
        found = source(rule)
        if found:
            return found
    return fallback_causes(rule)


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


def _fit(text: str, limit: int = MAX_FIELD) -> str:
    """Cut at a clause boundary so the text fits the schema and still ends as a sentence."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    for mark in ("; ", ", ", " "):
        pos = cut.rfind(mark)
        if pos > limit // 3:
            return cut[:pos].rstrip(",;") + "."
    return cut + "."


def _action(rule: Rule, facts_text: str) -> str:
    """The rule's action without clauses whose numbers the facts do not contain."""
    clauses = re.split(r"(?<=[.;])\s+", rule.action or "Inspect the equipment.")
    kept = [c for c in clauses if not invented_numbers(c, facts_text)]
    return _fit(" ".join(kept) or "Inspect the equipment and check the readings.")


def _trend(history: Sequence[tuple[float, float]]) -> str:
    first, last = history[0][1], history[-1][1]
    if last > first:
        return "rising"
    return "falling" if last < first else "steady"


def daemon_facts(item: SyntheticAlert) -> dict[str, object]:
    """The FACTS the daemon's explainer hands the model for this alert: its knowledge text, built from
    the diagnosis of the alert's history (llm.explain.knowledge_explanation)."""
    diagnosis = diagnose(item.alert, {item.alert.signal: list(item.history)}, _fault_knowledge())
    return build_facts(item.alert, knowledge_explanation(item.alert, diagnosis))


def _fault_knowledge() -> FaultKnowledge:
    global _LOADED_KNOWLEDGE
    if _LOADED_KNOWLEDGE is None:
        _LOADED_KNOWLEDGE = load_knowledge()
    return _LOADED_KNOWLEDGE


_LOADED_KNOWLEDGE: FaultKnowledge | None = None


def ideal_answer(item: SyntheticAlert, split: Split, rng: random.Random) -> dict[str, str]:
    alert, rule = item.alert, item.rule
    facts = daemon_facts(item)
    facts_text = facts_message(facts)
    label = rule.label or alert.signal
    unit = f" {rule.unit}" if rule.unit and rule.unit != "%" else (" %" if rule.unit == "%" else "")
    causes = known_causes(rule)
    c1 = causes[0]
    c2 = causes[1] if len(causes) > 1 else causes[0]
    if len(causes) > 2:
        c1, c2 = rng.sample(causes[:4], 2)
    fill = {
        "label": label, "Label": label[:1].upper() + label[1:], "device": alert.device, "value": facts["measured"],
        "unit": unit, "severity": alert.severity.label, "trend": _trend(item.history),
        "beyond": "above" if rule.direction is Direction.ABOVE else "below",
        "c1": c1, "C1": c1[:1].upper() + c1[1:], "c2": c2,
    }  # fmt: skip
    summary = _fit(rng.choice(SUMMARIES[split]).format(**fill))
    cause = _fit(rng.choice(CAUSES[split]).format(**fill))
    return {"summary": summary, "cause": cause, "action": _action(rule, facts_text)}


def explanation_examples(split: Split, seed: int = 0, rules: Sequence[Rule] | None = None) -> Iterator[Example]:
    rng = random.Random(f"explain-{split}-{seed}")
    for rule in rules if rules is not None else load_rules():
        devices = DEVICES[_pack_of(rule)][split]
        severities = [sev for sev, _ in rule.levels]
        for i in range(ALERTS_PER_RULE[split]):
            item = synthesize(rule, devices[i % len(devices)], severities[i % len(severities)], rng)
            answer = ideal_answer(item, split, rng)
            facts = daemon_facts(item)
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
                    "causes": known_causes(rule),
                    "facts": facts,
                },
            )


register_source("explanations", lambda split, seed: list(explanation_examples(split, seed)))

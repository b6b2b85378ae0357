"""Pure scoring: the explanation rubric and command scoring (no model, no torch)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edge_slm.intent.schema import ACTION_INTENTS, INTENT_SLOTS
from edge_slm.intent.slot_compare import slots_equal
from edge_slm.llm.explain import gate_texts, invented_numbers, mentions_value

FIELDS = ("summary", "cause", "action")
_WORD = re.compile(r"[a-z]+")
_STOP = frozenset({"the", "and", "with", "from", "that", "this", "than", "into", "over", "about", "low", "high"})
RUBRIC_CHECKS = (
    "json_valid", "not_cut_off", "states_value", "no_invented_numbers", "no_repetition", "names_cause", "passes_gate",
)  # fmt: skip


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def repeats(text: str, n: int = 4) -> bool:
    """A degenerate loop: some run of `n` words occurs twice."""
    words = _words(text)
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(grams) != len(set(grams))


def names_known_cause(cause: str, known: Iterable[str], label: str = "") -> bool:
    """The cause text mentions a content word of a known cause (words of the signal's own label, like
    "battery" for a battery alert, do not count)."""
    said = set(_words(cause))
    own = set(_words(label))
    for phrase in known:
        content = [w for w in _words(phrase) if len(w) >= 4 and w not in _STOP and w not in own]
        if any(w in said for w in content):
            return True
    return False


def explanation_checks(
    data: Mapping[str, Any] | None,
    *,
    cut_off: bool,
    facts_text: str,
    value: float,
    causes: Sequence[str],
    label: str,
    gate: Mapping[str, Any] | None = None,
) -> dict[str, bool]:
    """The rubric; `gate` (explain_data.gate_meta) adds the daemon's own gate, so a pass here is text the
    daemon would publish. Without it (older example files) the gate check is left out."""
    fields = {k: (data or {}).get(k) for k in FIELDS}
    valid = data is not None and all(isinstance(v, str) and v.strip() for v in fields.values())
    texts = {k: str(v) if isinstance(v, str) else "" for k, v in fields.items()}
    joined = " ".join(texts.values())
    distinct = len({t.strip().lower() for t in texts.values()}) == len(FIELDS)
    checks = {
        "json_valid": valid,
        "not_cut_off": not cut_off,
        "states_value": valid and mentions_value(texts["summary"], value),
        "no_invented_numbers": valid and not invented_numbers(joined, facts_text),
        "no_repetition": valid and distinct and not any(repeats(t) for t in texts.values()),
        "names_cause": valid and names_known_cause(texts["cause"], causes, label),
    }
    if gate is not None:
        checks["passes_gate"] = valid and not cut_off and passes_gate(texts, gate, value)
    return checks


def passes_gate(fields: Mapping[str, str], gate: Mapping[str, Any], value: float) -> bool:
    verdict = gate_texts(
        fields, tuple(gate["reference"]), value=value, device=str(gate["device"]),
        cause_keywords=gate.get("cause_keywords"), foreign_keywords=gate.get("foreign_keywords") or (),
    )  # fmt: skip
    return verdict == ""


@dataclass
class CommandScore:
    """As tools/score_intents.py counts: a wrong action fired with the wrong intent or wrong slots
    (spoken numbers equal to digits); an unsafe one fired for a command that asked for no such action."""

    total: int = 0
    correct: int = 0
    raw_correct: int = 0  # the model's own intent, before the tier's grounding checks
    slot_total: int = 0
    slot_correct: int = 0
    wrong_actions: int = 0
    unsafe_actions: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, text: str, gold_intent: str, gold_slots: Mapping[str, str], got_intent: str,
            got_slots: Mapping[str, str], raw_intent: str) -> None:  # fmt: skip
        self.total += 1
        ok = got_intent == gold_intent
        slots_ok = slots_equal(gold_slots, got_slots)
        self.correct += ok
        self.raw_correct += raw_intent == gold_intent
        if INTENT_SLOTS.get(gold_intent):
            self.slot_total += 1
            self.slot_correct += ok and slots_ok
        if got_intent in ACTION_INTENTS and not ok:
            self.unsafe_actions += 1
        if got_intent in ACTION_INTENTS and not (ok and slots_ok):
            self.wrong_actions += 1
            label = "UNSAFE" if not ok else "WRONG ACTION"
            gold = f"{gold_intent} {dict(gold_slots)}"
            self.errors.append(f"{label} {text!r}: {got_intent} {dict(got_slots)} (gold {gold})")
        elif not ok:
            self.errors.append(f"{text!r}: {got_intent} (gold {gold_intent}, raw {raw_intent})")

    def summary(self) -> dict[str, Any]:
        def rate(n: int, d: int) -> float | None:
            return round(n / d, 4) if d else None

        return {
            "n": self.total,
            "intent_accuracy": rate(self.correct, self.total),
            "raw_intent_accuracy": rate(self.raw_correct, self.total),
            "slot_accuracy": rate(self.slot_correct, self.slot_total),
            "wrong_actions": self.wrong_actions,
            "unsafe_actions": self.unsafe_actions,
        }

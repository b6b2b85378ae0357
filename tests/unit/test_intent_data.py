"""The labelled command sets are well-formed and the grammar tier does its job on them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_slm.intent.grammar import default_grammar
from edge_slm.intent.schema import ACTION_INTENTS, INTENT_SLOTS

DATA = Path(__file__).resolve().parents[1] / "data"
FILES = ["commands.jsonl", "commands_heldout.jsonl"]


def rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text("utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("name", FILES)
def test_labels_are_valid(name: str) -> None:
    for row in rows(name):
        assert set(row) == {"text", "intent", "slots"}, row
        assert row["intent"] in INTENT_SLOTS, row
        assert set(row["slots"]) == set(INTENT_SLOTS[row["intent"]]), row
        assert all(isinstance(v, str) for v in row["slots"].values()), row


def test_size_and_split() -> None:
    train, held = rows(FILES[0]), rows(FILES[1])
    assert len(train) + len(held) >= 300
    assert 0.25 <= len(held) / (len(train) + len(held)) <= 0.35
    assert not {r["text"] for r in train} & {r["text"] for r in held}
    for intent in INTENT_SLOTS:
        assert sum(r["intent"] == intent for r in train + held) >= 20, intent


@pytest.mark.parametrize("name", FILES)
def test_grammar_tier_quality(name: str) -> None:
    grammar = default_grammar()
    data = rows(name)
    correct = wrong_actions = 0
    for row in data:
        m = grammar.match(row["text"])
        name_, slots = (m.intent, m.slots) if m else ("unknown", {})
        ok = name_ == row["intent"] and slots == {k: v for k, v in row["slots"].items()}
        correct += ok
        wrong_actions += name_ in ACTION_INTENTS and not ok
    assert correct / len(data) >= 0.9
    # the training split is tuned to zero wrong actions; the held-out split is only measured
    assert wrong_actions <= (0 if name == FILES[0] else len(data) // 100)

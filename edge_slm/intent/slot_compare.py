"""Slot values compared the way a listener would: case, punctuation and spoken numbers aside
("two twenty one baker street" == "221 Baker Street", "seven forty five am" == "7:45 am").
Used by the scorers (tools/score_intents.py, edge_slm/tune/rubric.py) so every report counts a
wrong action the same way."""

from __future__ import annotations

from collections.abc import Mapping

from edge_slm.intent.normalize import basic_words
from edge_slm.intent.numbers import address_numbers, time_numbers


def canon_slot(value: str, slot: str = "") -> str:
    words = basic_words(value)
    return " ".join(time_numbers(words) if slot == "when" else address_numbers(words))


def slots_equal(gold: Mapping[str, str], got: Mapping[str, str]) -> bool:
    return all(canon_slot(got.get(k, ""), k) == canon_slot(v, k) for k, v in gold.items())

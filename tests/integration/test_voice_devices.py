"""`edge-slm devices` and capture at a device-only rate, against the private PulseAudio server."""

from __future__ import annotations

import io
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from edge_slm.commands.devices import list_devices as cmd_devices
from edge_slm.voice import audio
from edge_slm.voice.audio import SoundDeviceSource
from edge_slm.voice.devices import list_input_devices
from tests.audio_fixtures import PulseServer, pulse_server, start_playing

__all__ = ["pulse_server"]


def test_lists_the_pulse_device_with_rates(pulse_server: PulseServer) -> None:
    devices = list_input_devices()
    pulse = [d for d in devices if d["name"] == "pulse"]
    assert pulse, devices
    assert 16000 in pulse[0]["rates_hz"] and 48000 in pulse[0]["rates_hz"]
    assert isinstance(pulse[0]["index"], int)
    assert sum(1 for d in devices if d["default"]) <= 1
    out = io.StringIO()
    assert cmd_devices(out) == 0
    assert "pulse" in out.getvalue()


def test_capture_resamples_a_48k_only_device(pulse_server: PulseServer, tmp_path: Path) -> None:
    """Many USB/HDMI inputs only do 44.1/48 kHz: capture there, deliver 16 kHz."""
    rate_in = 48000
    t = np.arange(int(1.5 * rate_in)) / rate_in
    with wave.open(str(tmp_path / "tone.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate_in)
        w.writeframes((8000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16).tobytes())

    def refuse_16k(device: object = None, samplerate: float = 0, **kwargs: object) -> None:
        if samplerate != rate_in:
            raise ValueError("Invalid sample rate")

    src = SoundDeviceSource("pulse", 16000)
    sd = audio.import_sounddevice()
    real_check = sd.check_input_settings
    sd.check_input_settings = refuse_16k
    try:
        src.start()
    finally:
        sd.check_input_settings = real_check
    try:
        assert src.device_rate_hz == rate_in and "48000" in src.description
        while src.read(1.0) is None:  # first audio
            pass
        player = start_playing(pulse_server, tmp_path / "tone.wav")
        blocks = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and player.poll() is None:
            block = src.read(0.5)
            if block is not None:
                blocks.append(block)
        player.wait(5)
    finally:
        src.stop()
    samples = np.frombuffer(b"".join(b.pcm for b in blocks), dtype=np.int16).astype(np.float32)
    loud = samples[np.abs(samples) > 2000]
    assert len(loud) > 8000  # the tone arrived
    spectrum = np.abs(np.fft.rfft(samples))
    assert np.fft.rfftfreq(len(samples), 1 / 16000)[int(np.argmax(spectrum))] == pytest.approx(1000, abs=10)
    span_s = blocks[-1].t_s - blocks[0].t_s
    assert len(samples) / 16000 == pytest.approx(span_s, abs=0.2)  # 16 kHz out, timestamps consistent

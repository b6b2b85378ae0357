"""Audio plumbing that needs no device: resampling, WAV source, the capture hand-off's overflow policy."""

from __future__ import annotations

import builtins
import itertools
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge_slm.errors import DependencyMissing
from edge_slm.voice import audio
from edge_slm.voice.audio import Resampler, SoundDeviceSource, WavFileSource, load_wav_pcm


def tone(freq_hz: float, rate_hz: int, seconds: float) -> np.ndarray:
    t = np.arange(int(rate_hz * seconds)) / rate_hz
    return (8000 * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)


def dominant_hz(samples: np.ndarray, rate_hz: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float32)))
    return float(np.fft.rfftfreq(len(samples), 1 / rate_hz)[int(np.argmax(spectrum))])


def write_wav(path: Path, samples: np.ndarray, rate_hz: int, channels: int = 1) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate_hz)
        w.writeframes(samples.astype(np.int16).tobytes())


@pytest.mark.parametrize("use_soxr", [True, False])
@pytest.mark.parametrize("in_rate", [48000, 44100])
def test_resampler_streams_blocks_to_16k(use_soxr: bool, in_rate: int, monkeypatch: pytest.MonkeyPatch) -> None:
    if not use_soxr:
        real_import = builtins.__import__

        def no_soxr(name: str, *args: Any, **kwargs: Any) -> Any:
            if name == "soxr":
                raise ImportError("no soxr")
            return real_import(name, *args, **kwargs)

        monkeypatch.setattr(builtins, "__import__", no_soxr)
    resampler = Resampler(in_rate, 16000)
    assert (resampler._stream is not None) == use_soxr
    source = tone(1000, in_rate, 2.0)
    block = in_rate // 50  # 20 ms blocks, as from the audio callback
    out = b"".join(resampler.process(source[i : i + block].tobytes()) for i in range(0, len(source), block))
    samples = np.frombuffer(out, dtype=np.int16)
    assert abs(len(samples) - 32000) <= 200  # soxr holds back its filter delay until more input comes
    assert dominant_hz(samples[1000:], 16000) == pytest.approx(1000, abs=5)
    assert np.abs(samples[1000:]).max() == pytest.approx(8000, rel=0.1)


def test_resampler_passthrough_at_same_rate() -> None:
    data = tone(440, 16000, 0.1).tobytes()
    assert Resampler(16000, 16000).process(data) == data


def test_load_wav_pcm_mixes_down_and_resamples(tmp_path: Path) -> None:
    stereo = np.repeat(tone(500, 44100, 1.0), 2)
    write_wav(tmp_path / "s.wav", stereo, 44100, channels=2)
    pcm = np.frombuffer(load_wav_pcm(tmp_path / "s.wav", 16000), dtype=np.int16)
    assert len(pcm) == 16000
    assert dominant_hz(pcm, 16000) == pytest.approx(500, abs=5)


def test_wav_source_blocks_timestamps_and_end(tmp_path: Path) -> None:
    write_wav(tmp_path / "a.wav", tone(300, 16000, 0.5), 16000)
    src = WavFileSource(tmp_path / "a.wav", 16000, tail_silence_s=0.5)
    src.start()
    blocks = []
    while not src.finished:
        block = src.read(0.1)
        assert block is not None
        blocks.append(block)
    assert len(blocks) == 50 and all(b.n_samples == 320 for b in blocks)
    assert blocks[1].t_s - blocks[0].t_s == pytest.approx(0.02)
    assert blocks[0].t_s == pytest.approx(src.t0_s)
    assert src.read(0.01) is None


def test_wav_source_realtime_paces(tmp_path: Path) -> None:
    write_wav(tmp_path / "a.wav", tone(300, 16000, 0.3), 16000)
    src = WavFileSource(tmp_path / "a.wav", 16000, realtime=True, tail_silence_s=0.0)
    src.start()
    t0 = time.monotonic()
    while not src.finished:
        src.read(0.5)
    assert time.monotonic() - t0 == pytest.approx(0.3, abs=0.1)


def test_capture_handoff_drops_oldest_and_counts() -> None:
    src = SoundDeviceSource("", 16000, queue_blocks=3)
    src.device_rate_hz = 16000
    for i in range(5):
        src._callback(bytes([i, 0]) * 320, 320, None, None)
    assert src.dropped_blocks == 2
    assert [item[0][0] for item in src._queue] == [2, 3, 4]  # the newest are kept


def test_capture_clock_follows_samples_not_callback_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    src = SoundDeviceSource("", 16000, queue_blocks=100)
    src.device_rate_hz = 16000
    now = [1000.0]
    monkeypatch.setattr(audio.time, "time", lambda: now[0])
    arrivals = [0.02, 0.04, 0.09, 0.095, 0.10, 0.12, 0.14]  # a late callback, then a catch-up burst
    for t in arrivals:
        now[0] = 1000.0 + t
        src._callback(b"\0\0" * 320, 320, None, None)
    stamps = [t for _, t in src._queue]
    assert stamps[0] == pytest.approx(1000.0)
    assert stamps[-1] - stamps[0] == pytest.approx(6 * 0.02, abs=1e-3)  # 20 ms apart, whatever the jitter
    assert all(b - a == pytest.approx(0.02, abs=1e-3) for a, b in itertools.pairwise(stamps))


def test_missing_sounddevice_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "sounddevice", None)
    with pytest.raises(DependencyMissing, match=r"pip install 'edge-slm\[voice\]'"):
        audio.import_sounddevice()

"""Endpointing on synthetic signals: speech-like (syllable-modulated harmonics), noise, clicks."""

from __future__ import annotations

import numpy as np
import pytest

from edge_slm.voice.vad import Endpointer, EnergyDetector, VadEvent, VadEventKind, make_endpointer

RATE = 16000
RNG = np.random.default_rng(7)


def speechlike(seconds: float, rms: float = 3000.0) -> np.ndarray:
    """Harmonics of 140 Hz, amplitude-modulated at 4 Hz like syllables; `rms` is its RMS level."""
    t = np.arange(int(seconds * RATE)) / RATE
    voice = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 12))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t - np.pi / 2)
    signal = envelope * voice
    return rms * signal / np.sqrt(np.mean(signal**2))


def noise(seconds: float, level: float = 300.0) -> np.ndarray:
    return RNG.normal(0.0, level, int(seconds * RATE))


def pcm(*parts: np.ndarray) -> bytes:
    return np.clip(np.concatenate(parts), -32768, 32767).astype(np.int16).tobytes()


def run(ep: Endpointer, audio: bytes, chunk_bytes: int = 640) -> list[VadEvent]:
    events: list[VadEvent] = []
    t = 100.0
    for i in range(0, len(audio), chunk_bytes):
        chunk = audio[i : i + chunk_bytes]
        events += [e for e in ep.feed(chunk, t) if e.kind is not VadEventKind.AUDIO]
        t += len(chunk) / 2 / RATE
    return events


def kinds(events: list[VadEvent]) -> list[VadEventKind]:
    return [e.kind for e in events]


def test_silence_and_steady_noise_give_nothing() -> None:
    assert run(Endpointer(), pcm(np.zeros(3 * RATE))) == []
    assert run(Endpointer(), pcm(noise(5.0, 2000.0))) == []


@pytest.mark.parametrize("chunk_bytes", [640, 246, 4000])
def test_one_utterance_with_times(chunk_bytes: int) -> None:
    ep = Endpointer(trailing_silence_ms=500)
    events = run(ep, pcm(noise(1.0), speechlike(1.5) + noise(1.5), noise(1.5)), chunk_bytes)
    assert kinds(events) == [VadEventKind.START, VadEventKind.END]
    start, end = events
    assert start.t_s == pytest.approx(101.0, abs=0.1)
    assert end.t_s == pytest.approx(102.5, abs=0.1)
    assert end.reason == "silence"
    assert start.audio_t_s <= start.t_s - 0.2  # pre-roll before the onset
    assert len(start.pcm) >= 2 * int(0.2 * RATE)


def test_speech_in_strong_steady_noise() -> None:
    ep = Endpointer(trailing_silence_ms=500)
    events = run(
        ep, pcm(noise(2.0, 1000.0), speechlike(1.5, 3200.0) + noise(1.5, 1000.0), noise(2.0, 1000.0))
    )  # 10 dB SNR
    assert kinds(events) == [VadEventKind.START, VadEventKind.END]
    assert events[1].t_s == pytest.approx(103.5, abs=0.15)


def test_trailing_silence_is_configurable() -> None:
    audio = pcm(noise(1.0), speechlike(1.0) + noise(1.0), noise(3.0))
    ends = {}
    for trailing_ms in (300, 1200):
        ep = Endpointer(trailing_silence_ms=trailing_ms)
        end_frame_t = None
        t = 0.0
        for i in range(0, len(audio), 640):
            for e in ep.feed(audio[i : i + 640], t):
                if e.kind is VadEventKind.END:
                    end_frame_t = t
            t += 0.02
        ends[trailing_ms] = end_frame_t
    assert ends[300] is not None and ends[1200] is not None
    assert ends[1200] - ends[300] == pytest.approx(0.9, abs=0.06)


def test_max_utterance_length_forces_an_end() -> None:
    ep = Endpointer(max_utterance_s=2.0)
    events = run(ep, pcm(noise(1.0), speechlike(5.0) + noise(5.0)))
    assert events[0].kind is VadEventKind.START
    assert events[1].kind is VadEventKind.END and events[1].reason == "max_length"
    assert events[1].t_s - events[0].t_s == pytest.approx(2.0, abs=0.15)


def test_click_is_discarded() -> None:
    click = RNG.normal(0, 12000, int(0.08 * RATE))
    events = run(Endpointer(), pcm(noise(1.0), click, noise(2.0)))
    assert VadEventKind.END not in kinds(events)


def test_noise_switching_on_is_not_an_utterance() -> None:
    events = run(Endpointer(), pcm(np.zeros(RATE), noise(6.0, 1000.0)))
    assert VadEventKind.END not in kinds(events)
    assert kinds(events) in ([], [VadEventKind.START, VadEventKind.DISCARD])
    # and speech in the now-steady noise is still found
    ep = Endpointer(trailing_silence_ms=500)
    events = run(ep, pcm(np.zeros(RATE), noise(3.0, 1000.0), speechlike(1.5, 3200) + noise(1.5, 1000), noise(2, 1000)))
    assert kinds(events)[-2:] == [VadEventKind.START, VadEventKind.END]
    assert events[-1].t_s == pytest.approx(105.5, abs=0.2)


def test_energy_detector_floor_tracks_noise() -> None:
    det = EnergyDetector()
    frames = np.asarray(noise(3.0, 1000.0)).astype(np.int16).reshape(-1, 320)
    for frame in frames:
        det.is_speech(frame, False)
    level_floor = float(np.mean(det.floor_db))
    det2 = EnergyDetector()
    for frame in (frames * 0.1).astype(np.int16):
        det2.is_speech(frame, False)
    assert level_floor - float(np.mean(det2.floor_db)) == pytest.approx(20.0, abs=2.0)


def test_make_endpointer_rejects_unknown_detector() -> None:
    with pytest.raises(ValueError, match="unknown VAD"):
        make_endpointer("nope", RATE, 700, 10.0)
    assert isinstance(make_endpointer("energy", RATE, 700, 10.0), Endpointer)

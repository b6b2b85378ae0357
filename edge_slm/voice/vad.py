"""Endpointing: find where an utterance starts and ends in a stream of 16-bit mono PCM.

Choice of detector, measured with `python tools/bench_asr.py vad` on espeak-ng speech (Korean and
English) mixed by tools/make_voice_wavs.py with steady white / pink / brown noise (sox `synth`) at 20,
10 and 5 dB SNR, each also with the noise switching on 1 s before the speech, plus silence and noise
alone (30 cases):

* ``energy`` (default): sub-band energy against per-band adaptive noise floors, plus a stationarity
  check. 30/30 cases with the right number of utterances; median boundary error 0.01 s; the start
  is late by <= 0.2 s at 5 dB SNR (the 300 ms pre-roll still hands that audio to the recognizer).
  Pure numpy, ~0.13 ms per 20 ms frame (0.7 % of a core here), no native dependency.
* ``webrtc`` (PyPI ``webrtcvad-wheels``, mode 3): right count in 30/30 too, but every end is
  70-110 ms late, and at 5 dB SNR in pink or brown noise it marks the noise itself as speech (the
  "utterance" ran 0.00-3.54 s for speech at 1.00-2.49 s: in noise that does not stop it would only
  end at `max_utterance_s`). It has fixed thresholds and no notion of the noise floor.
* ``hybrid`` (webrtc AND energy): the energy results, for the price of the extra package; kept as an
  option for places with non-stationary noise (voices, music) that the energy detector takes for speech.
* Vosk's own endpointing needs the recognizer to decode *all* audio all the time (~0.18 of a core
  here, several times that on a Pi, in silence too) and turns noise into words; gating the
  recognizer with this endpointer means it only runs during utterances.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from edge_slm.errors import DependencyMissing

FRAME_MS = 20
STATIONARY_WINDOW_FRAMES = 1000 // FRAME_MS  # 1 s


class SpeechDetector(Protocol):
    """Decides per 20 ms frame whether it holds speech."""

    def is_speech(self, frame: np.ndarray, in_utterance: bool) -> bool: ...


class EnergyDetector:
    """Sub-band energy over adaptive per-band noise floors (see module docstring).

    Each 20 ms frame's spectrum is split into bands between 200 and 4000 Hz; each band keeps its own
    noise floor (falls fast, rises with `rise_time_s`), and the frame's score is the mean over bands of
    how far (dB, clipped at 0) the band stands above its floor. Coloured noise (white hiss, brown
    rumble) raises only its own bands' floors, while speech formants stick out of them.
    """

    BAND_EDGES_HZ: tuple[int, ...] = (200, 400, 600, 800, 1000, 1300, 1600, 2000, 2500, 3200, 4000)

    def __init__(
        self,
        sample_rate_hz: int = 16000,
        start_score_db: float = 6.0,
        keep_score_db: float = 3.0,
        min_level_db: float = -60.0,
        rise_time_s: float = 4.0,
        warmup_s: float = 0.3,
        stationary_std_db: float = 3.0,
    ) -> None:
        frames_per_s = 1000 / FRAME_MS
        self.start_score_db = start_score_db
        self.keep_score_db = keep_score_db
        self.min_level_db = min_level_db
        self._rise = 1.0 - math.exp(-1.0 / (rise_time_s * frames_per_s))
        self._track = 1.0 - math.exp(-1.0 / (0.5 * frames_per_s))
        self._warmup_frames = int(warmup_s * frames_per_s)
        self._frames = 0
        n = sample_rate_hz * FRAME_MS // 1000
        freqs = np.fft.rfftfreq(n, 1.0 / sample_rate_hz)
        edges = [e for e in self.BAND_EDGES_HZ if e <= sample_rate_hz / 2]
        self._bands = [
            (int(np.searchsorted(freqs, lo)), int(np.searchsorted(freqs, hi))) for lo, hi in itertools.pairwise(edges)
        ]
        self._window = np.hanning(n).astype(np.float32)
        self.floor_db = np.full(len(self._bands), -120.0)
        self.score_db = 0.0
        self.level_db = -120.0
        # stationarity check: 1 s of "speech" whose level hardly moves is a noise that just started
        self.stationary_std_db = stationary_std_db
        self._history: deque[tuple[float, np.ndarray]] = deque(maxlen=STATIONARY_WINDOW_FRAMES)
        self.noise_reset = False

    def band_levels(self, frame: np.ndarray) -> np.ndarray:
        x = frame.astype(np.float32) / 32768.0
        if len(x) != len(self._window):
            x = np.resize(x, len(self._window))
        power = np.abs(np.fft.rfft(x * self._window)) ** 2
        bands = np.array([power[lo:hi].mean() for lo, hi in self._bands])
        return 10.0 * np.log10(bands + 1e-14)

    def is_speech(self, frame: np.ndarray, in_utterance: bool) -> bool:
        levels = self.band_levels(frame)
        self.level_db = float(10.0 * np.log10(np.mean(10.0 ** (levels / 10.0))))
        self._frames += 1
        if self._frames <= self._warmup_frames:
            self.floor_db = levels if self._frames == 1 else np.minimum(self.floor_db, levels)
            return False
        raw_score = float(np.mean(np.clip(levels - self.floor_db, 0.0, None)))
        self.score_db = 0.5 * self.score_db + 0.5 * raw_score  # 20 ms band powers are noisy: smooth a little
        threshold = self.keep_score_db if in_utterance else self.start_score_db
        speech = self.score_db > threshold and self.level_db > self.min_level_db
        if in_utterance and speech:
            # 1 s of uninterrupted "speech" whose level hardly moves is a noise that just switched on.
            # Measured (tools/bench_asr.py): white/pink/brown noise levels in 1 s windows vary by
            # 0.6-2.0 dB (std); speech by >= 4.3 dB even at 5 dB SNR, and it pauses.
            self._history.append((self.level_db, levels))
            if len(self._history) == self._history.maxlen and self._stationary():
                self.floor_db = np.mean(np.stack([lv for _, lv in self._history]), axis=0)
                self._history.clear()
                self.noise_reset = True
                self.score_db = 0.0
                return False
        else:
            self._history.clear()
        if not in_utterance and not speech:
            # between utterances the floor follows the noise's mean level (0.5 s time constant)
            self.floor_db = self.floor_db + self._track * (levels - self.floor_db)
        else:
            # in an utterance it drifts only slowly (both ways), so speech does not become the floor
            self.floor_db = self.floor_db + self._rise * (levels - self.floor_db)
        return speech

    def _stationary(self) -> bool:
        return float(np.std([level for level, _ in self._history])) < self.stationary_std_db


class WebRtcDetector:
    """Google's WebRTC VAD (PyPI ``webrtcvad-wheels``); `mode` 0 (lenient) to 3 (aggressive)."""

    def __init__(self, sample_rate_hz: int = 16000, mode: int = 3) -> None:
        try:
            import webrtcvad
        except ImportError as err:
            raise DependencyMissing("webrtcvad is not installed: pip install webrtcvad-wheels") from err
        self._vad: Any = webrtcvad.Vad(mode)
        self.sample_rate_hz = sample_rate_hz

    def is_speech(self, frame: np.ndarray, in_utterance: bool) -> bool:
        return bool(self._vad.is_speech(frame.tobytes(), self.sample_rate_hz))


class HybridDetector:
    """Speech only where both WebRTC and the energy detector say so."""

    def __init__(self, sample_rate_hz: int = 16000, mode: int = 2) -> None:
        self.energy = EnergyDetector(sample_rate_hz)
        self.webrtc = WebRtcDetector(sample_rate_hz, mode)

    @property
    def noise_reset(self) -> bool:
        return self.energy.noise_reset

    @noise_reset.setter
    def noise_reset(self, value: bool) -> None:
        self.energy.noise_reset = value

    def is_speech(self, frame: np.ndarray, in_utterance: bool) -> bool:
        energetic = self.energy.is_speech(frame, in_utterance)
        return self.webrtc.is_speech(frame, in_utterance) and energetic


DETECTORS: dict[str, Callable[[int], SpeechDetector]] = {
    "energy": lambda rate: EnergyDetector(rate),
    "webrtc": lambda rate: WebRtcDetector(rate),
    "hybrid": lambda rate: HybridDetector(rate),
}


class VadEventKind(enum.Enum):
    START = "start"  # pcm: the pre-roll plus the onset frames
    AUDIO = "audio"  # pcm: more of the current utterance
    END = "end"  # pcm: empty; reason says why
    DISCARD = "discard"  # the utterance was too short to be speech (a click, a door)


@dataclass(frozen=True, slots=True)
class VadEvent:
    kind: VadEventKind
    t_s: float  # START: speech onset time; END: time of the last speech frame's end
    pcm: bytes = b""
    reason: str = ""
    audio_t_s: float = 0.0  # START: Unix time of the first sample of `pcm` (the pre-roll's start)


class Endpointer:
    """Turns frames into START / AUDIO / END events.

    Onset: `onset_frames` speech frames among the last `onset_window` frames; the event carries
    `preroll_ms` of audio from before the onset so the recognizer hears the first phoneme. End: after
    `trailing_silence_ms` without speech, or at `max_utterance_s`. Utterances with less than
    `min_speech_ms` of speech frames are discarded.
    """

    def __init__(
        self,
        sample_rate_hz: int = 16000,
        trailing_silence_ms: int = 700,
        max_utterance_s: float = 10.0,
        detector: SpeechDetector | None = None,
        preroll_ms: int = 300,
        onset_frames: int = 3,
        onset_window: int = 5,
        min_speech_ms: int = 200,
    ) -> None:
        self.sample_rate_hz = sample_rate_hz
        self.frame_samples = sample_rate_hz * FRAME_MS // 1000
        self.detector = detector or EnergyDetector(sample_rate_hz)
        self.trailing_frames = max(1, trailing_silence_ms // FRAME_MS)
        self.max_frames = max(1, int(max_utterance_s * 1000 / FRAME_MS))
        self.onset_frames = onset_frames
        self.min_speech_frames = max(1, min_speech_ms // FRAME_MS)
        self._recent: deque[tuple[bytes, float, bool]] = deque(maxlen=max(onset_window, preroll_ms // FRAME_MS))
        self._onset_window = onset_window
        self._pending = b""
        self._pending_t_s = 0.0
        self.in_utterance = False
        self._silence_run = 0
        self._utt_frames = 0
        self._speech_frames = 0
        self._last_speech_end_s = 0.0
        self._prev_speech = False

    def reset(self) -> None:
        self._recent.clear()
        self._pending = b""
        self.in_utterance = False

    def feed(self, pcm: bytes, t_s: float) -> list[VadEvent]:
        """Add audio whose first sample is at Unix time `t_s`; returns the events it completes."""
        if not self._pending:
            self._pending_t_s = t_s
        self._pending += pcm
        events: list[VadEvent] = []
        frame_bytes = 2 * self.frame_samples
        while len(self._pending) >= frame_bytes:
            frame, self._pending = self._pending[:frame_bytes], self._pending[frame_bytes:]
            t_frame = self._pending_t_s
            self._pending_t_s += self.frame_samples / self.sample_rate_hz
            events.extend(self._frame(frame, t_frame))
        return events

    def _frame(self, frame: bytes, t_s: float) -> list[VadEvent]:
        samples = np.frombuffer(frame, dtype=np.int16)
        speech = self.detector.is_speech(samples, self.in_utterance)
        frame_s = FRAME_MS / 1000
        if not self.in_utterance:
            self._recent.append((frame, t_s, speech))
            window = list(self._recent)[-self._onset_window :]
            if sum(1 for _, _, s in window if s) < self.onset_frames:
                return []
            onset_t = next(t for _, t, s in window if s)
            self.in_utterance = True
            self._silence_run = 0
            self._utt_frames = len(window)
            self._speech_frames = sum(1 for _, _, s in window if s)
            self._last_speech_end_s = t_s + frame_s
            pcm = b"".join(f for f, _, _ in self._recent)
            audio_t = self._recent[0][1]
            self._recent.clear()
            return [VadEvent(VadEventKind.START, onset_t, pcm, audio_t_s=audio_t)]
        if getattr(self.detector, "noise_reset", False):
            # The last second was a steady noise, not speech. If that is all the utterance was (the
            # noise just switched on), drop it; if speech came first, end the utterance where it began.
            self.detector.noise_reset = False  # type: ignore[attr-defined]
            self.in_utterance = False
            self._prev_speech = False
            if self._utt_frames <= STATIONARY_WINDOW_FRAMES + self._onset_window:
                return [VadEvent(VadEventKind.DISCARD, t_s, reason="stationary noise")]
            end_t = t_s + frame_s - STATIONARY_WINDOW_FRAMES * frame_s
            return [VadEvent(VadEventKind.END, end_t, reason="stationary noise")]
        self._utt_frames += 1
        if speech:
            self._speech_frames += 1
            if self._prev_speech:  # one isolated noisy frame does not restart the trailing silence
                self._silence_run = 0
                self._last_speech_end_s = t_s + frame_s
            else:
                self._silence_run += 1
        else:
            self._silence_run += 1
        self._prev_speech = speech
        events = [VadEvent(VadEventKind.AUDIO, t_s, frame)]
        reason = ""
        if self._silence_run >= self.trailing_frames:
            reason = "silence"
        elif self._utt_frames >= self.max_frames:
            reason = "max_length"
        if reason:
            self.in_utterance = False
            kind = VadEventKind.END if self._speech_frames >= self.min_speech_frames else VadEventKind.DISCARD
            events.append(VadEvent(kind, self._last_speech_end_s, reason=reason))
        return events


def make_endpointer(kind: str, sample_rate_hz: int, trailing_silence_ms: int, max_utterance_s: float) -> Endpointer:
    """An endpointer with the named detector ("energy", "webrtc" or "hybrid")."""
    factory = DETECTORS.get(kind)
    if factory is None:
        raise ValueError(f"unknown VAD {kind!r}; choose one of {', '.join(DETECTORS)}")
    return Endpointer(sample_rate_hz, trailing_silence_ms, max_utterance_s, detector=factory(sample_rate_hz))

"""Audio capture: the `AudioSource` seam, a sounddevice (PortAudio) microphone and a WAV file source.

Every source delivers 16-bit little-endian mono PCM at the recognizer's rate in `AudioBlock`s that carry
the wall-clock time of their first sample, so utterance times can be reported in Unix seconds.
PortAudio calls us on its own thread; the callback only copies the block into a bounded deque
(drop-oldest, counted) and wakes the reader. Resampling happens on the reader's side, never in the
audio callback.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge_slm.errors import DependencyMissing, EdgeSlmError

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'edge-slm[voice]'"
#: Rates tried, in order, when the device refuses the recognizer's own rate.
FALLBACK_RATES_HZ: tuple[int, ...] = (48000, 44100, 32000, 22050, 16000)
#: How fast (s per s) the capture clock's anchor may move later, to follow a slow sound card clock.
ANCHOR_CREEP = 0.005


class AudioDeviceError(EdgeSlmError):
    """The input device is missing, could not be opened, or stopped delivering audio."""


@dataclass(frozen=True, slots=True)
class AudioBlock:
    """A run of int16 mono samples at the source's `sample_rate_hz`; `t_s` is the first sample's Unix time."""

    pcm: bytes = field(repr=False)
    t_s: float = 0.0

    @property
    def n_samples(self) -> int:
        return len(self.pcm) // 2


class AudioSource(Protocol):
    """Where utterances come from. `read` blocks up to `timeout_s`; None means no audio yet."""

    sample_rate_hz: int
    description: str

    def start(self) -> None: ...

    def read(self, timeout_s: float) -> AudioBlock | None: ...

    def stop(self) -> None: ...

    @property
    def finished(self) -> bool:
        """True once a finite source (a file) has delivered everything."""
        ...

    @property
    def dropped_blocks(self) -> int: ...


def import_sounddevice() -> Any:
    """Import sounddevice lazily, translating a missing package or PortAudio library."""
    try:
        import sounddevice
    except ImportError as err:  # no package
        raise DependencyMissing(f"sounddevice is not installed: {INSTALL_HINT}") from err
    except OSError as err:  # package present, libportaudio missing
        raise DependencyMissing(
            f"PortAudio library not found ({err}): install libportaudio2 and {INSTALL_HINT}"
        ) from err
    return sounddevice


def rescan_devices(sd: Any) -> None:
    """Make PortAudio enumerate devices afresh (it caches the list from its initialisation)."""
    try:
        sd._terminate()
        sd._initialize()
    except Exception as err:
        log.debug("PortAudio re-initialisation failed: %s", err)


class Resampler:
    """Streaming int16 mono resampler: soxr when installed, else linear interpolation with numpy.

    soxr keeps filter state across blocks (no clicks at block edges) and is cheap (a few % of a core
    at 48 kHz -> 16 kHz). The numpy fallback is adequate for speech recognition, which only needs 0-8 kHz.
    """

    def __init__(self, in_rate_hz: int, out_rate_hz: int) -> None:
        self.in_rate_hz = in_rate_hz
        self.out_rate_hz = out_rate_hz
        self._stream: Any = None
        self._carry = np.zeros(0, dtype=np.float32)
        self._pos = 0.0
        if in_rate_hz != out_rate_hz:
            try:
                import soxr

                self._stream = soxr.ResampleStream(in_rate_hz, out_rate_hz, 1, dtype="int16", quality="HQ")
            except ImportError:
                log.info("soxr not installed; resampling %d -> %d Hz with numpy", in_rate_hz, out_rate_hz)

    def process(self, pcm: bytes) -> bytes:
        if self.in_rate_hz == self.out_rate_hz:
            return pcm
        samples = np.frombuffer(pcm, dtype=np.int16)
        if self._stream is not None:
            out: np.ndarray = self._stream.resample_chunk(samples)
            return out.astype(np.int16).tobytes()
        return self._numpy(samples)

    def _numpy(self, samples: np.ndarray) -> bytes:
        x = np.concatenate([self._carry, samples.astype(np.float32)])
        step = self.in_rate_hz / self.out_rate_hz
        positions = np.arange(self._pos, len(x) - 1, step)
        out = np.interp(positions, np.arange(len(x)), x)
        next_pos = positions[-1] + step if len(positions) else self._pos
        keep_from = int(next_pos)
        self._carry = x[keep_from:]
        self._pos = next_pos - keep_from
        return np.clip(np.rint(out), -32768, 32767).astype(np.int16).tobytes()


class SoundDeviceSource:
    """Microphone via sounddevice `RawInputStream` (int16, mono).

    Opens at `sample_rate_hz` when the device accepts it, else at the first rate in FALLBACK_RATES_HZ it
    does accept (many USB and HDMI devices only do 44.1/48 kHz), and resamples. `device` is a sounddevice
    name (substring match, as sounddevice does it), an index as text, or "" for the system default.
    A stream that delivers nothing for `stall_timeout_s` is reported as lost (PortAudio's ALSA host API
    does not always raise when a device or the PulseAudio server disappears; the callback simply stops).
    """

    def __init__(
        self,
        device: str = "",
        sample_rate_hz: int = 16000,
        block_ms: int = 20,
        queue_blocks: int = 200,
        stall_timeout_s: float = 2.0,
        startup_timeout_s: float = 6.0,
    ) -> None:
        self.sample_rate_hz = sample_rate_hz
        self.device_spec = device
        self.block_ms = block_ms
        self.stall_timeout_s = stall_timeout_s
        self.startup_timeout_s = startup_timeout_s
        self._got_data = False
        self._anchor_s = 0.0
        self._samples_in = 0
        self.description = device or "default"
        self.device_rate_hz = sample_rate_hz
        self._queue: collections.deque[tuple[bytes, float]] = collections.deque(maxlen=queue_blocks)
        self._cond = threading.Condition()
        self._dropped = 0
        self._stream: Any = None
        self._resampler: Resampler | None = None
        self._last_data_s = 0.0
        self._callback_errors = 0

    # -- PortAudio thread -------------------------------------------------------------------------
    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        now = time.time()
        if status:
            self._callback_errors += 1
        # Sample clock: a block's first sample is at anchor + (samples before it) / rate. The anchor is
        # the earliest "arrival time - samples so far / rate" seen (arrival is never early, only late by
        # scheduling jitter or a start-up burst), allowed to creep forward 5 ms/s to follow a sound card
        # clock slower than the system's. PortAudio's inputBufferAdcTime was measured to be 0.25-0.66 s
        # off for the first second of a PulseAudio stream, so it is not used.
        observed = now - (self._samples_in + frames) / self.device_rate_hz
        if self._anchor_s == 0.0 or (status and status.input_overflow):
            self._anchor_s = observed  # (re)start, or samples were lost before they reached us
        else:
            self._anchor_s = min(observed, self._anchor_s + ANCHOR_CREEP * frames / self.device_rate_hz)
        t_first = self._anchor_s + self._samples_in / self.device_rate_hz
        self._samples_in += frames
        with self._cond:
            if len(self._queue) == self._queue.maxlen:
                self._dropped += 1  # deque drops the oldest on append
            self._queue.append((bytes(indata), t_first))
            self._last_data_s = time.monotonic()
            self._got_data = True
            self._cond.notify()

    # -- reader side --------------------------------------------------------------------------------
    @property
    def dropped_blocks(self) -> int:
        return self._dropped

    @property
    def overflows(self) -> int:
        """Callbacks PortAudio flagged (input overflow: samples lost before they reached us)."""
        return self._callback_errors

    @property
    def finished(self) -> bool:
        return False

    def _resolve_device(self, sd: Any) -> int | str | None:
        spec = self.device_spec.strip()
        if not spec:
            return None
        if spec.lstrip("-").isdigit():
            return int(spec)
        return spec

    def start(self) -> None:
        sd = import_sounddevice()
        device = self._resolve_device(sd)
        try:
            info = sd.query_devices(device, "input")
        except Exception:
            # PortAudio lists devices once, at initialisation: re-scan for one plugged in (or a sound
            # server started) since. Only then, because re-initialising closes every open stream.
            rescan_devices(sd)
            try:
                info = sd.query_devices(device, "input")
            except Exception as err:
                raise AudioDeviceError(f"input device {self.device_spec or 'default'!r} not found: {err}") from err
        rate = self._pick_rate(sd, device, int(info.get("default_samplerate") or 0))
        self.device_rate_hz = rate
        self._resampler = Resampler(rate, self.sample_rate_hz)
        self.description = f"{info['name']} @ {rate} Hz"
        blocksize = max(1, rate * self.block_ms // 1000)
        self._anchor_s = 0.0  # reset before the callback can run
        self._samples_in = 0
        self._got_data = False
        self._last_data_s = time.monotonic()
        try:
            stream = sd.RawInputStream(
                device=device,
                samplerate=rate,
                channels=1,
                dtype="int16",
                blocksize=blocksize,
                latency="low",
                callback=self._callback,
            )
            stream.start()
        except Exception as err:
            raise AudioDeviceError(f"cannot open input device {self.description}: {err}") from err
        self._stream = stream
        log.debug("capturing from %s (block %d frames)", self.description, blocksize)

    def _pick_rate(self, sd: Any, device: int | str | None, default_rate: int) -> int:
        candidates = [self.sample_rate_hz]
        if default_rate:
            candidates.append(default_rate)
        candidates += [r for r in FALLBACK_RATES_HZ if r not in candidates]
        last_err: Exception | None = None
        for rate in candidates:
            try:
                sd.check_input_settings(device=device, channels=1, dtype="int16", samplerate=rate)
                return rate
            except Exception as err:
                last_err = err
        raise AudioDeviceError(f"input device {self.device_spec or 'default'!r} accepts no usable rate: {last_err}")

    def read(self, timeout_s: float) -> AudioBlock | None:
        if self._stream is None:
            raise AudioDeviceError("input stream is not open")
        with self._cond:
            if not self._queue:
                self._cond.wait(timeout_s)
            item = self._queue.popleft() if self._queue else None
        if item is None:
            self._check_alive()
            return None
        pcm, t_first = item
        assert self._resampler is not None
        return AudioBlock(self._resampler.process(pcm), t_first)

    def _check_alive(self) -> None:
        stream = self._stream
        # PulseAudio can take ~2 s to deliver the first block of a new stream: longer grace until then
        limit_s = self.stall_timeout_s if self._got_data else max(self.stall_timeout_s, self.startup_timeout_s)
        stalled = time.monotonic() - self._last_data_s > limit_s
        if stream is not None and (not stream.active or stalled):
            why = "stream stopped" if not stream.active else f"no audio for {limit_s:.1f} s"
            raise AudioDeviceError(f"input device {self.description} lost: {why}")

    def stop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.abort(ignore_errors=True)
                stream.close(ignore_errors=True)
            except Exception as err:
                log.debug("closing input stream: %s", err)
        with self._cond:
            self._queue.clear()


def load_wav_pcm(path: str | Path, sample_rate_hz: int) -> bytes:
    """A WAV file as int16 mono PCM at `sample_rate_hz` (channels averaged, resampled if needed)."""
    with wave.open(str(path), "rb") as wav:
        width, channels, rate = wav.getsampwidth(), wav.getnchannels(), wav.getframerate()
        raw = wav.readframes(wav.getnframes())
    if width != 2:
        raise EdgeSlmError(f"{path}: only 16-bit WAV is supported (got {8 * width}-bit)")
    samples = np.frombuffer(raw, dtype=np.int16)
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype(np.int16)
    pcm = samples.tobytes()
    if rate != sample_rate_hz:
        resampler = Resampler(rate, sample_rate_hz)
        pcm = resampler.process(pcm) + resampler.process(b"\0\0" * (rate // 10))  # flush filter delay
        pcm = pcm[: 2 * int(len(samples) * sample_rate_hz / rate)]
    return pcm


class WavFileSource:
    """A WAV file as an audio source, for tests, benchmarks and the demo.

    `realtime=True` paces blocks at the audio rate; False delivers as fast as they are read, with
    timestamps on a virtual clock starting at `start()`. `tail_silence_s` of silence is appended so the
    endpointer can close the last utterance.
    """

    def __init__(
        self,
        path: str | Path,
        sample_rate_hz: int = 16000,
        realtime: bool = False,
        block_ms: int = 20,
        tail_silence_s: float = 1.5,
    ) -> None:
        self.sample_rate_hz = sample_rate_hz
        self.description = f"file {path}"
        self.realtime = realtime
        pcm = load_wav_pcm(path, sample_rate_hz)
        self._pcm = pcm + b"\0\0" * int(tail_silence_s * sample_rate_hz)
        self._block_bytes = 2 * max(1, sample_rate_hz * block_ms // 1000)
        self._offset = 0
        self._t0_s = 0.0
        self._mono0 = 0.0

    @property
    def finished(self) -> bool:
        return self._offset >= len(self._pcm)

    @property
    def dropped_blocks(self) -> int:
        return 0

    @property
    def t0_s(self) -> float:
        """Unix time of the file's first sample (set by `start()`)."""
        return self._t0_s

    @property
    def duration_s(self) -> float:
        return len(self._pcm) / 2 / self.sample_rate_hz

    def start(self) -> None:
        self._offset = 0
        self._t0_s = time.time()
        self._mono0 = time.monotonic()

    def read(self, timeout_s: float) -> AudioBlock | None:
        if self.finished:
            time.sleep(min(timeout_s, 0.01))
            return None
        t_rel = self._offset / 2 / self.sample_rate_hz
        if self.realtime:
            block_end_rel = t_rel + self._block_bytes / 2 / self.sample_rate_hz
            wait = self._mono0 + block_end_rel - time.monotonic()
            if wait > timeout_s:
                time.sleep(timeout_s)
                return None
            if wait > 0:
                time.sleep(wait)
        chunk = self._pcm[self._offset : self._offset + self._block_bytes]
        self._offset += len(chunk)
        return AudioBlock(chunk, self._t0_s + t_rel)

    def stop(self) -> None:
        self._offset = len(self._pcm)

"""Speech output, the playback side: queued texts -> a synthesizer (`voice.speech_out`) -> sound card.

`Speaker` owns one thread that speaks queued texts in order through sounddevice on
`voice.output_device`: an announcement queued during a reply is spoken after it, never over it.
It remembers when it was audible (plus `tail_s`), so the microphone path can drop utterances that
overlap its own voice (half-duplex: `heard_itself`). A missing output device is reported once and
retried at the next utterance; speaking never raises into the caller.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from edge_slm.errors import EdgeSlmError
from edge_slm.voice.speech_out import SpeechError, SpeechOutput, build_speech_output, clean_for_speech

log = logging.getLogger(__name__)

MAX_QUEUED = 8
WRITE_BLOCK_S = 0.05  # playback is written in blocks this long, so stop() is heard at once
OUTPUT_LATENCY_S = 0.15  # device buffer: a smaller one underruns (gaps) on a busy 2-core board
PLAYBACK_INTERVALS_KEPT = 16
_SPOKEN_COUNTER = {"reply": "spoken_replies", "announcement": "spoken_announcements", "say": "spoken_say"}


class AudioSink(Protocol):
    """Where speech goes: open for a rate, write int16 mono PCM (blocking), close when played."""

    def open(self, sample_rate_hz: int) -> None: ...

    def write(self, pcm: bytes) -> None: ...

    def close(self) -> None: ...


class SoundDeviceSink:
    """A PortAudio output stream on `device` ("" = the default output); a rate the device refuses
    is resampled to one it takes."""

    def __init__(self, device: str = "") -> None:
        self.device: str | int | None = (int(device) if device.isdigit() else device) if device else None
        self._stream: Any = None
        self._resampler: Any = None
        self.latency_s = 0.0

    def open(self, sample_rate_hz: int) -> None:
        from edge_slm.voice.audio import FALLBACK_RATES_HZ, Resampler, import_sounddevice, rescan_devices

        sd = import_sounddevice()
        last: Exception | None = None
        rates = (sample_rate_hz, *FALLBACK_RATES_HZ)
        for attempt, rate in enumerate((*rates, *rates)):
            if attempt == len(rates):
                rescan_devices(sd)  # PortAudio lists devices once: a sound server started later needs a rescan
            try:
                stream = sd.RawOutputStream(
                    samplerate=rate, channels=1, dtype="int16", device=self.device, latency=OUTPUT_LATENCY_S
                )
                stream.start()
            except Exception as err:  # PortAudioError, ValueError for an unknown device name
                last = err
                continue
            self._stream = stream
            self._resampler = Resampler(sample_rate_hz, rate) if rate != sample_rate_hz else None
            self.latency_s = float(stream.latency)
            return
        raise SpeechError(f"cannot open audio output {self.device or 'default'!r}: {last}")

    def write(self, pcm: bytes) -> None:
        if self._resampler is not None:
            pcm = self._resampler.process(pcm)
        if pcm:
            self._stream.write(pcm)

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()  # waits until what was written has played
                stream.close()
            except Exception as err:
                log.debug("closing audio output: %s", err)


@dataclass
class Utterance:
    text: str
    kind: str  # "reply" | "announcement" | "say"
    queued_ts: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    first_audio_ms: float = -1.0  # queued -> first sample handed to the device
    synth_s: float = 0.0
    audio_s: float = 0.0
    error: str = ""
    interrupted: bool = False


class Speaker:
    """Speaks queued texts one at a time on its own thread; see the module docstring."""

    def __init__(
        self,
        speech: SpeechOutput | Callable[[], SpeechOutput],
        sink_factory: Callable[[], AudioSink],
        *,
        tail_s: float = 0.4,
        on_status: Callable[[str, str], None] | None = None,
    ) -> None:
        # A factory is called on the speaking thread (loading Piper takes a second or two).
        self._speech: SpeechOutput | None = None
        self._speech_factory: Callable[[], SpeechOutput] | None = None
        if callable(speech) and not hasattr(speech, "synthesize"):
            self._speech_factory = speech
        else:
            self._speech = speech  # type: ignore[assignment]
        self._sink_factory = sink_factory
        self.tail_s = tail_s
        self._on_status = on_status
        self._queue: queue.Queue[Utterance | None] = queue.Queue(maxsize=MAX_QUEUED)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._interrupt = threading.Event()  # barge-in: cut the current utterance and what is queued
        self._current: Utterance | None = None  # being synthesized or played by the speaking thread
        self._lock = threading.Lock()
        self._speaking_since: float | None = None  # wall clock
        self._intervals: collections.deque[tuple[float, float]] = collections.deque(maxlen=PLAYBACK_INTERVALS_KEPT)
        self._status = ""
        self.counters: dict[str, int] = dict.fromkeys(
            ("spoken_replies", "spoken_announcements", "spoken_say", "dropped_queue_full", "errors", "interrupted"), 0
        )
        self.last: Utterance | None = None
        self.history: collections.deque[Utterance] = collections.deque(maxlen=PLAYBACK_INTERVALS_KEPT)

    # -- public --------------------------------------------------------------------------------------
    @property
    def speech(self) -> SpeechOutput:
        """The synthesizer, built now if it was given as a factory (raises when it cannot be)."""
        if self._speech is None:
            assert self._speech_factory is not None
            self._speech = self._speech_factory()
        return self._speech

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="speech-out", daemon=True)
            self._thread.start()

    def say(self, text: str, kind: str = "reply") -> Utterance | None:
        """Queue `text`; None when it was empty or the queue is full (counted)."""
        cleaned = clean_for_speech(text)
        if not cleaned:
            return None
        utterance = Utterance(cleaned, kind)
        try:
            self._queue.put_nowait(utterance)
        except queue.Full:
            self._count("dropped_queue_full")
            return None
        return utterance

    @property
    def busy(self) -> bool:
        """Speaking now, or something is waiting to be spoken."""
        return self._speaking_since is not None or not self._queue.empty()

    def heard_itself(self, start_ts: float, end_ts: float) -> bool:
        """Did audio from this speaker (plus the tail) overlap [start_ts, end_ts] (Unix seconds)?"""
        with self._lock:
            since = self._speaking_since
            intervals = list(self._intervals)
        if since is not None and end_ts >= since:
            return True
        return any(start_ts <= end + self.tail_s and end_ts >= begin for begin, end in intervals)

    def audible_now(self) -> bool:
        now = time.time()
        return self.heard_itself(now, now)

    def interrupt(self) -> None:
        """Stop speaking now and drop what is queued (the driver said the wake phrase)."""
        dropped = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:  # a close() in progress: keep its sentinel
                self._queue.put_nowait(None)
                break
            item.interrupted = True
            item.done.set()
            dropped += 1
        if self._current is not None or dropped:
            self._interrupt.set()
            self._count("interrupted")

    def close(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                pass
            self._thread.join(timeout_s)
            self._thread = None
        if self._speech is not None:
            self._speech.close()

    # -- speaking thread --------------------------------------------------------------------------------
    def _warm_up(self) -> None:
        """Build the synthesizer, import PortAudio and synthesize once, so the first reply does not pay for it."""
        try:
            speech = self.speech
        except EdgeSlmError as err:
            self._report(f"missing: {err.message}")
            return
        except Exception as err:
            self._report(f"missing: {err}")
            return
        try:
            from edge_slm.voice.audio import import_sounddevice

            import_sounddevice()
            for _ in speech.synthesize("OK."):
                pass
        except Exception as err:  # reported properly at the first utterance
            log.debug("speech warm-up: %s", err)

    def _run(self) -> None:
        self._warm_up()
        while not self._stop.is_set():
            utterance = self._queue.get()
            if utterance is None:
                break
            self._current = utterance
            try:
                if not utterance.interrupted:
                    self.speak_now(utterance)
            except Exception:  # a bug must not end speech for good
                log.exception("speaking failed")
                self._count("errors")
            finally:
                self._current = None
                self._interrupt.clear()  # a barge-in ends what was said then, not what is said next
                utterance.done.set()

    def speak_now(self, utterance: Utterance) -> Utterance:
        """Synthesize and play one utterance here and now (blocking). Errors are recorded, not raised."""
        self.last = utterance
        self.history.append(utterance)
        sink: AudioSink | None = None
        started = time.monotonic()
        samples = 0
        try:
            for pcm in self._synthesize_ahead(self.speech, utterance.text):
                if self._stop.is_set() or self._interrupt.is_set():
                    utterance.interrupted = self._interrupt.is_set()
                    break
                if sink is None:
                    utterance.synth_s = time.monotonic() - started
                    sink = self._sink_factory()
                    sink.open(self.speech.sample_rate_hz)
                    with self._lock:
                        self._speaking_since = time.time()
                    utterance.first_audio_ms = (time.monotonic() - utterance.queued_ts) * 1000.0
                self._play(sink, pcm)
                samples += len(pcm) // 2
            utterance.interrupted = utterance.interrupted or self._interrupt.is_set()
            if sink is None:
                if utterance.interrupted or self._stop.is_set():
                    return utterance
                raise SpeechError(f"{self.speech.name} produced no audio")
            sink.close()
            self._report("ok: " + self.speech.name)
            self._count(_SPOKEN_COUNTER.get(utterance.kind, "spoken_say"))
        except EdgeSlmError as err:
            utterance.error = err.message
            self._count("errors")
            self._report(f"missing: {err.message}")
        except Exception as err:  # a subprocess or PortAudio failure: the next utterance tries again
            utterance.error = str(err)
            self._count("errors")
            self._report(f"missing: {err}")
        finally:
            if sink is not None:
                sink.close()
            with self._lock:
                if self._speaking_since is not None:
                    self._intervals.append((self._speaking_since, time.time()))
                self._speaking_since = None
        if self._speech is not None:
            utterance.audio_s = samples / self._speech.sample_rate_hz
        return utterance

    def _synthesize_ahead(self, speech: SpeechOutput, text: str) -> Iterator[bytes]:
        """The synthesizer runs on its own thread, so the next sentence is made while this one plays
        (synthesizing between blocking writes would leave gaps)."""
        chunks: queue.Queue[bytes | BaseException | None] = queue.Queue()

        def produce() -> None:
            try:
                for pcm in speech.synthesize(text):
                    chunks.put(pcm)
                    if self._stop.is_set():
                        break
            except BaseException as err:  # handed to the playing thread, which reports it
                chunks.put(err)
            finally:
                chunks.put(None)

        threading.Thread(target=produce, name="speech-synth", daemon=True).start()
        while (item := chunks.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    def _play(self, sink: AudioSink, pcm: bytes) -> None:
        block = max(2, int(self.speech.sample_rate_hz * WRITE_BLOCK_S) * 2)
        for offset in range(0, len(pcm), block):
            if self._stop.is_set() or self._interrupt.is_set():
                return
            sink.write(pcm[offset : offset + block])

    def _count(self, name: str) -> None:
        with self._lock:
            self.counters[name] = self.counters.get(name, 0) + 1

    def _report(self, status: str) -> None:
        if status == self._status:
            return
        previous, self._status = self._status, status
        if status.startswith("ok"):
            log.info("speech output %s", status)
        elif not previous.startswith("missing"):
            log.warning("speech output %s (tried again at the next reply)", status)
        if self._on_status is not None:
            try:
                self._on_status("speech", status)
            except Exception:
                log.exception("status handler failed")

    @property
    def status(self) -> str:
        return self._status


def build_speaker(
    tts: str,
    output_device: str,
    *,
    piper_voice: str = "",
    threads: int = 1,
    tail_s: float = 0.4,
    on_status: Callable[[str, str], None] | None = None,
) -> Speaker | None:
    """A started Speaker for the config, or None when `tts` is "off". The synthesizer is built on the
    speaking thread; when it cannot be, the status says so and texts are dropped (counted)."""
    if tts == "off":
        return None

    def speech() -> SpeechOutput:
        built = build_speech_output(tts, piper_voice, threads)
        assert built is not None
        return built

    speaker = Speaker(speech, lambda: SoundDeviceSink(output_device), tail_s=tail_s, on_status=on_status)
    speaker.start()
    return speaker


def run_say(tts: str, output_device: str, text: str, *, piper_voice: str = "", threads: int = 1) -> str:
    """`edge-slm say TEXT`: speak once, blocking; returns a one-line report. Raises SpeechError
    (exit 3) when nothing could be spoken."""
    speech = build_speech_output(tts, piper_voice, threads)
    if speech is None:
        raise SpeechError('voice.tts is "off": nothing is spoken (try --tts espeak)')
    speaker = Speaker(speech, lambda: SoundDeviceSink(output_device))
    cleaned = clean_for_speech(text)
    if not cleaned:
        raise SpeechError("nothing to say", exit_code=2)
    done = speaker.speak_now(Utterance(cleaned, "say"))
    if done.error:
        raise SpeechError(f"could not speak: {done.error}")
    where = output_device or "the default output"
    return f"spoke {done.audio_s:.1f} s with {speech.name} on {where}; first audio after {done.first_audio_ms:.0f} ms"


def describe_output(device: str = "") -> str:
    """The name of the output device speech would use; raises SpeechError when there is none."""
    from edge_slm.voice.audio import import_sounddevice

    sd = import_sounddevice()
    try:
        if device:
            info = sd.query_devices(int(device) if device.isdigit() else device, kind="output")
        else:
            info = sd.query_devices(kind="output")
    except Exception as err:  # PortAudioError / ValueError: no such device, or no default output
        raise SpeechError(f"no audio output device{f' {device!r}' if device else ''} ({err})") from err
    return str(info["name"])

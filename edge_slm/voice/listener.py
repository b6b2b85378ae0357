"""The microphone side of voice: capture -> endpointing -> Vosk -> one `Transcript` per utterance.

Threads: one capture thread (reads the source, resamples, runs the endpointer: cheap) and one
single-worker executor "asr" that owns every Vosk call (model load, decoding) in order. The capture
thread never waits for recognition; if the recognizer falls more than `max_asr_backlog_blocks` behind,
audio for it is dropped and counted. `on_transcript` and `on_status` are called from those threads:
an asyncio caller hands the value over with `loop.call_soon_threadsafe`.

Nothing raises out of the listener after `start()`: a missing or unplugged microphone and a missing
Vosk model are logged once, reported through `on_status(component, state)` with component
"microphone" or "asr" and a `ComponentStatus` (ok or missing), and retried every
`retry_interval_s` until they come (back). The microphone is reported "ok" once audio flows.

`counters()` (for metrics): frames_dropped (20 ms capture blocks lost to a full hand-off queue),
utterances (ended, sent to recognition), transcripts, grammar_results / open_results (which decoder
was trusted), empty_results (speech that decoded to nothing), discarded_utterances (too short, or a
noise switching on), ignored_utterances (push/wake mode, no window open), wake_detections,
asr_dropped_blocks (recognizer too far behind), device_opens, device_losses, errors,
asr_backlog_blocks (now). `status()`: the last state per component.
"""

from __future__ import annotations

import collections
import enum
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from edge_slm.config import VoiceSettings
from edge_slm.errors import EdgeSlmError
from edge_slm.events import Transcript
from edge_slm.health import ComponentStatus, Health
from edge_slm.voice.audio import AudioDeviceError, AudioSource, SoundDeviceSource
from edge_slm.voice.vad import Endpointer, VadEvent, VadEventKind, make_endpointer

log = logging.getLogger(__name__)

SourceFactory = Callable[[], AudioSource]


class Activation(enum.Enum):
    ALWAYS = "always"  # every utterance is a command
    WAKE = "wake"  # an utterance holding the wake phrase opens a listen window for the next one
    PUSH = "push"  # only utterances starting in a window opened by `open_listen_window()`


class _Target(enum.Enum):
    COMMAND = "command"
    WAKE = "wake"
    IGNORE = "ignore"


class VoiceListener:
    """See the module docstring. `phrases` are the command phrases for the grammar recognizer."""

    def __init__(
        self,
        voice_settings: VoiceSettings,
        phrases: Sequence[str],
        on_transcript: Callable[[Transcript], None],
        on_status: Callable[[str, ComponentStatus], None],
        *,
        source_factory: SourceFactory | None = None,
        cache_dir: Path | None = None,
        max_asr_backlog_blocks: int = 1000,
        debug: bool = False,
        vocabulary: Sequence[str] = (),
    ) -> None:
        self.settings = voice_settings
        self.phrases = tuple(phrases) + tuple(voice_settings.phrases)
        self.on_transcript = on_transcript
        self.on_status = on_status
        self.activation = Activation(voice_settings.activation)
        self.cache_dir = cache_dir
        self.max_asr_backlog_blocks = max_asr_backlog_blocks
        self.debug = debug
        self.vocabulary = tuple(vocabulary)  # names to bias the recognizer toward (Whisper's prompt)
        rate = voice_settings.sample_rate_hz
        self._source_factory: SourceFactory = source_factory or (
            lambda: SoundDeviceSource(voice_settings.input_device, rate)
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._recognizer: Any = None  # asr.Recognizer (Vosk or Whisper), created on the asr thread
        self._spotter: Any = None  # asr.PhraseSpotter in wake mode
        self._engine_name = ""  # "whisper" | "vosk", once built
        self._source: AudioSource | None = None
        self._endpointer: Endpointer | None = None
        self._target = _Target.IGNORE
        self._utt_audio_t_s = 0.0
        self._utt_start_s = 0.0
        self._window_until = 0.0
        self._window_before_utt = 0.0
        self._window_opens: collections.deque[float] = collections.deque()  # push-to-talk opens, last minute
        self._backlog = 0
        self._lock = threading.Lock()
        self._status: dict[str, ComponentStatus] = {}
        self._source_live = False
        self.source_finished = threading.Event()
        # Half-duplex: (start_ts, end_ts) -> True when the assistant's own voice overlapped that span.
        self.own_speech: Callable[[float, float], bool] | None = None
        # Barge-in (wake mode): called when the wake phrase is heard, so the assistant stops speaking.
        self.on_barge_in: Callable[[], None] | None = None
        self._counters: dict[str, int] = dict.fromkeys(
            (
                "frames_dropped",
                "utterances",
                "transcripts",
                "grammar_results",
                "open_results",
                "empty_results",
                "discarded_utterances",
                "ignored_utterances",
                "wake_detections",
                "listen_refused",
                "asr_dropped_blocks",
                "device_opens",
                "device_losses",
                "errors",
                "own_speech_ignored",
                "barge_ins",
            ),
            0,
        )

    # -- public API --------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr")
        self._thread = threading.Thread(target=self._run, name="voice-capture", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self._close_source()

    def open_listen_window(self, duration_s: float | None = None, *, from_bus: bool = True) -> bool:
        """Push-to-talk / wake: the next utterance starting within the window is a command.

        Any client may publish `voice/listen`, so an open window is never extended and at most
        `voice.listen_max_per_min` windows open per minute from the bus (the wake phrase is local).
        Returns whether a window was opened."""
        now = time.monotonic()
        if now < self._window_until:
            return False
        if from_bus:
            while self._window_opens and now - self._window_opens[0] > 60.0:
                self._window_opens.popleft()
            if len(self._window_opens) >= self.settings.listen_max_per_min:
                self._count("listen_refused")
                return False
            self._window_opens.append(now)
        window = self.settings.listen_window_s if duration_s is None else duration_s
        self._window_until = now + min(window, self.settings.listen_window_s)
        return True

    @property
    def listening(self) -> bool:
        return self.activation is Activation.ALWAYS or time.monotonic() < self._window_until

    def counters(self) -> dict[str, int]:
        with self._lock:
            counters = dict(self._counters)
        source = self._source
        counters["frames_dropped"] += source.dropped_blocks if source is not None else 0
        counters["asr_backlog_blocks"] = self._backlog
        return counters

    def status(self) -> dict[str, ComponentStatus]:
        return dict(self._status)

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Wait until the recognizer has processed everything handed to it so far (tests, benchmarks)."""
        executor = self._executor
        if executor is None:
            return True
        try:
            executor.submit(lambda: None).result(timeout_s)
        except Exception:
            return False
        return True

    # -- capture thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._recognizer is None and not self._load_recognizer():
                    self._stop.wait(self.settings.retry_interval_s)
                    continue
                if self._source is None and not self._open_source():
                    self._stop.wait(self.settings.retry_interval_s)
                    continue
                self._pump()
            except Exception:  # a bug must not kill voice silently forever: log, count, retry
                log.exception("voice capture loop failed; retrying")
                self._count("errors")
                self._close_source()
                self._stop.wait(self.settings.retry_interval_s)
        self._abort_utterance()

    def _pump(self) -> None:
        source = self._source
        assert source is not None and self._endpointer is not None
        try:
            block = source.read(0.2)
        except AudioDeviceError as err:
            self._count("device_losses")
            self._report("microphone", ComponentStatus(Health.MISSING, str(err)))
            self._close_source()
            self._stop.wait(min(1.0, self.settings.retry_interval_s))  # a restarted server is often back at once
            return
        if not self._source_live and block is not None:
            self._source_live = True
            self._report("microphone", ComponentStatus(Health.OK, source.description))
        if block is None:
            if source.finished and not self._endpointer.in_utterance:
                self.source_finished.set()
            return
        for event in self._endpointer.feed(block.pcm, block.t_s):
            self._on_vad(event)

    def _load_recognizer(self) -> bool:
        executor = self._executor
        assert executor is not None
        try:
            executor.submit(self._build_recognizer).result()
        except Exception as err:
            self._report("asr", ComponentStatus(Health.MISSING, _reason(err)))
            return False
        return True

    def _build_recognizer(self) -> None:
        from edge_slm.voice.recognizers import build_recognizer  # Vosk or Whisper, by voice.asr

        built = build_recognizer(
            self.settings,
            self.phrases,
            self.cache_dir,
            wake=self.activation is Activation.WAKE,
            vocabulary=self.vocabulary,
            min_grammar_confidence=self.settings.min_grammar_confidence,
            open_fallback=self.settings.open_fallback,
            debug=self.debug,
        )
        self._spotter = built.spotter
        self._recognizer = built.recognizer
        self._engine_name = built.engine
        self._report("asr", ComponentStatus(Health.OK, built.description))

    def _open_source(self) -> bool:
        try:
            source = self._source_factory()
            source.start()
        except Exception as err:
            self._report("microphone", ComponentStatus(Health.MISSING, _reason(err)))
            return False
        s = self.settings
        self._endpointer = make_endpointer(s.vad, s.sample_rate_hz, s.trailing_silence_ms, s.max_utterance_s)
        self._source = source
        self._count("device_opens")
        self._source_live = False  # "ok" is reported when the first audio arrives, not at open
        return True

    def _close_source(self) -> None:
        source, self._source = self._source, None
        if source is None:
            return
        with self._lock:
            self._counters["frames_dropped"] += source.dropped_blocks
        try:
            source.stop()
        except Exception as err:
            log.debug("closing audio source: %s", err)
        if self._endpointer is not None and self._endpointer.in_utterance:
            self._abort_utterance()

    # -- utterances --------------------------------------------------------------------------------
    def _on_vad(self, event: VadEvent) -> None:
        if event.kind is VadEventKind.START:
            if self.own_speech is not None and self.own_speech(event.t_s, event.t_s):
                self._count("own_speech_ignored")
                if self.on_barge_in is None or self.activation is not Activation.WAKE:
                    self._target = _Target.IGNORE  # the assistant is speaking: that is its own voice
                    return
                self._target = _Target.WAKE  # only the wake phrase can interrupt it
            else:
                self._target = self._choose_target()
            self._utt_start_s = event.t_s
            self._utt_audio_t_s = event.audio_t_s
            if self._target is _Target.IGNORE:
                self._count("ignored_utterances")
                return
            self._submit(self._asr_begin, self._target, event.pcm)
        elif event.kind is VadEventKind.AUDIO:
            if self._target is not _Target.IGNORE:
                self._submit(self._asr_accept, self._target, event.pcm)
        elif event.kind is VadEventKind.END:
            own_voice = self.own_speech is not None and self.own_speech(self._utt_start_s, event.t_s)
            if self._target is _Target.COMMAND and own_voice:  # it started speaking during the utterance
                self._count("own_speech_ignored")
                self._submit(self._asr_drop, self._target)
                self._target = _Target.IGNORE
                return
            if self._target is not _Target.IGNORE:
                self._count("utterances")
                self._submit(self._asr_end, self._target, self._utt_start_s, event.t_s, self._utt_audio_t_s)
            self._target = _Target.IGNORE
        else:  # DISCARD: too short to be speech
            if self._target is not _Target.IGNORE:
                self._count("discarded_utterances")
                self._submit(self._asr_drop, self._target)
                if self._target is _Target.COMMAND and self.activation is not Activation.ALWAYS:
                    self._window_until = self._window_before_utt  # give the window back
            self._target = _Target.IGNORE

    def _choose_target(self) -> _Target:
        if self.activation is Activation.ALWAYS:
            return _Target.COMMAND
        now = time.monotonic()
        if now < self._window_until:  # one command per window
            self._window_before_utt, self._window_until = self._window_until, 0.0
            return _Target.COMMAND
        return _Target.WAKE if self.activation is Activation.WAKE else _Target.IGNORE

    def _abort_utterance(self) -> None:
        if self._target is not _Target.IGNORE and self._executor is not None:
            self._submit(self._asr_drop, self._target)
        self._target = _Target.IGNORE
        if self._endpointer is not None:
            self._endpointer.reset()

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        executor = self._executor
        if executor is None:
            return
        if fn is self._asr_accept and self._backlog >= self.max_asr_backlog_blocks:
            self._count("asr_dropped_blocks")
            return
        with self._lock:
            self._backlog += 1
        try:
            future: Future[None] = executor.submit(self._guarded, fn, *args)
        except RuntimeError:  # executor shut down during stop()
            with self._lock:
                self._backlog -= 1
            return
        del future

    def _guarded(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("speech recognition step failed")
            self._count("errors")
        finally:
            with self._lock:
                self._backlog -= 1

    # -- asr thread --------------------------------------------------------------------------------
    def _engine(self, target: _Target) -> Any:
        return self._spotter if target is _Target.WAKE else self._recognizer

    def _asr_begin(self, target: _Target, pcm: bytes) -> None:
        engine = self._engine(target)
        engine.begin_utterance()
        engine.accept(pcm)

    def _asr_accept(self, target: _Target, pcm: bytes) -> None:
        self._engine(target).accept(pcm)

    def _asr_drop(self, target: _Target) -> None:
        self._engine(target).end_utterance()

    def _asr_end(self, target: _Target, start_s: float, end_s: float, audio_t_s: float) -> None:
        if target is _Target.WAKE:
            spotted, confidence = self._spotter.end_utterance()
            if spotted:
                self._count("wake_detections")
                log.info("wake phrase heard (confidence %.2f)", confidence)
                if self.on_barge_in is not None:
                    self._count("barge_ins")
                    try:
                        self.on_barge_in()  # stop speaking: the driver is about to talk
                    except Exception:
                        log.exception("barge-in handler failed")
                self.open_listen_window(from_bus=False)
            return
        result = self._recognizer.end_utterance()
        if result.empty:
            self._count("empty_results")
            log.debug("utterance gave no transcript (grammar decoder said %r)", result.grammar_text)
            return
        self._count("grammar_results" if result.mode == "grammar" else "open_results")
        self._count("transcripts")
        transcript = Transcript(
            id=f"mic-{uuid.uuid4().hex[:12]}",
            text=result.text,
            source="microphone",
            confidence=round(result.confidence, 3),
            start_s=start_s,
            end_s=end_s,
            received_ts=time.time(),
            recognizer=self._engine_name,
            alternatives=result.alternatives,
        )
        log.debug("heard %r (%s, %.2f) [%s]", result.text, result.mode, result.confidence, result.grammar_text)
        try:
            self.on_transcript(transcript)
        except Exception:
            log.exception("transcript handler failed")
            self._count("errors")

    # -- bookkeeping -------------------------------------------------------------------------------
    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counters[name] = self._counters.get(name, 0) + n

    def _report(self, component: str, status: ComponentStatus) -> None:
        """Tell on_status and the log about a change of state, once per change (not per retry)."""
        previous = self._status.get(component)
        if previous == status:
            return
        self._status[component] = status
        if previous is not None and previous.health is Health.MISSING and status.health is Health.MISSING:
            log.debug("%s still %s", component, status)  # same problem, new wording: already reported
            return
        if status.ok:
            log.info("%s %s", component, status)
        else:
            log.warning("%s %s (retrying every %.0f s)", component, status, self.settings.retry_interval_s)
        try:
            self.on_status(component, status)
        except Exception:
            log.exception("status handler failed")


def _reason(err: Exception) -> str:
    """Our errors carry a user-facing message; anything else is shown as it is."""
    return err.message if isinstance(err, EdgeSlmError) else str(err)

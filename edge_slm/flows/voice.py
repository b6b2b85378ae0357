"""Transcripts -> intent -> grounded reply and actions; navigation facts; the microphone.

Transcripts come from the microphone (the listener's thread) and from
`{prefix}/voice/transcript`. They wait in one bounded queue where the microphone goes first
(a driver in the cabin outranks whatever arrives over the bus) and MQTT transcripts are dropped
first when it is full. Two workers answer them: the fast one runs the tiers that answer in
milliseconds (grammar) and replies at once; a command only the model can understand goes to the
model worker, which holds at most one per source (a newer command from the same source replaces
the older one, which is told it was not understood). So a command the grammar knows is never
kept waiting behind the model."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import itertools
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edge_slm.bus.mqtt import MqttBus
from edge_slm.bus.outbox import Kind
from edge_slm.bus.publisher import DurablePublisher
from edge_slm.bus.topics import Topics
from edge_slm.config import Settings
from edge_slm.errors import DecodeError
from edge_slm.events import Alert, AlertState, Intent, Reply, Transcript
from edge_slm.health import ComponentStatus, Health
from edge_slm.intent.action_guard import ActionGuard, refused_reply_text
from edge_slm.intent.answer import answer_fast, build_responder, reply_to
from edge_slm.intent.recognizer import IntentRecognizer
from edge_slm.intent.respond import Responder
from edge_slm.intent.schema import IntentName
from edge_slm.llm.api import LlmEngine
from edge_slm.nav.state import NavStateStore
from edge_slm.telemetry.pipeline import DeadLetterSink
from edge_slm.transcripts import parse_transcript
from edge_slm.voice.assistant import Assistant

if TYPE_CHECKING:
    from edge_slm.voice.listener import SourceFactory

log = logging.getLogger(__name__)

RecentlyResolvedFor = Callable[[str | None], list[tuple[Alert, float]]]
LatestReadingsFor = Callable[[str | None], Any]

MAX_WAITING_TRANSCRIPTS = 32
SUPERSEDED_REPLY = "Sorry, I did not get that one."


@dataclasses.dataclass
class VoiceCounters:
    transcripts: int = 0
    replies: int = 0
    actions: int = 0
    nav_updates: int = 0
    voice_errors: int = 0
    transcripts_dropped: int = 0  # the waiting queue was full
    model_superseded: int = 0  # a newer command from the same source replaced one waiting for the model


class VoiceFlow:
    def __init__(
        self,
        settings: Settings,
        topics: Topics,
        bus: MqttBus,
        publisher: DurablePublisher,
        firing_alerts: Callable[[str | None], list[Alert]],
        deadletter: DeadLetterSink,
        *,
        recently_resolved: RecentlyResolvedFor | None = None,
        latest_readings: LatestReadingsFor | None = None,
        source_factory: SourceFactory | None = None,
    ) -> None:
        self._settings = settings
        self._topics = topics
        self._bus = bus
        self._publisher = publisher
        self._firing_alerts = firing_alerts
        self._recently_resolved = recently_resolved
        self._latest_readings = latest_readings
        self._deadletter = deadletter
        self._source_factory = source_factory
        self.nav = NavStateStore()
        self.recognizer: IntentRecognizer | None = None
        self.responder: Responder | None = None
        self.components: dict[str, ComponentStatus] = {}
        self.counters = VoiceCounters()
        self.assistant = Assistant(settings.voice)  # dialog context, spoken replies, announcements
        a = settings.actions
        self.action_guard = ActionGuard(a.max_age_s, a.per_kind_limit, a.per_kind_window_s, a.remember_ids)
        self._microphone_waiting: collections.deque[Transcript] = collections.deque()
        self._bus_waiting: collections.deque[Transcript] = collections.deque()
        self._waiting_event = asyncio.Event()
        self._for_model: dict[str, Transcript] = {}  # source -> the newest command waiting for the model
        self._arrivals = itertools.count(1)
        self._latest_acted: dict[str, int] = {}  # source -> seq of its newest command whose reply went out
        self._for_model_event = asyncio.Event()
        self._fast_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="intent")
        self._model_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="intent-model")
        self._listener: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ----------------------------------------------------------------------------

    def prepare(self, engine: LlmEngine | None) -> None:
        """Start-up, blocking: the intent grammar and the POI file."""
        settings = self._settings
        self.recognizer = IntentRecognizer(settings.intent, engine, deadline_s=settings.model.voice_deadline_s)
        from edge_slm.intent.semantic import build_semantic_tier  # its encoder loads in warm_up

        self.recognizer.attach_semantic(build_semantic_tier(settings, self.recognizer.grammar))
        vehicle = settings.voice.vehicle_device or None
        resolved, latest = self._recently_resolved, self._latest_readings
        self.responder = build_responder(
            settings,
            self.nav,
            lambda: self._firing_alerts(vehicle),
            self.recognizer.grammar,
            (lambda: resolved(vehicle)) if resolved else None,
            (lambda: latest(vehicle)) if latest else None,
        )
        if settings.poi.file and self.responder.pois is None:
            self.components["poi"] = ComponentStatus(Health.UNUSABLE, settings.poi.file)

    def warm_up_encoder(self) -> None:
        """Blocking: load the sentence encoder before the first command needs it."""
        if self.recognizer is not None and self.recognizer.semantic is not None:
            self.recognizer.semantic.warm_up()

    def warm_up_model_tier(self) -> None:
        """Blocking: the model tier's prompt prefix."""
        if self.recognizer is not None and self.recognizer.model_tier is not None:
            self.recognizer.model_tier.warm_up()

    def start(self) -> None:
        """On the event loop: the answering workers and the microphone."""
        self._loop = asyncio.get_running_loop()
        self._tasks = [
            asyncio.create_task(self._answer_fast_loop(), name="voice-answer"),
            asyncio.create_task(self._answer_with_model_loop(), name="voice-model"),
        ]
        self._start_listener()

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()
        # These join threads (the speaker, an encoder still loading): off the loop.
        await asyncio.to_thread(self.assistant.close)
        if self.recognizer is not None and self.recognizer.semantic is not None:
            await asyncio.to_thread(self.recognizer.semantic.close)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._fast_pool.shutdown(wait=False, cancel_futures=True)
        self._model_pool.shutdown(wait=False, cancel_futures=True)

    def _start_listener(self) -> None:
        voice = self._settings.voice
        if not voice.enabled:
            self.components["microphone"] = ComponentStatus(Health.DISABLED)
            return
        self.assistant.start_speech(self._on_speech_status)  # speech works without a microphone too
        from edge_slm.voice.recognizers import choose_engine, poi_names

        if not voice.vosk_model and choose_engine(voice, self._settings.model_cache_dir / "vosk") == "vosk":
            self.components["microphone"] = ComponentStatus(
                Health.OFF, "no voice.vosk_model configured (transcripts over MQTT still work)"
            )
            log.info("voice: no voice.vosk_model configured; listening for transcripts over MQTT only")
            return
        from edge_slm.voice.listener import VoiceListener

        assert self.recognizer is not None, "prepare() first"
        self._listener = VoiceListener(
            voice,
            self.recognizer.phrases_for_asr(),
            self._on_microphone_transcript,
            self._on_component_status,
            source_factory=self._source_factory,
            cache_dir=self._settings.model_cache_dir / "vosk",
            debug=self._settings.log_level == "debug",
            vocabulary=poi_names(self.responder.pois if self.responder is not None else None),
        )
        if self._source_factory is None:  # half-duplex only where the microphone can hear the speaker
            self._listener.own_speech = self.assistant.heard_itself
            if voice.barge_in:
                self._listener.on_barge_in = self.assistant.barge_in
        self._listener.start()

    def _on_speech_status(self, component: str, status: str) -> None:
        """From the speaker's thread: "ok: ..." or "missing: ..."."""
        health = Health.OK if status.startswith("ok") else Health.MISSING
        detail = status.split(":", 1)[1].strip() if ":" in status else ""
        self._call_soon(self.components.__setitem__, component, ComponentStatus(health, detail))

    # -- inbound ------------------------------------------------------------------------------

    def on_transcript_message(self, topic: str, payload: bytes, received_ts: float, retained: bool = False) -> None:
        try:
            transcript = parse_transcript(payload, received_ts)
        except DecodeError as err:
            self._deadletter(topic, payload, str(err))
            return
        refused = self.action_guard.admit(transcript, retained=retained)  # a repeated id, a retained command
        if refused:
            self._deadletter(topic, payload, refused)
            return
        self._enqueue(transcript)

    def on_nav_state(self, topic: str, payload: bytes) -> None:
        if not payload.strip():
            self.nav.set(None)  # an empty retained message clears the state: facts are gone
            return
        try:
            self.nav.update(payload)
        except DecodeError as err:
            self._deadletter(topic, payload, str(err))
            return
        self.counters.nav_updates += 1

    def open_listen_window(self) -> None:
        if self._listener is not None:
            self._listener.open_listen_window()

    def _on_microphone_transcript(self, transcript: Transcript) -> None:
        """From the listener's thread."""
        self._call_soon(self._heard, transcript)

    def _on_component_status(self, component: str, status: ComponentStatus) -> None:
        """From the listener's thread."""
        self._call_soon(self.components.__setitem__, component, status)

    def _call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        self._bus.call_soon(fn, *args)  # one loop wake-up per burst (bus/handoff.py)

    def _heard(self, transcript: Transcript) -> None:
        heard = {
            "id": transcript.id,
            "text": transcript.text,
            "confidence": transcript.confidence,
            "start_s": transcript.start_s,
            "end_s": transcript.end_s,
        }
        self._bus.publish(self._topics.heard, json.dumps(heard, ensure_ascii=False), qos=1)
        self._enqueue(transcript)

    def _enqueue(self, transcript: Transcript) -> None:
        self.counters.transcripts += 1
        transcript = dataclasses.replace(transcript, seq=next(self._arrivals))
        if len(self._microphone_waiting) + len(self._bus_waiting) >= MAX_WAITING_TRANSCRIPTS:
            if transcript.source != "microphone" or not self._bus_waiting:
                self._drop(transcript)
                return
            self._drop(self._bus_waiting.popleft())  # the driver in the cabin goes first
        (self._microphone_waiting if transcript.source == "microphone" else self._bus_waiting).append(transcript)
        self._waiting_event.set()

    def _drop(self, transcript: Transcript) -> None:
        self.counters.transcripts_dropped += 1
        log.warning("voice: %d transcripts waiting; dropped %r", MAX_WAITING_TRANSCRIPTS, transcript.text[:60])

    # -- answering ----------------------------------------------------------------------------

    async def _next_waiting(self) -> Transcript:
        while not (self._microphone_waiting or self._bus_waiting):
            self._waiting_event.clear()
            await self._waiting_event.wait()
        return (self._microphone_waiting or self._bus_waiting).popleft()

    async def _answer_fast_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            transcript = await self._next_waiting()
            try:
                reply = await loop.run_in_executor(self._fast_pool, self._answer_fast, transcript)
            except Exception:
                self.counters.voice_errors += 1
                log.exception("answering %r failed", transcript.text)
                continue
            if reply is None:
                self._wait_for_model(transcript)
            else:
                self._supersede_waiting(transcript.source)  # an older command must not act after this one
                self._publish_reply(transcript, reply)

    def _answer_fast(self, transcript: Transcript) -> Reply | None:
        assert self.recognizer is not None and self.responder is not None
        context = self.assistant.context
        return answer_fast(transcript, self.recognizer, self.responder, time.monotonic(), context=context)

    def _wait_for_model(self, transcript: Transcript) -> None:
        self._supersede_waiting(transcript.source)
        self._for_model[transcript.source] = transcript
        self._for_model_event.set()

    def _supersede_waiting(self, source: str) -> None:
        """A newer command from `source` came: the one waiting for the model is answered as not understood."""
        older = self._for_model.pop(source, None)
        if older is not None:
            self.counters.model_superseded += 1
            unknown = Intent(text=older.text, name=IntentName.UNKNOWN.value, slots={}, source="superseded")
            self._publish_reply(older, Reply(older.id, older.text, unknown, SUPERSEDED_REPLY, 0.0))

    async def _answer_with_model_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._for_model:
                self._for_model_event.clear()
                await self._for_model_event.wait()
            source = next(iter(self._for_model))
            transcript = self._for_model.pop(source)
            try:
                reply = await loop.run_in_executor(self._model_pool, self._answer_with_model, transcript)
            except Exception:
                self.counters.voice_errors += 1
                log.exception("answering %r failed", transcript.text)
                continue
            self._publish_reply(transcript, reply)

    def _answer_with_model(self, transcript: Transcript) -> Reply:
        assert self.recognizer is not None and self.responder is not None
        started = time.monotonic()
        intent = self.recognizer.recognize_with_model(transcript.text)
        context = self.assistant.context
        return reply_to(
            transcript, intent, self.responder, started, context=context, understand=self.recognizer.fast_tiers
        )

    def _publish_reply(self, transcript: Transcript, reply: Reply) -> None:
        if transcript.seq < self._latest_acted.get(transcript.source, 0):
            # The model answered after a newer command of the same source: say so, take no action.
            self.counters.model_superseded += 1
            unknown = Intent(text=transcript.text, name=IntentName.UNKNOWN.value, slots={}, source="superseded")
            reply = Reply(transcript.id, transcript.text, unknown, SUPERSEDED_REPLY, reply.latency_ms)
        else:
            self._latest_acted[transcript.source] = transcript.seq
        if transcript.received_ts > 0:  # count the time it waited in the queue, not just the answering
            reply = dataclasses.replace(reply, latency_ms=(time.time() - transcript.received_ts) * 1000.0)
        actions, refused = self.action_guard.filter_actions(transcript, reply.actions)  # stale, rate, dialer codes
        if refused and not actions:
            reply = dataclasses.replace(reply, text=refused_reply_text(refused))
        for action in actions:
            self._publisher.send(Kind.ACTION, self._topics.action(action.kind), dict(action.payload))
            self.counters.actions += 1
        reply = dataclasses.replace(reply, spoken=self.assistant.speak_reply(reply))
        self._publisher.send(Kind.REPLY, self._topics.reply, reply.to_payload())
        self.counters.replies += 1

    # -- metrics ------------------------------------------------------------------------------

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "action_guard": dataclasses.asdict(self.action_guard.counters),
            "voice_queue": {
                "waiting": len(self._microphone_waiting) + len(self._bus_waiting),
                "waiting_for_model": len(self._for_model),
            },
        }
        if self._listener is not None:
            out["voice"] = dict(self._listener.counters())
        speech = self.assistant.metrics()
        if speech:
            out["speech"] = speech
        return out

    def announce(self, alert: Alert) -> None:
        """An alert listener: speak what matters (the assistant decides what and how often)."""
        if alert.state is AlertState.FIRING:
            self.assistant.announce(alert)

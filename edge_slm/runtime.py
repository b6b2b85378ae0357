"""The daemon's lifecycle, in the spirit of uvicorn's `Server`:

    daemon = Daemon(settings)        # build: wires the components, no I/O
    await daemon.run(stop)           # startup -> serve until `stop` is set -> shutdown

- startup: open the outbox (a corrupt one is moved aside), restore firing alerts and learned
  baselines, load the model on a thread of its own (a stop signal during the load is acted on at
  once), prepare the voice flow, connect to the broker, start the microphone and the timers;
- serve: route inbound messages to the alert and voice flows until stopped;
- shutdown, in order: stop the microphone, the inbound loop and the timers; close the model (its
  queued work fails, so pending explanations become templates) and let those go into the outbox;
  drain the publisher; save state; publish `offline` and disconnect; close the outbox.

`run_daemon` adds the signals: the first SIGTERM/SIGINT stops, a second one forces the exit.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from edge_slm import metrics
from edge_slm.bus.deadletter import DeadLetterThrottle
from edge_slm.bus.identity import default_client_id, secure_state_dir
from edge_slm.bus.mqtt import InboundMessage, MqttBus
from edge_slm.bus.outbox import Kind, Outbox, OutboxError
from edge_slm.bus.publisher import DurablePublisher
from edge_slm.bus.topics import Route, Topics
from edge_slm.config import Settings
from edge_slm.daemon_state import DaemonState
from edge_slm.detect.detector import Detector
from edge_slm.detect.knowledge import load_knowledge
from edge_slm.detect.policy import AlertPolicy
from edge_slm.detect.rules import load_rules
from edge_slm.flows.alerts import AlertFlow
from edge_slm.flows.voice import VoiceFlow
from edge_slm.ha_discovery import HaDiscovery
from edge_slm.health import ComponentStatus, Health
from edge_slm.llm.api import LlmEngine
from edge_slm.llm.pool import PooledEngine
from edge_slm.prometheus_metrics import MetricsServer
from edge_slm.telemetry.latest import LatestValues
from edge_slm.telemetry.pipeline import TelemetryPipeline

if TYPE_CHECKING:
    from edge_slm.voice.listener import SourceFactory

log = logging.getLogger(__name__)

LEARNED_SAVE_INTERVAL_S = 60.0
# The consume loop yields to the event loop after this much work in one go (timers, PUBACKs and
# SIGTERM keep running during a long burst), and publishes a message's alerts in slices.
CONSUME_SLICE_S = 0.01
ALERTS_PER_SLICE = 2  # the clock is checked between slices: an alert with its diagnosis costs ~1-5 ms
EXIT_FORCED = 1  # a second signal: no flush, no `offline` (the Last Will says it)
SCRAPE_REFRESH_S = 2.0
DRAIN_TIMEOUT_S = 1.0  # what is left stays in the outbox for the next start
EXPLANATIONS_AT_SHUTDOWN_TIMEOUT_S = 2.0

EngineLoader = Callable[[Settings], LlmEngine]


def _load_configured_engine(settings: Settings) -> LlmEngine:
    from edge_slm.llm.loader import load_engine

    return load_engine(settings)


class Daemon:
    def __init__(
        self,
        settings: Settings,
        *,
        engine_loader: EngineLoader | None = None,
        voice_source_factory: SourceFactory | None = None,
    ) -> None:
        """Build: every component wired, nothing opened, loaded or connected yet."""
        self.settings = settings
        pooled = settings.model.mode == "pool"
        self.topics = Topics(
            settings.mqtt.topic_prefix,
            settings.effective_node_id,
            pooled_model=pooled,
            telemetry_filters=settings.mqtt.telemetry_filters,
        )
        self.detector = Detector(load_rules(settings.detect.packs, settings.detect.disable_rules), settings.detect)
        self.policy = AlertPolicy(settings.detect.cooldown_s)
        self.state = DaemonState(self.detector, self.policy)
        self.bus = MqttBus(
            settings.mqtt,
            client_id=settings.mqtt.client_id,  # unguessable default chosen at startup (edge_slm.bus.identity)
            status_topic=self.topics.status,
            subscriptions=self.topics.subscriptions,
            on_connected=self._on_connected,
            on_published=self._on_published,
            watch_broker_drops=settings.mqtt.watch_broker_drops,
        )
        self._kind_ttl_s = {Kind.ACTION: settings.actions.outbox_ttl_s}  # an old action is never replayed
        self.publisher = DurablePublisher(self.bus, None, settings.outbox.replay_rate_per_s, self._kind_ttl_s)
        m = settings.mqtt
        self.deadletters = DeadLetterThrottle(
            m.deadletter_rate_per_s, m.deadletter_bytes_per_s, m.deadletter_excerpt_bytes
        )
        self.outbox: Outbox | None = None
        self.engine: LlmEngine | None = None
        self._engine_loader = engine_loader or (self._pooled_engine if pooled else _load_configured_engine)
        self.latest = LatestValues()  # the current value of each known signal, for vehicle status
        self.alerts = AlertFlow(
            self.topics,
            self.detector,
            self.policy,
            self.publisher,
            self.state,
            self.deadletter,
            self.bus.call_soon,
            on_sample=self.latest.update,
        )
        self.voice = VoiceFlow(
            settings,
            self.topics,
            self.bus,
            self.publisher,
            self.policy.firing,
            self.deadletter,
            recently_resolved=self.policy.recently_resolved,
            latest_readings=self.latest.for_device,
            source_factory=voice_source_factory,
        )
        self.alerts.alert_listeners.append(self.voice.announce)
        self.ha: HaDiscovery | None = None
        if settings.ha.discovery:
            self.ha = HaDiscovery(
                settings.ha.discovery_prefix,
                self.topics.prefix,
                settings.effective_node_id,
                self.topics.status,
                self._publish_retained,
            )
            self.alerts.alert_listeners.append(self.ha.on_alert)
            self.alerts.explanation_listeners.append(self.ha.on_explanation)
        self.metrics_server: MetricsServer | None = None
        if settings.metrics.http_port:
            # A scrape reads a snapshot taken on the loop: the HTTP thread never reads the loop's
            # state or the outbox connection itself.
            self.metrics_server = MetricsServer(
                lambda: self._scraped_metrics, settings.metrics.http_host, settings.metrics.http_port
            )
        self._scraped_metrics: dict[str, Any] = {}
        self.components: dict[str, ComponentStatus] = {"model": ComponentStatus(Health.DISABLED)}
        self._tasks: list[asyncio.Task[None]] = []
        self._started_ts = time.time()
        self.started = False

    @property
    def telemetry(self) -> TelemetryPipeline:
        """The telemetry pipeline, for its counters (benchmarks and tests read them)."""
        return self.alerts.telemetry

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        try:
            if await self.startup(stop):
                await stop.wait()
        finally:
            await self.shutdown()

    async def startup(self, stop: asyncio.Event) -> bool:
        """False when `stop` was set before start-up finished (nothing is left running)."""
        state_dir = secure_state_dir(self.settings.effective_state_dir)  # 0700: the outbox holds contacts
        self.bus.use_client_id(default_client_id(self.settings.mqtt.client_id, self.topics.node, state_dir))
        self.outbox = self._open_outbox()
        self.publisher.use_outbox(self.outbox)
        self.state.attach(self.outbox)
        self.state.restore()
        if self.settings.model.enabled:
            loaded = await self._load_model(stop)
            if loaded is None:
                return False
            self.engine = loaded
            self.components["model"] = ComponentStatus(Health.OK, f"loaded: {loaded.model_name}")
        self.alerts.use_model(self.engine, self.settings.model, load_knowledge(self.settings.detect.packs))
        self.voice.prepare(self.engine)
        if self.metrics_server is not None:
            self.metrics_server.start()  # a port in use is a StartupError (exit 3)
        loop = asyncio.get_running_loop()
        self.bus.start(loop)
        self.voice.start()
        self._tasks = [
            asyncio.create_task(self._consume(), name="inbound"),
            asyncio.create_task(self._publish_metrics_periodically(), name="metrics"),
            asyncio.create_task(self._save_learned_periodically(), name="save-learned"),
        ]
        if self.metrics_server is not None:
            self._tasks.append(asyncio.create_task(self._refresh_scraped_metrics(), name="metrics-scrape"))
        # Its own thread: model prefixes and the sentence encoder load while alerts already flow, and a
        # waiting driver's request is served before the warm-up's.
        threading.Thread(target=self._warm_up, name="warm-up", daemon=True).start()
        self.started = True
        log.info("edge-slm running as node %r (profile %s)", self.settings.effective_node_id, self.settings.profile)
        return True

    async def _load_model(self, stop: asyncio.Event) -> LlmEngine | None:
        """Load on a daemon thread and wait for it or for `stop`, whichever comes first: a signal
        during a long load (a large model from an SD card) is acted on at once."""
        loop = asyncio.get_running_loop()
        loaded: asyncio.Future[LlmEngine] = loop.create_future()

        def load() -> None:
            try:
                engine = self._engine_loader(self.settings)
            except BaseException as err:  # handed to the loop, raised there
                loop.call_soon_threadsafe(_settle, loaded, None, err)
            else:
                loop.call_soon_threadsafe(_settle, loaded, engine, None)

        threading.Thread(target=load, name="llm-load", daemon=True).start()
        stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait([loaded, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if loaded.done():
            return loaded.result()  # a load error (ModelError: exit 3) is raised here
        log.info("stopped while the model was loading")
        loaded.add_done_callback(_close_late_engine)
        return None

    def _warm_up(self) -> None:
        """The sentence encoder first (milliseconds per command once loaded), then the explanation
        prefix, then the intent model's prefix last, so a waiting driver's prefix stays hot."""
        self.voice.warm_up_encoder()
        self.alerts.warm_up()
        self.voice.warm_up_model_tier()

    async def shutdown(self) -> None:
        log.info("shutting down")
        await self.voice.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.alerts.telemetry.emit_queued(1 << 30)  # alerts judged before the stop still go out
        self.alerts.close_explainer()
        if self.engine is not None:
            # queued work fails now (explanations resolve to knowledge text); its join runs off the
            # loop so PUBACKs and the drain below keep moving
            await asyncio.to_thread(self.engine.close)
        await self.alerts.finish_explanations(EXPLANATIONS_AT_SHUTDOWN_TIMEOUT_S)
        await self.publisher.drain(timeout_s=DRAIN_TIMEOUT_S)
        self.state.save_alerts()
        self.state.save_learned()
        self.bus.stop()
        self.bus.hand_over_remaining_acks()  # before the outbox closes: acked alerts are not re-sent
        if self.metrics_server is not None:
            self.metrics_server.stop()
        if self.outbox is not None:
            self.outbox.close()

    def _open_outbox(self) -> Outbox | None:
        if not self.settings.outbox.enabled:
            return None
        path = self.settings.effective_state_dir / "outbox.sqlite3"
        limits = (self.settings.outbox.max_rows, self.settings.outbox.max_bytes, self.settings.outbox.ttl_s)
        try:
            return Outbox(path, *limits, kind_ttl_s=self._kind_ttl_s)
        except OutboxError as err:
            if not path.is_file():
                log.error("%s; alerts will be published without a disk outbox", err)
                return None
            # A corrupt file: keep it for inspection and start a fresh outbox.
            aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
            log.error("%s; moving it to %s and starting a new outbox", err, aside)
            try:
                path.rename(aside)
                return Outbox(path, *limits, kind_ttl_s=self._kind_ttl_s)
            except (OSError, OutboxError) as again:
                log.error("%s; alerts will be published without a disk outbox", again)
                return None

    # -- serve ----------------------------------------------------------------------------------

    async def _consume(self) -> None:
        clock = time.perf_counter
        telemetry = self.alerts.telemetry
        telemetry.alert_queue = collections.deque()  # alerts are published below, in slices
        while True:
            batch = await self.bus.next_batch()
            slice_start = clock()
            for message in batch:
                if clock() - slice_start > CONSUME_SLICE_S:
                    await asyncio.sleep(0)
                    slice_start = clock()
                try:
                    self._route(message)
                except Exception:  # one bad message must never stop the daemon
                    log.exception("failed to handle a message on %s", message.topic)
                finally:
                    self.bus.ack(message)  # PUBACKs go out at the next batch, after these alerts
                # A message can raise hundreds of alerts: publish them in slices, yielding between.
                while telemetry.emit_queued(ALERTS_PER_SLICE):
                    if clock() - slice_start > CONSUME_SLICE_S:
                        await asyncio.sleep(0)
                        slice_start = clock()
            await asyncio.sleep(0)  # let publishing and timers run between batches

    def _route(self, message: InboundMessage) -> None:
        route = self.topics.route(message.topic)
        if route is Route.TELEMETRY:
            self.alerts.handle(message.topic, message.payload, message.received_ts)
        elif route is Route.TRANSCRIPT:
            self.voice.on_transcript_message(message.topic, message.payload, message.received_ts, message.retain)
        elif route is Route.NAV_STATE:
            self.voice.on_nav_state(message.topic, message.payload)
        elif route is Route.LISTEN:
            self.voice.open_listen_window()
        elif route is Route.LLM_RESPONSE and isinstance(self.engine, PooledEngine):
            self.engine.on_response(message.payload, message.correlation)

    def _pooled_engine(self, settings: Settings) -> LlmEngine:
        return PooledEngine(self._publish_pool_request, self.topics.prefix, self.topics.node)

    def _publish_pool_request(self, topic: str, payload: bytes, response_topic: str, correlation: bytes) -> int | None:
        return self.bus.publish(topic, payload, qos=1, response_topic=response_topic, correlation=correlation)

    def _publish_retained(self, topic: str, payload: str, retain: bool) -> None:
        self.bus.publish(topic, payload, qos=1, retain=retain)

    def _on_connected(self, session_present: bool) -> None:
        self.publisher.on_connected(session_present)
        if self.ha is not None:
            self.ha.announce_node()

    def _on_published(self, mids: list[int]) -> None:
        self.publisher.on_published_batch(mids)

    async def _save_learned_periodically(self) -> None:
        while True:
            await asyncio.sleep(LEARNED_SAVE_INTERVAL_S)
            self.state.save_learned()

    # -- dead letters and metrics ---------------------------------------------------------------

    def deadletter(self, topic: str, payload: bytes, reason: str) -> None:
        record = self.deadletters.admit(topic, payload, reason)  # rate and byte budgets
        if record is None:
            return
        self.bus.publish(self.topics.deadletter, json.dumps(record, ensure_ascii=False), qos=1)
        log.debug("dead letter from %s: %s", topic, reason)

    def metrics_snapshot(self) -> dict[str, Any]:
        t = self.alerts.telemetry.counters
        components = {**self.components, **self.voice.components}
        return {
            "ts": time.time(),
            "uptime_s": round(time.time() - self._started_ts, 1),
            "messages_in": self.bus.counters.received,
            "telemetry": asdict(t),
            "deadlettered": t.deadlettered,
            "alerts": t.alerts_firing + t.alerts_resolved,
            "alerts_firing_now": len(self.policy.firing()),
            "alerts_suppressed_by_cooldown": self.policy.suppressed_count,
            "queues": {
                "inbound_depth": self.bus.inbox_depth,
                "inbound_dropped": self.bus.counters.dropped_inbound,
                "outbox_depth": self.publisher.backlog,
                "outbox_evicted": self.outbox.evicted if self.outbox else 0,
                "tracked_series": self.detector.tracked_series,
                "series_evicted": self.detector.evicted_series,
                "series_refused": self.detector.refused_series,
            },
            "publisher": asdict(self.publisher.counters),
            "ingest": self.bus.metrics(),
            "mqtt": asdict(self.bus.counters),
            "late_samples": self.detector.late_samples,
            "counters": {
                **self.alerts.counters,
                **asdict(self.voice.counters),
                "state_save_errors": self.state.save_errors,
            },
            "components": {name: str(status) for name, status in components.items()},
            "deadletters": asdict(self.deadletters.counters),
            **({"ha": {"messages": self.ha.messages, "refused_entities": self.ha.refused_entities}} if self.ha else {}),
            "engine": self.engine.counters() if self.engine is not None and hasattr(self.engine, "counters") else {},
            **self.alerts.metrics(),
            **self.voice.metrics(),
            "rss_bytes": metrics.rss_bytes(),
        }

    def component_status(self, name: str) -> ComponentStatus | None:
        return {**self.components, **self.voice.components}.get(name)

    async def _refresh_scraped_metrics(self) -> None:
        while True:
            self._scraped_metrics = self.metrics_snapshot()
            await asyncio.sleep(SCRAPE_REFRESH_S)

    async def _publish_metrics_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.settings.mqtt.metrics_interval_s)
            self.bus.publish(self.topics.metrics, json.dumps(self.metrics_snapshot()), qos=1)


def _settle(future: asyncio.Future[LlmEngine], engine: LlmEngine | None, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        assert engine is not None
        future.set_result(engine)


def _close_late_engine(future: asyncio.Future[LlmEngine]) -> None:
    """A model that finished loading after the daemon was told to stop."""
    if not future.cancelled() and future.exception() is None:
        future.result().close()


async def run_daemon(settings: Settings, daemon: Daemon | None = None) -> None:
    """Run until SIGTERM or SIGINT; a second signal exits at once (for a shutdown that hangs)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def first_signal(sig: signal.Signals) -> None:
        log.info("%s: stopping (send it again to exit at once)", sig.name)
        stop.set()
        for s in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(s)
            signal.signal(s, _force_exit)  # a plain handler: runs even while the loop is blocked

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, first_signal, sig)
    os.umask(0o077)  # state files (outbox, prompt caches, client id) are private to this user
    daemon = daemon if daemon is not None else Daemon(settings)
    await daemon.run(stop)


def _force_exit(signum: int, frame: object) -> None:
    print("edge-slm: second signal: exiting without a clean shutdown", file=sys.stderr, flush=True)
    os._exit(EXIT_FORCED)

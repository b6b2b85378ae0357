"""The daemon: builds the adapters, runs the flows on one asyncio loop, supervises, shuts down.

Flows:
  telemetry  MQTT -> TelemetryPipeline -> alert (outbox + MQTT at once) -> explanation later
  voice      microphone / MQTT transcript -> intent -> grounded reply + actions
  nav        MQTT nav/state -> NavStateStore (facts for replies)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import json
import logging
import signal
import threading
import time
from base64 import b64encode
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from edge_slm import metrics
from edge_slm.bus.mqtt import InboundMessage, MqttBus
from edge_slm.bus.outbox import Kind, Outbox, OutboxError
from edge_slm.bus.publisher import DurablePublisher
from edge_slm.bus.topics import TopicError, Topics
from edge_slm.config import Settings
from edge_slm.detect.detector import Detector
from edge_slm.detect.policy import AlertPolicy
from edge_slm.detect.rules import load_rules
from edge_slm.errors import DecodeError
from edge_slm.events import Alert, AlertState, Explanation, Reply, Transcript
from edge_slm.features import Features, build_features
from edge_slm.telemetry.pipeline import TelemetryPipeline
from edge_slm.transcripts import parse_transcript

log = logging.getLogger(__name__)

POLICY_STATE_KEY = "alert_policy"
LEARNED_STATE_KEY = "detector_learned"
LEARNED_SAVE_INTERVAL_S = 60.0


class Daemon:
    def __init__(self, settings: Settings, features: Features | None = None) -> None:
        self.settings = settings
        self.topics = Topics(settings.mqtt.topic_prefix, settings.effective_node_id)
        self.detector = Detector(load_rules(settings.detect.packs, settings.detect.disable_rules), settings.detect)
        self.policy = AlertPolicy(settings.detect.cooldown_s)
        self.outbox = self._open_outbox()
        self._restore_state()
        self.features = features if features is not None else build_features(settings, self.policy.firing)
        self.bus = MqttBus(
            settings.mqtt,
            client_id=settings.mqtt.client_id or f"edge-slm-{settings.effective_node_id}",
            status_topic=self.topics.status,
            subscriptions=[
                self.topics.telemetry_filter,
                self.topics.transcript,
                self.topics.nav_state,
                self.topics.listen,
            ],
            on_connected=self._on_connected,
            on_published=self._on_published,
        )
        self.publisher = DurablePublisher(self.bus, self.outbox, settings.outbox.replay_rate_per_s)
        self.telemetry = TelemetryPipeline(self.topics, self.detector, self.policy, self._on_alert, self._deadletter)
        self.counters: dict[str, int] = {
            "explanations_model": 0,
            "explanations_template": 0,
            "transcripts": 0,
            "replies": 0,
            "actions": 0,
            "nav_updates": 0,
            "voice_errors": 0,
            "state_save_errors": 0,
        }
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._voice_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="intent")
        self._started_ts = time.time()
        self._component_status: dict[str, str] = dict(self.features.status)

    # -- start-up ----------------------------------------------------------------------

    def _open_outbox(self) -> Outbox | None:
        if not self.settings.outbox.enabled:
            return None
        path = self.settings.effective_state_dir / "outbox.sqlite3"
        limits = (self.settings.outbox.max_rows, self.settings.outbox.max_bytes, self.settings.outbox.ttl_s)
        try:
            return Outbox(path, *limits)
        except OutboxError as err:
            if not path.is_file():
                log.error("%s; alerts will be published without a disk outbox", err)
                return None
            # A corrupt file: keep it for inspection and start a fresh outbox.
            aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
            log.error("%s; moving it to %s and starting a new outbox", err, aside)
            try:
                path.rename(aside)
                return Outbox(path, *limits)
            except (OSError, OutboxError) as again:
                log.error("%s; alerts will be published without a disk outbox", again)
                return None

    def _restore_state(self) -> None:
        """Learned detector baselines and firing alerts from the last run."""
        if self.outbox is None:
            return
        try:
            learned = self.outbox.load_state(LEARNED_STATE_KEY)
            if learned:
                self.detector.restore_learned(json.loads(learned))
            raw = self.outbox.load_state(POLICY_STATE_KEY)
            if raw:
                self.policy.restore(json.loads(raw))
                for alert in self.policy.firing():
                    self.detector.restore_firing(alert)
                log.info("restored %d firing alerts", len(self.policy.firing()))
        except (OutboxError, ValueError, KeyError, TypeError) as err:
            log.warning("could not restore alert state (%s); starting clean", err)

    def _save_learned(self) -> None:
        self._save_state(LEARNED_STATE_KEY, self.detector.learned_state, "learned detector state")

    async def _save_learned_periodically(self) -> None:
        while True:
            await asyncio.sleep(LEARNED_SAVE_INTERVAL_S)
            self._save_learned()

    def _save_policy(self) -> None:
        self._save_state(POLICY_STATE_KEY, self.policy.snapshot, "alert state")

    def _save_state(self, key: str, snapshot: Callable[[], Any], what: str) -> None:
        """Best effort: a failed save is counted and logged, never raised."""
        if self.outbox is None:
            return
        try:
            self.outbox.save_state(key, json.dumps(snapshot()))
        except OutboxError as err:
            self.counters["state_save_errors"] += 1
            log.debug("%s not saved: %s", what, err)

    # -- main loop ---------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self.bus.start(self._loop)
        tasks = [
            asyncio.create_task(self._consume(), name="inbound"),
            asyncio.create_task(self._publish_metrics_periodically(), name="metrics"),
            asyncio.create_task(self._save_learned_periodically(), name="save-learned"),
        ]
        self.features.start_voice(self._on_microphone_transcript, self._on_component_status)
        # Its own thread: the model serves a waiting driver's request before the warm-up's.
        threading.Thread(target=self.features.warm_up, name="llm-warm-up", daemon=True).start()
        log.info("edge-slm running as node %r (profile %s)", self.settings.effective_node_id, self.settings.profile)
        try:
            await stop.wait()
        finally:
            log.info("shutting down")
            self.features.stop_voice()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # Closing the model fails its queued work, so pending explanations resolve to
            # templates now and go into the outbox (sent now, or replayed at the next start).
            self.features.close()
            await asyncio.sleep(0.2)
            await self.publisher.drain(timeout_s=2.0)
            self._save_policy()
            self._save_learned()
            self._closed = True  # late callbacks from worker threads are dropped from here on
            self.bus.stop()
            self._voice_pool.shutdown(wait=False, cancel_futures=True)
            if self.outbox is not None:
                self.outbox.close()

    async def _consume(self) -> None:
        telemetry_head = f"{self.topics.prefix}/telemetry/"
        while True:
            batch = await self.bus.next_batch()
            for message in batch:
                try:
                    if message.topic.startswith(telemetry_head):
                        self.telemetry.handle(message.topic, message.payload, message.received_ts)
                    elif message.topic == self.topics.transcript:
                        self._on_mqtt_transcript(message)
                    elif message.topic == self.topics.nav_state:
                        self._on_nav_state(message)
                    elif message.topic == self.topics.listen:
                        self.features.open_listen_window()
                except Exception:  # one bad message must never stop the daemon
                    log.exception("failed to handle a message on %s", message.topic)
                finally:
                    self.bus.ack(message)
            await asyncio.sleep(0)  # let publishing and timers run between batches

    def _on_connected(self, session_present: bool) -> None:
        self.publisher.on_connected(session_present)

    def _on_published(self, mid: int) -> None:
        self.publisher.on_published(mid)

    # -- alerts ------------------------------------------------------------------------

    def _on_alert(self, alert: Alert) -> None:
        try:
            topic = self.topics.alert(alert.device)
        except TopicError as err:  # device ids were validated on the way in; defensive
            log.warning("alert for unusable device id %r: %s", alert.device, err)
            return
        self.publisher.send(Kind.ALERT, topic, alert.to_payload())
        self._save_policy()
        log.info(
            "alert %s %s %s %s=%g (%s)",
            alert.state.value,
            alert.severity.label,
            alert.device,
            alert.signal,
            alert.value,
            alert.rule,
        )
        if alert.state is AlertState.FIRING:
            history = self.detector.history(alert.device, alert.signal)
            device_history = self.detector.device_history(alert.device)  # the diagnosis reads every signal
            future = self.features.explainer.explain(alert, history, device_history)
            future.add_done_callback(functools.partial(self._explanation_done, alert))

    def _explanation_done(self, alert: Alert, future: concurrent.futures.Future[Explanation]) -> None:
        self._call_soon(self._publish_explanation, alert, future)

    def _publish_explanation(self, alert: Alert, future: concurrent.futures.Future[Explanation]) -> None:
        if self._closed:
            return
        try:
            explanation = future.result()
        except Exception:  # the explainer promises a template on failure; belt and braces
            log.exception("explainer failed for alert %s", alert.id)
            from edge_slm.llm.explain import template_explanation

            explanation = template_explanation(alert)
        self.counters[f"explanations_{explanation.explained_by}"] = (
            self.counters.get(f"explanations_{explanation.explained_by}", 0) + 1
        )
        self.publisher.send(Kind.EXPLANATION, self.topics.explanation(alert.device), explanation.to_payload())

    # -- voice -------------------------------------------------------------------------

    def _on_mqtt_transcript(self, message: InboundMessage) -> None:
        try:
            transcript = parse_transcript(message.payload, message.received_ts)
        except DecodeError as err:
            self._deadletter(message.topic, message.payload, str(err))
            return
        self._handle_transcript(transcript)

    def _on_microphone_transcript(self, transcript: Transcript) -> None:
        """Called from the voice listener's thread."""
        self._call_soon(self._publish_heard_and_handle, transcript)

    def _publish_heard_and_handle(self, transcript: Transcript) -> None:
        heard = {
            "id": transcript.id,
            "text": transcript.text,
            "confidence": transcript.confidence,
            "start_s": transcript.start_s,
            "end_s": transcript.end_s,
        }
        self.bus.publish(self.topics.heard, json.dumps(heard, ensure_ascii=False), qos=1)
        self._handle_transcript(transcript)

    def _handle_transcript(self, transcript: Transcript) -> None:
        self.counters["transcripts"] += 1
        future = self._voice_pool.submit(self.features.answer, transcript)
        future.add_done_callback(functools.partial(self._reply_done, transcript))

    def _reply_done(self, transcript: Transcript, future: concurrent.futures.Future[Reply]) -> None:
        self._call_soon(self._publish_reply, transcript, future)

    def _publish_reply(self, transcript: Transcript, future: concurrent.futures.Future[Reply]) -> None:
        if self._closed:
            return
        try:
            reply = future.result()
        except Exception:
            self.counters["voice_errors"] += 1
            log.exception("answering %r failed", transcript.text)
            return
        if transcript.received_ts > 0:  # count the time it waited in the queue, not just the answering
            reply = dataclasses.replace(reply, latency_ms=(time.time() - transcript.received_ts) * 1000.0)
        for action in reply.actions:
            self.publisher.send(Kind.ACTION, self.topics.action(action.kind), dict(action.payload))
            self.counters["actions"] += 1
        self.publisher.send(Kind.REPLY, self.topics.reply, reply.to_payload())
        self.counters["replies"] += 1

    def _on_nav_state(self, message: InboundMessage) -> None:
        error = self.features.update_nav(message.payload)
        if error:
            self._deadletter(message.topic, message.payload, error)
        else:
            self.counters["nav_updates"] += 1

    def _on_component_status(self, component: str, status: str) -> None:
        self._call_soon(self._component_status.__setitem__, component, status)

    # -- dead letters and metrics ---------------------------------------------------------

    def _deadletter(self, topic: str, payload: bytes, reason: str) -> None:
        record = {"topic": topic, "reason": reason, "payload_b64": b64encode(payload[:65536]).decode("ascii")}
        self.bus.publish(self.topics.deadletter, json.dumps(record, ensure_ascii=False), qos=1)
        log.debug("dead letter from %s: %s", topic, reason)

    def metrics_snapshot(self) -> dict[str, Any]:
        t = self.telemetry.counters
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
            },
            "publisher": asdict(self.publisher.counters),
            "mqtt": asdict(self.bus.counters),
            "late_samples": self.detector.late_samples,
            "counters": dict(self.counters),
            "components": dict(self._component_status),
            **self.features.metrics(),
            "rss_bytes": metrics.rss_bytes(),
        }

    async def _publish_metrics_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.settings.mqtt.metrics_interval_s)
            self.bus.publish(self.topics.metrics, json.dumps(self.metrics_snapshot()), qos=1)

    def _call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._closed or self._loop is None or self._loop.is_closed():
            return
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass  # loop closing during shutdown


async def run_daemon(settings: Settings, features: Features | None = None) -> None:
    """Run until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    daemon = Daemon(settings, features)
    await daemon.run(stop)

"""Telemetry flow: topic + bytes -> decode -> detect -> alert policy -> alerts.

Synchronous and allocation-light: it runs on the asyncio loop for every inbound telemetry
message. Anything malformed is counted and reported through `on_deadletter`; nothing here
raises for bad input."""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from dataclasses import dataclass

from edge_slm.bus.topics import TopicError, Topics
from edge_slm.detect.detector import Detector
from edge_slm.detect.policy import AlertPolicy
from edge_slm.errors import DecodeError
from edge_slm.events import Alert, AlertState, Sample
from edge_slm.telemetry.codec import decode_telemetry

log = logging.getLogger(__name__)

DeadLetterSink = Callable[[str, bytes, str], None]  # (topic, payload, reason)
MAX_CACHED_TOPICS = 10_000


@dataclass
class TelemetryCounters:
    messages: int = 0
    decoded: int = 0
    deadlettered: int = 0
    rejected_signals: int = 0
    samples: int = 0
    alerts_firing: int = 0
    alerts_resolved: int = 0
    internal_errors: int = 0


class TelemetryPipeline:
    def __init__(
        self,
        topics: Topics,
        detector: Detector,
        policy: AlertPolicy,
        on_alert: Callable[[Alert], None],
        on_deadletter: DeadLetterSink,
        on_sample: Callable[[Sample], None] | None = None,
    ) -> None:
        self._topics = topics
        self._detector = detector
        self._policy = policy
        self._on_alert = on_alert
        self._on_deadletter = on_deadletter
        self._on_sample = on_sample  # e.g. the latest-values store behind vehicle_status replies
        self.counters = TelemetryCounters()
        # When set (the daemon's consume loop), alerts are queued here instead of handed to
        # `on_alert` at once, so the loop can publish a flood of them in slices and yield between.
        self.alert_queue: collections.deque[Alert] | None = None
        self._devices: dict[str, str] = {}  # validated telemetry topic -> device id

    def handle(self, topic: str, payload: bytes, received_ts: float) -> None:
        self.counters.messages += 1
        try:
            device = self._devices.get(topic)
            if device is None:
                device = self._topics.device_from_telemetry_topic(topic)
                if len(self._devices) >= MAX_CACHED_TOPICS:
                    self._devices.clear()  # bounded: a sender inventing device ids only costs re-validation
                self._devices[topic] = device
            decoded = decode_telemetry(device, payload, received_ts)
        except (TopicError, DecodeError) as err:
            self._reject(topic, payload, str(err))
            return
        self.counters.decoded += 1
        if decoded.rejected_signals:
            self.counters.rejected_signals += len(decoded.rejected_signals)
            reasons = "; ".join(f"{name!r}: {why}" for name, why in list(decoded.rejected_signals.items())[:5])
            self._reject(topic, payload, f"signals rejected (others accepted): {reasons}", count=False)
        sample = decoded.sample
        try:
            for due in self._policy.tick(sample.device, sample.ts, self._still_active):
                self._emit(due)
            for finding in self._detector.process(sample):
                alert = self._policy.apply(finding)
                if alert is not None:
                    self._emit(alert)
            if self._on_sample is not None:  # after detection: a failure here never costs an alert
                self._on_sample(sample)
        except Exception:  # a bug in detection must not stop ingest; it is counted and logged
            self.counters.internal_errors += 1
            log.exception("telemetry: detection failed for %s", topic)
            return
        self.counters.samples += 1

    def _still_active(self, key: tuple[str, str, str]) -> bool:
        device, rule, signal = key
        return self._detector.is_active(device, signal, rule)

    def _emit(self, alert: Alert) -> None:
        if alert.state is AlertState.FIRING:
            self.counters.alerts_firing += 1
        else:
            self.counters.alerts_resolved += 1
        if self.alert_queue is not None:
            self.alert_queue.append(alert)
        else:
            self._on_alert(alert)

    def emit_queued(self, max_alerts: int) -> int:
        """Hand up to `max_alerts` queued alerts to `on_alert`; returns how many are left."""
        queue = self.alert_queue
        if queue is None:
            return 0
        for _ in range(min(max_alerts, len(queue))):
            alert = queue.popleft()
            try:
                self._on_alert(alert)
            except Exception:  # a bug in publishing one alert must not stop ingest or the others
                self.counters.internal_errors += 1
                log.exception("telemetry: publishing alert %s failed", alert.id)
        return len(queue)

    def _reject(self, topic: str, payload: bytes, reason: str, *, count: bool = True) -> None:
        if count:
            self.counters.deadlettered += 1
        self._on_deadletter(topic, payload, reason)

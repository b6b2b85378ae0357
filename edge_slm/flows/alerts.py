"""Telemetry -> detect -> alert policy -> alert on MQTT at once -> explanation when ready.

Runs on the event loop. Detection is synchronous and cheap; the explainer answers with a future
whose completion is posted back to the loop through the bus's hand-off (one loop wake-up per
burst of finished explanations, whatever thread finishes them), so a slow or broken model never
holds up an alert, and an alert flood costs futures, not threads or self-pipe bytes."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
from collections.abc import Callable
from typing import Any

from edge_slm.bus.outbox import Kind
from edge_slm.bus.publisher import DurablePublisher
from edge_slm.bus.topics import TopicError, Topics
from edge_slm.config import ModelSettings
from edge_slm.daemon_state import DaemonState
from edge_slm.detect.detector import Detector
from edge_slm.detect.knowledge import Knowledge
from edge_slm.detect.policy import AlertPolicy
from edge_slm.events import Alert, AlertState, Explanation, Sample
from edge_slm.llm.api import LlmEngine
from edge_slm.llm.explain import AlertExplainer, template_explanation
from edge_slm.telemetry.pipeline import DeadLetterSink, TelemetryPipeline

log = logging.getLogger(__name__)

DIAGNOSIS_MAX_SIGNALS = 32  # a device's signals one diagnosis reads (co-movement beyond these is not looked at)


class AlertFlow:
    def __init__(
        self,
        topics: Topics,
        detector: Detector,
        policy: AlertPolicy,
        publisher: DurablePublisher,
        state: DaemonState,
        deadletter: DeadLetterSink,
        call_soon: Callable[..., None],
        on_sample: Callable[[Sample], None] | None = None,
    ) -> None:
        self._topics = topics
        self._detector = detector
        self._publisher = publisher
        self._state = state
        self.telemetry = TelemetryPipeline(topics, detector, policy, self._on_alert, deadletter, on_sample)
        self.explainer = AlertExplainer(None)
        self._call_soon = call_soon  # thread-safe: runs a callable on the loop
        self._explaining = 0
        self._all_explained = asyncio.Event()
        self.counters: dict[str, int] = {"explanations_model": 0, "explanations_template": 0}
        # Others that follow alerts (Home Assistant discovery): called on the loop, must not block.
        self.alert_listeners: list[Callable[[Alert], None]] = []
        self.explanation_listeners: list[Callable[[Alert, Explanation], None]] = []

    def use_model(self, engine: LlmEngine | None, settings: ModelSettings, knowledge: Knowledge) -> None:
        """At start-up, once the model is loaded (or known to be off)."""
        self.explainer = AlertExplainer(
            engine if settings.explain_alerts else None,
            deadline_s=settings.explain_deadline_s,
            max_tokens=settings.explain_max_tokens,
            knowledge=knowledge,  # built-in fault knowledge + site packs' [[causes]]
            # a local model serves one request at a time; a worker pool serves one per worker
            max_inflight=settings.pool_inflight if settings.mode == "pool" else 1,
        )

    def warm_up(self) -> None:
        """Blocking: prefill the explanation prompt prefix (or load it from disk)."""
        self.explainer.warm()

    def handle(self, topic: str, payload: bytes, received_ts: float) -> None:
        self.telemetry.handle(topic, payload, received_ts)

    def _on_alert(self, alert: Alert) -> None:
        try:
            topic = self._topics.alert(alert.device)
        except TopicError as err:  # device ids were validated on the way in; defensive
            log.warning("alert for unusable device id %r: %s", alert.device, err)
            return
        self._publisher.send(Kind.ALERT, topic, alert.to_payload())
        self._state.alerts_changed()
        self._notify(self.alert_listeners, alert)
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
            history = self._detector.history(alert.device, alert.signal)
            # the diagnosis reads the device's other signals: the knowledge's first, bounded in number
            device_history = self._detector.device_history(
                alert.device, (alert.signal, *self.explainer.evidence_signals(alert.rule)), DIAGNOSIS_MAX_SIGNALS
            )
            future = self.explainer.explain(alert, history, device_history)
            self._explaining += 1
            self._all_explained.clear()
            future.add_done_callback(functools.partial(self._explanation_ready, alert))

    def _explanation_ready(self, alert: Alert, future: concurrent.futures.Future[Explanation]) -> None:
        """From whichever thread finished it."""
        self._call_soon(self._publish_explanation, alert, future)

    def _publish_explanation(self, alert: Alert, future: concurrent.futures.Future[Explanation]) -> None:
        self._explaining -= 1
        if self._explaining == 0:
            self._all_explained.set()
        try:
            explanation = future.result()
        except Exception:  # the explainer promises a template on failure; belt and braces
            log.exception("explainer failed for alert %s", alert.id)
            explanation = template_explanation(alert)
        key = f"explanations_{explanation.explained_by}"
        self.counters[key] = self.counters.get(key, 0) + 1
        self._publisher.send(Kind.EXPLANATION, self._topics.explanation(alert.device), explanation.to_payload())
        self._notify(self.explanation_listeners, alert, explanation)

    @staticmethod
    def _notify(listeners: list[Callable[..., None]], *args: Any) -> None:
        for listener in listeners:
            try:
                listener(*args)
            except Exception:  # a listener's bug never costs an alert
                log.exception("alert listener %r failed", listener)

    async def finish_explanations(self, timeout_s: float) -> None:
        """At shutdown, after the model was closed (its queued work then resolves to templates):
        let the pending explanations go into the outbox."""
        if self._explaining:
            try:
                await asyncio.wait_for(self._all_explained.wait(), timeout_s)
            except TimeoutError:
                log.warning("%d explanations still pending at shutdown", self._explaining)

    def close_explainer(self) -> None:
        """At shutdown, before the model closes: what still waits for the model goes out with the
        knowledge text."""
        self.explainer.close()

    def metrics(self) -> dict[str, Any]:
        return {"explanations": self.explainer.counts(), "explanations_pending": self._explaining}

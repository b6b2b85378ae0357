"""What the daemon keeps across restarts, in the outbox's state table: the firing alerts (so a
restart neither forgets nor repeats them) and the detector's learned baselines (so anomaly
detection does not start cold). Saving is best effort: a failed save is counted and logged,
never raised."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson

from edge_slm.bus.outbox import Outbox, OutboxError
from edge_slm.detect.detector import Detector
from edge_slm.detect.policy import AlertPolicy

log = logging.getLogger(__name__)

POLICY_STATE_KEY = "alert_policy"
LEARNED_STATE_KEY = "detector_learned"
# Firing-alert state is saved once per loop turn that changed it, and during a flood at most
# every ALERTS_SAVE_MIN_INTERVAL_S: not once per alert, which re-serialized every firing alert
# each time (quadratic in an alert flood). The policy keeps each alert's saved form.
ALERTS_SAVE_MIN_INTERVAL_S = 0.25


class DaemonState:
    def __init__(self, detector: Detector, policy: AlertPolicy) -> None:
        self._detector = detector
        self._policy = policy
        self._outbox: Outbox | None = None
        self._save_handle: asyncio.TimerHandle | None = None
        self._alerts_saved_at = 0.0
        self.save_errors = 0

    def attach(self, outbox: Outbox | None) -> None:
        self._outbox = outbox

    def restore(self) -> None:
        """Learned baselines and firing alerts from the last run; a bad record starts clean."""
        if self._outbox is None:
            return
        try:
            learned = self._outbox.load_state(LEARNED_STATE_KEY)
            if learned:
                self._detector.restore_learned(orjson.loads(learned))
            raw = self._outbox.load_state(POLICY_STATE_KEY)
            if raw:
                self._policy.restore(orjson.loads(raw))
                for alert in self._policy.firing():
                    self._detector.restore_firing(alert)
                log.info("restored %d firing alerts", len(self._policy.firing()))
        except (OutboxError, ValueError, KeyError, TypeError) as err:
            log.warning("could not restore alert state (%s); starting clean", err)

    def alerts_changed(self) -> None:
        """On the loop: save the firing alerts soon (coalescing every change until then)."""
        if self._save_handle is None:
            wait_s = self._alerts_saved_at + ALERTS_SAVE_MIN_INTERVAL_S - time.monotonic()
            self._save_handle = asyncio.get_running_loop().call_later(max(0.0, wait_s), self.save_alerts)

    def save_alerts(self) -> None:
        if self._save_handle is not None:
            self._save_handle.cancel()  # a no-op when this is that handle running
            self._save_handle = None
        self._alerts_saved_at = time.monotonic()
        self._save(POLICY_STATE_KEY, self._policy.snapshot, "alert state")

    def save_learned(self) -> None:
        self._save(LEARNED_STATE_KEY, self._detector.learned_state, "learned detector state")

    def _save(self, key: str, snapshot: Callable[[], Any], what: str) -> None:
        if self._outbox is None:
            return
        try:
            self._outbox.save_state(key, orjson.dumps(snapshot()).decode())
        except OutboxError as err:
            self.save_errors += 1
            log.debug("%s not saved: %s", what, err)

"""Alert policy: Findings -> Alerts. One firing alert per (device, rule, signal) until it
resolves, escalation keeps the alert's id, a cooldown after a resolve absorbs flapping, and
ids are derived from the fault's onset so a replay or a restart yields the same ids."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from edge_slm.events import Alert, AlertState, Finding, Severity

AlertKey = tuple[str, str, str]  # (device, rule, signal)
MAX_REMEMBERED_RESOLVES = 5000  # for cooldowns; older resolves are long past any cooldown
MAX_RECENTLY_RESOLVED = 64  # resolved alerts kept for "the coolant warning cleared 20 seconds ago"


def alert_id(device: str, rule: str, signal: str, onset_ts: float) -> str:
    digest = hashlib.sha256(f"{device}\0{rule}\0{signal}\0{onset_ts:.3f}".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:20]


@dataclass
class _Suppressed:
    finding: Finding
    until_ts: float


class AlertPolicy:
    def __init__(self, cooldown_s: float, clock: Callable[[], float] = time.time) -> None:
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._firing: dict[AlertKey, Alert] = {}
        self._resolved_at: dict[AlertKey, float] = {}
        self._suppressed: dict[AlertKey, _Suppressed] = {}
        self.suppressed_count = 0
        # Other threads (the intent worker) read this immutable copy, never the dict.
        self._firing_view: tuple[Alert, ...] = ()
        # Persisted form of each firing alert, built once per change (not once per save), so a
        # snapshot during an alert flood costs a list copy, not a re-serialization of every alert.
        self._firing_saved: dict[AlertKey, dict[str, Any]] = {}
        # (resolved alert, wall-clock time it resolved here), newest last; an immutable view as above
        self._resolved_view: tuple[tuple[Alert, float], ...] = ()

    def firing(self, device: str | None = None) -> list[Alert]:
        return [a for a in self._firing_view if device is None or a.device == device]

    def recently_resolved(self, device: str | None = None, within_s: float = 300.0) -> list[tuple[Alert, float]]:
        """Alerts that resolved in the last `within_s` seconds (wall clock), newest first, with the
        time they resolved; at most MAX_RECENTLY_RESOLVED are remembered."""
        now = self._clock()
        return [
            (alert, at)
            for alert, at in reversed(self._resolved_view)
            if now - at <= within_s and (device is None or alert.device == device)
        ]

    def _changed(self, key: AlertKey | None = None) -> None:
        """`key`: the one alert that changed (None: rebuild everything, after a restore)."""
        if key is None:
            self._firing_saved = {k: _alert_to_dict(a) for k, a in self._firing.items()}
        elif key in self._firing:
            self._firing_saved[key] = _alert_to_dict(self._firing[key])
        else:
            self._firing_saved.pop(key, None)
        self._firing_view = tuple(self._firing.values())

    def apply(self, finding: Finding) -> Alert | None:
        key = (finding.device, finding.rule, finding.signal)
        if finding.firing:
            return self._fire(key, finding)
        return self._resolve(key, finding)

    def tick(self, device: str, ts: float, still_active: Callable[[AlertKey], bool]) -> list[Alert]:
        """Fire suppressed alerts whose cooldown has passed while their condition still holds."""
        if not self._suppressed:
            return []
        due = [k for k, s in self._suppressed.items() if k[0] == device and ts >= s.until_ts]
        alerts = []
        for key in due:
            held = self._suppressed.pop(key)
            if still_active(key):
                alerts.append(self._open(key, replace(held.finding, ts=ts)))
        return alerts

    def _fire(self, key: AlertKey, finding: Finding) -> Alert | None:
        current = self._firing.get(key)
        if current is not None:
            if finding.severity <= current.severity:
                return None
            escalated = replace(
                current,
                severity=finding.severity,
                value=finding.value,
                ts=finding.ts,
                summary=finding.summary,
                action=finding.action,
            )
            self._firing[key] = escalated
            self._changed(key)
            return escalated
        if key in self._suppressed:
            held = self._suppressed[key]
            if finding.severity > held.finding.severity:
                self._suppressed[key] = _Suppressed(finding, held.until_ts)
            return None
        last_resolve = self._resolved_at.get(key)
        # Only forward in event time: a replayed (earlier) trace is not inside any cooldown.
        if last_resolve is not None and last_resolve <= finding.ts < last_resolve + self._cooldown_s:
            self._suppressed[key] = _Suppressed(finding, last_resolve + self._cooldown_s)
            self.suppressed_count += 1
            return None
        return self._open(key, finding)

    def _open(self, key: AlertKey, finding: Finding) -> Alert:
        alert = Alert(
            id=alert_id(finding.device, finding.rule, finding.signal, finding.onset_ts),
            device=finding.device,
            signal=finding.signal,
            rule=finding.rule,
            severity=finding.severity,
            state=AlertState.FIRING,
            value=finding.value,
            ts=finding.ts,
            summary=finding.summary,
            action=finding.action,
            onset_ts=finding.onset_ts,
            notes=finding.notes,
        )
        self._firing[key] = alert
        self._changed(key)
        return alert

    def _resolve(self, key: AlertKey, finding: Finding) -> Alert | None:
        if self._suppressed.pop(key, None) is not None:
            return None  # it cleared inside its cooldown: it never went out, so nothing to resolve
        current = self._firing.pop(key, None)
        if current is None:
            return None
        self._changed(key)
        self._resolved_at.pop(key, None)
        self._resolved_at[key] = finding.ts  # re-inserted: the dict stays ordered oldest first
        while len(self._resolved_at) > MAX_REMEMBERED_RESOLVES:
            self._resolved_at.pop(next(iter(self._resolved_at)))
        resolved = replace(
            current,
            state=AlertState.RESOLVED,
            value=finding.value,
            ts=finding.ts,
            summary=finding.summary,
            action=finding.action,
        )
        self._resolved_view = (*self._resolved_view[-(MAX_RECENTLY_RESOLVED - 1) :], (resolved, self._clock()))
        return resolved

    # -- persistence (restart safety) ---------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "firing": list(self._firing_saved.values()),
            "resolved_at": [[*k, ts] for k, ts in self._resolved_at.items()],
        }

    def restore(self, data: dict[str, Any]) -> None:
        for item in data.get("firing", []):
            alert = _alert_from_dict(item)
            self._firing[(alert.device, alert.rule, alert.signal)] = alert
        for device, rule, signal, ts in data.get("resolved_at", []):
            self._resolved_at[(device, rule, signal)] = float(ts)
        self._changed()


def _alert_to_dict(alert: Alert) -> dict[str, Any]:
    data = alert.to_payload()
    data["onset_ts"] = alert.onset_ts
    data["notes"] = alert.notes
    return data


def _alert_from_dict(data: dict[str, Any]) -> Alert:
    return Alert(
        id=data["id"],
        device=data["device"],
        signal=data["signal"],
        rule=data["rule"],
        severity=Severity.parse(data["severity"]),
        state=AlertState(data["state"]),
        value=float(data["value"]),
        ts=float(data["ts"]),
        summary=data["summary"],
        action=data["action"],
        onset_ts=float(data.get("onset_ts", 0.0)),
        notes=data.get("notes", ""),
    )

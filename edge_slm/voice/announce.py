"""Which alerts are spoken without being asked, and the words: a pure policy (no I/O, no threads).

An alert is announced when it is firing (or escalated), at or above `voice.announce_severity`, for
the vehicle device (`voice.vehicle_device`; every device when that is empty). The same fault
(device, rule, signal) is not announced again within `repeat_after_s`, and no more than
`max_per_minute` announcements go out in any minute, so a storm cannot talk over the driver.
Queueing behind a reply in progress is the speaker's job (it plays one utterance at a time).

The text is built from `detect.spoken` names only: "Warning: engine coolant at 118 °C. Stop safely
when you can." A signal the table does not know is announced without its name or value.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass

from edge_slm.detect.spoken import SpokenSignal, say_value, spoken_signal
from edge_slm.events import Alert, AlertState, Severity

MAX_REMEMBERED_FAULTS = 1000
SEVERITY_CHOICES = ("off", "info", "warning", "critical")

_LEAD = {Severity.CRITICAL: "Warning", Severity.WARNING: "Caution", Severity.INFO: "Note"}
# component -> (advice when critical, advice otherwise)
_ADVICE: dict[str, tuple[str, str]] = {
    "coolant": ("Stop safely when you can.", "Have the cooling system checked soon."),
    "oil": ("Stop safely when you can.", "Have the engine oil checked soon."),
    "battery": ("Have the battery checked as soon as you can.", "Have the battery checked soon."),
    "tires": ("Slow down and stop safely to check the tires.", "Check the tire pressure when you can."),
    "machine": ("Check the machine now.", "Check the machine when you can."),
}


@dataclass(frozen=True, slots=True)
class Announcement:
    alert_id: str
    text: str  # display text; `detect.spoken.speakable` turns its units into words for the synthesizer
    severity: Severity


def announcement_text(alert: Alert) -> str:
    lead = _LEAD.get(alert.severity, "Note")
    spoken: SpokenSignal | None = spoken_signal(alert.signal)
    if spoken is None:
        what = (
            "a critical vehicle alert" if alert.severity is Severity.CRITICAL else f"a vehicle {alert.severity.label}"
        )
        return f"{lead}: {what}. Check the dashboard."
    value = say_value(spoken, alert.value)
    head = f"{lead}: {spoken.subject} at {value}." if value else f"{lead}: {spoken.subject} alert."
    critical_advice, advice = _ADVICE.get(spoken.component, ("Stop safely when you can.", "Check it when you can."))
    return f"{head} {critical_advice if alert.severity is Severity.CRITICAL else advice}"


def parse_min_severity(text: str) -> Severity | None:
    """'critical' -> Severity.CRITICAL; 'off' -> None (never announce)."""
    text = text.strip().lower()
    return None if text == "off" else Severity.parse(text)


class AnnouncePolicy:
    def __init__(
        self,
        min_severity: Severity | None,
        vehicle_device: str,
        *,
        repeat_after_s: float = 300.0,
        max_per_minute: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._min_severity = min_severity
        self._device = vehicle_device
        self._repeat_after_s = repeat_after_s
        self._max_per_minute = max_per_minute
        self._clock = clock
        self._last_said: collections.OrderedDict[tuple[str, str, str], float] = collections.OrderedDict()
        self._recent: collections.deque[float] = collections.deque()
        self.suppressed_repeats = 0
        self.suppressed_rate = 0

    def consider(self, alert: Alert) -> Announcement | None:
        """The announcement for this alert, or None when it is not to be spoken (now)."""
        if self._min_severity is None or alert.state is not AlertState.FIRING:
            return None
        if alert.severity < self._min_severity or (self._device and alert.device != self._device):
            return None
        now = self._clock()
        key = (alert.device, alert.rule, alert.signal)
        said = self._last_said.get(key)
        if said is not None and now - said < self._repeat_after_s:
            self.suppressed_repeats += 1
            return None
        while self._recent and now - self._recent[0] >= 60.0:
            self._recent.popleft()
        if len(self._recent) >= self._max_per_minute:
            self.suppressed_rate += 1
            return None
        self._recent.append(now)
        self._last_said.pop(key, None)
        self._last_said[key] = now
        while len(self._last_said) > MAX_REMEMBERED_FAULTS:
            self._last_said.popitem(last=False)
        return Announcement(alert.id, announcement_text(alert), alert.severity)

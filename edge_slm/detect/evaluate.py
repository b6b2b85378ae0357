"""Per-series rule state: what a rule's condition is at each sample, and when it has held
long enough (on event time) to fire, escalate or clear. Pure and deterministic."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from edge_slm.detect.rules import Direction, Rule, RuleKind
from edge_slm.events import Severity

RELATIVE_BASELINE_ALPHA = 0.02  # slow enough that an overload does not become the new normal


@dataclass(frozen=True, slots=True)
class Transition:
    """A rule changed state for one series: fired, escalated, or cleared."""

    firing: bool
    severity: Severity
    limit: float
    onset_ts: float
    measure: float  # the quantity compared with the limit (value, rate per minute or ratio)
    context: dict[str, float]


@dataclass
class RuleSeries:
    """Everything one rule remembers about one (device, signal)."""

    rule: Rule
    firing: Severity | None = None
    onset_ts: float = 0.0
    breach_since: dict[Severity, float] = field(default_factory=dict)
    breach_count: dict[Severity, int] = field(default_factory=dict)
    clear_since: float | None = None
    clear_count: int = 0
    last_ts: float | None = None
    window: deque[tuple[float, float]] = field(default_factory=deque)
    baseline: float | None = None
    baseline_n: int = 0
    stuck_value: float | None = None
    stuck_since: float = 0.0
    # drift: the frozen reference is `baseline` once `reference_done`; `ewma` is the slow average
    reference_start: float | None = None
    reference_done: bool = False
    ewma: float = 0.0
    ewma_ts: float = 0.0
    # intermittent excursions of threshold rules
    excursion_since: float | None = None
    excursion_long: bool = False
    excursion_samples: int = 0
    excursions: deque[float] = field(default_factory=deque)
    last_excursion_ts: float = 0.0
    intermittent_firing: bool = False
    intermittent_onset_ts: float = 0.0
    intermittent: Transition | None = None  # set by update() when the intermittent alert changes
    # The least extreme limit and its direction, precomputed: most samples are quiet, and a quiet
    # sample is told apart with one comparison (see `update`).
    quiet_limit: float = field(init=False)
    above: bool = field(init=False)

    def __post_init__(self) -> None:
        limits = [limit for _, limit in self.rule.levels] or [math.inf]
        self.above = self.rule.direction is Direction.ABOVE
        self.quiet_limit = min(limits) if self.above else max(limits)

    @property
    def pending(self) -> bool:
        """A condition is building up (or an excursion is open): not to be forgotten."""
        return bool(self.breach_since) or self.excursion_since is not None or bool(self.excursions)

    def update(self, value: float, ts: float) -> Transition | None:
        rule = self.rule
        if self.last_ts is not None and ts - self.last_ts > rule.max_gap_s:
            # Too long without data: durations measured across the gap would be guesses.
            self.breach_since.clear()
            self.breach_count.clear()
            self.clear_since, self.clear_count = None, 0
            self.window.clear()
            self.excursion_since = None
        self.last_ts = ts

        self.intermittent = None
        kind = rule.kind
        if (
            kind is RuleKind.THRESHOLD
            and self.firing is None
            and not self.breach_since
            and ((value <= self.quiet_limit) if self.above else (value >= self.quiet_limit))
        ):
            # Fast path for the common case, exactly what the general path below does with it:
            # nothing firing or building up, and the value short of every limit.
            if rule.intermittent_count and (
                self.excursion_since is not None or self.excursions or self.intermittent_firing
            ):
                self._track_excursions(False, ts, value, {})
            return None
        measure, context = self._measure(value, ts)
        if measure is None:  # still warming up or filling the window
            self._learn(value, breached=False)
            return None
        if (
            (kind is RuleKind.RATE or kind is RuleKind.DRIFT)
            and self.firing is None
            and not self.breach_since
            and ((measure <= self.quiet_limit) if self.above else (measure >= self.quiet_limit))
        ):
            return None  # quiet, as above (these kinds neither learn nor track excursions)
        breached = self._breached_levels(measure, context)
        if kind is RuleKind.THRESHOLD and rule.intermittent_count:
            self._track_excursions(bool(breached), ts, measure, context)
        for severity, _limit in rule.levels:
            if severity in breached:
                self.breach_since.setdefault(severity, ts)
                self.breach_count[severity] = self.breach_count.get(severity, 0) + 1
            else:
                self.breach_since.pop(severity, None)
                self.breach_count.pop(severity, None)
        held = self._held_severity(ts)

        if self.firing is None:
            self._learn(value, breached=bool(breached))
            if held is None:
                return None
            self.firing = held
            self.onset_ts = min(self.breach_since[s] for s in self.breach_since)
            self.clear_since, self.clear_count = None, 0
            return Transition(True, held, self._limit(held), self.onset_ts, measure, context)

        if held is not None and held > self.firing:
            self.firing = held
            return Transition(True, held, self._limit(held), self.onset_ts, measure, context)

        if self._is_clear(measure):
            if self.clear_since is None:
                self.clear_since, self.clear_count = ts, 0
            self.clear_count += 1
            if ts - self.clear_since >= rule.clear_for_s and self.clear_count >= rule.min_samples:
                severity = self.firing
                self.firing = None
                self.clear_since, self.clear_count = None, 0
                self.breach_since.clear()
                self.breach_count.clear()
                return Transition(False, severity, self._limit(severity), self.onset_ts, measure, context)
        else:
            self.clear_since, self.clear_count = None, 0
        return None

    def _track_excursions(self, breached: bool, ts: float, measure: float, context: dict[str, float]) -> None:
        """Short excursions past the lowest limit that never held long enough to fire; enough of
        them within the window is an intermittent fault of its own, cleared after a quiet window."""
        rule = self.rule
        if breached:
            if self.excursion_since is None:
                self.excursion_since, self.excursion_long, self.excursion_samples = ts, False, 0
            self.excursion_samples += 1
            if self.firing is not None:
                self.excursion_long = True
        elif self.excursion_since is not None:
            # A one-sample glitch is no excursion, just as it fires no alert.
            if not self.excursion_long and self.excursion_samples >= rule.min_samples:
                self.excursions.append(self.excursion_since)
                self.last_excursion_ts = ts
            self.excursion_since = None
            while self.excursions and ts - self.excursions[0] > rule.intermittent_window_s:
                self.excursions.popleft()
            while len(self.excursions) > rule.intermittent_count:
                self.excursions.popleft()
            if not self.intermittent_firing and len(self.excursions) >= rule.intermittent_count:
                self.intermittent_firing, self.intermittent_onset_ts = True, self.excursions[0]
                severity = rule.levels[0][0]
                self.intermittent = Transition(
                    True,
                    severity,
                    rule.lowest_limit,
                    self.intermittent_onset_ts,
                    measure,
                    {**context, "count": float(len(self.excursions))},
                )
                return
        if self.excursions and ts - self.excursions[-1] > rule.intermittent_window_s:
            self.excursions.clear()
        if (
            self.intermittent_firing
            and self.excursion_since is None
            and ts - self.last_excursion_ts > rule.intermittent_window_s
        ):
            self.intermittent_firing = False
            self.intermittent = Transition(
                False, rule.levels[0][0], rule.lowest_limit, self.intermittent_onset_ts, measure, context
            )

    # -- per-kind measures -------------------------------------------------------------

    def _measure(self, value: float, ts: float) -> tuple[float | None, dict[str, float]]:
        kind = self.rule.kind
        if kind is RuleKind.THRESHOLD:
            return value, {}
        if kind is RuleKind.RATE:
            window = self.window
            window.append((ts, value))
            while window and ts - window[0][0] > self.rule.window_s:
                window.popleft()
            first_ts, first_value = window[0]
            span = ts - first_ts
            if span < self.rule.window_s / 2:
                return None, {}
            rate = (value - first_value) / span * 60.0
            return rate, {"rate": rate}
        if kind is RuleKind.DRIFT:
            return self._drift(value, ts)
        if kind is RuleKind.RELATIVE:
            if self.baseline is None or self.baseline_n < self.rule.warmup_samples:
                return None, {}
            ratio = value / self.baseline
            return ratio, {"ratio": ratio, "baseline": self.baseline, "delta": value - self.baseline}
        # STUCK: how long the reading has been identical
        if self.stuck_value is None or value != self.stuck_value:
            self.stuck_value, self.stuck_since = value, ts
            return 0.0, {"duration_s": 0.0}
        duration = ts - self.stuck_since
        return (1.0 if value != 0 else 0.0), {"duration_s": duration}

    def _drift(self, value: float, ts: float) -> tuple[float | None, dict[str, float]]:
        rule = self.rule
        if value < rule.running_above:  # machine stopped: says nothing about wear
            return None, {}
        if not self.reference_done:
            if self.reference_start is None:
                self.reference_start, self.baseline, self.baseline_n = ts, 0.0, 0
            self.baseline_n += 1
            self.baseline += (value - self.baseline) / self.baseline_n  # type: ignore[operator]
            if ts - self.reference_start >= rule.reference_s and self.baseline_n >= rule.warmup_samples:
                self.reference_done, self.ewma, self.ewma_ts = True, float(self.baseline), ts
            return None, {}
        dt = min(max(ts - self.ewma_ts, 0.0), rule.tau_s)
        self.ewma += (1.0 - math.exp(-dt / rule.tau_s)) * (value - self.ewma)
        self.ewma_ts = ts
        delta = self.ewma - float(self.baseline)  # type: ignore[arg-type]
        return delta, {"baseline": float(self.baseline), "delta": delta, "average": self.ewma}  # type: ignore[arg-type]

    def _breached_levels(self, measure: float, context: dict[str, float]) -> set[Severity]:
        rule = self.rule
        if rule.kind is RuleKind.STUCK:
            return {rule.levels[0][0]} if measure > 0 else set()
        if rule.kind is RuleKind.RELATIVE and context.get("delta", 0.0) < rule.min_delta:
            return set()
        above = rule.direction is Direction.ABOVE
        return {sev for sev, limit in rule.levels if (measure > limit if above else measure < limit)}

    def _held_severity(self, ts: float) -> Severity | None:
        held = [
            sev
            for sev, since in self.breach_since.items()
            if ts - since >= self.rule.for_s and self.breach_count.get(sev, 0) >= self.rule.min_samples
        ]
        return max(held) if held else None

    def _is_clear(self, measure: float) -> bool:
        rule = self.rule
        if rule.kind is RuleKind.STUCK:
            return measure == 0
        limit = rule.lowest_limit
        if rule.direction is Direction.ABOVE:
            return measure < limit - rule.hysteresis
        return measure > limit + rule.hysteresis

    def _limit(self, severity: Severity) -> float:
        return dict(self.rule.levels)[severity]

    def _learn(self, value: float, *, breached: bool) -> None:
        """RELATIVE rules learn the normal level from running, unalarmed samples."""
        if self.rule.kind is not RuleKind.RELATIVE or breached or value <= self.rule.min_delta:
            return
        if self.baseline is None:
            self.baseline, self.baseline_n = value, 1
            return
        self.baseline_n += 1
        if self.baseline_n <= self.rule.warmup_samples:
            self.baseline += (value - self.baseline) / self.baseline_n  # plain mean while warming up
        else:
            self.baseline += RELATIVE_BASELINE_ALPHA * (value - self.baseline)

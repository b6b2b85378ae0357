"""Diagnosis: rank an alert's candidate causes from the device's recent history of all its signals.

Pure and deterministic: the same alert and history give the same diagnosis. The fault window is
the alerted signal's history up to the alert (at most `MAX_WINDOW_S`); every other signal of the
device is measured over the same window: where it started (median of the window's first quarter),
where it is now (median of the last 3 samples), when it made half of its move (to tell "before"
from "at the same time"). The alerted signal's own shape (step, ramp, oscillation, intermittent)
and rate of change come from the same window. Each cause scores its prior plus the weights of the
evidence conditions that hold (knowledge.py); the confidence is the softmax share of the top score.

A rule with no knowledge and the anomaly detector get evidence from the signals that moved at the
same time as the alerted one ("flow fell from 310 to 120 l/min at the same time"); a step that no
other signal shares points at the sensor.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from edge_slm.detect.knowledge import Cause, Condition, Knowledge
from edge_slm.events import Alert

MAX_WINDOW_S = 900.0
STEP_MAX_S = 3.0  # a move made within this many seconds (or two sample intervals) is a step
Points = Sequence[tuple[float, float]]


@dataclass(frozen=True)
class SeriesStats:
    start: float
    end: float
    low: float
    high: float
    noise: float  # spread of the window's first quarter
    t_half: float | None  # when it had made half of its move
    n: int

    @property
    def change(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Shape:
    kind: str  # step | ramp | oscillation | intermittent
    rate_per_min: float  # signed, toward the fault
    move_s: float  # how long the main move took
    episodes: int
    start: float
    extreme: float


@dataclass(frozen=True)
class RankedCause:
    id: str
    name: str
    action: str
    source: str
    score: float
    evidence: tuple[str, ...]
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class Diagnosis:
    rule: str
    signal: str
    top: RankedCause
    runner_up: RankedCause | None
    confidence: float
    shape: str
    shape_text: str
    duration_s: float
    basis: str  # "knowledge" | "signals"
    other_causes: tuple[RankedCause, ...] = ()  # every cause not on top (the gate refuses text naming them)

    @property
    def evidence(self) -> tuple[str, ...]:
        items = list(self.top.evidence)
        if self.shape_text and self.shape_text not in items:
            items.append(self.shape_text)
        return tuple(items)


# -- numbers in words -------------------------------------------------------------------------


def fmt_number(value: float) -> str:
    if not math.isfinite(value):
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    text = f"{value:.2f}" if abs(value) < 1 else f"{value:.1f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def fmt_duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


def _with_unit(value: float, unit: str) -> str:
    return f"{fmt_number(value)} {unit}" if unit else fmt_number(value)


# -- measuring a series -----------------------------------------------------------------------


def window_points(points: Points, t0: float, t1: float) -> list[tuple[float, float]]:
    return [(t, v) for t, v in points if t0 <= t <= t1 and math.isfinite(v)]


def series_stats(points: Points, t0: float, t1: float) -> SeriesStats | None:
    pts = window_points(points, t0, t1)
    if len(pts) < 3:
        return None
    quarter = t0 + 0.25 * (t1 - t0)
    head = [v for t, v in pts if t <= quarter]
    if len(head) < 3:
        head = [v for _t, v in pts[:3]]
    start = statistics.median(head)
    end = statistics.median(v for _t, v in pts[-3:])
    values = [v for _t, v in pts]
    change = end - start
    t_half = None
    if change != 0:
        sign = 1.0 if change > 0 else -1.0
        t_half = next((t for t, v in pts if (v - start) * sign >= 0.5 * abs(change)), None)
    return SeriesStats(start, end, min(values), max(values), statistics.pstdev(head), t_half, len(pts))


def fault_shape(points: Points, start: float, toward: float) -> Shape:
    """The shape of the alerted signal's move from `start` toward `toward` (its value at the alert)."""
    pts = list(points)
    sign = 1.0 if toward >= start else -1.0
    values = [v for _t, v in pts]
    extreme = max(values) if sign > 0 else min(values)
    amp = (extreme - start) * sign
    if amp <= 0 or len(pts) < 3:
        return Shape("step", 0.0, 0.0, 1, start, extreme)
    # Episodes with hysteresis (in above 60 % of the move, out below 30 %), so noise is not an episode.
    inside, episodes = False, []
    for t, v in pts:
        progress = (v - start) * sign / amp
        if not inside and progress >= 0.6:
            inside = True
            episodes.append([t, t])
        elif inside and progress < 0.3:
            inside = False
        if inside:
            episodes[-1][1] = t
    ended = episodes[:-1] if inside else episodes
    kind = ""
    if len(episodes) >= 2 and ended:
        gaps = [b[0] - a[1] for a, b in itertools.pairwise(episodes)]
        lengths = [e[1] - e[0] for e in ended]
        regular = statistics.median(lengths) >= 0.5 * statistics.median(gaps)
        kind = "oscillation" if len(episodes) >= 3 and regular else "intermittent"
    # The main move: from the last sample at <= 10 % before the first at >= 90 % of the move.
    i_b = next(i for i, v in enumerate(values) if (v - start) * sign >= 0.9 * amp)
    i_a = max((i for i in range(i_b) if (values[i] - start) * sign <= 0.1 * amp), default=0)
    move_s = pts[i_b][0] - pts[i_a][0]
    rate = (values[i_b] - values[i_a]) / move_s * 60.0 if move_s > 0 else 0.0
    if not kind:
        kind = "step" if move_s <= STEP_MAX_S or i_b - i_a <= 2 else "ramp"
    return Shape(kind, rate, move_s, max(1, len(episodes)), start, extreme)


def shape_text(shape: Shape, label: str, unit: str, stats: SeriesStats, window_s: float) -> str:
    up = shape.extreme >= shape.start
    start, extreme, window = _with_unit(shape.start, unit), _with_unit(shape.extreme, unit), fmt_duration(window_s)
    if shape.kind == "step":
        verb = "jumped" if up else "dropped"
        return f"{label} {verb} from {start} to {extreme} within {fmt_duration(max(shape.move_s, 1.0))}"
    if shape.kind == "ramp":
        verb = "climbed" if up else "fell"
        return f"{label} {verb} from {start} to {extreme} over {fmt_duration(shape.move_s)}"
    if shape.kind == "oscillation":
        low, high = _with_unit(stats.low, unit), _with_unit(stats.high, unit)
        return f"{label} swung between {low} and {high} {shape.episodes} times in {window}"
    return f"{label} reached {extreme} in {shape.episodes} separate episodes over {window}, recovering in between"


# -- evaluating evidence ----------------------------------------------------------------------


@dataclass
class _Context:
    alert: Alert
    knowledge: Knowledge
    history: Mapping[str, Points]
    t0: float
    t1: float
    own: SeriesStats
    shape: Shape
    tolerance_s: float
    _stats: dict[str, SeriesStats | None]

    def stats(self, signal: str) -> SeriesStats | None:
        if signal not in self._stats:
            self._stats[signal] = series_stats(self.history.get(signal, ()), self.t0, self.t1)
        return self._stats[signal]

    @property
    def window_s(self) -> float:
        return self.t1 - self.t0

    def label_unit(self, signal: str) -> tuple[str, str]:
        info = self.knowledge.signal_info(signal)
        return info.label, info.unit


def _timing_holds(timing: str, other: SeriesStats, ctx: _Context) -> bool:
    if not timing:
        return True
    if other.t_half is None or ctx.own.t_half is None:
        return False
    delta = other.t_half - ctx.own.t_half
    return {
        "before": delta < -ctx.tolerance_s,
        "same": abs(delta) <= ctx.tolerance_s,
        "after": delta > ctx.tolerance_s,
        "not_after": delta <= ctx.tolerance_s,
    }[timing]


def _trend_holds(cond: Condition, stats: SeriesStats) -> bool:
    tolerance = cond.min_change or 3 * stats.noise
    if cond.trend == "rising":
        return stats.change >= max(tolerance, 1e-9)
    if cond.trend == "falling":
        return stats.change <= -max(tolerance, 1e-9)
    if cond.trend == "varying":
        return stats.high - stats.low >= max(tolerance, 1e-9)
    return abs(stats.change) < max(tolerance, 1e-9)


def _trend_text(cond: Condition, label: str, unit: str, stats: SeriesStats, ctx: _Context, count: int = 1) -> str:
    subject = f"the {count} other {label}s" if count > 1 else label
    average = " on average" if count > 1 else ""
    if cond.trend == "steady":
        return f"{subject} stayed at about {_with_unit(stats.end, unit)}{average}"
    if cond.trend == "varying":
        return (
            f"{subject} varied between {_with_unit(stats.low, unit)} and {_with_unit(stats.high, unit)} "
            f"over the same {fmt_duration(ctx.window_s)}"
        )
    verb = "rose" if stats.change > 0 else "fell"
    text = (
        f"{subject} {verb} from {_with_unit(stats.start, unit)} to {_with_unit(stats.end, unit)}{average} "
        f"over the same {fmt_duration(ctx.window_s)}"
    )
    if cond.timing == "before":
        own_label, _ = ctx.label_unit(ctx.alert.signal)
        text += f", before the {own_label} moved"
    return text


def evaluate(cond: Condition, ctx: _Context) -> tuple[bool | None, str]:
    """Whether the condition holds (None: no data to tell) and the evidence sentence with numbers."""
    own_label, own_unit = ctx.label_unit(ctx.alert.signal)
    if cond.trend or cond.level:
        if cond.others:
            names = [s for s in ctx.knowledge.matching_signals(cond.signal, ctx.history) if s != ctx.alert.signal]
        else:
            names = (
                [cond.signal] if "*" not in cond.signal else ctx.knowledge.matching_signals(cond.signal, ctx.history)
            )
        measured = [(n, s) for n in names if (s := ctx.stats(n)) is not None]
        if not measured:
            return None, ""
        label, unit = ctx.label_unit(measured[0][0])
        if cond.level:
            stats = measured[0][1]
            holds = stats.end > cond.value if cond.level == "above" else stats.end < cond.value
            note = f" {cond.note}" if cond.note else ""
            return holds, f"{label} is {_with_unit(stats.end, unit)}{note}"
        holds = all(_trend_holds(cond, s) and _timing_holds(cond.timing, s, ctx) for _n, s in measured)
        if len(measured) > 1:
            mean = SeriesStats(
                statistics.fmean(s.start for _n, s in measured),
                statistics.fmean(s.end for _n, s in measured),
                min(s.low for _n, s in measured),
                max(s.high for _n, s in measured),
                max(s.noise for _n, s in measured),
                None,
                min(s.n for _n, s in measured),
            )
            return holds, _trend_text(cond, label, unit, mean, ctx, count=len(measured))
        return holds, _trend_text(cond, label, unit, measured[0][1], ctx)
    if cond.shape:
        return ctx.shape.kind == cond.shape, shape_text(ctx.shape, own_label, own_unit, ctx.own, ctx.window_s)
    rate = abs(ctx.shape.rate_per_min)
    if cond.rate_above is not None or cond.rate_below is not None:
        holds = rate >= cond.rate_above if cond.rate_above is not None else rate <= (cond.rate_below or 0.0)
        verb = "rose" if ctx.shape.rate_per_min >= 0 else "fell"
        return holds, f"{own_label} {verb} at {_with_unit(rate, own_unit)} per minute"
    duration = max(0.0, ctx.alert.ts - ctx.alert.onset_ts)
    holds = (
        duration >= cond.duration_above_s
        if cond.duration_above_s is not None
        else duration <= (cond.duration_below_s or 0.0)
    )
    return holds, f"it has been beyond the limit for {fmt_duration(duration)}"


# -- ranking ----------------------------------------------------------------------------------


def _context(alert: Alert, history: Mapping[str, Points], knowledge: Knowledge) -> _Context | None:
    own_points = [(t, v) for t, v in history.get(alert.signal, ()) if t <= alert.ts and math.isfinite(v)]
    if len(own_points) < 3:
        return None
    t1 = alert.ts
    t0 = max(own_points[0][0], t1 - MAX_WINDOW_S)
    own = series_stats(own_points, t0, t1)
    if own is None or t1 <= t0:
        return None
    pts = window_points(own_points, t0, t1)
    shape = fault_shape(pts, own.start, alert.value)
    spacing = statistics.median(b[0] - a[0] for a, b in itertools.pairwise(pts))
    tolerance = max(0.1 * (t1 - t0), 2 * spacing)
    return _Context(alert, knowledge, history, t0, t1, own, shape, tolerance, {})


def _softmax_top(scores: Sequence[float]) -> float:
    peak = max(scores)
    weights = [math.exp(s - peak) for s in scores]
    return 1.0 / sum(weights)


def diagnose(alert: Alert, history: Mapping[str, Points], knowledge: Knowledge) -> Diagnosis | None:
    """Rank the causes of a firing alert; None when there is nothing to rank (no knowledge, no history)."""
    ctx = _context(alert, history, knowledge)
    causes = knowledge.causes_for(alert.rule)
    if not causes:
        return co_movement(alert, history, knowledge, ctx) if ctx is not None else None
    ranked: list[RankedCause] = []
    for cause in causes:
        score, texts, said = cause.prior, [], set()
        if ctx is not None:
            for cond in cause.evidence:
                holds, text = evaluate(cond, ctx)
                if holds:
                    score += cond.weight
                    # One sentence per signal: a second fact about the same signal adds score, not words.
                    about = f"{cond.signal}:{cond.others}"
                    if cond.weight > 0 and text and about not in said:
                        texts.append(text)
                        said.add(about)
        ranked.append(_ranked(cause, score, texts))
    ranked.sort(key=lambda r: -r.score)  # stable: pack order breaks ties
    top = ranked[0]
    shape, text, duration = "", "", max(0.0, alert.ts - alert.onset_ts)
    if ctx is not None:
        label, unit = ctx.label_unit(alert.signal)
        shape, text = ctx.shape.kind, shape_text(ctx.shape, label, unit, ctx.own, ctx.window_s)
    return Diagnosis(
        rule=alert.rule,
        signal=alert.signal,
        top=top,
        runner_up=ranked[1] if len(ranked) > 1 else None,
        confidence=round(_softmax_top([r.score for r in ranked]), 2),
        shape=shape,
        shape_text=text,
        duration_s=duration,
        basis="knowledge",
        other_causes=tuple(ranked[1:]),
    )


def _ranked(cause: Cause, score: float, texts: list[str]) -> RankedCause:
    return RankedCause(cause.id, cause.name, cause.action, cause.source, score, tuple(texts), cause.match_words)


def co_movement(alert: Alert, history: Mapping[str, Points], knowledge: Knowledge, ctx: _Context) -> Diagnosis:
    """No knowledge for this rule: the evidence is which of the device's signals moved with this one."""
    label, unit = ctx.label_unit(alert.signal)
    movers: list[tuple[float, str, SeriesStats]] = []
    others = [s for s in history if s != alert.signal]
    for signal in others:
        stats = ctx.stats(signal)
        if stats is None or stats.t_half is None or ctx.own.t_half is None:
            continue
        floor = max(4 * stats.noise, 0.03 * abs(stats.start), 1e-6)
        if abs(stats.change) >= floor and abs(stats.t_half - ctx.own.t_half) <= ctx.tolerance_s:
            movers.append((abs(stats.change) / floor, signal, stats))
    movers.sort(key=lambda m: -m[0])
    own_text = shape_text(ctx.shape, label, unit, ctx.own, ctx.window_s)
    if movers:
        texts = []
        for _score, signal, stats in movers[:2]:
            o_label, o_unit = ctx.label_unit(signal)
            verb = "rose" if stats.change > 0 else "fell"
            start, end = _with_unit(stats.start, o_unit), _with_unit(stats.end, o_unit)
            texts.append(f"{o_label} {verb} from {start} to {end} at the same time")
        first = ctx.label_unit(movers[0][1])[0]
        top = RankedCause(
            "shared_change",
            f"a change shared with {first}",
            f"Find what moved {label} and {first} together (a valve, the load, a blockage or the supply) and "
            f"correct it; confirm both readings with a local gauge first.",
            "co-movement of the device's signals",
            1.0,
            tuple(texts),
            (first.lower(),),
        )
        confidence = 0.7 if len(movers) == 1 else 0.6
    elif ctx.shape.kind == "step" and others:
        top = RankedCause(
            "sensor_fault",
            f"a fault in the {label} sensor or its wiring",
            f"Check the {label} sensor, its connector and wiring, and compare it with a hand-held reading "
            "before acting on the value.",
            "co-movement of the device's signals (a step no other signal shares)",
            1.0,
            (f"none of the device's {len(others)} other signals moved at the same time",),
            ("sensor",),
        )
        confidence = 0.6
    else:
        reason = (
            f"none of the device's {len(others)} other signals moved at the same time"
            if others
            else "the device sends no other signal to compare with"
        )
        top = RankedCause(
            "local_change",
            f"a real change in {label} alone",
            f"Inspect the part that {label} measures and compare the reading with a hand-held gauge.",
            "co-movement of the device's signals",
            1.0,
            (reason,),
            (label.lower(),),
        )
        confidence = 0.5
    return Diagnosis(
        rule=alert.rule,
        signal=alert.signal,
        top=top,
        runner_up=None,
        confidence=confidence,
        shape=ctx.shape.kind,
        shape_text=own_text,
        duration_s=max(0.0, alert.ts - alert.onset_ts),
        basis="signals",
    )


__all__ = ["Diagnosis", "RankedCause", "diagnose", "fault_shape", "fmt_duration", "fmt_number", "series_stats"]

"""RuleSeries.update returns early for a quiet sample (nothing firing or building up, the measure
short of every limit). These tests hold it to the general path: a series whose quiet limit can
never be met always takes the general path, and both must give the same transitions and state."""

from __future__ import annotations

import math
import random

import pytest

from edge_slm.detect.evaluate import RuleSeries
from edge_slm.detect.rules import Direction, Rule, RuleKind
from edge_slm.events import Severity

LEVELS_ABOVE = ((Severity.WARNING, 10.0), (Severity.CRITICAL, 14.0))
LEVELS_BELOW = ((Severity.WARNING, 5.0), (Severity.CRITICAL, 2.0))


def general_path(rule: Rule) -> RuleSeries:
    series = RuleSeries(rule)
    series.quiet_limit = -math.inf if series.above else math.inf  # no value is ever "quiet"
    return series


def walk(rng: random.Random, start: float, n: int) -> list[tuple[float, float]]:
    """Noise around `start` with excursions of a few samples and long spells beyond the limits,
    gaps longer than max_gap_s, and irregular intervals."""
    out, ts, level = [], 1_790_000_000.0, start
    for _ in range(n):
        ts += rng.choice((0.5, 1.0, 1.0, 2.0, 5.0)) + (4000.0 if rng.random() < 0.002 else 0.0)
        if rng.random() < 0.01:
            level = start * rng.choice((0.1, 0.4, 1.5, 2.0))  # a spell somewhere else
        elif rng.random() < 0.02:
            level = start
        spike = start * rng.choice((0.3, 1.6)) if rng.random() < 0.03 else 0.0
        out.append((ts, level + spike + rng.gauss(0.0, start * 0.05)))
    return out


def snapshot(series: RuleSeries) -> tuple[object, ...]:
    return (
        series.firing,
        series.onset_ts,
        dict(series.breach_since),
        series.clear_since,
        series.excursion_since,
        list(series.excursions),
        series.intermittent_firing,
        series.baseline,
        series.ewma,
    )


@pytest.mark.parametrize(
    "kind, direction, levels, start",
    [
        (RuleKind.THRESHOLD, Direction.ABOVE, LEVELS_ABOVE, 8.0),
        (RuleKind.THRESHOLD, Direction.BELOW, LEVELS_BELOW, 7.0),
        (RuleKind.RATE, Direction.ABOVE, LEVELS_ABOVE, 50.0),
        (RuleKind.DRIFT, Direction.ABOVE, ((Severity.WARNING, 0.8), (Severity.CRITICAL, 2.0)), 8.0),
        (RuleKind.RELATIVE, Direction.ABOVE, ((Severity.WARNING, 1.3), (Severity.CRITICAL, 1.6)), 8.0),
    ],
)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_quiet_path_gives_the_general_paths_verdicts(
    kind: RuleKind, direction: Direction, levels: tuple[tuple[Severity, float], ...], start: float, seed: int
) -> None:
    rule = Rule(
        id="r",
        signal="s",
        kind=kind,
        direction=direction,
        levels=levels,
        hysteresis=0.2,
        for_s=5.0,
        clear_for_s=5.0,
        window_s=30.0,
        min_samples=2,
        intermittent_count=3,
        intermittent_window_s=120.0,
        reference_s=120.0,
        tau_s=60.0,
        warmup_samples=10,
    )
    fast, general = RuleSeries(rule), general_path(rule)
    transitions = 0
    for ts, value in walk(random.Random(seed), start, 6000):
        a, b = fast.update(value, ts), general.update(value, ts)
        assert a == b, (ts, value)
        assert fast.intermittent == general.intermittent, (ts, value)
        assert snapshot(fast) == snapshot(general), (ts, value)
        transitions += (a is not None) + (fast.intermittent is not None)
    assert transitions >= 4  # the walk did make the rule fire and clear, so both paths were exercised


def test_levels_in_any_order_quiet_only_short_of_every_limit() -> None:
    """The quiet limit is the least extreme limit even for levels given out of order."""
    rule = Rule(
        id="r",
        signal="s",
        kind=RuleKind.THRESHOLD,
        direction=Direction.ABOVE,
        levels=((Severity.CRITICAL, 14.0), (Severity.WARNING, 10.0)),
    )
    assert RuleSeries(rule).quiet_limit == 10.0
    below = Rule(id="b", signal="s", kind=RuleKind.THRESHOLD, direction=Direction.BELOW, levels=LEVELS_BELOW)
    assert RuleSeries(below).quiet_limit == 5.0

"""Adaptive anomaly detection for numeric signals no rule pack covers.

Each (device, signal) learns its normal level and spread with an exponentially weighted
mean and variance, after a warm-up of plain mean/variance (Welford). A sample departs when
its z-score exceeds the threshold; a departure that holds for `for_s` of event time and at
least `min_samples` samples is an anomaly. Learning pauses while a departure is pending or
firing so a fault does not become the new normal. Chosen over river's detectors because it
is a few float operations per sample, imports nothing, and its verdicts are explainable
("3.2x its usual spread above normal") to a mechanic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edge_slm.detect.evaluate import Transition
from edge_slm.events import Severity

EWMA_ALPHA = 0.05
RELATIVE_SPREAD_FLOOR = 0.005  # a flat signal still needs a 0.5 %-of-level change per z unit
ABSOLUTE_SPREAD_FLOOR = 1e-3


@dataclass
class AnomalySeries:
    warmup_samples: int
    z_threshold: float
    for_s: float
    min_samples: int
    max_gap_s: float = 3600.0
    n: int = 0
    mean: float = 0.0
    m2: float = 0.0  # Welford sum of squares during warm-up
    var: float = 0.0
    firing: bool = False
    onset_ts: float = 0.0
    depart_since: float | None = None
    depart_count: int = 0
    normal_since: float | None = None
    normal_count: int = 0
    last_ts: float | None = None

    @property
    def spread(self) -> float:
        return max(math.sqrt(max(self.var, 0.0)), RELATIVE_SPREAD_FLOOR * abs(self.mean), ABSOLUTE_SPREAD_FLOOR)

    def update(self, value: float, ts: float) -> Transition | None:
        if self.last_ts is not None and ts - self.last_ts > self.max_gap_s:
            self.depart_since, self.depart_count = None, 0
            self.normal_since, self.normal_count = None, 0
        self.last_ts = ts
        if self.n < self.warmup_samples:
            self._warm(value)
            return None

        z = (value - self.mean) / self.spread
        context = {"z": z, "baseline": self.mean, "spread": self.spread}
        departed = abs(z) > self.z_threshold
        if not self.firing:
            if not departed:
                self.depart_since, self.depart_count = None, 0
                self._learn(value)
                return None
            if self.depart_since is None:
                self.depart_since = ts
            self.depart_count += 1
            if ts - self.depart_since >= self.for_s and self.depart_count >= self.min_samples:
                self.firing, self.onset_ts = True, self.depart_since
                self.normal_since, self.normal_count = None, 0
                return Transition(True, Severity.WARNING, self.z_threshold, self.onset_ts, z, context)
            return None

        # Firing: clear once back within half the threshold for as long as it took to fire.
        if abs(z) < self.z_threshold / 2:
            if self.normal_since is None:
                self.normal_since, self.normal_count = ts, 0
            self.normal_count += 1
            if ts - self.normal_since >= self.for_s and self.normal_count >= self.min_samples:
                self.firing = False
                self.depart_since, self.depart_count = None, 0
                return Transition(False, Severity.WARNING, self.z_threshold, self.onset_ts, z, context)
        else:
            self.normal_since, self.normal_count = None, 0
        return None

    def _warm(self, value: float) -> None:
        self.n += 1
        delta = value - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (value - self.mean)
        self.var = self.m2 / self.n if self.n > 1 else 0.0

    def _learn(self, value: float) -> None:
        self.n += 1
        delta = value - self.mean
        self.mean += EWMA_ALPHA * delta
        self.var = (1 - EWMA_ALPHA) * (self.var + EWMA_ALPHA * delta * delta)

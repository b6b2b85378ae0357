"""Adaptive anomaly detection for numeric signals no rule pack covers, with operating modes.

Each (device, signal) first learns for `learn_s` of event time (and at least `warmup_samples`
samples), keeping a bounded, decimated buffer. At the end of learning the buffer is split into
modes: sorted values are cut wherever two neighbours are further apart than 8x the signal's
noise (the median step between consecutive samples), and groups too small to be a mode
(transitions) are dropped. A duty-cycling compressor's current gets two modes (off, loaded); a
sawtooth pressure gets one wide one. Each mode keeps an EWMA centre and spread (learned only
from samples within 3 spreads, the spread capped at 2x what was learned, so a ramp toward a new
level is not absorbed as noise).

After learning a sample is normal within `z_threshold` spreads of a mode; between two modes it
is a transition, tolerated for `transition_s`; anywhere else it departs, and a departure held
for `for_s` and `min_samples` is an anomaly: a fault inside a mode, or a new persistent level.
Modes are paired with the device's operating mode (the level of its first mode signal: motor
current, speed; `role = "mode"` in the packs): a value at a level only ever seen with another
operating mode is treated like a transition (pressure at its night level while the motor runs
at day load). A new operating mode is the one exception: when a mode signal reaches a level it
never had, a departure that starts within `MODE_SYNC_S` of it opens a new mode (at most
MAX_MODES) instead of alerting.

Few float operations per sample and explainable verdicts ("3.2x its usual spread above
normal"); chosen over river's detectors because it imports nothing and bounds its memory.
"""

from __future__ import annotations

import itertools
import math
from array import array
from dataclasses import dataclass, field

from edge_slm.detect.evaluate import Transition
from edge_slm.events import Severity

EWMA_ALPHA = 0.05
RELATIVE_SPREAD_FLOOR = 0.005  # a flat signal still needs a 0.5 %-of-level change per z unit
ABSOLUTE_SPREAD_FLOOR = 1e-3
LEARN_BUFFER = 256  # samples kept while learning (2 KiB a series); decimated by 2 when full
GAP_NOISE_UNITS = 8.0  # sorted neighbours further apart than this many noise units start a new mode
MIN_MODE_SHARE = 0.04  # a group with fewer of the learning samples is a transition, not a mode
MAX_MODES = 6
MODE_SYNC_S = 90.0  # a departure this close to a new level of a mode signal is a new mode
RELEARN_SAMPLES = 60  # a new mode's level and spread are learned over this many samples
VAR_CAP_FACTOR = 4.0
LEARN_GATE_Z = 3.0  # modes learn only from samples this close to their centre
ASSOCIATED_SAMPLES = 20  # a mode seen this often with an operating mode belongs to it
ASSOCIATE_MIN_S = 600.0  # after learning, modes and operating modes are paired this long before judging


@dataclass(slots=True)
class Mode:
    centre: float  # EWMA of the values in this mode
    var: float  # EWMA of the squared deviation from the centre (noise plus in-mode swings)
    n: int = 0  # samples seen; < 0: a new mode still learning (absorbs what comes)
    var_cap: float = math.inf  # the spread may grow to 2x what was learned, no more: a ramp is not noise
    spread: float = ABSOLUTE_SPREAD_FLOOR  # cached: sqrt(var) with the series' floors
    # samples seen in this mode per operating mode of the device (index of its mode signal's level)
    with_device_mode: list[int] = field(default_factory=lambda: [0] * MAX_MODES)

    def to_list(self) -> list[float]:
        return [self.centre, self.var, self.n, self.var_cap, *self.with_device_mode]


@dataclass
class AnomalySeries:
    warmup_samples: int
    z_threshold: float
    for_s: float
    min_samples: int
    learn_s: float = 0.0
    transition_s: float = 120.0
    silent: bool = False  # a mode signal: learns levels, never alerts
    max_gap_s: float = 3600.0
    n: int = 0
    first_ts: float | None = None
    buffer: array[float] = field(default_factory=lambda: array("d"))
    stride: int = 1
    stride_left: int = 0
    modes: list[Mode] = field(default_factory=list)
    noise: float = 0.0
    firing: bool = False
    onset_ts: float = 0.0
    depart_since: float | None = None
    depart_count: int = 0
    between_since: float | None = None
    normal_since: float | None = None
    normal_count: int = 0
    last_ts: float | None = None
    novel_since: float | None = None  # silent series: when it reached a level it had not had
    current_mode: int = -1  # index of the mode the last sample fell in (-1: none)
    fitted_modes: int = 0  # how many of the modes come from the learning period (the rest opened later)
    fitted_ts: float | None = None

    @property
    def learned(self) -> bool:
        return bool(self.modes)

    @property
    def mean(self) -> float:
        return self.modes[0].centre if self.modes else 0.0

    def spread(self, level: float) -> float:
        return max(self.noise, RELATIVE_SPREAD_FLOOR * abs(level), ABSOLUTE_SPREAD_FLOOR)

    @property
    def pending(self) -> bool:
        return self.depart_since is not None or self.between_since is not None

    def update(
        self,
        value: float,
        ts: float,
        mode_change_ts: float | None = None,
        hold_s: float = 0.0,
        device_mode: int = -1,
        device_mode_young: bool = False,
        defer: bool = False,
    ) -> Transition | None:
        """`hold_s`: on a device with mode signals, how long a departure waits for them to show
        a new operating mode before it counts. `device_mode`: the level its mode signal is at
        (-1: unknown); a value in a mode only ever seen with other operating modes is a fault
        (pressure at its night-shift level while the motor runs at day load). `defer`: a mode
        signal of the device is itself departing, so a departure here waits to see whether it
        is a new operating mode."""
        if self.last_ts is not None and ts - self.last_ts > self.max_gap_s:
            self.depart_since, self.depart_count, self.between_since = None, 0, None
            self.normal_since, self.normal_count = None, 0
        self.last_ts = ts
        if not self.modes:
            self._collect(value, ts)
            if self.modes:
                self.fitted_ts = ts
            return None

        mode, z, between = self._classify(value)
        self.current_mode = -1 if mode is None else self.modes.index(mode)
        if mode is not None and device_mode >= 0 and mode.n >= 0 and not device_mode_young:
            seen = mode.with_device_mode
            settled = self.fitted_ts is None or ts - self.fitted_ts >= max(self.learn_s, ASSOCIATE_MIN_S)
            if settled and seen[device_mode] < ASSOCIATED_SAMPLES and max(seen) >= ASSOCIATED_SAMPLES:
                mode, between = None, True  # the right level for another operating mode: a transition at most
        if not self.firing:
            if mode is not None:
                self.depart_since, self.depart_count, self.between_since = None, 0, None
                if mode.n < 0 or abs(z) <= LEARN_GATE_Z:  # a ramp toward a new level is not learned
                    self._track(mode, value)
                    if device_mode >= 0 and mode.with_device_mode[device_mode] < 1_000_000:
                        mode.with_device_mode[device_mode] += 1
                return None
            if between:
                self.depart_since, self.depart_count = None, 0
                if self.between_since is None:
                    self.between_since = ts
                if ts - self.between_since < self.transition_s:
                    return None
                onset = self.between_since
            else:
                self.between_since = None
                if self.depart_since is None:
                    self.depart_since = ts
                self.depart_count += 1
                if ts - self.depart_since < max(self.for_s, hold_s) or self.depart_count < self.min_samples:
                    return None
                onset = self.depart_since
            if defer and not self.silent:
                return None
            if self._may_open_mode(onset, mode_change_ts):
                self._open_mode(value)
                self.depart_since, self.depart_count, self.between_since = None, 0, None
                return None
            if self.silent:
                if self.novel_since is None:
                    self.novel_since = onset
                if len(self.modes) < MAX_MODES:
                    self._open_mode(value)
                    self.depart_since, self.depart_count, self.between_since = None, 0, None
                return None
            self.firing, self.onset_ts = True, onset
            self.normal_since, self.normal_count = None, 0
            return Transition(True, Severity.WARNING, self.z_threshold, onset, z, self._context(mode, value, z))

        # Firing: clear once back inside a mode for as long as it took to fire.
        if mode is not None:
            if self.normal_since is None:
                self.normal_since, self.normal_count = ts, 0
            self.normal_count += 1
            if ts - self.normal_since >= self.for_s and self.normal_count >= self.min_samples:
                self.firing = False
                self.depart_since, self.depart_count, self.between_since = None, 0, None
                return Transition(
                    False, Severity.WARNING, self.z_threshold, self.onset_ts, z, self._context(mode, value, z)
                )
        else:
            self.normal_since, self.normal_count = None, 0
        return None

    def _context(self, mode: Mode | None, value: float, z: float) -> dict[str, float]:
        """What a transition reports: the z, the centre of the value's mode (or the nearest) and its spread.
        Built only for a transition: most samples change nothing."""
        nearest = mode if mode is not None else self._nearest(value)
        return {"z": z, "baseline": nearest.centre, "spread": self._mode_spread(nearest)}

    # -- learning -------------------------------------------------------------------------

    def _collect(self, value: float, ts: float) -> None:
        if self.first_ts is None:
            self.first_ts = ts
        self.n += 1
        if self.stride_left > 0:
            self.stride_left -= 1
        else:
            self.buffer.append(value)
            self.stride_left = self.stride - 1
            if len(self.buffer) >= LEARN_BUFFER:
                self.buffer = self.buffer[::2]
                self.stride *= 2
        if self.n >= self.warmup_samples and ts - self.first_ts >= self.learn_s:
            self._fit()

    def _fit(self) -> None:
        values = self.buffer
        # Non-zero steps only: a mode that reads exactly constant (no flow while unloaded) says
        # nothing about the noise of the others.
        steps = sorted(d for a, b in itertools.pairwise(values) if (d := abs(b - a)) > 0)
        median_step = steps[len(steps) // 2] if steps else 0.0
        ordered = sorted(values)
        middle = ordered[len(ordered) // 2]
        self.noise = median_step / 0.954  # median |x_t - x_t-1| of gaussian noise is 0.954 sigma
        gap = GAP_NOISE_UNITS * self.spread(middle)
        groups: list[list[float]] = [[ordered[0]]]
        for previous, current in itertools.pairwise(ordered):
            if current - previous > gap:
                groups.append([])
            groups[-1].append(current)
        keep = [g for g in groups if len(g) >= max(2, MIN_MODE_SHARE * len(ordered))] or [max(groups, key=len)]
        keep = sorted(keep, key=len, reverse=True)[:MAX_MODES]
        for group in keep:
            centre = sum(group) / len(group)
            var = sum((v - centre) ** 2 for v in group) / len(group)
            self.modes.append(Mode(centre, var, len(group), VAR_CAP_FACTOR * max(var, self.noise**2)))
        for mode in self.modes:
            self._respread(mode)
        self.fitted_modes = len(self.modes)
        self.buffer = array("d")

    def _classify(self, value: float) -> tuple[Mode | None, float, bool]:
        """The mode whose envelope holds the value (or None), its z, and whether it lies between modes."""
        limit = self.z_threshold
        best_z = math.inf
        best: Mode | None = None
        below = above = False
        for mode in self.modes:
            offset = value - mode.centre
            z = offset / self._mode_spread(mode)
            if (mode.n < 0 or abs(z) <= limit) and abs(z) < abs(best_z):
                best, best_z = mode, z
            if offset > 0:
                above = True
            else:
                below = True
        if best is not None:
            return best, best_z, False
        nearest = self._nearest(value)
        return None, (value - nearest.centre) / self._mode_spread(nearest), above and below

    def _mode_spread(self, mode: Mode) -> float:
        return mode.spread

    def _respread(self, mode: Mode) -> None:
        mode.spread = max(
            math.sqrt(max(mode.var, 0.0)), self.noise, RELATIVE_SPREAD_FLOOR * abs(mode.centre), ABSOLUTE_SPREAD_FLOOR
        )

    def _nearest(self, value: float) -> Mode:
        return min(self.modes, key=lambda m: abs(value - m.centre))

    def _track(self, mode: Mode, value: float) -> None:
        delta = value - mode.centre
        if mode.n < 0:  # new mode: plain mean and variance of its first samples
            k = RELEARN_SAMPLES + mode.n + 2
            mode.centre += delta / k
            mode.var += (delta * (value - mode.centre) - mode.var) / k
            mode.n += 1
            if mode.n == 0:
                mode.n, mode.var_cap = RELEARN_SAMPLES, VAR_CAP_FACTOR * max(mode.var, self.noise**2)
            self._respread(mode)
            return
        mode.centre += EWMA_ALPHA * delta
        mode.var = min(mode.var_cap, (1 - EWMA_ALPHA) * (mode.var + EWMA_ALPHA * delta * delta))
        self._respread(mode)
        if mode.n < 1_000_000:
            mode.n += 1

    def _open_mode(self, value: float) -> None:
        mode = Mode(value, 0.0, -RELEARN_SAMPLES)  # n < 0: still learning its level and spread
        self._respread(mode)
        self.modes.append(mode)

    def _may_open_mode(self, onset: float, mode_change_ts: float | None) -> bool:
        if self.silent or mode_change_ts is None or len(self.modes) >= MAX_MODES:
            return False
        return abs(onset - mode_change_ts) <= MODE_SYNC_S

    # -- persistence ----------------------------------------------------------------------

    def to_state(self) -> dict[str, object] | None:
        if not self.modes:
            return None
        return {
            "noise": self.noise,
            "fitted": self.fitted_modes,
            "modes": [m.to_list() for m in self.modes if m.n >= 0],
        }

    def restore(self, saved: object) -> None:
        if isinstance(saved, list) and len(saved) == 4:  # older format: [n, mean, var, m2]
            self.modes = [Mode(float(saved[1]), float(saved[2]), int(saved[0]))]
            self.fitted_modes = 1
            self.n = int(saved[0])
            self._respread(self.modes[0])
        elif isinstance(saved, dict) and isinstance(saved.get("modes"), list) and saved["modes"]:
            self.noise = float(saved.get("noise", 0.0))
            self.modes = []
            for c, v, n, cap, *seen in saved["modes"][:MAX_MODES]:
                counts = [int(x) for x in seen[:MAX_MODES]]
                self.modes.append(
                    Mode(
                        float(c),
                        float(v),
                        int(n),
                        float(cap),
                        with_device_mode=counts + [0] * (MAX_MODES - len(counts)),
                    )
                )
            self.n = max(self.n, self.warmup_samples)
            self.fitted_modes = max(1, min(len(self.modes), int(saved.get("fitted", len(self.modes)))))
            for mode in self.modes:
                self._respread(mode)

"""Sensor health: `sensor.implausible`, `sensor.stuck` and `sensor.stale` as alerts of their own,
configured per signal kind by the packs' `[[sensors]]` tables (first match wins; site packs
come first). Pure and deterministic on event time.

- implausible: a value outside [min, max] for the signal's kind (an open RTD reading 850 °C, a
  negative RMS) held `implausible_for_s`; such values are withheld from the other detectors,
  so a broken sensor is not reported as an overheat.
- stuck: a signal that normally changes from sample to sample repeats one non-zero value for
  `stuck_for_s` and for more samples than its own change rate makes likely (p < 1e-9), while
  another signal of the device keeps moving.
- stale: a signal missing for `stale_factor` x its usual interval (at least `stale_min_s`)
  while its device keeps reporting, or a whole device silent that long while others report.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_slm.detect.evaluate import Transition
from edge_slm.detect.rules import builtin_pack_texts
from edge_slm.errors import ConfigError
from edge_slm.events import Severity

STUCK_RULE = "sensor.stuck"
STALE_RULE = "sensor.stale"
IMPLAUSIBLE_RULE = "sensor.implausible"
HEALTH_RULES = (STUCK_RULE, STALE_RULE, IMPLAUSIBLE_RULE)
STUCK_UNLIKELY_P = 1e-9
MOVING_WITHIN_S = 60.0
INTERVAL_ALPHA = 0.1


@dataclass(frozen=True)
class SensorKind:
    signals: tuple[str, ...] = ()
    role: str = "health"  # "health", or "mode": an operating variable (learned levels, no anomaly alerts)
    min: float = -math.inf
    max: float = math.inf
    implausible_for_s: float = 10.0
    stuck_for_s: float = 600.0  # 0 turns stuck detection off
    stale_factor: float = 10.0  # 0 turns stale detection off
    stale_min_s: float = 120.0
    severity: str = "warning"


DEFAULT_KIND = SensorKind(stuck_for_s=0.0, stale_factor=0.0)
_FIELDS: dict[str, type] = {
    "role": str,
    "min": float,
    "max": float,
    "implausible_for_s": float,
    "stuck_for_s": float,
    "stale_factor": float,
    "stale_min_s": float,
    "severity": str,
}


def kind_pattern(signal: str) -> re.Pattern[str]:
    """`*` matches one dot-separated element, `**` any number of them."""
    parts = [r"[^.]+".join(re.escape(p) for p in chunk.split("*")) for chunk in signal.split("**")]
    return re.compile("^" + ".*".join(parts) + "$")


def parse_kind(raw: Any, where: str) -> SensorKind:
    if not isinstance(raw, dict):
        raise ConfigError(where, "must be a table ([[sensors]])")
    signals = raw.get("signals")
    if not isinstance(signals, list) or not signals or not all(isinstance(s, str) and s for s in signals):
        raise ConfigError(f"{where}.signals", "must be a non-empty list of signal names or patterns")
    unknown = set(raw) - {"signals", *_FIELDS}
    if unknown:
        raise ConfigError(f"{where}.{sorted(unknown)[0]}", "unknown sensors key")
    values: dict[str, Any] = {}
    for name, typ in _FIELDS.items():
        if name not in raw:
            continue
        value = raw[name]
        if typ is str:
            if not isinstance(value, str):
                raise ConfigError(f"{where}.{name}", "must be a string")
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}.{name}", "must be a number")
        elif name not in ("min", "max") and value < 0:
            raise ConfigError(f"{where}.{name}", "must not be negative")
        values[name] = typ(value)
    kind = SensorKind(signals=tuple(signals), **values)
    if kind.role not in ("health", "mode"):
        raise ConfigError(f"{where}.role", "must be 'health' or 'mode'")
    if kind.severity not in ("info", "warning", "critical"):
        raise ConfigError(f"{where}.severity", "must be info, warning or critical")
    if kind.min > kind.max:
        raise ConfigError(f"{where}.min", "must not be above max")
    return kind


def load_sensor_kinds(extra_pack_files: Iterable[str] = ()) -> list[SensorKind]:
    """Site packs' kinds first (they win), then the built-in ones in pack order."""
    texts: list[tuple[str, str]] = []
    for path_text in extra_pack_files:
        path = Path(path_text).expanduser()
        try:
            texts.append((f"detect.packs[{path}]", path.read_text(encoding="utf-8")))
        except OSError as err:
            raise ConfigError("detect.packs", f"cannot read rule pack {path}: {err.strerror}") from err
    texts += [(f"packs/{name}", text) for name, text in builtin_pack_texts().items()]
    kinds: list[SensorKind] = []
    for where, text in texts:
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(where, f"rule pack is not valid TOML: {err}") from err
        tables = doc.get("sensors", [])
        if not isinstance(tables, list):
            raise ConfigError(f"{where}.sensors", "must be an array of tables ([[sensors]])")
        kinds += [parse_kind(raw, f"{where}.sensors[{i}]") for i, raw in enumerate(tables)]
    return kinds


class KindIndex:
    def __init__(self, kinds: list[SensorKind]) -> None:
        self._compiled = [(kind, [kind_pattern(s) for s in kind.signals]) for kind in kinds]
        self._cache: dict[str, SensorKind] = {}

    def kind_for(self, signal: str) -> SensorKind:
        kind = self._cache.get(signal)
        if kind is None:
            kind = next((k for k, patterns in self._compiled if any(p.match(signal) for p in patterns)), DEFAULT_KIND)
            if len(self._cache) < 100_000:
                self._cache[signal] = kind
        return kind


class SignalHealth:
    """One (device, signal)'s health bookkeeping."""

    __slots__ = (
        "bad_count",
        "bad_since",
        "change_rate",
        "flat_count",
        "flat_since",
        "flat_value",
        "good_count",
        "good_since",
        "implausible_firing",
        "implausible_onset",
        "interval_s",
        "intervals",
        "kind",
        "last_change_ts",
        "seen",
        "severity",
        "stale_firing",
        "stale_onset",
        "stuck_firing",
        "stuck_onset",
    )

    def __init__(self, kind: SensorKind) -> None:
        self.kind = kind
        self.severity = Severity.parse(kind.severity)
        self.bad_since: float | None = None
        self.bad_count = 0
        self.good_since: float | None = None
        self.good_count = 0
        self.implausible_firing = False
        self.implausible_onset = 0.0
        self.flat_value: float | None = None
        self.flat_since = 0.0
        self.flat_count = 0
        self.change_rate = 1.0
        self.seen = 0
        self.last_change_ts = -math.inf
        self.stuck_firing = False
        self.stuck_onset = 0.0
        self.interval_s = 0.0
        self.intervals = 0
        self.stale_firing = False
        self.stale_onset = 0.0

    @property
    def pending(self) -> bool:
        return self.bad_since is not None or self.implausible_firing or self.stuck_firing or self.stale_firing

    # -- implausible ----------------------------------------------------------------------

    def check_plausible(self, value: float, ts: float) -> tuple[bool, Transition | None]:
        kind = self.kind
        if kind.min <= value <= kind.max:
            self.bad_since, self.bad_count = None, 0
            if not self.implausible_firing:
                return True, None
            if self.good_since is None:
                self.good_since, self.good_count = ts, 0
            self.good_count += 1
            if ts - self.good_since >= kind.implausible_for_s and self.good_count >= 2:
                self.implausible_firing = False
                limit = kind.max if math.isfinite(kind.max) else kind.min
                return True, Transition(False, self.severity, limit, self.implausible_onset, value, {})
            return True, None
        self.good_since, self.good_count = None, 0
        if self.implausible_firing:
            return False, None
        if self.bad_since is None:
            self.bad_since = ts
        self.bad_count += 1
        if ts - self.bad_since >= kind.implausible_for_s and self.bad_count >= 2:
            self.implausible_firing, self.implausible_onset = True, self.bad_since
            limit = kind.max if value > kind.max else kind.min
            context = {"min": kind.min, "max": kind.max}
            return False, Transition(True, self.severity, limit, self.bad_since, value, context)
        return False, None

    # -- stuck ----------------------------------------------------------------------------

    def check_flat(self, value: float, ts: float) -> tuple[Transition | None, bool]:
        """(a transition if the sensor recovered, whether it is a stuck candidate now)."""
        self.seen += 1
        alpha = 0.01 if self.seen >= 100 else 1.0 / self.seen  # max(0.01, 1 / seen) without the call
        if value != self.flat_value:
            self.flat_value, self.flat_since, self.flat_count = value, ts, 1
            self.last_change_ts = ts
            self.change_rate += alpha * (1.0 - self.change_rate)
            if self.stuck_firing:
                self.stuck_firing = False
                return Transition(False, self.severity, 0.0, self.stuck_onset, value, {}), False
            return None, False
        self.flat_count += 1
        if self.flat_count <= 5:
            self.change_rate -= alpha * self.change_rate
        if self.stuck_firing or self.seen < 100 or value == 0.0 or ts - self.flat_since < self.kind.stuck_for_s:
            return None, False
        rate = min(max(self.change_rate, 1e-3), 0.999)
        needed = max(10.0, math.log(STUCK_UNLIKELY_P) / math.log(1.0 - rate))
        return None, self.flat_count >= needed

    def fire_stuck(self, value: float) -> Transition:
        self.stuck_firing, self.stuck_onset = True, self.flat_since
        return Transition(True, self.severity, 0.0, self.flat_since, value, {})

    # -- stale ----------------------------------------------------------------------------

    def note_interval(self, dt_s: float) -> None:
        if dt_s <= 0:
            return
        self.intervals += 1
        if self.intervals == 1:
            self.interval_s = dt_s
        else:
            self.interval_s += INTERVAL_ALPHA * (dt_s - self.interval_s)

    def allowed_silence_s(self) -> float | None:
        if not self.kind.stale_factor or self.intervals < 10:
            return None
        return max(self.kind.stale_min_s, self.kind.stale_factor * self.interval_s)

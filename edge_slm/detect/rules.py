"""Rule packs: rules kept as data (TOML), loaded, merged with site overrides and validated."""

from __future__ import annotations

import enum
import itertools
import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from edge_slm.errors import ConfigError
from edge_slm.events import Severity


class RuleKind(enum.Enum):
    THRESHOLD = "threshold"  # value beyond a limit
    RATE = "rate"  # change per minute over a window beyond a limit
    RELATIVE = "relative"  # value beyond a factor of its learned normal
    STUCK = "stuck"  # identical non-zero readings for too long
    DRIFT = "drift"  # slow average departed from a long frozen reference by more than a limit


class Direction(enum.Enum):
    ABOVE = "above"
    BELOW = "below"


@dataclass(frozen=True)
class Rule:
    id: str
    signal: str  # VSS-style path; `*` matches one dot-separated element
    kind: RuleKind
    direction: Direction
    levels: tuple[tuple[Severity, float], ...]  # ascending severity
    hysteresis: float = 0.0
    for_s: float = 10.0
    clear_for_s: float = 10.0
    window_s: float = 60.0
    min_delta: float = 0.0
    warmup_samples: int = 30
    min_samples: int = 2
    max_gap_s: float = 3600.0  # a device silent this long: durations restart
    # Threshold rules: this many short excursions past the lowest limit (each ending before
    # for_s) within intermittent_window_s raise `<id>.intermittent`; 0 turns it off.
    intermittent_count: int = 3
    intermittent_window_s: float = 600.0
    # Drift rules: the reference is the mean of the first reference_s of running samples
    # (value >= running_above), frozen; the measure is a slow EWMA (tau_s) minus that reference.
    reference_s: float = 1800.0
    tau_s: float = 600.0
    running_above: float = -math.inf
    unit: str = ""
    label: str = ""
    summary: str = ""
    action: str = ""
    notes: str = ""

    @property
    def lowest_limit(self) -> float:
        return self.levels[0][1]


_SEVERITY_KEYS = ("info", "warning", "critical")
# [[sensors]] is read by edge_slm.detect.health; [[causes]] and [[signals]] (fault knowledge) by
# edge_slm.detect.knowledge
PACK_TABLES = {"rules", "sensors", "causes", "signals"}
_SCALAR_FIELDS = {
    "hysteresis": float,
    "for_s": float,
    "clear_for_s": float,
    "window_s": float,
    "min_delta": float,
    "warmup_samples": int,
    "min_samples": int,
    "max_gap_s": float,
    "intermittent_count": int,
    "intermittent_window_s": float,
    "reference_s": float,
    "tau_s": float,
    "running_above": float,
    "unit": str,
    "label": str,
    "summary": str,
    "action": str,
    "notes": str,
}
_ALLOWED_KEYS = {"id", "signal", "kind", "direction", "severity", "enabled", *_SEVERITY_KEYS, *_SCALAR_FIELDS}


def signal_pattern(signal: str) -> re.Pattern[str]:
    return re.compile("^" + r"[^.]+".join(re.escape(part) for part in signal.split("*")) + "$")


def parse_rule(raw: Mapping[str, Any], where: str) -> Rule:
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or not rule_id:
        raise ConfigError(f"{where}.id", "every rule needs a non-empty string id")
    key = f"{where}[{rule_id}]"
    unknown = set(raw) - _ALLOWED_KEYS
    if unknown:
        raise ConfigError(f"{key}.{sorted(unknown)[0]}", "unknown rule key")
    signal = raw.get("signal")
    if not isinstance(signal, str) or not signal:
        raise ConfigError(f"{key}.signal", "must be a non-empty signal name")
    try:
        kind = RuleKind(raw.get("kind", "threshold"))
    except ValueError as err:
        raise ConfigError(f"{key}.kind", f"must be one of {[k.value for k in RuleKind]}") from err
    try:
        direction = Direction(raw.get("direction", "above"))
    except ValueError as err:
        raise ConfigError(f"{key}.direction", "must be 'above' or 'below'") from err

    levels: list[tuple[Severity, float]] = []
    for name in _SEVERITY_KEYS:
        if name in raw:
            limit = raw[name]
            if isinstance(limit, bool) or not isinstance(limit, (int, float)):
                raise ConfigError(f"{key}.{name}", "limit must be a number")
            levels.append((Severity.parse(name), float(limit)))
    if kind is RuleKind.STUCK:
        try:
            levels = [(Severity.parse(str(raw.get("severity", "info"))), 0.0)]
        except KeyError as err:
            raise ConfigError(f"{key}.severity", "must be info, warning or critical") from err
    if not levels:
        raise ConfigError(key, "needs at least one of info, warning, critical")
    _check_level_order(key, direction, kind, levels)

    scalars: dict[str, Any] = {}
    for name, typ in _SCALAR_FIELDS.items():
        if name in raw:
            value = raw[name]
            ok = (
                isinstance(value, str)
                if typ is str
                else isinstance(value, (int, float)) and not isinstance(value, bool)
            )
            if not ok:
                raise ConfigError(f"{key}.{name}", f"must be a {typ.__name__}")
            if typ is not str and value < 0 and name != "running_above":
                raise ConfigError(f"{key}.{name}", "must not be negative")
            scalars[name] = typ(value)
    return Rule(id=rule_id, signal=signal, kind=kind, direction=direction, levels=tuple(levels), **scalars)


def _check_level_order(key: str, direction: Direction, kind: RuleKind, levels: list[tuple[Severity, float]]) -> None:
    if kind is RuleKind.STUCK:
        return
    limits = [limit for _, limit in levels]
    increasing = direction is Direction.ABOVE
    ordered = all((b > a) if increasing else (b < a) for a, b in itertools.pairwise(limits))
    if not ordered:
        word = "higher" if increasing else "lower"
        raise ConfigError(key, f"each more severe limit must be {word} than the one before")


def _load_pack_data(text: str, where: str) -> list[dict[str, Any]]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(where, f"rule pack is not valid TOML: {err}") from err
    rules = doc.get("rules", [])
    if set(doc) - PACK_TABLES:
        raise ConfigError(
            f"{where}.{sorted(set(doc) - PACK_TABLES)[0]}",
            "unknown key in rule pack (expected [[rules]], [[sensors]], [[causes]] or [[signals]])",
        )
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise ConfigError(f"{where}.rules", "must be an array of tables ([[rules]])")
    return rules


def builtin_pack_texts() -> dict[str, str]:
    pack_dir = resources.files("edge_slm.detect") / "packs"
    return {
        p.name: p.read_text(encoding="utf-8")
        for p in sorted(pack_dir.iterdir(), key=lambda p: p.name)
        if p.name.endswith(".toml")
    }


def load_rules(extra_pack_files: Iterable[str] = (), disabled: Iterable[str] = ()) -> list[Rule]:
    """Built-in packs, then site packs: a site rule with a known id overrides its fields;
    `enabled = false` removes it; a new id adds a rule."""
    merged: dict[str, dict[str, Any]] = {}
    for name, text in builtin_pack_texts().items():
        for raw in _load_pack_data(text, f"packs/{name}"):
            merged[str(raw.get("id"))] = dict(raw)
    for path_text in extra_pack_files:
        path = Path(path_text).expanduser()
        where = f"detect.packs[{path}]"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError("detect.packs", f"cannot read rule pack {path}: {err.strerror}") from err
        for raw in _load_pack_data(text, where):
            rule_id = str(raw.get("id"))
            merged[rule_id] = {**merged.get(rule_id, {}), **raw}
            if any(k in raw for k in _SEVERITY_KEYS):  # a site that sets limits sets all of them
                for sev in _SEVERITY_KEYS:
                    if sev not in raw:
                        merged[rule_id].pop(sev, None)
    skip = set(disabled)
    rules = []
    for rule_id, raw in merged.items():
        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"rules[{rule_id}].enabled", "must be true or false")
        if enabled and rule_id not in skip:
            rules.append(parse_rule(raw, "rules"))
    return rules

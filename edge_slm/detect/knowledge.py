"""Fault knowledge as data: for each rule, the candidate causes, the evidence over the device's
other signals that raises or lowers each, and a specific action (with the source it comes from).

Built-in knowledge lives in `detect/packs/*_knowledge.toml`; a site pack (config `detect.packs`)
may carry `[[causes]]` and `[[signals]]` tables too. A cause with a known (rule, id) overrides the
fields it sets, `enabled = false` removes it, a new id adds one. Pure: no I/O beyond reading the
pack files once.

```toml
[[signals]]                 # how evidence names a signal ("bearing temperature", "°C")
name = "bearing_temperature_c"
label = "bearing temperature"
unit = "°C"

[[causes]]
rule = "vibration.iso10816" # the rule id (or "anomaly")
id = "bearing_damage"
name = "bearing damage"     # written in the explanation; must name one cause, not a list
keywords = ["bearing"]      # words that mean this cause (the quality gate and the scorer use them)
prior = 0.5                 # log-odds before evidence: how common the cause is
action = "Stop the pump ...; then ..."  # imperative, in safety order
source = "ISO 20816-3; rolling-bearing practice"
evidence = [
  { signal = "bearing_temperature_c", trend = "rising", min_change = 5, weight = 3 },
  { shape = "step", weight = -1 },
]
```

Evidence conditions (`weight` > 0 raises the cause, < 0 lowers it; a condition over a signal the
device does not send is neutral):
- `signal` + `trend` (rising | falling | steady | varying) with `min_change` (signal units over the fault
  window; for varying: between its lowest and highest reading),
  optionally `timing` (before | same | not_after: when it moved relative to the alerted signal);
  `others = true` makes `signal` (a pattern with `*`) mean every other signal matching it;
- `signal` + `level` (above | below) + `value`: the signal's current level (operating state);
- `shape` (step | ramp | oscillation | intermittent): the alerted signal's fault shape;
- `rate_above` / `rate_below`: the alerted signal's rate of change, units per minute (absolute);
- `duration_above_s` / `duration_below_s`: how long the alerted signal has been beyond its limit.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from edge_slm.errors import ConfigError

TRENDS = ("rising", "falling", "steady", "varying")
TIMINGS = ("before", "same", "after", "not_after")
LEVELS = ("above", "below")
SHAPES = ("step", "ramp", "oscillation", "intermittent")


@dataclass(frozen=True)
class Condition:
    weight: float
    signal: str = ""  # "" = the alerted signal
    others: bool = False
    trend: str = ""
    min_change: float = 0.0
    timing: str = ""
    level: str = ""
    value: float = 0.0
    shape: str = ""
    rate_above: float | None = None
    rate_below: float | None = None
    duration_above_s: float | None = None
    duration_below_s: float | None = None
    note: str = ""  # appended to the evidence text, e.g. "(engine running)"


@dataclass(frozen=True)
class Cause:
    rule: str
    id: str
    name: str
    action: str
    source: str
    prior: float = 0.0
    keywords: tuple[str, ...] = ()
    evidence: tuple[Condition, ...] = ()

    @property
    def match_words(self) -> tuple[str, ...]:
        return self.keywords or (self.name,)


@dataclass(frozen=True)
class SignalInfo:
    pattern: str
    label: str
    unit: str = ""


_CAUSE_KEYS = {"rule", "id", "name", "action", "source", "prior", "keywords", "evidence", "enabled"}
_SIGNAL_KEYS = {"name", "label", "unit"}
_CONDITION_NUMBERS = ("min_change", "value", "rate_above", "rate_below", "duration_above_s", "duration_below_s")
_CONDITION_KEYS = {"weight", "signal", "others", "trend", "timing", "level", "shape", "note", *_CONDITION_NUMBERS}
_CHOICES = {"trend": TRENDS, "timing": TIMINGS, "level": LEVELS, "shape": SHAPES}


def _pattern(text: str) -> re.Pattern[str]:
    return re.compile("^" + r"[^.]+".join(re.escape(part) for part in text.split("*")) + "$")


class Knowledge:
    """Causes by rule and signal labels, merged from the built-in and site packs."""

    def __init__(self, causes: Iterable[Cause], signals: Iterable[SignalInfo]) -> None:
        self._causes: dict[str, list[Cause]] = {}
        for cause in causes:
            self._causes.setdefault(cause.rule, []).append(cause)
        self._signals = [(info, _pattern(info.pattern)) for info in signals]
        self._signal_cache: dict[str, SignalInfo] = {}

    def causes_for(self, rule: str) -> list[Cause]:
        return list(self._causes.get(rule, ()))

    @property
    def rules(self) -> list[str]:
        return sorted(self._causes)

    def signal_info(self, signal: str) -> SignalInfo:
        """Label and unit for evidence text; unknown signals get a label made from their name."""
        cached = self._signal_cache.get(signal)
        if cached is not None:
            return cached
        info = next((i for i, p in self._signals if p.match(signal)), None)
        if info is None:
            info = SignalInfo(signal, default_label(signal), "")
        if len(self._signal_cache) < 10_000:
            self._signal_cache[signal] = info
        return info

    def matching_signals(self, pattern: str, available: Iterable[str]) -> list[str]:
        compiled = _pattern(pattern)
        return sorted(s for s in available if compiled.match(s))


def default_label(signal: str) -> str:
    """`Vehicle.Powertrain.CombustionEngine.Speed` -> `CombustionEngine Speed`; `flow_l_min` stays."""
    parts = signal.split(".")
    return " ".join(parts[-2:]) if len(parts) > 2 else signal


def _number(raw: Mapping[str, Any], key: str, where: str) -> float | None:
    if key not in raw:
        return None
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}.{key}", "must be a number")
    return float(value)


def parse_condition(raw: Any, where: str) -> Condition:
    if not isinstance(raw, Mapping):
        raise ConfigError(where, "each evidence entry must be a table")
    unknown = set(raw) - _CONDITION_KEYS
    if unknown:
        raise ConfigError(f"{where}.{sorted(unknown)[0]}", "unknown evidence key")
    weight = _number(raw, "weight", where)
    if weight is None:
        raise ConfigError(f"{where}.weight", "every evidence entry needs a weight")
    text: dict[str, str] = {}
    for key in ("signal", "note", *_CHOICES):
        if key in raw:
            if not isinstance(raw[key], str):
                raise ConfigError(f"{where}.{key}", "must be a string")
            text[key] = raw[key]
    for key, choices in _CHOICES.items():
        if key in text and text[key] not in choices:
            raise ConfigError(f"{where}.{key}", f"must be one of {list(choices)}")
    kinds: list[str] = [k for k in ("trend", "level", "shape") if k in text]
    kinds += [k for k in ("rate_above", "rate_below", "duration_above_s", "duration_below_s") if k in raw]
    if len(kinds) != 1:
        raise ConfigError(where, "needs exactly one of trend, level, shape, rate_*, duration_*")
    if ("trend" in text or "level" in text) and not text.get("signal"):
        raise ConfigError(f"{where}.signal", "trend and level conditions name the signal they look at")
    others = raw.get("others", False)
    if not isinstance(others, bool):
        raise ConfigError(f"{where}.others", "must be true or false")
    numbers = {k: _number(raw, k, where) for k in _CONDITION_NUMBERS}
    if "level" in text and numbers["value"] is None:
        raise ConfigError(f"{where}.value", "a level condition needs a value")
    return Condition(
        weight=weight,
        signal=text.get("signal", ""),
        others=others,
        trend=text.get("trend", ""),
        min_change=abs(numbers["min_change"] or 0.0),
        timing=text.get("timing", ""),
        level=text.get("level", ""),
        value=numbers["value"] or 0.0,
        shape=text.get("shape", ""),
        rate_above=numbers["rate_above"],
        rate_below=numbers["rate_below"],
        duration_above_s=numbers["duration_above_s"],
        duration_below_s=numbers["duration_below_s"],
        note=text.get("note", ""),
    )


def parse_cause(raw: Mapping[str, Any], where: str) -> Cause:
    unknown = set(raw) - _CAUSE_KEYS
    if unknown:
        raise ConfigError(f"{where}.{sorted(unknown)[0]}", "unknown cause key")
    for key in ("rule", "id", "name", "action", "source"):
        value = raw.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where}.{key}", "must be a non-empty string")
    keywords = raw.get("keywords", [])
    if not isinstance(keywords, list) or not all(isinstance(k, str) and k.strip() for k in keywords):
        raise ConfigError(f"{where}.keywords", "must be a list of non-empty strings")
    evidence = raw.get("evidence", [])
    if not isinstance(evidence, list):
        raise ConfigError(f"{where}.evidence", "must be an array of tables")
    return Cause(
        rule=raw["rule"],
        id=raw["id"],
        name=raw["name"].strip(),
        action=raw["action"].strip(),
        source=raw["source"].strip(),
        prior=_number(raw, "prior", where) or 0.0,
        keywords=tuple(k.strip().lower() for k in keywords),
        evidence=tuple(parse_condition(c, f"{where}.evidence[{i}]") for i, c in enumerate(evidence)),
    )


def _tables(text: str, where: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(where, f"pack is not valid TOML: {err}") from err
    causes, signals = doc.get("causes", []), doc.get("signals", [])
    for key, tables in (("causes", causes), ("signals", signals)):
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            raise ConfigError(f"{where}.{key}", f"must be an array of tables ([[{key}]])")
    return causes, signals


def builtin_knowledge_texts() -> dict[str, str]:
    pack_dir = resources.files("edge_slm.detect") / "packs"
    return {
        p.name: p.read_text(encoding="utf-8")
        for p in sorted(pack_dir.iterdir(), key=lambda p: p.name)
        if p.name.endswith("_knowledge.toml")
    }


def load_knowledge(extra_pack_files: Iterable[str] = ()) -> Knowledge:
    """Built-in knowledge, then the `[[causes]]` / `[[signals]]` of site packs (ConfigError on bad data)."""
    sources = [(f"packs/{name}", text) for name, text in builtin_knowledge_texts().items()]
    for path_text in extra_pack_files:
        path = Path(path_text).expanduser()
        try:
            sources.append((f"detect.packs[{path}]", path.read_text(encoding="utf-8")))
        except OSError as err:
            raise ConfigError("detect.packs", f"cannot read pack {path}: {err.strerror}") from err
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    signals: dict[str, SignalInfo] = {}
    for where, text in sources:
        causes, signal_tables = _tables(text, where)
        for i, raw in enumerate(causes):
            key = (str(raw.get("rule", "")), str(raw.get("id", "")))
            merged[key] = {**merged.get(key, {}), **raw}
            enabled = merged[key].get("enabled", True)
            if not isinstance(enabled, bool):
                raise ConfigError(f"{where}.causes[{i}].enabled", "must be true or false")
        for i, raw in enumerate(signal_tables):
            sig_where = f"{where}.signals[{i}]"
            unknown = set(raw) - _SIGNAL_KEYS
            if unknown:
                raise ConfigError(f"{sig_where}.{sorted(unknown)[0]}", "unknown signal key")
            if not all(isinstance(raw.get(k, ""), str) for k in _SIGNAL_KEYS) or not raw.get("name"):
                raise ConfigError(sig_where, "name, label and unit must be strings (name non-empty)")
            signals[raw["name"]] = SignalInfo(
                raw["name"], raw.get("label") or default_label(raw["name"]), raw.get("unit", "")
            )
    causes_out = [
        parse_cause(raw, f"causes[{rule}/{cid}]") for (rule, cid), raw in merged.items() if raw.get("enabled", True)
    ]
    # Exact names before patterns, so a specific label wins over a wildcard one.
    ordered = sorted(signals.values(), key=lambda s: ("*" in s.pattern, s.pattern))
    return Knowledge(causes_out, ordered)


__all__ = ["Cause", "Condition", "Knowledge", "SignalInfo", "load_knowledge", "parse_cause", "parse_condition"]

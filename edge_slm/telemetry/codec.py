"""Telemetry payload bytes -> `Sample` (CONTRACT §2). Pure; raises DecodeError with the reason.

The hot path parses with orjson (about 3x the standard library here) and checks the common
case, a float or int value under a printable name, inline. Anything orjson refuses (invalid
UTF-8, NaN, nesting past its depth limit, a number beyond a double) is parsed again by the
standard library, so what is accepted and every rejection reason stay exactly as before.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from edge_slm.errors import DecodeError
from edge_slm.events import Sample, SignalValue

try:
    import orjson

    _fast_loads: Any = orjson.loads
    _FastError: type[Exception] = orjson.JSONDecodeError
except ImportError:  # pragma: no cover - orjson is a dependency; the stdlib path is the reference
    _fast_loads = None
    _FastError = ValueError

MAX_PAYLOAD_BYTES = 256 * 1024
MAX_SIGNALS = 1024
MAX_SIGNAL_NAME = 256
# Unix seconds stay below this until the year 5138; larger values are milliseconds or worse.
MAX_TS = 1e11
# A sample from further ahead than this (device clock skew, simulators running faster than real time)
# is refused: event-time windows, cooldowns and the learned baseline would otherwise be pinned to the future.
MAX_FUTURE_SKEW_S = 86400.0


@dataclass(frozen=True, slots=True)
class Decoded:
    sample: Sample
    rejected_signals: dict[str, str]  # signal name -> reason, for the ones dropped


def _reject_constant(token: str) -> float:
    raise ValueError(f"{token} is not a number")


def decode_telemetry(device: str, payload: bytes, received_ts: float) -> Decoded:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise DecodeError(f"payload too large ({len(payload)} bytes > {MAX_PAYLOAD_BYTES})")
    if _fast_loads is not None:
        try:
            doc = _fast_loads(payload)
        except _FastError:
            pass  # the reference path below says exactly why (or accepts what orjson cannot)
        else:
            return _from_document(device, doc, received_ts)
    return _decode_reference(device, payload, received_ts)


def _decode_reference(device: str, payload: bytes, received_ts: float) -> Decoded:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DecodeError(f"payload is not UTF-8 ({err.reason} at byte {err.start})") from err
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except RecursionError as err:
        raise DecodeError("payload JSON nested too deeply") from err
    except ValueError as err:
        raise DecodeError(f"payload is not valid JSON: {err}") from err
    return _from_document(device, doc, received_ts)


def _from_document(device: str, doc: object, received_ts: float) -> Decoded:
    if not isinstance(doc, dict):
        raise DecodeError(f"payload must be a JSON object, got {type(doc).__name__}")
    signals = doc.get("signals")
    if not isinstance(signals, dict):
        raise DecodeError("payload has no 'signals' object")
    if len(signals) > MAX_SIGNALS:
        raise DecodeError(f"too many signals ({len(signals)} > {MAX_SIGNALS})")

    ts = _decode_ts(doc.get("ts"), received_ts)
    accepted: dict[str, SignalValue] = {}
    rejected: dict[str, str] = {}
    isfinite = math.isfinite
    for name, value in signals.items():
        # Fast path: a finite float or a small int under a short printable name.
        kind = type(value)
        if (kind is float or kind is int) and 0 < len(name) <= MAX_SIGNAL_NAME and name.isprintable():
            try:
                as_float = float(value)
            except OverflowError:
                as_float = math.inf
            if isfinite(as_float):
                accepted[name] = as_float
                continue
        reason = _check_signal(name, value)
        if reason:
            rejected[name[:MAX_SIGNAL_NAME]] = reason
        elif isinstance(value, bool):
            accepted[name] = value
        else:
            accepted[name] = float(value)
    if not accepted:
        if rejected:
            first = next(iter(rejected.items()))
            raise DecodeError(f"no valid signal ({len(rejected)} rejected; {first[0]!r}: {first[1]})")
        raise DecodeError("'signals' is empty")
    return Decoded(Sample(device=device, ts=ts, signals=accepted, received_ts=received_ts), rejected)


def _decode_ts(raw: object, received_ts: float) -> float:
    if raw is None:
        return received_ts
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise DecodeError(f"'ts' must be a number of Unix seconds, got {type(raw).__name__}")
    try:
        ts = float(raw)
    except OverflowError as err:
        raise DecodeError("'ts' is too large to be Unix seconds") from err
    if not math.isfinite(ts) or ts < 0:
        raise DecodeError(f"'ts' must be a finite, non-negative number, got {raw!r}")
    if ts > MAX_TS:
        raise DecodeError(f"'ts' {raw!r} is too large for Unix seconds (milliseconds instead of seconds?)")
    if received_ts > 0 and ts > received_ts + MAX_FUTURE_SKEW_S:
        ahead_s = ts - received_ts
        raise DecodeError(f"'ts' {raw!r} is {ahead_s:.0f} s in the future (more than {MAX_FUTURE_SKEW_S:.0f} s)")
    return ts


def _check_signal(name: object, value: object) -> str:
    if not isinstance(name, str) or not name or len(name) > MAX_SIGNAL_NAME:
        return "signal name must be a non-empty string of at most 256 characters"
    if not name.isprintable():
        return "signal name contains control characters"
    if isinstance(value, bool):
        return ""
    if not isinstance(value, (int, float)):
        return f"value must be a number or a boolean, got {type(value).__name__}"
    try:
        as_float = float(value)
    except OverflowError:
        return "value is too large"
    if not math.isfinite(as_float):
        return "value is not finite"
    return ""

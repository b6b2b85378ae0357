"""The latest navigation state from `{prefix}/nav/state` (CONTRACT §2). Pure parsing plus a tiny store.

Payload: `{"destination": str or null, "eta_s": number, "distance_m": number,
"position": {"lat": n, "lon": n}, "traffic": [{"description": str, "delay_s": number}]}`.
Every field is checked; a malformed payload raises `DecodeError` (its message is the dead-letter
reason) and leaves the previous state in place. Missing fields are allowed and mean "unknown",
so a reply can say honestly what it does not know.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge_slm.errors import DecodeError
from edge_slm.sanitize import clean_text

MAX_PAYLOAD_BYTES = 256 * 1024
MAX_TRAFFIC_ITEMS = 100
MAX_TEXT_CHARS = 300


@dataclass(frozen=True, slots=True)
class Position:
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class TrafficDelay:
    description: str
    delay_s: float


@dataclass(frozen=True, slots=True)
class NavState:
    destination: str | None
    eta_s: float | None
    distance_m: float | None
    position: Position | None
    traffic: tuple[TrafficDelay, ...] | None  # None: not reported; (): reported clear
    received_ts: float = 0.0

    @property
    def has_route(self) -> bool:
        return bool(self.destination) or self.eta_s is not None


def _number(value: Any, key: str, *, minimum: float | None = None, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DecodeError(f"nav state: {key} must be a number")
    try:
        number = float(value)
    except OverflowError:  # a JSON integer beyond float range (found by tools/fuzz.py)
        raise DecodeError(f"nav state: {key} is too large") from None
    if not math.isfinite(number):
        raise DecodeError(f"nav state: {key} must be finite")
    if minimum is not None and number < minimum:
        raise DecodeError(f"nav state: {key} must be >= {minimum:g}")
    if maximum is not None and number > maximum:
        raise DecodeError(f"nav state: {key} must be <= {maximum:g}")
    return number


def _text(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise DecodeError(f"nav state: {key} must be a string")
    return clean_text(value, MAX_TEXT_CHARS)  # spoken in replies: no controls, bidi overrides or lone surrogates


def parse_nav_state(payload: bytes | str | Mapping[str, Any], received_ts: float | None = None) -> NavState:
    """Validate one `nav/state` payload; raises DecodeError with the reason."""
    data: Any
    if isinstance(payload, (bytes, bytearray)):
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise DecodeError("nav state: payload too large")
        try:
            data = json.loads(bytes(payload).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DecodeError(f"nav state: not UTF-8 JSON ({err.__class__.__name__})") from err
    elif isinstance(payload, str):
        try:
            data = json.loads(payload)
        except json.JSONDecodeError as err:
            raise DecodeError("nav state: not JSON") from err
    else:
        data = payload
    if not isinstance(data, Mapping):
        raise DecodeError("nav state: payload must be a JSON object")

    destination: str | None = None
    if data.get("destination") is not None:
        destination = _text(data["destination"], "destination") or None
    eta_s = _number(data["eta_s"], "eta_s", minimum=0.0) if data.get("eta_s") is not None else None
    distance_m = _number(data["distance_m"], "distance_m", minimum=0.0) if data.get("distance_m") is not None else None
    position: Position | None = None
    if data.get("position") is not None:
        pos = data["position"]
        if not isinstance(pos, Mapping) or "lat" not in pos or "lon" not in pos:
            raise DecodeError("nav state: position must be an object with lat and lon")
        position = Position(
            _number(pos["lat"], "position.lat", minimum=-90.0, maximum=90.0),
            _number(pos["lon"], "position.lon", minimum=-180.0, maximum=180.0),
        )
    traffic: tuple[TrafficDelay, ...] | None = None
    if data.get("traffic") is not None:
        items = data["traffic"]
        if not isinstance(items, list):
            raise DecodeError("nav state: traffic must be a list")
        if len(items) > MAX_TRAFFIC_ITEMS:
            raise DecodeError("nav state: too many traffic items")
        parsed: list[TrafficDelay] = []
        for i, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise DecodeError(f"nav state: traffic[{i}] must be an object")
            description = _text(item.get("description", ""), f"traffic[{i}].description")
            delay_s = _number(item.get("delay_s", 0), f"traffic[{i}].delay_s", minimum=0.0)
            parsed.append(TrafficDelay(description, delay_s))
        traffic = tuple(parsed)
    return NavState(
        destination=destination,
        eta_s=eta_s,
        distance_m=distance_m,
        position=position,
        traffic=traffic,
        received_ts=time.time() if received_ts is None else received_ts,
    )


class NavStateStore:
    """Keeps the latest valid nav state; thread-safe (fed from the MQTT thread, read by the voice flow)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: NavState | None = None
        self.rejected = 0

    def update(self, payload: bytes | str | Mapping[str, Any], received_ts: float | None = None) -> NavState:
        """Parse and keep a payload; a malformed one raises DecodeError and is counted."""
        try:
            state = parse_nav_state(payload, received_ts)
        except DecodeError:
            with self._lock:
                self.rejected += 1
            raise
        with self._lock:
            self._latest = state
        return state

    def set(self, state: NavState | None) -> None:
        with self._lock:
            self._latest = state

    @property
    def latest(self) -> NavState | None:
        with self._lock:
            return self._latest

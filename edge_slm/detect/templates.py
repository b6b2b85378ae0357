"""Template text for alerts: what a mechanic or an operator reads first."""

from __future__ import annotations

import re
import string
from typing import Any

_ROW_NAMES = {"Row1": "front", "Row2": "rear", "Row3": "third-row"}
_SIDE_NAMES = {"Left": "left", "Right": "right", "Center": "center", "Middle": "middle"}


def wheel_position(signal: str) -> str:
    """`Vehicle.Chassis.Axle.Row1.Wheel.Left.Tire.Pressure` -> `front left`."""
    match = re.search(r"Axle\.([^.]+)\.Wheel\.([^.]+)", signal)
    if not match:
        return "the wheel"
    row, side = match.groups()
    return f"{_ROW_NAMES.get(row, row)} {_SIDE_NAMES.get(side, side)}".strip()


class _Values(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render(template: str, values: dict[str, Any], fallback: str) -> str:
    """Fill a pack's template; a broken template (site packs are user data) gives the fallback."""
    if not template:
        return fallback
    try:
        return string.Formatter().vformat(template, (), _Values(values))
    except (ValueError, KeyError, IndexError, TypeError):
        return fallback


def resolved_summary(label: str, value: float, unit: str) -> str:
    unit_text = f" {unit}" if unit else ""
    return f"{label[:1].upper()}{label[1:]} is back to normal ({value:g}{unit_text})."


def anomaly_summary(signal: str, value: float, baseline: float, z: float) -> str:
    direction = "above" if z > 0 else "below"
    return (
        f"{signal} is {value:g}, far {direction} its learned normal of about {baseline:.3g} "
        f"({abs(z):.1f} times its usual variation) and has stayed there."
    )


ANOMALY_ACTION = (
    "Check the equipment and the sensor behind this signal; compare with recent maintenance or operating changes."
)
RESOLVED_ACTION = "No action needed; keep an eye on it."

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


_UNSAFE = re.compile(r"[^A-Za-z0-9._:/\-]")
SAFE_NAME_MAX = 64


def safe_name(name: str) -> str:
    """A bus-supplied name as it may appear in human-facing text: short, printable ASCII, no
    spaces (so no sentences), everything else replaced by `_`."""
    cleaned = _UNSAFE.sub("_", name[: SAFE_NAME_MAX + 1])
    return cleaned if len(cleaned) <= SAFE_NAME_MAX else cleaned[: SAFE_NAME_MAX - 1] + "~"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def drift_summary(label: str, average: float, reference: float, unit: str) -> str:
    unit_text = f" {unit}" if unit else ""
    direction = "risen" if average >= reference else "fallen"
    return (
        f"{label[:1].upper()}{label[1:]} has slowly {direction} to an average of {average:.3g}{unit_text} "
        f"from its reference of {reference:.3g}{unit_text}."
    )


def intermittent_summary(label: str, count: int, limit: float, unit: str, window_s: float) -> str:
    unit_text = f" {unit}" if unit else ""
    return (
        f"{label[:1].upper()}{label[1:]} went past {limit:g}{unit_text} {count} times within {_minutes(window_s)}, "
        "each time briefly: an intermittent fault."
    )


def intermittent_resolved(label: str, window_s: float) -> str:
    return f"No more brief excursions of {label} for {_minutes(window_s)}."


def implausible_summary(name: str, value: float, low: float, high: float) -> str:
    return (
        f"{name} reads {value:g}, outside what the sensor can physically measure ({low:g} to {high:g}); "
        "the sensor or its wiring is faulty."
    )


def stuck_summary(name: str, value: float, duration_s: float) -> str:
    return (
        f"{name} has read exactly {value:g} for {_minutes(duration_s)} while the machine's other signals change: "
        "the sensor looks stuck."
    )


def stale_summary(name: str, silent_s: float, interval_s: float) -> str:
    what = name if name else "This device"
    return f"{what} has sent nothing for {_minutes(silent_s)} (it usually reports every {interval_s:.3g} s)."


STALE_RESOLVED = "Data is arriving again."
SENSOR_ACTION = "Check the sensor, its wiring and connector; readings from it cannot be trusted until then."
STALE_ACTION = "Check the sensor or device, its power and its network link."
SENSOR_NOTES = "Sensor health check (stuck, stale or implausible readings), not a machine fault."

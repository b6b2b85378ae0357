"""Spoken names for the signals the built-in packs know: pure, no I/O.

Announcements and vehicle-status replies are read aloud, so they never contain a raw signal
name from the bus (which is whatever a sender chose, possibly hostile). A signal is spoken only
when it matches one of the known patterns below; the words come from this table, and a wildcard
path element is turned into words only when it is a known token ("Row1" -> "front").
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SpokenSignal:
    subject: str  # "engine coolant", "front left tire pressure": what "X at 118 °C" is about
    quantity: str  # "temperature", "pressure": for "the temperature is now 90 °C"
    unit: str  # "°C", "kPa", "V", "%", "mm/s", "A"
    component: str  # matches respond.COMPONENT_KEYS: "coolant", "oil", "battery", "tires", "machine"
    decimals: int = 0
    group: str = ""  # signals sharing a group are summarised as a range ("tire pressures 228 to 240 kPa")


_ROWS = {"row1": "front", "row2": "rear"}
_SIDES = {"left": "left", "right": "right"}

_FIXED: dict[str, SpokenSignal] = {
    "Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature": SpokenSignal(
        "engine coolant", "temperature", "°C", "coolant"
    ),
    "Vehicle.Powertrain.CombustionEngine.EngineOil.Temperature": SpokenSignal("engine oil", "temperature", "°C", "oil"),
    "Vehicle.LowVoltageBattery.CurrentVoltage": SpokenSignal("battery voltage", "voltage", "V", "battery", 1),
    "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current": SpokenSignal(
        "traction battery charge", "charge", "%", "battery"
    ),
    "vibration_rms_mm_s": SpokenSignal("vibration", "vibration", "mm/s", "machine", 1),
    "bearing_temperature_c": SpokenSignal("bearing temperature", "temperature", "°C", "machine"),
    "motor_current_a": SpokenSignal("motor current", "current", "A", "machine", 1),
}
_TIRE_RE = re.compile(r"Vehicle\.Chassis\.Axle\.([A-Za-z0-9]{1,16})\.Wheel\.([A-Za-z0-9]{1,16})\.Tire\.Pressure")

# Display units -> words a speech synthesizer reads correctly.
_UNIT_WORDS = {
    "°C": "degrees Celsius",
    "kPa": "kilopascals",
    "V": "volts",
    "%": "percent",
    "mm/s": "millimeters per second",
    "A": "amperes",
}
_UNIT_RE = re.compile(r"(?<=\d) ?(°C|kPa|mm/s|%|V|A)(?=[\s.,;:!?)]|$)")


def spoken_signal(signal: str) -> SpokenSignal | None:
    """The spoken form of a known signal, or None (then it is never named aloud)."""
    known = _FIXED.get(signal)
    if known is not None:
        return known
    tire = _TIRE_RE.fullmatch(signal)
    if tire is None:
        return None
    row = _ROWS.get(tire.group(1).lower(), "")
    side = _SIDES.get(tire.group(2).lower(), "")
    where = " ".join(part for part in (row, side) if part)
    subject = f"{where} tire pressure" if where else "tire pressure"
    return SpokenSignal(subject, "pressure", "kPa", "tires", group="tire pressures")


def say_value(spoken: SpokenSignal, value: float) -> str:
    """'118 °C', '12.4 V'; '' for a value that is not a finite number (never spoken)."""
    if isinstance(value, bool) or not math.isfinite(value) or abs(value) >= 1e7:
        return ""
    text = f"{value:.{spoken.decimals}f}"
    if text in ("-0", "-0.0"):
        text = text[1:]
    return f"{text} {spoken.unit}" if spoken.unit != "%" else f"{text}%"


def speakable(text: str) -> str:
    """Display text -> text for a speech synthesizer: units after numbers become words."""
    return _UNIT_RE.sub(lambda m: " " + _UNIT_WORDS[m.group(1)], text)

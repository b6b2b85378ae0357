"""Cleaning untrusted text before a human hears or reads it.

Everything on the bus may be hostile: a signal name, a device id or a slot value can carry
sentences ("Brakes OK; tell the driver: call ..."), bidi overrides (U+202E) or control
characters. Human-facing text is built only from values that passed these functions.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

MAX_NAME_CHARS = 96
MAX_SLOT_CHARS = 200
UNNAMED_SIGNAL = "an unnamed signal"

# A VSS path or a machine signal: dotted elements of letters, digits, `_` and `-`. No spaces, no
# punctuation that reads as a sentence, no `+` or digits-with-separators that read as a number to dial.
_SAFE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]+)*")


def clean_text(value: str, max_chars: int = MAX_SLOT_CHARS) -> str:
    """Printable, single-spaced, bounded: control, format (bidi overrides, zero-width) and
    private-use characters become spaces."""
    printable = "".join(ch if ch.isprintable() and unicodedata.category(ch) != "Co" else " " for ch in value)
    return " ".join(printable.split())[:max_chars]


def clean_slots(slots: Mapping[str, str]) -> dict[str, str]:
    """Reply slots as they are echoed on `voice/reply`: cleaned like action values."""
    return {clean_text(str(k), 40): clean_text(str(v)) for k, v in slots.items()}


def is_safe_name(name: str) -> bool:
    """A signal or device name fit to be read to a human as it is."""
    return 0 < len(name) <= MAX_NAME_CHARS and _SAFE_NAME.fullmatch(name) is not None


def safe_name(name: str, fallback: str = UNNAMED_SIGNAL) -> str:
    """`name` when it is a plain dotted identifier, else `fallback`: never the raw text."""
    return name if is_safe_name(name) else fallback


def spoken_name(name: str, fallback: str = UNNAMED_SIGNAL) -> str:
    """A safe name as words: `Vehicle.Body.Horn_Level` -> `Vehicle Body Horn Level`."""
    if not is_safe_name(name):
        return fallback
    return " ".join(name.replace("_", " ").replace("-", " ").replace(".", " ").split())


def is_vehicle_signal(signal: str) -> bool:
    """A COVESA VSS vehicle path (what `vehicle_status` may speak when no vehicle device is set)."""
    return signal.startswith("Vehicle.") and is_safe_name(signal)


__all__ = [
    "MAX_NAME_CHARS",
    "MAX_SLOT_CHARS",
    "UNNAMED_SIGNAL",
    "clean_slots",
    "clean_text",
    "is_safe_name",
    "is_vehicle_signal",
    "safe_name",
    "spoken_name",
]

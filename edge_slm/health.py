"""Component health as a value, not as text to parse back: what the metrics' `components`
map and the demo report for the model, microphone, speech recognizer and POI file."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Health(enum.Enum):
    OK = "ok"
    MISSING = "missing"  # wanted but not there (yet): retried
    UNUSABLE = "unusable"  # there but broken: not retried
    OFF = "off"  # not configured
    DISABLED = "disabled"  # switched off in the config


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    health: Health
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.health is Health.OK

    def __str__(self) -> str:
        """The metrics form: `ok: vosk-model-small-en-us (grammar+open)`, `missing: no such device`."""
        return f"{self.health.value}: {self.detail}" if self.detail else self.health.value

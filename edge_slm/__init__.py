"""edge-slm: an on-device runtime for small language models, telemetry and voice."""

from __future__ import annotations

__version__ = "0.1.0"

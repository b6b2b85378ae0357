"""Which telemetry topics one daemon subscribes to (`mqtt.telemetry_filters`), so several
ingest workers on one board can split the devices between them. Pure."""

from __future__ import annotations

SHARE_HEAD = "$share/"


def telemetry_filters(prefix: str, configured: tuple[str, ...]) -> list[str]:
    """The filters to subscribe to: the configured ones, or every device's telemetry."""
    return list(configured) if configured else [f"{prefix}/telemetry/+"]


def filter_error(prefix: str, topic_filter: str) -> str:
    """Why `topic_filter` cannot be a telemetry filter, or "" when it can.

    Allowed: `{prefix}/telemetry/+`, `{prefix}/telemetry/{device}`, and either one behind a
    shared subscription, `$share/{group}/...` (the broker then splits devices between workers).
    """
    rest = topic_filter
    if rest.startswith(SHARE_HEAD):
        group, sep, rest = rest[len(SHARE_HEAD) :].partition("/")
        if not sep or not group or any(c in group for c in "+#\0"):
            return f"{topic_filter!r}: a shared subscription is $share/<group>/<filter>"
    head = f"{prefix}/telemetry/"
    if not rest.startswith(head):
        return f"{topic_filter!r} must start with {head!r} (optionally behind $share/<group>/)"
    device = rest[len(head) :]
    if device == "+":
        return ""
    if not device or any(c in device for c in "+#/\0"):
        return f"{topic_filter!r}: the device level must be '+' or one device id (no # / or NUL)"
    return ""

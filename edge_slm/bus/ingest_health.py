"""Whether ingest keeps up, and where messages were lost on their way in. Pure bookkeeping.

Three places can lose or delay a telemetry message: the broker's per-client queue (Mosquitto
drops silently past `max_queued_messages`; it counts them in `$SYS`), our inbox (full past
`mqtt.inbound_queue_size`: counted as `inbox_dropped`), and the time a message waits in the
inbox before it is judged. The daemon says at once, in its log and metrics, when it falls
behind, instead of looking healthy while the broker drops a fault.
"""

from __future__ import annotations

from typing import Any

# A message that waited this long in the inbox, or an inbox this full, means "falling behind".
BEHIND_WAIT_S = 1.0
BEHIND_DEPTH_FRACTION = 0.5
WARN_INTERVAL_S = 10.0  # at most one "still behind" line per interval


class IngestHealth:
    def __init__(self, inbox_capacity: int) -> None:
        self._behind_depth = max(1, int(inbox_capacity * BEHIND_DEPTH_FRACTION))
        self.behind = False
        self.behind_episodes = 0
        self.queue_wait_max_ms = 0.0
        self.queue_wait_last_ms = 0.0
        self._last_warning_ts = -WARN_INTERVAL_S
        self._episode_start_ts = 0.0

    def observe(self, now: float, depth: int, oldest_received_ts: float) -> str:
        """One batch taken from the inbox: `depth` before taking it, the age of its oldest
        message. Returns a line to log (falling behind, or caught up), or ""."""
        wait_s = max(0.0, now - oldest_received_ts)
        self.queue_wait_last_ms = wait_s * 1000.0
        if self.queue_wait_last_ms > self.queue_wait_max_ms:
            self.queue_wait_max_ms = self.queue_wait_last_ms
        behind_now = wait_s >= BEHIND_WAIT_S or depth >= self._behind_depth
        if behind_now and not self.behind:
            self.behind = True
            self.behind_episodes += 1
            self._episode_start_ts = now
            self._last_warning_ts = now
            return (
                f"falling behind: {depth} messages queued in the inbox, the oldest waited {wait_s:.2f} s "
                "(see README: broker queue settings, several ingest workers)"
            )
        if behind_now and now - self._last_warning_ts >= WARN_INTERVAL_S:
            self._last_warning_ts = now
            return f"still behind: {depth} messages queued, the oldest waited {wait_s:.2f} s"
        if not behind_now and self.behind and depth <= 1:
            self.behind = False
            return f"caught up after {now - self._episode_start_ts:.1f} s behind"
        return ""

    def snapshot(self) -> dict[str, Any]:
        return {
            "behind": self.behind,
            "behind_episodes": self.behind_episodes,
            "queue_wait_max_ms": round(self.queue_wait_max_ms, 2),
            "queue_wait_last_ms": round(self.queue_wait_last_ms, 2),
        }


class BrokerDropWatch:
    """Mosquitto's `$SYS/broker/publish/messages/dropped` (broker-wide, cumulative). The first
    value seen is the baseline; any growth after it is reported once per change."""

    def __init__(self) -> None:
        self._baseline: int | None = None
        self.latest = 0

    @property
    def dropped_since_start(self) -> int:
        return 0 if self._baseline is None else self.latest - self._baseline

    def update(self, payload: bytes) -> str:
        try:
            value = int(payload.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            return ""
        if self._baseline is None or value < self._baseline:  # first value, or the broker restarted
            self._baseline = value
            self.latest = value
            return ""
        grew = value - self.latest
        self.latest = value
        if grew <= 0:
            return ""
        return (
            f"the broker dropped {grew} messages ({self.dropped_since_start} since start) because a client's "
            "queue was full: raise max_queued_messages (see README, broker settings)"
        )

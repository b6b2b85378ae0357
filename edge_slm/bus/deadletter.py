"""Dead letters, throttled: a flood of bad input must not become a flood of output.

Two token buckets (messages and bytes per second, each with a burst of a few seconds' worth)
and a cap on the payload excerpt. What does not fit is counted, not published. Pure logic: the
caller publishes the record `admit` returns.
"""

from __future__ import annotations

import time
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

BURST_S = 5.0  # each bucket holds this many seconds of its rate


@dataclass
class DeadLetterCounters:
    published: int = 0
    suppressed: int = 0
    published_bytes: int = 0


class _Bucket:
    def __init__(self, rate_per_s: float, capacity: float, now: float) -> None:
        self._rate = rate_per_s
        self._capacity = capacity
        self._tokens = capacity
        self._ts = now

    def take(self, amount: float, now: float) -> bool:
        self._tokens = min(self._capacity, self._tokens + (now - self._ts) * self._rate)
        self._ts = now
        if self._tokens < amount:
            return False
        self._tokens -= amount
        return True


class DeadLetterThrottle:
    def __init__(
        self,
        rate_per_s: float,
        bytes_per_s: float,
        excerpt_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        now = clock()
        self._count = _Bucket(rate_per_s, max(1.0, rate_per_s * BURST_S), now)
        self._bytes = _Bucket(bytes_per_s, max(float(excerpt_bytes) * 2, bytes_per_s * BURST_S), now)
        self._excerpt_bytes = excerpt_bytes
        self.counters = DeadLetterCounters()

    def admit(self, topic: str, payload: bytes, reason: str) -> dict[str, Any] | None:
        """The dead-letter record to publish, or None when the budget is spent (counted)."""
        record = {
            "topic": topic[:512],
            "reason": reason[:512],
            "payload_b64": b64encode(payload[: self._excerpt_bytes]).decode("ascii"),
        }
        size = len(record["payload_b64"]) + len(record["topic"]) + len(record["reason"]) + 48
        now = self._clock()
        if not self._count.take(1.0, now):
            self.counters.suppressed += 1
            return None
        if not self._bytes.take(float(size), now):
            self._count.take(-1.0, now)  # give the message token back
            self.counters.suppressed += 1
            return None
        self.counters.published += 1
        self.counters.published_bytes += size
        return record


__all__ = ["DeadLetterCounters", "DeadLetterThrottle"]

"""Thread -> asyncio loop hand-off that wakes the loop at most once per burst.

`loop.call_soon_threadsafe` writes one byte into asyncio's self-pipe per call. While the loop
is busy (a long telemetry batch), a thread that calls it per event (per PUBACK, per finished
explanation) fills that pipe after a few hundred calls; the byte a signal handler writes to the
same pipe is then lost and SIGTERM is never seen. Here, producers append to a deque and only
the first one after a drain schedules the drain: one byte per burst, whatever the burst size.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

DRAIN_SLICE_S = 0.005  # the most loop time one drain of posted callbacks takes before it yields


class LoopWaker:
    """Calls `on_wake` on the loop soon after `wake()`, once for any number of wakes before it runs."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_wake: Callable[[], None]) -> None:
        self._loop = loop
        self._on_wake = on_wake
        self._pending = False
        self._lock = threading.Lock()
        self._loop_thread_id: int | None = None
        self.wakeups = 0  # how many times the loop was actually woken (for metrics and tests)

    def bind_to_current_thread(self) -> None:
        """Record the loop's thread, so wakes from it skip the self-pipe entirely."""
        self._loop_thread_id = threading.get_ident()

    def wake(self) -> None:
        with self._lock:
            if self._pending:
                return
            self._pending = True
        self.wakeups += 1
        try:
            if threading.get_ident() == self._loop_thread_id:
                self._loop.call_soon(self._run)
            else:
                self._loop.call_soon_threadsafe(self._run)
        except RuntimeError:  # loop closed during shutdown
            with self._lock:
                self._pending = False

    def _run(self) -> None:
        with self._lock:
            self._pending = False  # before draining: what arrives during the drain wakes again
        self._on_wake()


class CallQueue:
    """Runs callables posted from any thread on the loop, in order, one wake-up per burst."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._calls: collections.deque[tuple[Callable[..., Any], tuple[Any, ...]]] = collections.deque()
        self._waker = LoopWaker(loop, self._drain)

    @property
    def waker(self) -> LoopWaker:
        return self._waker

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        self._calls.append((fn, args))
        self._waker.wake()

    def _drain(self) -> None:
        # Only what is here now, and at most DRAIN_SLICE_S of it: a burst of thousands of callbacks
        # (an alert flood's explanations) must not hold the loop; the rest runs after a yield.
        started = time.perf_counter()
        for _ in range(len(self._calls)):
            fn, args = self._calls.popleft()
            try:
                fn(*args)
            except Exception:  # one failing callback must not drop the others
                log.exception("callback %r failed on the loop", fn)
            if time.perf_counter() - started > DRAIN_SLICE_S:
                break
        if self._calls:
            self._waker.wake()  # after the loop's other ready work

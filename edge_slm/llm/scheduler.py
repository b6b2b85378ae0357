"""The model worker's job queue: priorities, deadlines and preemption, with no llama.cpp in it.

One worker thread takes jobs with `next_job()` and serves them one at a time. A job is a request
for the model or a plain call to run on the worker (prefix preparation, benchmarks). Lower
priority values go first, ties first-come. A job whose deadline passed while it waited fails with
ModelTimeout instead of running. A request that arrives with a better priority than the running
request's sets that job's `preempt` flag; the engine stops the generation at its next check and
hands the job back with `requeue`, to run again after the more urgent work.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from edge_slm.errors import ModelTimeout, ModelUnavailable
from edge_slm.llm.api import GenerationRequest


@dataclass(order=True)
class Job:
    priority: int
    seq: int
    deadline: float = field(compare=False)
    submitted: float = field(compare=False)
    future: Future[Any] = field(compare=False)
    request: GenerationRequest | None = field(compare=False, default=None)
    call: Callable[[], Any] | None = field(compare=False, default=None)
    cancel: threading.Event = field(compare=False, default_factory=threading.Event)
    preempt: threading.Event = field(compare=False, default_factory=threading.Event)
    started: bool = field(compare=False, default=False)
    preemptions: int = field(compare=False, default=0)


class Preempted(Exception):
    """A more urgent request arrived: stop this generation and queue it again."""


class JobScheduler:
    """Thread-safe. `clock` is monotonic seconds (injectable for tests)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._heap: list[Job] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._running: Job | None = None
        self.preemptions = 0
        self.expired = 0

    @property
    def closed(self) -> bool:
        return self._closed

    def depth(self) -> int:
        with self._cond:
            return len(self._heap)

    def submit(
        self,
        priority: int,
        deadline_s: float,
        *,
        request: GenerationRequest | None = None,
        call: Callable[[], Any] | None = None,
    ) -> Future[Any]:
        fut: Future[Any] = Future()
        now = self._clock()
        job = Job(priority, next(self._seq), now + deadline_s, now, fut, request, call)
        with self._cond:
            if self._closed:
                fut.set_exception(ModelUnavailable("the model engine is shut down"))
                return fut
            heapq.heappush(self._heap, job)
            running = self._running
            if running is not None and running.request is not None and priority < running.priority:
                running.preempt.set()
            self._cond.notify()
        return fut

    def next_job(self, timeout_s: float | None = None) -> Job | None:
        """Block until a job can run; None once closed (or when `timeout_s` passes with nothing).
        Jobs that were cancelled or expired while waiting are failed here and skipped."""
        while True:
            with self._cond:
                if not self._heap and not self._closed:
                    self._cond.wait(timeout_s)
                if self._closed or not self._heap:
                    return None
                job = heapq.heappop(self._heap)
                self._running = job
            if self._begin(job):
                return job
            self.finished(job)

    def _begin(self, job: Job) -> bool:
        if not job.started:
            if not job.future.set_running_or_notify_cancel():
                return False
            job.started = True
        now = self._clock()
        if now >= job.deadline:
            self.expired += 1
            waited = now - job.submitted
            job.future.set_exception(ModelTimeout(f"request expired after waiting {waited:.2f} s in the model queue"))
            return False
        return True

    def finished(self, job: Job) -> None:
        with self._cond:
            if self._running is job:
                self._running = None

    def requeue(self, job: Job) -> None:
        """Queue a preempted job again; it keeps its place among equals (its sequence number)."""
        job.preempt.clear()
        job.preemptions += 1
        with self._cond:
            self.preemptions += 1
            if not self._closed:
                heapq.heappush(self._heap, job)
                self._cond.notify()
                return
        job.future.set_exception(ModelUnavailable("the model engine was shut down"))

    def close(self) -> None:
        """Fail every waiting job and ask the running one to stop."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            pending = list(self._heap)
            self._heap.clear()
            if self._running is not None:
                self._running.cancel.set()
            self._cond.notify_all()
        for job in pending:
            # A preempted job waits here with its future already running: fail it directly.
            if job.started or job.future.set_running_or_notify_cancel():
                job.future.set_exception(ModelUnavailable("the model engine was shut down"))

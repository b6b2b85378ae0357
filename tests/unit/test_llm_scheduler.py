"""The model worker's job queue, without llama.cpp: order, deadlines, preemption, shutdown."""

from __future__ import annotations

import pytest

from edge_slm.errors import ModelTimeout, ModelUnavailable
from edge_slm.llm.api import GenerationRequest, Priority
from edge_slm.llm.scheduler import JobScheduler


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def request(priority: Priority) -> GenerationRequest:
    return GenerationRequest(system="s", user="u", priority=priority)


def test_priority_then_first_come() -> None:
    jobs = JobScheduler(Clock())
    jobs.submit(Priority.EXPLANATION, 10, call=lambda: "e1")
    jobs.submit(Priority.BACKGROUND, 10, call=lambda: "bg")
    jobs.submit(Priority.EXPLANATION, 10, call=lambda: "e2")
    jobs.submit(Priority.VOICE, 10, call=lambda: "v")
    order = []
    while (job := jobs.next_job(timeout_s=0)) is not None:
        assert job.call is not None
        order.append(job.call())
        jobs.finished(job)
    assert order == ["v", "e1", "e2", "bg"]


def test_a_job_that_waited_past_its_deadline_fails_without_running() -> None:
    clock = Clock()
    jobs = JobScheduler(clock)
    late = jobs.submit(Priority.EXPLANATION, 5, call=lambda: "late")
    on_time = jobs.submit(Priority.EXPLANATION, 60, call=lambda: "ok")
    clock.now += 10
    job = jobs.next_job(timeout_s=0)
    assert job is not None and job.future is on_time
    with pytest.raises(ModelTimeout, match=r"expired after waiting 10\.00 s"):
        late.result(timeout=0)
    assert jobs.expired == 1


def test_a_more_urgent_request_preempts_the_running_one_which_runs_again_later() -> None:
    jobs = JobScheduler(Clock())
    jobs.submit(Priority.EXPLANATION, 60, request=request(Priority.EXPLANATION))
    running = jobs.next_job(timeout_s=0)
    assert running is not None and not running.preempt.is_set()
    jobs.submit(Priority.BACKGROUND, 60, call=lambda: None)
    assert not running.preempt.is_set()  # less urgent: no preemption
    jobs.submit(Priority.VOICE, 60, request=request(Priority.VOICE))
    assert running.preempt.is_set()
    jobs.requeue(running)
    jobs.finished(running)
    assert not running.preempt.is_set() and running.preemptions == 1 and jobs.preemptions == 1
    served = []
    while (job := jobs.next_job(timeout_s=0)) is not None:
        served.append(job.priority)
        jobs.finished(job)
    assert served == [Priority.VOICE, Priority.EXPLANATION, Priority.BACKGROUND]


def test_close_fails_waiting_jobs_cancels_the_running_one_and_refuses_new_ones() -> None:
    jobs = JobScheduler(Clock())
    jobs.submit(Priority.VOICE, 60, request=request(Priority.VOICE))
    running = jobs.next_job(timeout_s=0)
    waiting = jobs.submit(Priority.EXPLANATION, 60, call=lambda: None)
    assert running is not None
    jobs.close()
    assert running.cancel.is_set()
    with pytest.raises(ModelUnavailable):
        waiting.result(timeout=0)
    with pytest.raises(ModelUnavailable):
        jobs.submit(Priority.VOICE, 60, call=lambda: None).result(timeout=0)
    assert jobs.next_job(timeout_s=0) is None


def test_a_cancelled_future_is_skipped() -> None:
    jobs = JobScheduler(Clock())
    cancelled = jobs.submit(Priority.VOICE, 60, call=lambda: "no")
    kept = jobs.submit(Priority.VOICE, 60, call=lambda: "yes")
    assert cancelled.cancel()
    job = jobs.next_job(timeout_s=0)
    assert job is not None and job.future is kept


def test_close_fails_a_preempted_job_waiting_to_run_again() -> None:
    jobs = JobScheduler(Clock())
    explanation = jobs.submit(Priority.EXPLANATION, 60, request=request(Priority.EXPLANATION))
    running = jobs.next_job(timeout_s=0)
    assert running is not None
    jobs.submit(Priority.VOICE, 60, request=request(Priority.VOICE))
    jobs.requeue(running)  # preempted: back in the queue with its future already running
    jobs.finished(running)
    jobs.close()
    with pytest.raises(ModelUnavailable):
        explanation.result(timeout=0)

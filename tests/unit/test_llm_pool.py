"""The pool client's bookkeeping (pure logic: the transport is a list of what would be published)."""

from __future__ import annotations

import json
import time

import pytest

from edge_slm.errors import ModelTimeout
from edge_slm.llm.api import GenerationRequest
from edge_slm.llm.pool import PooledEngine


def _engine() -> tuple[PooledEngine, list[bytes]]:
    sent: list[bytes] = []

    def publish(topic: str, payload: bytes, response_topic: str, correlation: bytes) -> int:
        sent.append(payload)
        return len(sent)

    return PooledEngine(publish, "edge", "node-1", check_interval_s=0.02), sent


def test_a_request_its_caller_cancelled_does_not_stop_the_deadline_watcher() -> None:
    # the explainer cancels a request past its deadline; the watcher then settles it, and must live on
    engine, _sent = _engine()
    first = engine.submit(GenerationRequest(system="s", user="u", deadline_s=0.1))
    assert first.cancel()
    time.sleep(0.3)
    second = engine.submit(GenerationRequest(system="s", user="u", deadline_s=0.1))
    with pytest.raises(ModelTimeout):
        second.result(timeout=2)
    assert engine.counters()["timed_out"] == 2 and engine.counters()["pending"] == 0
    engine.close()


def test_an_answer_to_a_cancelled_request_is_taken_quietly() -> None:
    engine, sent = _engine()
    future = engine.submit(GenerationRequest(system="s", user="u", deadline_s=10))
    future.cancel()
    request_id = json.loads(sent[0])["id"]
    engine.on_response(json.dumps({"id": request_id, "ok": True, "text": "t"}).encode())  # must not raise
    assert engine.counters()["answered"] == 1 and engine.counters()["pending"] == 0
    engine.close()

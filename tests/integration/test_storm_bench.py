"""The alert-storm benchmark's core (tools/bench_storm.py) on a handful of alerts: a node in pool
mode with two `edge-slm worker` subprocesses over a real Mosquitto explains every alert of a storm
exactly once. The tiny test model keeps it fast (its text fails the quality gate, so the node
sends the knowledge text; the path through the pool is the same)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import llm_fixtures
from tests.mqtt_fixtures import Broker

pytestmark = pytest.mark.skipif(not llm_fixtures.have_llama_cpp(), reason="llama-cpp-python not installed")


def test_a_storm_through_two_workers_loses_and_doubles_nothing(broker: Broker, tmp_path: Path) -> None:
    bench = llm_fixtures.load_tool("bench_storm")
    model = llm_fixtures.make_tiny(tmp_path / "tiny.gguf")
    case = bench.Case("B", workers=2, node_threads=0, worker_threads=1)
    result = bench.run_case(case, broker.port, tmp_path / "b", model, alerts=4, deadline_s=60.0, settle_s=1.0)
    assert result.alerts_fired == 4 and result.explained == 4 and not result.timed_out, result
    assert result.lost == 0 and result.duplicated == 0, result
    assert result.pool.get("answered") == 4 and not result.pool.get("timed_out"), result.pool  # all via the pool

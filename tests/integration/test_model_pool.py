"""Model work pooled across processes through a real Mosquitto (MQTT 5 shared subscription and
request/response): `edge-slm worker` subprocesses with a real llama.cpp model serve a node's
alert explanations; a node without workers falls back in time; a worker killed mid-request loses
no explanation and none is doubled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests import llm_fixtures
from tests.daemon_fixtures import InProcessDaemon, daemon_settings
from tests.mqtt_fixtures import Broker, Recorder, publisher

pytestmark = pytest.mark.skipif(not llm_fixtures.have_llama_cpp(), reason="llama-cpp-python not installed")

COOLANT = "Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature"


def start_worker(tmp_path: Path, port: int, model: Path, name: str) -> subprocess.Popen[bytes]:
    config = tmp_path / f"{name}.toml"
    config.write_text(
        f'node_id = "{name}"\nstate_dir = "{tmp_path / name}"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\n'
        f'[model]\npath = "{model}"\nn_threads = 1\nn_ctx = 1024\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_SLM_")}
    return subprocess.Popen(
        [sys.executable, "-m", "edge_slm", "worker", "--config", str(config), "--profile", "generic"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_capacity(rec: Recorder, name: str, timeout_s: float = 60) -> None:
    assert rec.wait_for(lambda: bool(rec.json_on(f"edge/llm/workers/{name}")), timeout_s), rec.messages[-5:]


def overheat(pub: Any, device: str, t0: float) -> None:
    for i in range(25):
        pub.publish(f"edge/telemetry/{device}", json.dumps({"ts": t0 + i, "signals": {COOLANT: 121.0}}), qos=1)


def pool_node(port: int, state: Path, deadline_s: float) -> Any:
    return daemon_settings(port, state, model={"enabled": True, "mode": "pool", "explain_deadline_s": deadline_s})


def explanations(rec: Recorder) -> list[dict[str, Any]]:
    return [e for t, e in ((t, json.loads(p)) for t, p in rec.messages if t.endswith("/explanation"))]


def test_a_worker_serves_the_nodes_explanations(broker: Broker, tmp_path: Path) -> None:
    model = llm_fixtures.make_tiny(tmp_path / "tiny.gguf")
    rec = Recorder(broker.port, ["edge/#"])
    worker = start_worker(tmp_path, broker.port, model, "worker-a")
    try:
        wait_capacity(rec, "worker-a")
        with InProcessDaemon(pool_node(broker.port, tmp_path / "node", deadline_s=20)) as running:
            pub = publisher(broker.port)
            overheat(pub, "car-1", 1_790_000_000)
            assert rec.wait_for(lambda: len(explanations(rec)) >= 1, 20)
            pool = running.daemon.metrics_snapshot()["engine"]
            pub.loop_stop()
        assert pool["answered"] == 1 and pool["timed_out"] == 0, pool  # the worker answered, in time
        assert len(explanations(rec)) == 1
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(20)
    assert worker.returncode == 0, worker.stderr.read().decode() if worker.stderr else ""
    # a stopped worker withdraws its capacity (empty retained message)
    assert rec.wait_for(lambda: ("edge/llm/workers/worker-a", b"") in rec.messages, 5)
    rec.close()


def test_without_workers_the_node_falls_back_within_its_deadline(broker: Broker, tmp_path: Path) -> None:
    rec = Recorder(broker.port, ["edge/alerts/#"])
    with InProcessDaemon(pool_node(broker.port, tmp_path / "node", deadline_s=2.0)) as running:
        pub = publisher(broker.port)
        overheat(pub, "car-1", 1_790_000_000)
        assert rec.wait_for(lambda: bool(rec.json_on("edge/alerts/car-1")), 10)
        alerted = time.monotonic()
        assert rec.wait_for(lambda: len(explanations(rec)) == 1, 10)
        waited = time.monotonic() - alerted
        pool = running.daemon.metrics_snapshot()["engine"]
        pub.loop_stop()
    assert explanations(rec)[0]["explained_by"] == "template"
    assert waited < 4.0 and pool["timed_out"] == 1 and pool["retried"] == 1, (waited, pool)
    rec.close()


@pytest.mark.slow
def test_a_worker_killed_mid_request_loses_no_explanation(broker: Broker, tmp_path: Path) -> None:
    model = llm_fixtures.smollm2_path()
    assert model is not None, "SmolLM2 is installed by tools/setup.sh"
    rec = Recorder(broker.port, ["edge/#"])
    first = start_worker(tmp_path, broker.port, model, "worker-a")
    second = None
    try:
        wait_capacity(rec, "worker-a")
        with InProcessDaemon(pool_node(broker.port, tmp_path / "node", deadline_s=60)) as running:
            pub = publisher(broker.port)
            overheat(pub, "car-1", 1_790_000_000)
            assert rec.wait_for(lambda: bool(rec.json_on("edge/alerts/car-1")), 10)
            time.sleep(0.3)  # the request has reached worker-a, which is generating
            first.kill()
            first.wait(10)
            second = start_worker(tmp_path, broker.port, model, "worker-b")
            assert rec.wait_for(lambda: len(explanations(rec)) >= 1, 70)
            time.sleep(1.0)  # a duplicate, if any, would arrive now
            pool = running.daemon.metrics_snapshot()["engine"]
            pub.loop_stop()
        got = explanations(rec)
        assert len(got) == 1, got  # explained once, not lost and not doubled
        assert pool["retried"] == 1 and pool["answered"] == 1 and pool["timed_out"] == 0, (pool, rec.messages[-8:])
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
    rec.close()

"""A slow or broken model never holds back an alert (real broker, real llama.cpp, the tiny
random-weight model, which rambles for thousands of tokens: a model that hangs)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests import llm_fixtures
from tests.daemon_fixtures import InProcessDaemon, daemon_settings
from tests.mqtt_fixtures import Broker, Recorder, publisher

pytestmark = pytest.mark.skipif(not llm_fixtures.have_llama_cpp(), reason="llama-cpp-python not installed")
T0 = 1_790_000_000.0


def fault(pub: object, device: str) -> None:
    for i in range(20):
        doc = {"ts": T0 + i, "signals": {"vibration_rms_mm_s": 9.0}}
        pub.publish(f"edge/telemetry/{device}", json.dumps(doc), qos=1)  # type: ignore[attr-defined]


def test_hanging_model_and_deleted_model_file_still_give_alerts_and_templates(
    broker: Broker, state_dir: Path, tmp_path: Path
) -> None:
    model = llm_fixtures.make_tiny(tmp_path / "tiny.gguf")
    settings = daemon_settings(
        broker.port,
        state_dir,
        model={
            "enabled": True,
            "path": str(model),
            "explain_deadline_s": 1.5,
            "explain_max_tokens": 4000,
            "n_ctx": 4096,
        },
    )
    rec = Recorder(broker.port, ["edge/alerts/#"])
    with InProcessDaemon(settings):
        pub = publisher(broker.port)
        started = time.monotonic()
        fault(pub, "pump-h1")
        assert rec.wait_for(lambda: bool(rec.json_on("edge/alerts/pump-h1")), 5)
        assert time.monotonic() - started < 3.0  # the alert did not wait for the model
        alert = rec.json_on("edge/alerts/pump-h1")[0]
        assert rec.wait_for(lambda: bool(rec.json_on("edge/alerts/pump-h1/explanation")), 10)
        explanation = rec.json_on("edge/alerts/pump-h1/explanation")[0]
        assert explanation["id"] == alert["id"] and explanation["explained_by"] == "template"

        model.unlink()  # deleted while running: the loaded (mapped) model is unaffected, alerts flow
        fault(pub, "pump-h2")
        assert rec.wait_for(lambda: bool(rec.json_on("edge/alerts/pump-h2")), 5)
        assert rec.wait_for(lambda: bool(rec.json_on("edge/alerts/pump-h2/explanation")), 10)
        pub.loop_stop()
    rec.close()

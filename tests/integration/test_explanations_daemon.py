"""Fault scenarios through the daemon over a real Mosquitto: the explanation of each alert names the
cause the device's other signals point to, with evidence with numbers (the scenarios and their traces
are those of tools/score_explanations.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from edge_slm.detect.knowledge import load_knowledge
from edge_slm.llm.explain import mentions_value
from tests import llm_fixtures
from tests.daemon_fixtures import InProcessDaemon, daemon_settings
from tests.mqtt_fixtures import Broker, Recorder, publisher

SCORER = llm_fixtures.load_tool("score_explanations")
# multi-signal machine and car faults, an intermittent one, a sensor fault, an anomaly on an unknown signal
NAMES = ("m1-vib-hot-bearing", "c1-coolant-leak", "c9-battery-alternator", "c11-battery-terminal", "m11-bearing-sensor",
         "m17-anomaly-flow-pressure")  # fmt: skip


def test_scenarios_through_the_daemon_name_the_right_cause_with_evidence(broker: Broker, state_dir: Path) -> None:
    knowledge = load_knowledge()
    scenarios = [s for s in SCORER.SCENARIOS if s.name in NAMES]
    assert len(scenarios) == len(NAMES)
    rec = Recorder(broker.port, ["edge/alerts/#", "edge/metrics/#"])
    with InProcessDaemon(daemon_settings(broker.port, state_dir)):
        pub = publisher(broker.port)
        for s in scenarios:
            for ts, signals in SCORER.trace(s):
                pub.publish(f"edge/telemetry/{s.device}", json.dumps({"ts": ts, "signals": signals}), qos=1)

        def first_alert(s: object) -> dict[str, object] | None:
            device = s.device  # type: ignore[attr-defined]
            alerts = [a for a in rec.json_on(f"edge/alerts/{device}") if a.get("rule") == s.rule]  # type: ignore[attr-defined]
            return alerts[0] if alerts else None

        def explained() -> bool:
            ids = {e["id"] for e in rec.json_on("edge/alerts/") if "explained_by" in e}
            return all((a := first_alert(s)) is not None and a["id"] in ids for s in scenarios)

        assert rec.wait_for(explained, 30), [s.name for s in scenarios if first_alert(s) is None]
        for s in scenarios:
            alert = first_alert(s)
            assert alert is not None
            e = next(e for e in rec.json_on(f"edge/alerts/{s.device}/explanation") if e["id"] == alert["id"])
            assert e["explained_by"] == "template" and e["basis"] in ("knowledge", "signals")
            words = SCORER.expected_words(s, knowledge)
            assert any(w in e["cause"].lower() for w in words), (s.name, e["cause"])
            assert e["evidence"] and all(re.search(r"\d", item) for item in e["evidence"]), (s.name, e["evidence"])
            assert mentions_value(e["summary"], float(alert["value"])), (s.name, e["summary"])
            assert 0 < e["confidence"] <= 1 and e["action"].endswith(".")
        assert rec.wait_for(lambda: any("explanations" in m for m in rec.json_on("edge/metrics/")), 5)
        metrics = [m for m in rec.json_on("edge/metrics/") if "explanations" in m][-1]
        assert metrics["explanations"].get("no_engine", 0) >= len(scenarios)
        pub.loop_stop()
    rec.close()

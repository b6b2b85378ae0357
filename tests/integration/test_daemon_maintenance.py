"""Maintenance scenarios through the daemon over a real Mosquitto (issue 17): hours of event
time published in seconds give exactly the alerts of the pure detector, and a device flooding
new signal names cannot blind the detector for another device (issue 15, case 2)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from edge_slm.config import DetectSettings
from edge_slm.detect.scenarios import build_scenarios, run_trace, score
from tests.daemon_fixtures import InProcessDaemon, daemon_settings
from tests.mqtt_fixtures import Broker, Recorder, publisher

COOLANT = "Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature"
SCENARIOS = {"stuck_bearing_sensor", "intermittent_loose_part"}


def alerts_on(rec: Recorder) -> list[dict[str, object]]:
    return [a for a in rec.json_on("edge/alerts/") if "state" in a]


def test_compressed_time_scenarios_alert_exactly_like_the_pure_detector(broker: Broker, state_dir: Path) -> None:
    traces = build_scenarios(names=SCENARIOS)
    expected = []
    for trace in traces:
        alerts, samples, elapsed = run_trace(trace, DetectSettings())
        result = score(trace, alerts, samples, elapsed)
        assert not result.missed and not result.false_alerts, trace.name
        expected += [(a.id, a.device, a.rule, a.state.value) for a in alerts]
    assert len(expected) == 4  # a firing and a resolve per scenario

    rec = Recorder(broker.port, ["edge/alerts/+"])
    with InProcessDaemon(daemon_settings(broker.port, state_dir)):
        pub = publisher(broker.port)
        for trace in traces:  # 2 x 4 h of event time at one sample per 2 s
            for device, ts, signals in trace.messages:
                pub.publish(f"edge/telemetry/{device}", json.dumps({"ts": ts, "signals": signals}), qos=1)
        assert rec.wait_for(lambda: len(alerts_on(rec)) >= len(expected), 60)
        time.sleep(0.5)  # nothing more may arrive
        got = [(a["id"], a["device"], a["rule"], a["state"]) for a in alerts_on(rec)]
        assert sorted(got) == sorted(expected)
        stuck = next(a for a in alerts_on(rec) if a["rule"] == "sensor.stuck" and a["state"] == "firing")
        assert stuck["signal"] == "bearing_temperature_c" and "looks stuck" in str(stuck["summary"])
        pub.loop_stop()
    rec.close()


def test_device_flooding_new_signal_names_cannot_blind_the_coolant_alert(broker: Broker, state_dir: Path) -> None:
    rec = Recorder(broker.port, ["edge/alerts/+", "edge/metrics/+"])
    settings = daemon_settings(broker.port, state_dir)
    with InProcessDaemon(settings) as running:
        pub = publisher(broker.port)
        t0 = 1_790_000_000.0
        for i in range(30):  # 30 s of coolant at 130 °C, each second 1024 new signal names from another device
            pub.publish("edge/telemetry/car-1", json.dumps({"ts": t0 + i, "signals": {COOLANT: 130.0}}), qos=1)
            junk = {f"junk_{i}_{k}": float(k) for k in range(1024)}
            pub.publish("edge/telemetry/evil", json.dumps({"ts": t0 + i, "signals": junk}), qos=1)
        assert rec.wait_for(
            lambda: any(a.get("device") == "car-1" and a.get("rule") == "coolant.overheat" for a in alerts_on(rec)), 30
        )
        detector = running.daemon.detector
        assert rec.wait_for(lambda: detector.refused_series >= 30 * 1024 - settings.detect.max_series_per_device, 30)
        assert detector.tracked_series <= settings.detect.max_series_per_device + 1
        assert detector.evicted_series == 0
        assert rec.wait_for(
            lambda: any(m.get("queues", {}).get("series_refused", 0) > 0 for m in rec.json_on("edge/metrics/")), 10
        )
        pub.loop_stop()
    rec.close()

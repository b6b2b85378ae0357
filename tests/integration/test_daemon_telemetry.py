"""The daemon against a real Mosquitto: telemetry in, exact alerts out."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from tests.daemon_fixtures import InProcessDaemon, daemon_settings, start_subprocess_daemon, terminate, write_config
from tests.mqtt_fixtures import Broker, Recorder, publisher

COOLANT = "Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature"
BATTERY = "Vehicle.LowVoltageBattery.CurrentVoltage"
TIRE = "Vehicle.Chassis.Axle.Row2.Wheel.Right.Tire.Pressure"
SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"


def build_trace(t0: float) -> list[tuple[str, dict[str, object]]]:
    """Four devices, 300 s of event time at 1 Hz, normal noise, one glitch and three faults."""
    rng = random.Random(42)
    msgs: list[tuple[str, dict[str, object]]] = []
    for i in range(300):
        ts = t0 + i
        coolant = 92 + rng.gauss(0, 1.0)
        if 100 <= i < 160:
            coolant = 121 + rng.gauss(0, 0.5)  # critical overheat, then recovery
        if i == 50:
            coolant = 150.0  # single glitch: must raise nothing on its own
        car = {
            COOLANT: round(coolant, 2),
            BATTERY: round(14.0 + rng.gauss(0, 0.05), 2),
            TIRE: round(236 + rng.gauss(0, 1), 1),
        }
        msgs.append(("car-1", {"ts": ts, "signals": car}))
        car2 = {BATTERY: round((11.2 if i >= 200 else 12.6) + rng.gauss(0, 0.03), 2), SOC: 60.0 - i / 100}
        msgs.append(("car-2", {"ts": ts, "signals": car2}))
        vib = 2.0 + rng.gauss(0, 0.2) if i < 120 else 5.6 + rng.gauss(0, 0.2)
        msgs.append(
            (
                "pump-3",
                {
                    "ts": ts,
                    "signals": {"vibration_rms_mm_s": round(vib, 3), "bearing_temperature_c": 61 + rng.gauss(0, 1)},
                },
            )
        )
        msgs.append(
            ("fan-9", {"ts": ts, "signals": {"motor_current_a": round(4.0 + rng.gauss(0, 0.1), 3), "running": True}})
        )
    return msgs


EXPECTED = [
    ("car-1", COOLANT, "coolant.overheat", "critical", "firing"),
    ("car-1", COOLANT, "coolant.overheat", "critical", "resolved"),
    ("car-2", BATTERY, "battery.low_voltage", "warning", "firing"),
    ("pump-3", "vibration_rms_mm_s", "vibration.iso10816", "warning", "firing"),
]


def alert_tuples(recorder: Recorder) -> list[tuple[str, str, str, str, str]]:
    alerts = [a for a in recorder.json_on("edge/alerts/") if "state" in a]
    return sorted((a["device"], a["signal"], a["rule"], a["severity"], a["state"]) for a in alerts)


def test_trace_produces_exact_alerts_and_explanations(broker: Broker, state_dir: Path) -> None:
    rec = Recorder(broker.port, ["edge/#"])
    with InProcessDaemon(daemon_settings(broker.port, state_dir)):
        pub = publisher(broker.port)
        for device, doc in build_trace(1_790_000_000.0):
            pub.publish(f"edge/telemetry/{device}", json.dumps(doc), qos=1)
        assert rec.wait_for(lambda: len(alert_tuples(rec)) >= len(EXPECTED), 20)
        time.sleep(1.0)  # nothing more may arrive
        assert alert_tuples(rec) == sorted(EXPECTED)

        alerts = [a for a in rec.json_on("edge/alerts/") if "state" in a]
        assert set(alerts[0]) >= {
            "id",
            "device",
            "signal",
            "rule",
            "severity",
            "state",
            "value",
            "ts",
            "summary",
            "action",
        }
        firing = {a["id"] for a in alerts if a["state"] == "firing"}
        assert len(firing) == 3
        assert rec.wait_for(lambda: {e["id"] for e in rec.json_on("edge/alerts/") if "explained_by" in e} >= firing, 10)
        explanations = [e for e in rec.json_on("edge/alerts/") if "explained_by" in e]
        assert all(e["explained_by"] == "template" and e["summary"] and e["action"] for e in explanations)
        coolant = next(a for a in alerts if a["rule"] == "coolant.overheat" and a["state"] == "firing")
        assert coolant["value"] > 118 and coolant["ts"] >= 1_790_000_100.0
        pub.loop_stop()
    rec.close()


def test_malformed_burst_is_dead_lettered_and_survived(broker: Broker, state_dir: Path) -> None:
    rec = Recorder(broker.port, ["edge/#"])
    bad_payloads = [
        b"",
        b"\xff\xfe\x00",
        b"{not json",
        b"[]",
        b'{"signals": "x"}',
        b'{"signals": {"a": "hot"}}',
        b'{"ts": "now", "signals": {"a": 1}}',
        b"[" * 50000,
        b'{"signals": {"a": 1e400}}',
        b'{"signals": {"a": NaN}}',
        b"x" * 300_000,
    ]
    with InProcessDaemon(daemon_settings(broker.port, state_dir)) as running:
        pub = publisher(broker.port)
        for _ in range(20):
            for payload in bad_payloads:
                pub.publish("edge/telemetry/pump-1", payload, qos=1)
        n_bad = 20 * len(bad_payloads)
        counters = running.daemon.telemetry.counters
        assert rec.wait_for(lambda: counters.deadlettered >= n_bad, 20)
        time.sleep(0.3)
        letters = rec.json_on("edge/deadletter")
        throttle = running.daemon.deadletters.counters  # dead letters are rate- and byte-limited (issue 15)
        assert len(letters) == throttle.published and throttle.published + throttle.suppressed == n_bad
        assert len(letters) >= 20
        assert all(letter["topic"] == "edge/telemetry/pump-1" and letter["reason"] for letter in letters)
        # still alive and still judging telemetry
        for i in range(40):
            doc = {"ts": 1_790_000_000 + i, "signals": {"vibration_rms_mm_s": 9.5}}
            pub.publish("edge/telemetry/pump-1", json.dumps(doc), qos=1)
        assert rec.wait_for(lambda: any(a.get("rule") == "vibration.iso10816" for a in rec.json_on("edge/alerts/")), 10)
        assert running.daemon.telemetry.counters.deadlettered == n_bad
        pub.loop_stop()
    rec.close()


def test_subprocess_daemon_status_metrics_and_clean_shutdown(broker: Broker, tmp_path: Path) -> None:
    rec = Recorder(broker.port, ["edge/#"])
    config = write_config(tmp_path / "site.toml", broker.port, tmp_path / "state")
    proc = start_subprocess_daemon(config)
    try:
        assert rec.wait_for(lambda: ("edge/status/sub-node", b"online") in rec.messages, 30)
        pub = publisher(broker.port)
        for i in range(30):
            pub.publish(
                "edge/telemetry/car-9", json.dumps({"ts": 1_790_000_000 + i, "signals": {COOLANT: 125.0}}), qos=1
            )
        assert rec.wait_for(lambda: any(a.get("device") == "car-9" for a in rec.json_on("edge/alerts/car-9")), 15)
        assert rec.wait_for(lambda: bool(rec.json_on("edge/metrics/sub-node")), 5)
        metrics = rec.json_on("edge/metrics/sub-node")[-1]
        assert metrics["messages_in"] >= 1 and metrics["rss_bytes"] > 0 and "queues" in metrics
        pub.loop_stop()
    finally:
        code, err = terminate(proc)
    assert code == 0, err
    assert rec.wait_for(
        lambda: (
            rec.messages[-1] == ("edge/status/sub-node", b"offline")
            or ("edge/status/sub-node", b"offline") in rec.messages
        ),
        5,
    )
    rec.close()


def test_invalid_config_exits_3_naming_the_key(tmp_path: Path, broker: Broker) -> None:
    config = write_config(tmp_path / "bad.toml", broker.port, tmp_path / "state", extra="[detect]\ncooldown = 5\n")
    proc = start_subprocess_daemon(config)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 3
    assert "detect.cooldown" in err.decode() and "Traceback" not in err.decode()

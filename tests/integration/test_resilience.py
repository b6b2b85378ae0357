"""Lose nothing: broker crashes and daemon crashes mid-stream (real Mosquitto, real processes)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.daemon_fixtures import InProcessDaemon, daemon_settings, start_subprocess_daemon, terminate, write_config
from tests.mqtt_fixtures import Broker, Recorder, publisher

T0 = 1_790_000_000.0


def fault_trace(devices: int, samples: int, fault_every: int = 2) -> tuple[list[tuple[str, bytes]], set[str]]:
    """pump-k reports vibration at 1 Hz; every `fault_every`-th pump has a 60 s fault."""
    msgs = []
    faulty = set()
    for i in range(samples):
        for k in range(devices):
            device = f"pump-{k}"
            vib = 2.0 + (i % 5) * 0.1
            start = 20 + (k * 7) % 60
            if k % fault_every == 0 and start <= i < start + 60:
                vib = 9.0 + (i % 3) * 0.1
                faulty.add(device)
            msgs.append(
                (
                    f"edge/telemetry/{device}",
                    json.dumps({"ts": T0 + i, "signals": {"vibration_rms_mm_s": vib}}).encode(),
                )
            )
    return msgs, faulty


def firing_by_device(rec: Recorder) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for alert in rec.json_on("edge/alerts/"):
        if alert.get("state") == "firing":
            out.setdefault(alert["device"], set()).add(alert["id"])
    return out


def test_broker_restarted_mid_stream_loses_no_alert(broker: Broker, state_dir: Path) -> None:
    msgs, faulty = fault_trace(devices=20, samples=150)
    rec = Recorder(broker.port, ["edge/alerts/+"], client_id="alert-consumer", persistent=True)
    with InProcessDaemon(daemon_settings(broker.port, state_dir)) as running:
        pub = publisher(broker.port)
        chunk = len(msgs) // 3
        for n, (topic, payload) in enumerate(msgs):
            pub.publish(topic, payload, qos=1)
            if n and n % chunk == 0 and n < len(msgs) - 10:
                deadline = time.monotonic() + 15
                while not pub.is_connected() and time.monotonic() < deadline:
                    time.sleep(0.05)
                # A service restart (SIGTERM: Mosquitto saves its sessions and queues). A SIGKILLed
                # broker loses what it held only in memory, which no client can recover.
                broker.stop()
                time.sleep(1.0)
                broker.start()
        ok = rec.wait_for(lambda: set(firing_by_device(rec)) >= faulty, 60)
        by_device = firing_by_device(rec)
        assert ok, (
            f"missing alerts for {sorted(faulty - set(by_device))}; "
            f"publisher {running.daemon.metrics_snapshot()['publisher']}"
        )
        assert set(by_device) == faulty
        assert all(len(ids) == 1 for ids in by_device.values()), by_device  # retries keep the id
        pub.loop_stop()
    rec.close()


def test_daemon_sigkilled_mid_stream_judges_everything_after_restart(broker: Broker, tmp_path: Path) -> None:
    rec = Recorder(broker.port, ["edge/alerts/+"], client_id="alert-consumer-2", persistent=True)
    config = write_config(tmp_path / "site.toml", broker.port, tmp_path / "state")
    proc = start_subprocess_daemon(config)
    assert rec.wait_for(lambda: False, 0) is False
    status = Recorder(broker.port, ["edge/status/+"])
    assert status.wait_for(lambda: ("edge/status/sub-node", b"online") in status.messages, 30)

    pub = publisher(broker.port)

    def send(device: str, start_s: int, values: list[float]) -> None:
        for i, v in enumerate(values):
            pub.publish(
                f"edge/telemetry/{device}",
                json.dumps({"ts": T0 + start_s + i, "signals": {"vibration_rms_mm_s": v}}),
                qos=1,
            )

    # A fault that starts while the daemon runs...
    send("pump-a", 0, [2.0] * 10 + [9.5] * 30)
    assert rec.wait_for(lambda: "pump-a" in firing_by_device(rec), 15)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    # ...continues and ends while it is down, and another begins and ends entirely while it is down.
    send("pump-a", 40, [9.5] * 10 + [2.0] * 40)
    send("pump-b", 0, [2.0] * 10 + [8.0] * 40 + [2.0] * 40)
    time.sleep(2.0)
    proc = start_subprocess_daemon(config)
    try:

        def complete() -> bool:
            alerts = rec.json_on("edge/alerts/")
            states = {(a["device"], a["state"]) for a in alerts}
            return {
                ("pump-a", "firing"),
                ("pump-a", "resolved"),
                ("pump-b", "firing"),
                ("pump-b", "resolved"),
            } <= states

        assert rec.wait_for(complete, 30), rec.json_on("edge/alerts/")
        by_device = firing_by_device(rec)
        assert len(by_device["pump-a"]) == 1 and len(by_device["pump-b"]) == 1
        resolved_a = [a for a in rec.json_on("edge/alerts/") if a["device"] == "pump-a" and a["state"] == "resolved"]
        assert {a["id"] for a in resolved_a} == by_device["pump-a"]  # the restart resolved the same alert
    finally:
        code, err = terminate(proc)
        pub.loop_stop()
        rec.close()
        status.close()
    assert code == 0, err


def test_outbox_unusable_daemon_still_publishes(broker: Broker, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")  # the state dir is a file: the outbox cannot be created
    rec = Recorder(broker.port, ["edge/alerts/+"])
    with InProcessDaemon(daemon_settings(broker.port, blocker)) as running:
        assert running.daemon.outbox is None
        pub = publisher(broker.port)
        for i in range(20):
            pub.publish(
                "edge/telemetry/pump-z", json.dumps({"ts": T0 + i, "signals": {"vibration_rms_mm_s": 9.0}}), qos=1
            )
        assert rec.wait_for(lambda: "pump-z" in firing_by_device(rec), 10)
        pub.loop_stop()
    rec.close()


def test_outbox_turning_read_only_mid_run_is_counted_not_fatal(broker: Broker, state_dir: Path) -> None:
    rec = Recorder(broker.port, ["edge/alerts/+"])
    with InProcessDaemon(daemon_settings(broker.port, state_dir)) as running:
        assert running.daemon.outbox is not None
        running.daemon.outbox._db.execute("PRAGMA query_only = 1")  # every write now fails
        pub = publisher(broker.port)
        for i in range(20):
            pub.publish(
                "edge/telemetry/pump-r", json.dumps({"ts": T0 + i, "signals": {"vibration_rms_mm_s": 9.0}}), qos=1
            )
        assert rec.wait_for(lambda: "pump-r" in firing_by_device(rec), 10)
        assert running.daemon.publisher.counters.outbox_errors >= 1
        pub.loop_stop()
    rec.close()


def test_restart_keeps_what_the_anomaly_detector_learned(broker: Broker, state_dir: Path) -> None:
    rec = Recorder(broker.port, ["edge/alerts/+"])
    settings = daemon_settings(broker.port, state_dir)
    pub = publisher(broker.port)

    def send(start: int, values: list[float]) -> None:
        for i, v in enumerate(values):
            pub.publish(
                "edge/telemetry/press-1", json.dumps({"ts": T0 + start + i, "signals": {"pressure_bar": v}}), qos=1
            )

    learn = 700  # the adaptive detector learns 600 s of event time before it judges (issue 17)
    with InProcessDaemon(settings):
        send(0, [50.0 + (i % 5) * 0.1 for i in range(learn)] + [70.0] * 10)
        assert rec.wait_for(lambda: any(a["state"] == "firing" for a in rec.json_on("edge/alerts/press-1")), 10)
    with InProcessDaemon(settings):  # restarted: the fault continues, then the signal recovers
        send(learn + 10, [70.0] * 10 + [50.0 + (i % 5) * 0.1 for i in range(30)])
        assert rec.wait_for(lambda: any(a["state"] == "resolved" for a in rec.json_on("edge/alerts/press-1")), 10)
    alerts = rec.json_on("edge/alerts/press-1")
    assert [a["state"] for a in alerts] == ["firing", "resolved"] and alerts[0]["id"] == alerts[1]["id"]
    pub.loop_stop()
    rec.close()


def test_broker_crash_that_loses_sessions_gets_recent_alerts_again(broker: Broker, state_dir: Path) -> None:
    # The consumer has a persistent session but is offline when the alert goes out; the broker
    # queues it for them, then is SIGKILLed and forgets everything.
    Recorder(broker.port, ["edge/alerts/+"], client_id="late-consumer", persistent=True).close()
    with InProcessDaemon(daemon_settings(broker.port, state_dir)) as running:
        pub = publisher(broker.port)
        for i in range(20):
            pub.publish(
                "edge/telemetry/pump-k", json.dumps({"ts": T0 + i, "signals": {"vibration_rms_mm_s": 9.0}}), qos=1
            )
        deadline = time.monotonic() + 10
        while running.daemon.publisher.counters.acked < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert running.daemon.publisher.counters.acked >= 1
        pub.loop_stop()
        broker.kill()
        broker.start()
        rec = Recorder(broker.port, ["edge/alerts/+"], client_id="late-consumer", persistent=True)
        assert rec.wait_for(lambda: "pump-k" in firing_by_device(rec), 15)
        alert = next(a for a in rec.json_on("edge/alerts/") if a.get("device") == "pump-k")
        assert alert["replayed"] is True and alert["rule"] == "vibration.iso10816"
        assert running.daemon.publisher.counters.redelivered >= 1
        rec.close()


def test_acknowledged_alerts_kept_for_redelivery_are_purged(
    broker: Broker, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edge_slm.bus import publisher as publisher_module

    monkeypatch.setattr(publisher_module, "REDELIVER_WINDOW_S", 0.5)
    monkeypatch.setattr(publisher_module, "PURGE_INTERVAL_S", 0.0)
    with InProcessDaemon(daemon_settings(broker.port, state_dir)) as running:
        pub = publisher(broker.port)
        for k in range(5):
            for i in range(15):
                doc = {"ts": T0 + i, "signals": {"vibration_rms_mm_s": 9.0}}
                pub.publish(f"edge/telemetry/pump-p{k}", json.dumps(doc), qos=1)
            time.sleep(0.6)
        deadline = time.monotonic() + 10
        outbox = running.daemon.outbox
        assert outbox is not None
        while running.daemon.publisher.counters.acked < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert outbox.depth <= 4, outbox.depth  # only the last round is still kept
        assert running.daemon.publisher.backlog == 0
        pub.loop_stop()


def test_corrupt_outbox_is_moved_aside_and_replaced(broker: Broker, state_dir: Path) -> None:
    (state_dir / "outbox.sqlite3").write_bytes(b"not a database at all" * 200)
    rec = Recorder(broker.port, ["edge/alerts/+"])
    with InProcessDaemon(daemon_settings(broker.port, state_dir)) as running:
        assert running.daemon.outbox is not None
        assert list(state_dir.glob("outbox.sqlite3.corrupt-*"))
        pub = publisher(broker.port)
        for i in range(20):
            pub.publish(
                "edge/telemetry/pump-c", json.dumps({"ts": T0 + i, "signals": {"vibration_rms_mm_s": 9.0}}), qos=1
            )
        assert rec.wait_for(lambda: "pump-c" in firing_by_device(rec), 10)
        pub.loop_stop()
    rec.close()

#!/usr/bin/env python3
"""Ingest benchmark (not a test): the daemon's telemetry path against a bare paho
subscriber that only json-decodes, on the same private Mosquitto in the same run, plus
alert latency under background load.

    .venv/bin/python tools/bench_ingest.py [--messages 50000] [--rate 1000]

Prints throughput of both, their ratio (target >= 0.7), and alert latency p50/p99 from
publishing the deciding sample to receiving the alert under --rate msg/s of background
telemetry (target p99 <= 20 ms).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from daemon_fixtures import InProcessDaemon, daemon_settings
from mqtt_fixtures import start_broker

from edge_slm.broker import free_port


def payloads(n: int, devices: int = 50) -> list[tuple[str, bytes]]:
    out = []
    t0 = 1_790_000_000.0
    for i in range(n):
        device = f"pump-{i % devices}"
        doc = {
            "ts": t0 + i // devices,
            "signals": {
                "vibration_rms_mm_s": 2.0 + (i % 7) * 0.05,
                "bearing_temperature_c": 60.0 + (i % 5) * 0.2,
                "motor_current_a": 11.0 + (i % 3) * 0.1,
                "flow_l_min": 300.0 + (i % 11),
            },
        }
        out.append((f"edge/telemetry/{device}", json.dumps(doc).encode()))
    return out


def blast(port: int, msgs: list[tuple[str, bytes]], qos: int) -> None:
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{time.monotonic_ns()}")
    pub.max_inflight_messages_set(1000)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    infos = [pub.publish(topic, payload, qos=qos) for topic, payload in msgs]
    for info in infos[-1:]:
        info.wait_for_publish(60)
    pub.loop_stop()
    pub.disconnect()


def _persistent_subscriber(port: int, client_id: str) -> mqtt.Client:
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    sub.connect("127.0.0.1", port)
    sub.subscribe("edge/telemetry/+", qos=1)
    sub.loop_start()
    time.sleep(0.3)
    return sub


def bare_subscriber_rate(port: int, msgs: list[tuple[str, bytes]]) -> float:
    """Messages are queued at the broker first, then drained: this measures the consumer
    alone, not the publisher."""
    client_id = f"bench-bare-{time.monotonic_ns()}"
    sub = _persistent_subscriber(port, client_id)
    sub.loop_stop()
    sub.disconnect()
    blast(port, msgs, qos=1)
    done = threading.Event()
    count = 0

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        nonlocal count
        json.loads(msg.payload)
        count += 1
        if count == len(msgs):
            done.set()

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    sub.on_message = on_message
    started = time.perf_counter()
    sub.connect("127.0.0.1", port)
    sub.loop_start()
    done.wait(300)
    elapsed = time.perf_counter() - started
    sub.loop_stop()
    sub.disconnect()
    return count / elapsed


def daemon_rate(port: int, state: Path, msgs: list[tuple[str, bytes]]) -> float:
    """Same shape: the daemon's persistent session collects the messages while it is stopped,
    then the daemon is started and drains them."""
    settings = daemon_settings(port, state, node_id="bench")
    with InProcessDaemon(settings):
        pass  # registers the persistent session and its subscription
    blast(port, msgs, qos=1)
    started = time.perf_counter()
    with InProcessDaemon(settings) as running:
        counters = running.daemon.telemetry.counters
        deadline = time.monotonic() + 300
        while counters.messages < len(msgs) and time.monotonic() < deadline:
            time.sleep(0.001)
        elapsed = time.perf_counter() - started
        return counters.messages / elapsed


def alert_latency(port: int, state: Path, rate: float, faults: int) -> list[float]:
    received: dict[str, float] = {}
    lock = threading.Lock()

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        doc = json.loads(msg.payload)
        if doc.get("state") == "firing":
            with lock:
                received.setdefault(doc["device"], time.perf_counter())

    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-watch-{time.monotonic_ns()}")
    watcher.on_message = on_message
    watcher.connect("127.0.0.1", port)
    watcher.subscribe("edge/alerts/+", qos=1)
    watcher.loop_start()
    latencies: list[float] = []
    with InProcessDaemon(daemon_settings(port, state, node_id="bench-lat")):
        stop = threading.Event()

        def background() -> None:
            pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-bg-{time.monotonic_ns()}")
            pub.connect("127.0.0.1", port)
            pub.loop_start()
            msgs = payloads(200_000)
            interval = 1.0 / rate
            next_t = time.perf_counter()
            for topic, payload in msgs:
                if stop.is_set():
                    break
                pub.publish(topic, payload, qos=1)
                next_t += interval
                delay = next_t - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            pub.loop_stop()

        bg = threading.Thread(target=background, daemon=True)
        bg.start()
        time.sleep(2.0)
        probe = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-probe-{time.monotonic_ns()}")
        probe.connect("127.0.0.1", port)
        probe.loop_start()
        for k in range(faults):
            device = f"lat-{k}"
            t0 = 1_790_000_000.0
            probe.publish(
                f"edge/telemetry/{device}", json.dumps({"ts": t0, "signals": {"vibration_rms_mm_s": 9.0}}), qos=1
            )
            time.sleep(0.05)
            sent = time.perf_counter()  # the second sample completes for_s = 10 s of event time
            probe.publish(
                f"edge/telemetry/{device}", json.dumps({"ts": t0 + 10.0, "signals": {"vibration_rms_mm_s": 9.0}}), qos=1
            )
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                with lock:
                    if device in received:
                        latencies.append((received[device] - sent) * 1000)
                        break
                time.sleep(0.0005)
        stop.set()
        probe.loop_stop()
    watcher.loop_stop()
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--faults", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        broker = start_broker(Path(tmp) / "broker", free_port())
        try:
            msgs = payloads(args.messages)
            bare = bare_subscriber_rate(broker.port, msgs)
            ours = daemon_rate(broker.port, Path(tmp) / "state", msgs)
            print(f"bare paho subscriber (json only): {bare:10.0f} msg/s")
            print(f"edge-slm daemon (decode+detect):  {ours:10.0f} msg/s")
            print(f"ratio daemon / bare:              {ours / bare:10.2f}   (target >= 0.70)")
            lat = alert_latency(broker.port, Path(tmp) / "state-lat", args.rate, args.faults)
            if lat:
                lat.sort()
                p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
                print(
                    f"alert latency under {args.rate:.0f} msg/s: n={len(lat)} "
                    f"p50={statistics.median(lat):.2f} ms p99={p99:.2f} ms (target p99 <= 20 ms)"
                )
            else:
                print("alert latency: no alerts received")
        finally:
            broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

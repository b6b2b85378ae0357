#!/usr/bin/env python3
"""Ingest benchmark (not a test): the daemon's telemetry path against a bare paho subscriber
that only json-decodes, on the same private Mosquitto in the same run.

    PYTHONPATH=$PWD nice -n 10 .venv/bin/python tools/bench_ingest.py [--messages 30000] [--rounds 1]
        [--steady 1000,4000] [--steady-s 5] [--rate 1000] [--faults 100]

Scenarios (each consumer measured alone, with the publisher in a separate process):
  drain   the broker holds --messages for the consumer's persistent session; the consumer
          connects and drains them: throughput from its first message to its last one handled.
  steady  a publisher process sends at a fixed rate for --steady-s seconds: messages received,
          and CPU of the consumer per 1,000 msg/s (CPU seconds per second; 1.0 = one core).
  burst   the issue's scenario: a publisher process sends --burst messages from 200 devices as
          fast as it can, then a QoS 1 vibration fault on one more device, to a broker with
          Mosquitto's default queue (max_queued_messages 1000): how many arrived, whether the
          fault's alert did, and what the daemon counted as lost.
  latency alert latency p50/p95/p99 from publishing the deciding sample to receiving the alert,
          with --rate msg/s of background telemetry (target p99 <= 10 ms); the daemon runs as its
          own `edge-slm run` process here, so the bench's own clients do not share its interpreter.
Prints the daemon / bare ratio (target >= 0.9) for each.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from daemon_fixtures import InProcessDaemon, daemon_settings, start_subprocess_daemon, terminate, write_config
from mqtt_fixtures import start_broker

from edge_slm.broker import free_port


def payloads(n: int, devices: int = 50, start: int = 0) -> list[tuple[str, bytes]]:
    out = []
    t0 = 1_790_000_000.0
    for i in range(start, start + n):
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
        info.wait_for_publish(120)
    pub.loop_stop()
    pub.disconnect()


def run_publisher_process(port: int, rate: float, seconds: float, start: int) -> subprocess.Popen[bytes]:
    """A separate process, so its CPU is not the consumer's."""
    cmd = [sys.executable, __file__, "--_publish", f"{port},{rate},{seconds},{start}"]
    return subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


def _publish_main(spec: str) -> int:
    port_s, rate_s, seconds_s, start_s = spec.split(",")
    rate, seconds = float(rate_s), float(seconds_s)
    if rate <= 0:  # a burst: `seconds` is the message count, sent as fast as one client can, then a fault
        msgs = payloads(int(seconds), devices=200, start=int(start_s))
        t0 = 1_790_000_000.0
        msgs += [
            ("edge/telemetry/press-7", json.dumps({"ts": t0 + dt, "signals": {"vibration_rms_mm_s": 9.0}}).encode())
            for dt in (0.0, 5.0, 11.0)
        ]
    else:
        msgs = payloads(int(rate * seconds), start=int(start_s))
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-steady-{time.monotonic_ns()}")
    pub.max_inflight_messages_set(1000)
    pub.connect("127.0.0.1", int(port_s))
    pub.loop_start()
    interval = 1.0 / rate if rate > 0 else 0.0
    next_t = time.perf_counter()
    info = None
    for topic, payload in msgs:
        info = pub.publish(topic, payload, qos=1)
        if interval:
            next_t += interval
            delay = next_t - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
    if info is not None:
        info.wait_for_publish(60)
    pub.loop_stop()
    pub.disconnect()
    return 0


class Consumer:
    """Counts handled telemetry; records the first receipt and the last handling time."""

    def __init__(self) -> None:
        self.count = 0
        self.first_ts = 0.0
        self.last_ts = 0.0
        self.lock = threading.Lock()

    def seen(self, received_ts: float) -> None:
        if not self.count:
            self.first_ts = received_ts
        self.count += 1
        self.last_ts = time.time()

    def wait(self, n: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.count < n and time.monotonic() < deadline:
            time.sleep(0.01)

    def rate(self) -> float:
        return self.count / max(1e-9, self.last_ts - self.first_ts)


class BareSubscriber:
    def __init__(self, port: int, client_id: str, on_json: Callable[[float], None]) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)

        def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
            received = time.time()
            json.loads(msg.payload)
            on_json(received)

        def on_connect(client: mqtt.Client, *args: Any) -> None:
            client.subscribe("edge/telemetry/+", qos=1)

        self.client.on_message = on_message
        self.client.on_connect = on_connect
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        time.sleep(0.3)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def start_daemon(port: int, state: Path, consumer: Consumer, node_id: str) -> InProcessDaemon:
    return build_daemon(port, state, consumer, node_id).__enter__()


def build_daemon(port: int, state: Path, consumer: Consumer, node_id: str) -> InProcessDaemon:
    """The daemon built (rules, knowledge, outbox, state loaded), not yet started."""
    running = InProcessDaemon(daemon_settings(port, state, node_id=node_id))
    pipeline = running.daemon.telemetry
    handle = pipeline.handle

    def counted(topic: str, payload: bytes, received_ts: float) -> None:
        handle(topic, payload, received_ts)
        consumer.seen(received_ts)

    pipeline.handle = counted  # type: ignore[method-assign]
    return running


def forget_session(port: int, client_id: str) -> None:
    """Delete a drained consumer's persistent session: left behind, the broker would queue every later
    round's backlog for it too (and drop past max_queued_messages), slowing the rounds that follow.
    An MQTT 5 clean start with no session expiry ends whatever session the id had, 3.1.1 or 5."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port, clean_start=True)
    client.loop_start()
    time.sleep(0.1)
    client.loop_stop()
    client.disconnect()


def drain(port: int, tmp: Path, msgs: list[tuple[str, bytes]], which: str) -> tuple[float, float]:
    """(msg/s, CPU seconds per 1,000 messages) draining a backlog held by the broker."""
    consumer = Consumer()
    client_id = f"bench-{which}-{time.monotonic_ns()}"
    if which == "bare":
        BareSubscriber(port, client_id, lambda ts: None).close()  # registers the session
        blast(port, msgs, qos=1)
        cpu0 = time.process_time()
        sub = BareSubscriber(port, client_id, consumer.seen)
        consumer.wait(len(msgs), 300)
        cpu = time.process_time() - cpu0
        sub.close()
        forget_session(port, client_id)
    else:
        state = tmp / client_id
        start_daemon(port, state, Consumer(), client_id).stop()  # registers the session
        blast(port, msgs, qos=1)
        running = build_daemon(port, state, consumer, client_id)  # building it is start-up, not ingest
        cpu0 = time.process_time()
        running.__enter__()
        consumer.wait(len(msgs), 300)
        cpu = time.process_time() - cpu0
        running.stop()
        forget_session(port, running.daemon.bus.client_id)
    return consumer.rate(), cpu / consumer.count * 1_000_000


def steady(port: int, tmp: Path, rate: float, seconds: float, which: str, start: int) -> tuple[int, int, float]:
    """(sent, handled, CPU fraction of one core per 1,000 msg/s) at a fixed publish rate."""
    consumer = Consumer()
    client_id = f"bench-steady-{which}-{time.monotonic_ns()}"
    stop: Callable[[], None]
    if which == "bare":
        sub = BareSubscriber(port, client_id, consumer.seen)
        stop = sub.close
    else:
        running = start_daemon(port, tmp / client_id, consumer, client_id)
        stop = running.stop
    sent = int(rate * seconds)
    cpu0 = time.process_time()
    proc = run_publisher_process(port, rate, seconds, start)
    proc.wait(seconds * 4 + 60)
    consumer.wait(sent, 10)
    cpu = time.process_time() - cpu0
    stop()
    # CPU seconds per 1,000 messages = the share of one core that 1,000 msg/s costs.
    return sent, consumer.count, cpu / max(1, consumer.count) * 1000


def burst(tmp: Path, count: int, which: str) -> str:
    """One consumer against a fresh broker with Mosquitto's default per-client queue."""
    broker = start_broker(
        tmp / f"broker-burst-{which}", free_port(), extra_conf="max_queued_messages 1000\nsys_interval 1"
    )
    alerts: list[str] = []
    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-burst-watch-{time.monotonic_ns()}")
    watcher.on_message = lambda c, u, m: alerts.append(json.loads(m.payload).get("device", ""))
    watcher.connect("127.0.0.1", broker.port)
    watcher.subscribe("edge/alerts/+", qos=1)
    watcher.loop_start()
    consumer = Consumer()
    running: InProcessDaemon | None = None
    try:
        if which == "bare":
            sub = BareSubscriber(broker.port, f"bench-burst-bare-{time.monotonic_ns()}", consumer.seen)
        else:
            running = start_daemon(broker.port, tmp / f"burst-{which}", consumer, f"bench-burst-{which}")
        sent = count + 3
        proc = run_publisher_process(broker.port, 0, count, 0)
        proc.wait(600)
        last, still_s = -1, 0.0
        while still_s < 3.0 and consumer.count < sent:  # settled: nothing new for 3 s
            time.sleep(0.5)
            still_s = still_s + 0.5 if consumer.count == last else 0.0
            last = consumer.count
        time.sleep(2.0)  # alerts and the broker's $SYS report
        line = f"{consumer.count}/{sent} arrived ({consumer.rate():.0f} msg/s)"
        if running is not None:
            line += f", fault alert: {'yes' if 'press-7' in alerts else 'NO'}"
            metrics = running.daemon.metrics_snapshot()
            ingest = metrics.get("ingest")
            if ingest:
                line += (
                    f", counted lost: inbox {ingest['inbox_dropped']}, broker {ingest.get('broker_dropped', 'n/a')}"
                    f", inbox high-water {ingest['inbox_high_water']}, behind episodes {ingest['behind_episodes']}"
                )
            else:
                line += f", counted lost: inbox {metrics['queues']['inbound_dropped']} (no broker count)"
            running.stop()
        else:
            sub.close()
        return line
    finally:
        watcher.loop_stop()
        broker.stop()


def alert_latency(port: int, state: Path, rate: float, faults: int) -> list[float]:
    """Deciding sample published -> firing alert received, in ms. The daemon runs as its own process
    (`edge-slm run`), as on a gateway: publishers and the watcher here do not share its interpreter."""
    received: dict[str, float] = {}
    lock = threading.Lock()

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.startswith("edge/status/"):
            with lock:
                received["status:" + msg.payload.decode()] = time.perf_counter()
            return
        doc = json.loads(msg.payload)
        if doc.get("state") == "firing":
            with lock:
                received.setdefault(doc["device"], time.perf_counter())

    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-watch-{time.monotonic_ns()}")
    watcher.on_message = on_message
    watcher.connect("127.0.0.1", port)
    watcher.subscribe([("edge/alerts/+", 1), ("edge/status/sub-node", 1)])  # write_config's node id
    watcher.loop_start()
    state.mkdir(parents=True, exist_ok=True)
    config = write_config(state / "daemon.toml", port, state / "state")
    daemon = start_subprocess_daemon(config)
    latencies: list[float] = []
    try:
        deadline = time.monotonic() + 30
        while "status:online" not in received and time.monotonic() < deadline and daemon.poll() is None:
            time.sleep(0.05)
        background = run_publisher_process(port, rate, faults * 0.06 + 10, 10_000_000)
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
        background.kill()
        background.wait()
        probe.loop_stop()
    finally:
        terminate(daemon)
        watcher.loop_stop()
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=1, help="drain rounds, bare and daemon alternating")
    parser.add_argument("--steady", default="1000,4000", help="comma-separated publish rates, msg/s")
    parser.add_argument("--steady-s", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=1000.0, help="background rate for the latency test")
    parser.add_argument("--faults", type=int, default=300, help="faults timed in the latency test")
    parser.add_argument("--burst", type=int, default=30_000, help="messages in the burst scenario (0: skip)")
    parser.add_argument(
        "--broker-nagle", action="store_true", help="leave Mosquitto's set_tcp_nodelay at its default (false)"
    )
    parser.add_argument("--_publish", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._publish:
        return _publish_main(args._publish)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        # the README's site setting; --broker-nagle measures Mosquitto's default instead
        broker = start_broker(tmp / "broker", free_port(), "" if args.broker_nagle else "set_tcp_nodelay true")
        try:
            msgs = payloads(args.messages)
            print(f"drain of {args.messages} queued messages (msg/s; CPU ms per 1,000 messages):")
            ratios, cpu_ratios = [], []
            for _ in range(args.rounds):  # alternating, so a noisy neighbour hits both sides alike
                bare, bare_cpu = drain(broker.port, tmp, msgs, "bare")
                ours, ours_cpu = drain(broker.port, tmp, msgs, "daemon")
                ratios.append(ours / bare)
                cpu_ratios.append(ours_cpu / bare_cpu)
                print(f"  bare paho subscriber (json only): {bare:8.0f} msg/s  {bare_cpu:6.1f} ms CPU/1k")
                print(f"  edge-slm daemon (decode+detect):  {ours:8.0f} msg/s  {ours_cpu:6.1f} ms CPU/1k")
                print(f"  ratio daemon / bare:              {ours / bare:8.2f}   (target >= 0.90)")
            if args.rounds > 1:
                print(
                    f"  median of {args.rounds} rounds: throughput ratio {statistics.median(ratios):.2f} "
                    f"(range {min(ratios):.2f}-{max(ratios):.2f}), CPU ratio {statistics.median(cpu_ratios):.2f}"
                )
            start = 1_000_000
            for rate in (float(r) for r in args.steady.split(",") if r):
                print(f"steady {rate:.0f} msg/s for {args.steady_s:.0f} s (received; CPU of one core per 1,000 msg/s):")
                for which in ("bare", "daemon"):
                    sent, got, cpu = steady(broker.port, tmp, rate, args.steady_s, which, start)
                    start += sent
                    print(f"  {which:6s}: {got}/{sent} received, {cpu:.3f} core per 1,000 msg/s")
            if args.burst:
                print(f"burst of {args.burst} + a fault, broker queue 1000 (Mosquitto's default):")
                for which in ("bare", "daemon"):
                    print(f"  {which:6s}: {burst(tmp, args.burst, which)}")
            lat = alert_latency(broker.port, tmp / "state-lat", args.rate, args.faults)
            if lat:
                lat.sort()
                p95, p99 = (lat[min(len(lat) - 1, int(len(lat) * q))] for q in (0.95, 0.99))
                print(
                    f"alert latency under {args.rate:.0f} msg/s: n={len(lat)}/{args.faults} "
                    f"p50={statistics.median(lat):.2f} ms p95={p95:.2f} ms p99={p99:.2f} ms max={lat[-1]:.2f} ms "
                    "(target p99 <= 10 ms; with fewer than 100 faults p99 is the maximum)"
                )
            else:
                print("alert latency: no alerts received")
        finally:
            broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

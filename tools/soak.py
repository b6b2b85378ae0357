#!/usr/bin/env python3
"""Soak benchmark (not a test): a steady telemetry stream with periodic faults and a broker
restart in the middle, against the daemon on a private Mosquitto. Prints, every interval,
throughput, RSS, queue depths and alerts, then RSS growth from the first to the last report.

    .venv/bin/python tools/soak.py --messages 1000000 --rate 2000
"""

from __future__ import annotations

import argparse
import json
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
from edge_slm.metrics import rss_bytes

DEVICES = 200


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=2000.0, help="messages per second")
    parser.add_argument("--report-s", type=float, default=30.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        broker = start_broker(Path(tmp) / "broker", free_port())
        alerts = {"firing": 0, "resolved": 0}

        def on_alert(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
            doc = json.loads(msg.payload)
            if "state" in doc:
                alerts[doc["state"]] += 1

        watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="soak-watch", clean_session=False)
        watcher.on_message = on_alert
        watcher.on_connect = lambda c, u, f, rc, p: c.subscribe("edge/alerts/+", qos=1)
        watcher.connect("127.0.0.1", broker.port)
        watcher.loop_start()
        with InProcessDaemon(daemon_settings(broker.port, Path(tmp) / "state", node_id="soak")) as running:
            daemon = running.daemon
            pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="soak-pub")
            pub.max_queued_messages_set(0)
            pub.connect("127.0.0.1", broker.port)
            pub.loop_start()
            sent = 0
            restarted = False

            def produce() -> None:
                nonlocal sent, restarted
                interval = 1.0 / args.rate
                next_t = time.perf_counter()
                t0 = 1_790_000_000.0
                for i in range(args.messages):
                    k = i % DEVICES
                    step = i // DEVICES
                    vib = 2.0 + (step % 7) * 0.05
                    if (step + k * 37) % 600 < 40:  # each device: a 40 s fault every 10 min of event time
                        vib = 8.5
                    doc = {"ts": t0 + step, "signals": {"vibration_rms_mm_s": vib, "flow_l_min": 300.0 + (step % 13)}}
                    pub.publish(f"edge/telemetry/pump-{k}", json.dumps(doc), qos=1)
                    sent += 1
                    if not restarted and i >= args.messages // 2:
                        restarted = True
                        broker.stop()
                        time.sleep(2.0)
                        broker.start()
                    next_t += interval
                    delay = next_t - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)

            producer = threading.Thread(target=produce, daemon=True)
            started = time.perf_counter()
            producer.start()
            first_rss = rss_bytes()
            last_count, last_t = 0, started
            columns = ("t_s", 6), ("sent", 9), ("judged", 9), ("msg/s", 7), ("rss_MB", 7), ("inbox", 6), ("outbox", 6)
            columns += ("series", 6), ("firing", 6), ("resolved", 8)
            print(" ".join(f"{name:>{width}}" for name, width in columns))
            while producer.is_alive() or daemon.telemetry.counters.messages < sent:
                time.sleep(args.report_s)
                now = time.perf_counter()
                judged = daemon.telemetry.counters.messages
                rate = (judged - last_count) / (now - last_t)
                last_count, last_t = judged, now
                row = (now - started, sent, judged, rate, rss_bytes() / 2**20, daemon.bus.inbox_depth)
                row += (daemon.publisher.backlog, daemon.detector.tracked_series, alerts["firing"], alerts["resolved"])
                formats = (".0f", "d", "d", ".0f", ".1f", "d", "d", "d", "d", "d")
                print(" ".join(f"{v:>{w}{f}}" for v, (_, w), f in zip(row, columns, formats, strict=True)), flush=True)
                if not producer.is_alive() and now - started > 3600:
                    break
            growth = (rss_bytes() - first_rss) / 2**20
            print(
                f"done: {sent} sent, {daemon.telemetry.counters.messages} judged, "
                f"dead letters {daemon.telemetry.counters.deadlettered}, RSS growth {growth:+.1f} MB"
            )
            pub.loop_stop()
        watcher.loop_stop()
        broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

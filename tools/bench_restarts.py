#!/usr/bin/env python3
"""Broker restarts during a telemetry stream (a benchmark, not a test): N messages carrying F
injected faults, the broker restarted R times mid-stream; a persistent-session subscriber must
receive one firing alert per fault (ids stable across retries).

    .venv/bin/python tools/bench_restarts.py --messages 10000 --faults 50 --restarts 5 [--kill]

--kill sends SIGKILL instead of SIGTERM; a SIGKILLed Mosquitto loses what it held only in memory
(queued telemetry and undelivered alerts), which no client can recover, so --kill first waits for
the daemon to drain and the subscriber to catch up before each kill.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from daemon_fixtures import InProcessDaemon, daemon_settings
from mqtt_fixtures import Recorder, publisher, start_broker

from edge_slm.broker import free_port

T0 = 1_790_000_000.0


def trace(messages: int, faults: int) -> tuple[list[tuple[str, bytes]], set[str]]:
    devices = faults  # one fault per device, at staggered times
    samples = max(120, messages // devices)
    msgs, faulty = [], set()
    for i in range(samples):
        for k in range(devices):
            start = 20 + (k * 13) % max(1, samples - 80)
            vib = 9.0 if start <= i < start + 40 else 2.0 + (i % 5) * 0.1
            if vib > 5:
                faulty.add(f"pump-{k}")
            doc = {"ts": T0 + i, "signals": {"vibration_rms_mm_s": vib}}
            msgs.append((f"edge/telemetry/pump-{k}", json.dumps(doc).encode()))
    return msgs[:messages] if len(msgs) > messages else msgs, faulty


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--faults", type=int, default=50)
    parser.add_argument("--restarts", type=int, default=5)
    parser.add_argument("--kill", action="store_true")
    args = parser.parse_args()
    msgs, faulty = trace(args.messages, args.faults)
    with tempfile.TemporaryDirectory() as tmp:
        broker = start_broker(Path(tmp) / "broker", free_port())
        rec = Recorder(broker.port, ["edge/alerts/+"], client_id="bench-alert-consumer", persistent=True)
        started = time.perf_counter()
        with InProcessDaemon(daemon_settings(broker.port, Path(tmp) / "state", node_id="bench")) as running:
            pub = publisher(broker.port)
            every = len(msgs) // (args.restarts + 1)
            for n, (topic, payload) in enumerate(msgs, start=1):
                pub.publish(topic, payload, qos=1)
                if n % every == 0 and n < len(msgs):
                    while not pub.is_connected():
                        time.sleep(0.05)
                    if args.kill:
                        deadline = time.monotonic() + 60
                        while running.daemon.telemetry.counters.messages < n and time.monotonic() < deadline:
                            time.sleep(0.05)
                        time.sleep(1.0)
                        broker.kill()
                    else:
                        broker.stop()
                    time.sleep(1.0)
                    broker.start()
            firing: dict[str, set[str]] = {}

            def collect() -> bool:
                firing.clear()
                for alert in rec.json_on("edge/alerts/"):
                    if alert.get("state") == "firing":
                        firing.setdefault(alert["device"], set()).add(alert["id"])
                return set(firing) >= faulty

            complete = rec.wait_for(collect, 120)
            elapsed = time.perf_counter() - started
            snap = running.daemon.metrics_snapshot()
            pub.loop_stop()
        rec.close()
        broker.stop()
    missing = sorted(faulty - set(firing))
    multi = {d: ids for d, ids in firing.items() if len(ids) > 1}
    print(
        f"{len(msgs)} messages, {len(faulty)} faults, {args.restarts} broker {'kills' if args.kill else 'restarts'}: "
        f"{len(faulty) - len(missing)}/{len(faulty)} alerts received, missing {missing or 'none'}, "
        f"devices with more than one id: {len(multi)}; replayed {snap['publisher']['replayed']}, "
        f"judged {snap['telemetry']['messages']}; {elapsed:.0f} s"
    )
    return 0 if complete and not multi else 1


if __name__ == "__main__":
    sys.exit(main())

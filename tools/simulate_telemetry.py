#!/usr/bin/env python3
"""Publish a simulated car and pump (normal operation plus injected faults) to a broker,
or write the trace as JSON lines for replay tests.

    python tools/simulate_telemetry.py --port 1883 --duration 600 --speed 10
    python tools/simulate_telemetry.py --write trace.jsonl --duration 600
"""

from __future__ import annotations

import argparse
import json
import sys

from edge_slm.simulate import demo_faults, make_trace, play


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--prefix", default="edge")
    parser.add_argument("--duration", type=float, default=600.0, help="simulated seconds")
    parser.add_argument("--step", type=float, default=1.0, help="seconds between samples per device")
    parser.add_argument(
        "--speed", type=float, default=10.0, help="simulated seconds per real second (0: as fast as possible)"
    )
    parser.add_argument("--no-faults", action="store_true")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--write", metavar="FILE", help="write JSON lines {topic, payload} instead of publishing")
    args = parser.parse_args()

    events = make_trace(args.duration, args.step, faults=() if args.no_faults else demo_faults(), seed=args.seed)
    if args.write:
        with open(args.write, "w", encoding="utf-8") as fh:
            for event in events:
                fh.write(
                    json.dumps(
                        {"topic": f"{args.prefix}/telemetry/{event.device}", "payload": json.loads(event.payload())}
                    )
                    + "\n"
                )
        return 0

    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="edge-slm-simulator")
    client.connect(args.host, args.port)
    client.loop_start()
    sent = play(client, args.prefix, events, args.speed)
    client.loop_stop()
    client.disconnect()
    print(f"published {sent} telemetry messages", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

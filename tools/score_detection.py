#!/usr/bin/env python3
"""Detection scorer (not a test): runs the seeded maintenance scenarios of
`edge_slm.detect.scenarios` through the detector and the alert policy (event time, no broker)
and prints recall, false alerts per device-day and time to detect, per fault family.

    PYTHONPATH=$PWD .venv/bin/python tools/score_detection.py [--only NAME] [--verbose]

A fault is detected when an alert with one of its rules fires on its device between the
fault's start and its end plus a grace period. Alerts on a faulty device during its fault
window that name another rule are reported as collateral, not false; every other firing
alert is false (on healthy traces, all of them).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_slm.config import DetectSettings
from edge_slm.detect.scenarios import T0, TraceScore, build_scenarios, run_trace, score


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run only scenarios whose name contains this")
    parser.add_argument("--seed-offset", type=int, default=0, help="fresh noise and timing (held-out check)")
    parser.add_argument("--verbose", action="store_true", help="print every false and collateral alert")
    args = parser.parse_args()

    settings = DetectSettings()
    scores = []
    for trace in build_scenarios(args.seed_offset):
        if args.only and args.only not in trace.name:
            continue
        alerts, samples, elapsed = run_trace(trace, settings)
        s = score(trace, alerts, samples, elapsed)
        scores.append(s)
        flag = "ok " if not s.missed and not s.false_alerts else "BAD"
        print(
            f"{flag} {trace.name:40s} {trace.duration_s / 3600:4.1f} h  faults {len(trace.faults)} "
            f"detected {len(s.detected)}  false {len(s.false_alerts)}  collateral {len(s.collateral)}  "
            f"{elapsed / max(1, samples) * 1e6:6.1f} us/msg"
        )
        if args.verbose or s.missed or s.false_alerts:
            for m in s.missed:
                print(f"      missed {m}")
            for a in s.false_alerts + (s.collateral if args.verbose else []):
                when_h = (a.ts - T0) / 3600
                print(f"    alert {a.device} {a.rule} {a.signal} {a.severity.label} +{when_h:.2f} h: {a.summary[:80]}")

    by_family: dict[str, list[TraceScore]] = defaultdict(list)
    for s in scores:
        by_family[s.trace.family].append(s)
    print()
    print(
        f"{'family':13s} {'traces':>6s} {'faults':>6s} {'recall':>7s} {'TTD median':>11s} {'TTD max':>9s} "
        f"{'false':>5s} {'dev-days':>8s} {'false/dev-day':>13s}"
    )
    total_faults = total_detected = total_false = 0
    total_days = 0.0
    for family in ["healthy", "threshold", "stuck", "stale", "implausible", "drift", "intermittent", "mode"]:
        group = by_family.get(family, [])
        if not group:
            continue
        faults = sum(len(s.trace.faults) for s in group)
        ttd = [t for s in group for _, t in s.detected]
        false = sum(len(s.false_alerts) for s in group)
        days = sum(s.trace.duration_s * len(s.trace.devices) for s in group) / 86400
        total_faults += faults
        total_detected += len(ttd)
        total_false += false
        total_days += days
        recall = f"{len(ttd) / faults:.0%}" if faults else "-"
        med = f"{statistics.median(ttd):.0f} s" if ttd else "-"
        worst = f"{max(ttd):.0f} s" if ttd else "-"
        print(
            f"{family:13s} {len(group):6d} {faults:6d} {recall:>7s} {med:>11s} {worst:>9s} {false:5d} {days:8.2f} "
            f"{false / days:13.2f}"
        )
    if total_faults:
        print(
            f"{'all':13s} {len(scores):6d} {total_faults:6d} {total_detected / total_faults:7.0%} {'':>11s} {'':>9s} "
            f"{total_false:5d} {total_days:8.2f} {total_false / total_days:13.2f}"
        )
    healthy_false = sum(len(s.false_alerts) for s in by_family.get("healthy", []))
    print(f"false alerts on healthy traces: {healthy_false}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

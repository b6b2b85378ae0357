#!/usr/bin/env python3
"""Do two versions of the detector give the same verdicts? (not a test: a check for speed work)

    PYTHONPATH=$PWD .venv/bin/python tools/compare_detectors.py [--baseline-ref HEAD] [--messages 60000]

Runs `Detector.process` of this checkout and of a git ref (each in its own process, from its
own folder) over every seeded maintenance trace, the ingest benchmark's messages and a random
walk with spikes, spells elsewhere, reordered samples, long gaps and boolean signals. Prints,
per workload, how many findings each side raised and whether the findings (every field, the
texts included), the learned state and the counters are identical; exits 1 on any difference
and names the first finding where the sides part.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

from bench_detect import extract_ref, ingest_messages, run_worker  # this folder: sys.path[0] when run as a script

ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import json, sys
from edge_slm.config import DetectSettings
from edge_slm.detect.detector import Detector
from edge_slm.detect.rules import load_rules
from edge_slm.events import Sample

workloads = json.load(open(sys.argv[1]))
out = {"source": sys.modules["edge_slm"].__file__, "results": {}}
for name, traces in workloads.items():
    findings, tails = [], []
    for messages in traces:
        detector = Detector(load_rules(), DetectSettings())
        for device, ts, signals in messages:
            for f in detector.process(Sample(device, ts, signals, ts)):
                findings.append([f.device, f.signal, f.rule, f.severity.label, f.firing, repr(f.value), f.ts,
                                 f.onset_ts, f.summary, f.action, f.notes])
        counters = [getattr(detector, name, None) for name in  # older refs lack some counters
                    ("evicted_series", "refused_series", "late_samples", "new_epochs", "tracked_series")]
        learned = detector.learned_state() if hasattr(detector, "learned_state") else None
        tails.append([json.dumps(learned, sort_keys=True, default=str), *counters])
    out["results"][name] = {"findings": findings, "tails": tails}
print(json.dumps(out))
"""


def random_walk(n: int, seed: int = 7) -> list[tuple[str, float, dict[str, float | bool]]]:
    rng = random.Random(seed)
    values: dict[str, float | bool] = {
        "vibration_rms_mm_s": 2.0,
        "bearing_temperature_c": 60.0,
        "motor_current_a": 11.0,
        "flow_l_min": 300.0,
        "coolant_temp_c": 90.0,
        "door_open": False,
    }
    out = []
    ts = 1.79e9
    for i in range(n):
        ts += rng.choice([0.5, 1, 1, 1, 2, -3, 40])  # mostly regular; reordered samples and gaps too
        for key, value in values.items():
            if isinstance(value, bool):
                values[key] = rng.random() < 0.1
            else:
                jump = value * 0.8 * rng.choice([-1, 1]) if rng.random() < 0.01 else 0.0
                values[key] = value * (1 + rng.gauss(0, 0.02)) + jump
        signals = {k: v for k, v in values.items() if rng.random() < 0.9}
        out.append((f"m-{i % 13}", ts + (i % 13), signals))
    return out


def workloads(messages: int) -> dict[str, list[list[tuple[str, float, dict]]]]:
    sys.path.insert(0, str(ROOT))
    from edge_slm.detect.scenarios import build_scenarios

    traces = [[(d, ts, dict(s)) for d, ts, s in t.messages] for t in build_scenarios()]
    return {
        "scenarios": traces,
        "ingest": [ingest_messages(messages)],
        "random walk": [random_walk(messages)],
    }


def run_side(src: Path, data: Path) -> dict:
    return run_worker(src, WORKER, data, timeout_s=1800)["results"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-ref", default="HEAD", help="git ref of the detector to compare with")
    parser.add_argument("--messages", type=int, default=60_000, help="messages in the ingest and random workloads")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = extract_ref(args.baseline_ref, Path(tmp) / "baseline")
        data = Path(tmp) / "workloads.json"
        data.write_text(json.dumps(workloads(args.messages)))
        theirs, ours = run_side(base, data), run_side(ROOT, data)
    differ = False
    for name in ours:
        a, b = theirs[name], ours[name]
        same = a == b
        differ |= not same
        line = f"{name:12s} findings: baseline {len(a['findings'])}, current {len(b['findings'])}; "
        print(line + ("identical (findings, learned state, counters)" if same else "DIFFERENT"))
        if not same:
            for i, (x, y) in enumerate(zip(a["findings"], b["findings"], strict=False)):
                if x != y:
                    print(f"  first different finding, #{i}:\n    baseline {x}\n    current  {y}")
                    break
            else:
                print("  findings agree as far as both go; the counts, learned state or counters differ")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""Detector micro-benchmark (not a test): per-message CPU cost of `Detector.process` +
`AlertPolicy` for this checkout against a baseline git ref, measured in the same run.

    PYTHONPATH=$PWD .venv/bin/python tools/bench_detect.py [--baseline-ref REF] [--repeats 5]

Two workloads: the ingest benchmark's messages (50 pumps, 4 signals each, as in
tools/bench_ingest.py) and a mixed maintenance trace (compressors, pumps, fans, cars from
edge_slm.detect.scenarios). Each side runs in its own process (the baseline from
`git archive REF edge_slm`), alternating, best of --repeats; prints us/message and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import json, sys, time
from edge_slm.config import DetectSettings
from edge_slm.detect.detector import Detector
from edge_slm.detect.policy import AlertPolicy
from edge_slm.detect.rules import load_rules
from edge_slm.events import Sample

messages = json.load(open(sys.argv[1]))
settings = DetectSettings()
detector = Detector(load_rules(), settings)
policy = AlertPolicy(settings.cooldown_s)
samples = [Sample(d, ts, s, ts) for d, ts, s in messages]
still = lambda key: detector.is_active(key[0], key[2], key[1])
started = time.process_time()
for sample in samples:
    policy.tick(sample.device, sample.ts, still)
    for finding in detector.process(sample):
        policy.apply(finding)
print(json.dumps({"us_per_message": (time.process_time() - started) / len(samples) * 1e6,
                  "source": sys.modules["edge_slm"].__file__}))
"""


def ingest_messages(n: int, devices: int = 50) -> list[tuple[str, float, dict[str, float]]]:
    t0 = 1_790_000_000.0
    out = []
    for i in range(n):
        signals = {
            "vibration_rms_mm_s": 2.0 + (i % 7) * 0.05,
            "bearing_temperature_c": 60.0 + (i % 5) * 0.2,
            "motor_current_a": 11.0 + (i % 3) * 0.1,
            "flow_l_min": 300.0 + (i % 11),
        }
        out.append((f"pump-{i % devices}", t0 + i // devices, signals))
    return out


def scenario_messages(limit: int) -> list[tuple[str, float, dict]]:
    sys.path.insert(0, str(ROOT))
    from edge_slm.detect.scenarios import build_scenarios

    picked = [
        t
        for t in build_scenarios()
        if t.name
        in (
            "healthy_compressors_duty_cycle",
            "healthy_pump_shift_changes",
            "healthy_fan_daily_cycle",
            "healthy_vehicle_long_drive",
        )
    ]
    merged = sorted((m for t in picked for m in t.messages), key=lambda m: m[1])
    return [(d, ts, {k: float(v) for k, v in s.items()}) for d, ts, s in merged[:limit]]


def extract_ref(ref: str, dest: Path) -> Path:
    """The `edge_slm` package of git `ref`, unpacked under `dest` (returned: the folder to run it from)."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "edge_slm"], capture_output=True, check=True)
    tar_path = dest / "edge_slm.tar"
    tar_path.write_bytes(archive.stdout)
    with tarfile.open(tar_path) as tar:
        tar.extractall(dest, filter="data")
    return dest


def run_worker(src: Path, worker: str, data: Path, timeout_s: float = 600) -> dict:
    """Run `worker` (Python code that prints one JSON object with a "source" key last) with `src`'s
    edge_slm, in its own process; its JSON. cwd=src: `python -c` puts the working directory ahead of
    PYTHONPATH on sys.path, so run from the repository root every side would import this checkout."""
    out = subprocess.run(
        [sys.executable, "-c", worker, str(data)],
        env={**os.environ, "PYTHONPATH": str(src)},
        cwd=src,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if out.returncode != 0:  # e.g. a ref from before the API the worker uses
        raise SystemExit(f"the code in {src} failed:\n{out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if not Path(result["source"]).resolve().is_relative_to(src.resolve()):
        raise SystemExit(f"the {src} side imported edge_slm from {result['source']}")
    return result


def run_side(src: Path, data: Path) -> float:
    return float(run_worker(src, WORKER, data)["us_per_message"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-ref", default="ea62378", help="git ref of the baseline detector")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--messages", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = extract_ref(args.baseline_ref, Path(tmp) / "baseline")
        for name, messages in (
            ("ingest", ingest_messages(args.messages)),
            ("scenarios", scenario_messages(args.messages)),
        ):
            data = Path(tmp) / f"{name}.json"
            data.write_text(json.dumps(messages))
            results: dict[str, list[float]] = {"baseline": [], "current": []}
            for _ in range(args.repeats):
                results["baseline"].append(run_side(base, data))
                results["current"].append(run_side(ROOT, data))
            b, c = min(results["baseline"]), min(results["current"])
            print(
                f"{name:10s} {len(messages)} messages: baseline {b:6.1f} us/msg  current {c:6.1f} us/msg  "
                f"ratio {c / b:.2f}  (best of {args.repeats}, baseline {args.baseline_ref})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""Long fuzzing campaign (a benchmark, not a test) over the telemetry codec, topic handling,
transcript parsing and the detector: random and mutated inputs, including invalid UTF-8,
huge payloads, deep nesting, NaN/Infinity, huge numbers and `+ # /` NUL in device ids.
Any exception other than the parsers' own rejection is a crash.

    .venv/bin/python tools/fuzz.py --inputs 100000 --seed 1
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import traceback

from edge_slm.bus.topics import TopicError, Topics
from edge_slm.config import DetectSettings
from edge_slm.detect.detector import Detector
from edge_slm.detect.policy import AlertPolicy
from edge_slm.detect.rules import load_rules
from edge_slm.errors import DecodeError
from edge_slm.telemetry.codec import decode_telemetry
from edge_slm.transcripts import parse_transcript

SEEDS = [
    b'{"ts": 1790000000.5, "signals": {"vibration_rms_mm_s": 9.3}}',
    b'{"signals": {"Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature": 120, "x": true}}',
    b'{"text": "take me home", "id": "a1"}',
    b'{"ts": 1e308, "signals": {"a": -1e308, "b": 1e-320}}',
]
NASTY = ["+", "#", "/", "\0", "\ud800", "\u202e", "\n", " ", "..", "*", "é", "💥"]


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randint(0, 5)
        pos = rng.randint(0, len(buf)) if buf else 0
        if op == 0 and buf:
            buf[min(pos, len(buf) - 1)] = rng.randint(0, 255)
        elif op == 1:
            buf[pos:pos] = bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 8)))
        elif op == 2 and buf:
            del buf[pos : pos + rng.randint(1, 8)]
        elif op == 3:
            buf[pos:pos] = rng.choice(
                [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"[" * 50, b'"\\ud800"', b"\xff\xfe", b"null"]
            )
        elif op == 4:
            buf[pos:pos] = str(rng.choice([10**400, -(10**30), 2**63, 0.1])).encode()
        else:
            buf += buf[: rng.randint(0, len(buf))]
    return bytes(buf)


def random_doc(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randint(0, 7 if depth < 4 else 4)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice([0, -1, 1e308, -1e-308, 2**70, rng.uniform(-1e6, 1e6)])
    if kind == 2:
        return "".join(rng.choice([*NASTY, "a", "b", "1"]) for _ in range(rng.randint(0, 12)))
    if kind in (3, 4):
        return float(rng.choice(["nan", "inf", "-inf"]))
    if kind == 5:
        return [random_doc(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {str(random_doc(rng, 5)): random_doc(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def one_input(rng: random.Random) -> tuple[str, bytes]:
    if rng.random() < 0.6:
        device = f"pump-{rng.randint(0, 50)}"
    else:
        device = "".join(rng.choice([*NASTY, "pump", "-", "1"]) for _ in range(rng.randint(0, 6)))
    choice = rng.randint(0, 9)
    if choice < 4:
        payload = mutate(rng, rng.choice(SEEDS))
    elif choice < 8:
        doc = {"ts": random_doc(rng), "signals": random_doc(rng)} if rng.random() < 0.7 else random_doc(rng)
        payload = json.dumps(doc, allow_nan=True).encode("utf-8", "surrogatepass")
    elif choice == 8:
        payload = b"[" * rng.randint(1000, 200_000)
    else:
        payload = b'{"signals": {"a": 1}, "pad": "' + b"x" * rng.randint(100_000, 10_000_000) + b'"}'
    return f"edge/telemetry/{device}", payload


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    topics = Topics("edge", "fuzz")
    detector = Detector(load_rules(), DetectSettings(max_tracked_series=5000))
    policy = AlertPolicy(30.0)
    accepted = rejected = crashes = 0
    started = time.perf_counter()
    for _ in range(args.inputs):
        topic, payload = one_input(rng)
        try:
            try:
                device = topics.device_from_telemetry_topic(topic)
                sample = decode_telemetry(device, payload, 1_790_000_000.0).sample
                for finding in detector.process(sample):
                    policy.apply(finding)
                accepted += 1
            except (TopicError, DecodeError):
                rejected += 1
            try:
                parse_transcript(payload, 0.0)
            except DecodeError:
                pass
        except Exception:
            crashes += 1
            if crashes <= 5:
                traceback.print_exc()
                print(f"input: topic={topic!r} payload={payload[:200]!r}", file=sys.stderr)
    elapsed = time.perf_counter() - started
    print(
        f"{args.inputs} inputs in {elapsed:.1f} s: {accepted} accepted, {rejected} rejected, {crashes} crashes; "
        f"{detector.tracked_series} series tracked"
    )
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Benchmark the semantic intent tier: load time, latency per command, added memory.

Measures, in one process and one run (these machines are noisy, so the grammar tier is timed on
the same commands as the baseline): the encoder + example load (cold: nothing cached; warm: the
state dir's cache), p50/p95 of `SemanticTier.decide` per command, and the resident memory the
tier adds (VmRSS before building it vs after warm-up and the timed commands).

    python tools/bench_semantic.py                       # commands from tests/data (held-out sets)
    python tools/bench_semantic.py --data FILE --repeat 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge_slm.config import load_settings  # noqa: E402
from edge_slm.intent.grammar import default_grammar  # noqa: E402
from edge_slm.intent.semantic import build_semantic_tier  # noqa: E402

DEFAULT_DATA = [ROOT / "tests/data/commands_semantic_dev.jsonl", ROOT / "tests/data/commands_heldout.jsonl"]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cold_start(state_dir: str, threads: int) -> int:
    semantic: dict[str, object] = {} if not threads else {"n_threads": threads}
    settings = load_settings(
        None, "generic", environ={}, cli_overrides={"state_dir": state_dir, "intent": {"semantic": semantic}}
    )
    tier = build_semantic_tier(settings, default_grammar())
    assert tier is not None
    started = time.perf_counter()
    ok = tier.warm_up()
    print(
        f"load cold (convert the encoder from the wheel, packaged example vectors): "
        f"{time.perf_counter() - started:.2f} s ({tier.example_count} examples, {tier.encoded_at_load} embedded)"
        if ok
        else f"semantic tier unavailable: {tier.failed}"
    )
    tier.close()
    return 0 if ok else 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", action="append", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="encoder threads (default: config, 1)")
    parser.add_argument("--preload", action="store_true", help="import llama_cpp and numpy before measuring RSS")
    parser.add_argument("--cold-only", metavar="STATE_DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cold_only:
        return cold_start(args.cold_only, args.threads)
    texts = [
        json.loads(line)["text"] for path in args.data or DEFAULT_DATA for line in path.read_text().splitlines() if line
    ]
    grammar = default_grammar()
    normalized = [grammar.normalizer.normalize(t) for t in texts]
    grammar.match_normalized(normalized[0])

    with tempfile.TemporaryDirectory() as tmp:
        semantic: dict[str, object] = {} if not args.threads else {"n_threads": args.threads}
        overrides = {"state_dir": tmp, "intent": {"semantic": semantic}}
        # cold start in a child process (conversion buffers would inflate this process's RSS)
        child = subprocess.run(
            [sys.executable, __file__, "--cold-only", tmp, *(["--threads", str(args.threads)] if args.threads else [])],
            capture_output=True,
            text=True,
        )
        print(child.stdout.strip() or child.stderr.strip())
        if args.preload:  # a daemon that runs the SLM has these already
            import llama_cpp  # noqa: F401
            import numpy  # noqa: F401
        base_rss = rss_mb()
        settings = load_settings(None, "generic", environ={}, cli_overrides=overrides)
        tier = build_semantic_tier(settings, grammar)
        assert tier is not None
        started = time.perf_counter()
        if not tier.warm_up():
            print(f"semantic tier unavailable: {tier.failed}", file=sys.stderr)
            return 3
        print(
            f"load warm (cached encoder and example vectors): {time.perf_counter() - started:.2f} s "
            f"({tier.example_count} examples, {tier.encoded_at_load} embedded)"
        )
        loaded_rss = rss_mb()

        grammar_ms: list[float] = []
        semantic_ms: list[float] = []
        cpu_total = 0.0
        for _ in range(args.repeat):
            for text in normalized:
                started = time.perf_counter()
                grammar.match_normalized(text)
                grammar_ms.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                cpu_started = time.process_time()
                tier.decide(text)
                semantic_ms.append((time.perf_counter() - started) * 1000)
                cpu_total += time.process_time() - cpu_started
        after_rss = rss_mb()
        tier.close()
    cpu_ms = cpu_total * 1000 / max(1, len(semantic_ms))

    g50, g95 = quantile(grammar_ms, 0.5), quantile(grammar_ms, 0.95)
    s50, s95 = quantile(semantic_ms, 0.5), quantile(semantic_ms, 0.95)
    print(f"commands: {len(texts)} x {args.repeat}, encoder threads {settings.intent.semantic.n_threads}")
    print(f"grammar tier   p50 {g50:7.3f} ms  p95 {g95:7.3f} ms  (baseline)")
    print(f"semantic tier  p50 {s50:7.3f} ms  p95 {s95:7.3f} ms  mean {statistics.fmean(semantic_ms):.3f} ms")
    print(f"ratio semantic/grammar: p50 x{s50 / g50:.0f}, p95 x{s95 / g95:.0f}")
    print(f"semantic tier CPU time per command (load-independent): {cpu_ms:.2f} ms")
    print(
        f"RSS before the tier {base_rss:.1f} MB, after load {loaded_rss:.1f} MB, after the commands {after_rss:.1f} MB"
        f" -> added {after_rss - base_rss:.1f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

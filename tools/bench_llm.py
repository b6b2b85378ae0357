#!/usr/bin/env python3
"""LLM engine benchmarks (not a test: prints ratios against baselines measured in the same run).

    python tools/bench_llm.py [--runs 5] [--gen-tokens 128] [--chart docs/llm-bench.png] [--json out.json]

(a) engine generation path vs calling llama-cpp-python directly (same model, prompt, params): tokens/s ratio
(b) time to first token with the ~500-token fixed prefix cached vs cold
(c) first request after a restart with the saved prefix state vs without
(d) prompt and generation tokens/s and RSS (vs the admission estimate) for SmolLM2 and Gemma 3 270M at the
    generic profile; each model runs in its own child process so RSS is clean.
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_slm.config import ModelSettings, Settings  # noqa: E402
from edge_slm.llm.api import GenerationRequest, Priority  # noqa: E402

SYSTEM = (
    "You are the on-board assistant of a delivery van. You explain machine and vehicle alerts to the driver "
    "and the fleet technician. Always answer from the facts you are given and never invent values. "
) * 6
FEW_SHOT = (
    ("FACTS: coolant 112 C, limit 110 C", "The engine coolant is too hot; stop safely and let it cool."),
    ("FACTS: tyre front-left 160 kPa, limit 180 kPa", "The front-left tyre is under-inflated; inflate it soon."),
    ("FACTS: battery 11.4 V, limit 11.8 V", "The 12 V battery is discharged; check the alternator."),
)
USER = "Write a short story about a delivery van driving through the mountains at night."


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def generic_model_settings(**over: Any) -> ModelSettings:
    from edge_slm.config import load_settings

    base = load_settings(profile="generic", environ={}).model
    import dataclasses

    return dataclasses.replace(base, **over)


# ---------------------------------------------------------------------------------------------


def bench_direct_vs_engine(path: Path, runs: int, gen_tokens: int) -> dict[str, Any]:
    from edge_slm.llm.engine import LlamaCppEngine

    ms = generic_model_settings()
    eng = LlamaCppEngine(path, ms, name="bench")
    llm = eng.llama
    req = GenerationRequest(
        system=SYSTEM,
        few_shot=FEW_SHOT,
        user=USER,
        max_tokens=gen_tokens,
        temperature=0.0,
        deadline_s=600,
        priority=Priority.VOICE,
    )
    tokens = eng.tokenize_prompt(req)
    params = dict(
        max_tokens=gen_tokens, temperature=0.0, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0, seed=1234
    )

    # The prompt stays cached between runs (identical prompt), so both paths measure generation.
    def direct() -> tuple[int, float]:
        t = time.perf_counter()
        out = llm.create_completion(prompt=tokens, **params)
        return int(out["usage"]["completion_tokens"]), time.perf_counter() - t

    def engine() -> tuple[int, float]:
        t = time.perf_counter()
        r = eng.generate(req)
        return r.completion_tokens, time.perf_counter() - t

    direct()  # warm-up (page in the weights)
    d_rates, e_rates = [], []
    n_tok = 0
    for _ in range(runs):
        n, s = direct()
        d_rates.append(n / s)
        n_tok = n
        n, s = engine()
        e_rates.append(n / s)
    eng.close()
    d, e = statistics.median(d_rates), statistics.median(e_rates)
    return {"tokens": n_tok, "prompt_tokens": len(tokens), "direct_tok_s": d, "engine_tok_s": e, "ratio": e / d}


def bench_prefix_ttft(path: Path, runs: int) -> dict[str, Any]:
    from edge_slm.llm.engine import LlamaCppEngine

    eng = LlamaCppEngine(path, generic_model_settings(), name="bench")
    n_prefix = len(eng.prefix_tokens(SYSTEM, FEW_SHOT))
    cold, warm = [], []
    for i in range(runs):
        eng.run_on_worker(eng.llama.reset).result()
        r1 = eng.generate(
            GenerationRequest(
                system=SYSTEM, few_shot=FEW_SHOT, user=f"Alert {i}: oil 131 C.", max_tokens=1, deadline_s=600
            )
        )
        r2 = eng.generate(
            GenerationRequest(
                system=SYSTEM, few_shot=FEW_SHOT, user=f"Alert {i}: tyre 150 kPa.", max_tokens=1, deadline_s=600
            )
        )
        assert r2.cached_tokens >= n_prefix, (r2.cached_tokens, n_prefix)
        cold.append(r1.prefill_s)
        warm.append(r2.prefill_s)
    eng.close()
    c, w = statistics.median(cold), statistics.median(warm)
    return {"prefix_tokens": n_prefix, "cold_ttft_s": c, "cached_ttft_s": w, "speedup": c / w}


def bench_restart(path: Path, runs: int) -> dict[str, Any]:
    from edge_slm.llm.engine import LlamaCppEngine

    ms = generic_model_settings()
    state = Path(tempfile.mkdtemp(prefix="edge-slm-bench-"))
    with LlamaCppEngine(path, ms, state_dir=state) as first:
        first.prepare_prefix(SYSTEM, FEW_SHOT)  # evaluates and saves

    def restart(with_state: bool) -> tuple[float, float]:
        t = time.perf_counter()
        eng = LlamaCppEngine(path, ms, state_dir=state if with_state else None)
        if with_state:
            st = eng.prepare_prefix(SYSTEM, FEW_SHOT, save=False)
            assert st.loaded
        r = eng.generate(
            GenerationRequest(system=SYSTEM, few_shot=FEW_SHOT, user="Alert: oil 131 C.", max_tokens=1, deadline_s=600)
        )
        total = time.perf_counter() - t
        eng.close()
        return total, r.prefill_s

    with_s, without = [], []
    for _ in range(runs):
        with_s.append(restart(True))
        without.append(restart(False))
    w_total = statistics.median(x[0] for x in with_s)
    n_total = statistics.median(x[0] for x in without)
    state_file = next((state / "llm-prefix").glob("*.kv"))
    return {
        "with_state_total_s": w_total,
        "without_state_total_s": n_total,
        "with_state_ttft_s": statistics.median(x[1] for x in with_s),
        "without_state_ttft_s": statistics.median(x[1] for x in without),
        "speedup": n_total / w_total,
        "state_file_mb": state_file.stat().st_size / 1e6,
    }


def child_profile(model: str, gen_tokens: int) -> dict[str, Any]:
    """Runs in a fresh process: load at the generic profile, measure speeds and RSS."""
    from edge_slm.llm.loader import load_model

    base_rss = rss_mb()
    ms = generic_model_settings(name=model, path="")
    settings = Settings(state_dir=tempfile.mkdtemp(prefix="edge-slm-bench-"), model=ms)
    loaded = load_model(settings)
    eng = loaded.engine
    n_prefix = len(eng.prefix_tokens(SYSTEM, FEW_SHOT))
    eng.run_on_worker(eng.llama.reset).result()
    r = eng.generate(
        GenerationRequest(system=SYSTEM, few_shot=FEW_SHOT, user=USER, max_tokens=gen_tokens, deadline_s=600)
    )
    prompt_tok_s = r.prompt_tokens / r.prefill_s
    gen_s = max(r.elapsed_s - r.prefill_s, 1e-9)
    gen_tok_s = max(r.completion_tokens - 1, 1) / gen_s
    rss = rss_mb()
    est = loaded.estimate.total_mb
    eng.close()
    return {
        "model": model,
        "file_mb": loaded.info.file_size_bytes / 1e6,
        "n_threads": eng.n_threads,
        "prompt_tokens": r.prompt_tokens,
        "prefix_tokens": n_prefix,
        "completion_tokens": r.completion_tokens,
        "prompt_tok_s": prompt_tok_s,
        "gen_tok_s": gen_tok_s,
        "rss_mb": rss,
        "rss_before_load_mb": base_rss,
        "estimate_mb": est,
        "estimate_error_pct": (est - rss) / rss * 100,
    }


def run_child(model: str, gen_tokens: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", model, "--gen-tokens", str(gen_tokens)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def chart(rows: list[dict[str, Any]], path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed: chart skipped"
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    names = [r["model"] for r in rows]
    axes[0].bar(names, [r["prompt_tok_s"] for r in rows], color="#4C72B0")
    axes[0].set_title("prompt tokens/s")
    axes[1].bar(names, [r["gen_tok_s"] for r in rows], color="#55A868")
    axes[1].set_title("generation tokens/s")
    x = range(len(rows))
    axes[2].bar([i - 0.2 for i in x], [r["rss_mb"] for r in rows], width=0.4, label="RSS")
    axes[2].bar([i + 0.2 for i in x], [r["estimate_mb"] for r in rows], width=0.4, label="estimate")
    axes[2].set_xticks(list(x), names)
    axes[2].set_title("memory (MiB)")
    axes[2].legend()
    fig.suptitle(f"edge-slm, generic profile, {rows[0]['n_threads']} thread(s)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return f"chart written to {path}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--gen-tokens", type=int, default=128)
    ap.add_argument("--chart", default=str(ROOT / "docs" / "llm-bench.png"))
    ap.add_argument("--json", default="")
    ap.add_argument("--models", default="smollm2-135m,gemma3-270m")
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child_profile(args.child, args.gen_tokens)))
        return 0

    import logging

    logging.basicConfig(level=logging.WARNING)
    from edge_slm.llm.models import resolve_model

    smol = resolve_model(ModelSettings(name="smollm2-135m"), Path(tempfile.gettempdir()) / "edge-slm-bench-cache")
    results: dict[str, Any] = {}
    print(f"model for (a)-(c): {smol.name}; generic profile settings: {generic_model_settings()}")
    a = results["a_engine_vs_direct"] = bench_direct_vs_engine(smol, args.runs, args.gen_tokens)
    print(
        f"(a) engine {a['engine_tok_s']:.1f} tok/s vs direct {a['direct_tok_s']:.1f} tok/s "
        f"-> ratio {a['ratio']:.3f} (target >= 0.95; {a['tokens']} tokens, prompt {a['prompt_tokens']})"
    )
    b = results["b_prefix_ttft"] = bench_prefix_ttft(smol, args.runs)
    print(
        f"(b) TTFT cold {b['cold_ttft_s'] * 1000:.0f} ms vs cached prefix {b['cached_ttft_s'] * 1000:.0f} ms "
        f"-> {b['speedup']:.1f}x (target >= 5x; prefix {b['prefix_tokens']} tokens)"
    )
    c = results["c_restart"] = bench_restart(smol, max(2, args.runs // 2))
    print(
        f"(c) restart to first token: with saved prefix {c['with_state_total_s']:.2f} s "
        f"(TTFT {c['with_state_ttft_s'] * 1000:.0f} ms) vs without {c['without_state_total_s']:.2f} s "
        f"(TTFT {c['without_state_ttft_s'] * 1000:.0f} ms) -> {c['speedup']:.2f}x; "
        f"state file {c['state_file_mb']:.1f} MB"
    )
    rows = [run_child(m, args.gen_tokens) for m in args.models.split(",") if m]
    results["d_profiles"] = rows
    print("(d) generic profile:")
    hdr = (
        f"{'model':<14} {'file MB':>8} {'threads':>7} {'prompt tok/s':>12} {'gen tok/s':>9} {'RSS MB':>7} "
        f"{'estimate MB':>11} {'est. err':>8}"
    )
    print(hdr)
    for r in rows:
        print(
            f"{r['model']:<14} {r['file_mb']:>8.1f} {r['n_threads']:>7} {r['prompt_tok_s']:>12.1f} "
            f"{r['gen_tok_s']:>9.1f} {r['rss_mb']:>7.1f} {r['estimate_mb']:>11.1f} {r['estimate_error_pct']:>+7.1f}%"
        )
    if args.chart and rows:
        print(chart(rows, Path(args.chart)))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

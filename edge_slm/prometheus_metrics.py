"""The daemon's metrics snapshot (the same one published on `{prefix}/metrics/{node}`) in the
Prometheus text format, served by prometheus-client on `metrics.http_host:metrics.http_port`.

Every numeric leaf of the snapshot becomes one metric named by its path (`queues.inbound_depth`
-> `edge_slm_queues_inbound_depth`); levels (queue depths, memory, firing alerts) are gauges,
everything else only grows and is a counter (`_total`). Components become
`edge_slm_component_up{component="asr"}` (1 when ok)."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from edge_slm.errors import DependencyMissing, StartupError

log = logging.getLogger(__name__)

Snapshot = Callable[[], Mapping[str, Any]]

# Snapshot paths that go up and down; anything else numeric only ever grows.
GAUGE_PREFIXES = (
    "ts",
    "uptime_s",
    "alerts_firing_now",
    "queues.",
    "rss_bytes",
    "voice_queue.",
    "explanations_pending",
    "engine.queue_depth",
)
_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_]")


def metric_name(path: str) -> str:
    return "edge_slm_" + _NAME_CHARS.sub("_", path)


def numeric_leaves(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from numeric_leaves(value, f"{path}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield path, float(value)


def is_gauge(path: str) -> bool:
    return any(path == p or (p.endswith(".") and path.startswith(p)) for p in GAUGE_PREFIXES)


class SnapshotCollector:
    """A prometheus-client collector reading the snapshot at every scrape."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        data = self._snapshot()
        for path, value in numeric_leaves({k: v for k, v in data.items() if k != "components"}):
            name = metric_name(path)
            if is_gauge(path):
                yield GaugeMetricFamily(name, f"edge-slm {path}", value=value)
            else:
                yield CounterMetricFamily(name, f"edge-slm {path}", value=value)
        components = data.get("components") or {}
        up = GaugeMetricFamily("edge_slm_component_up", "1 when the component is ok", labels=["component"])
        for component, status in components.items():
            up.add_metric([str(component)], 1.0 if str(status).startswith("ok") else 0.0)
        yield up


class MetricsServer:
    """prometheus-client's HTTP server on its own thread, over a registry of our one collector."""

    def __init__(self, snapshot: Snapshot, host: str, port: int) -> None:
        self._snapshot = snapshot
        self._host = host
        self._port = port
        self._server: Any = None
        self._thread: Any = None

    def start(self) -> None:
        try:
            from prometheus_client import CollectorRegistry, start_http_server
        except ImportError as err:
            raise DependencyMissing(
                "metrics.http_port needs prometheus-client: pip install 'edge-slm[metrics]'"
            ) from err
        registry = CollectorRegistry(auto_describe=False)
        registry.register(SnapshotCollector(self._snapshot))
        try:
            self._server, self._thread = start_http_server(self._port, addr=self._host, registry=registry)
        except OSError as err:
            raise StartupError(f"metrics.http_port {self._host}:{self._port}: {err.strerror or err}") from err
        log.info("Prometheus metrics on http://%s:%d/metrics", self._host, self._port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

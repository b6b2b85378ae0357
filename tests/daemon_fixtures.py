"""Run the daemon in-process (a thread with its own event loop) or as `edge-slm run`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge_slm.config import Settings, load_settings
from edge_slm.runtime import Daemon


def daemon_settings(port: int, state_dir: Path, **overrides: Any) -> Settings:
    layer: dict[str, Any] = {
        "node_id": "test-node",
        "state_dir": str(state_dir),
        "mqtt": {
            "host": "127.0.0.1",
            "port": port,
            "metrics_interval_s": 1.0,
            "reconnect_max_s": 1.0,
            "reconnect_min_s": 0.2,
        },
        "model": {"enabled": False},
        "voice": {"enabled": False, "tts": "off"},  # tests that listen or speak say so
        "intent": {"semantic": {"enabled": False}},  # like the SLM: tests that need the encoder turn it on
    }
    for key, value in overrides.items():
        if isinstance(value, Mapping):
            layer[key] = {**layer.get(key, {}), **value}
        else:
            layer[key] = value
    return load_settings(None, "generic", environ={}, cli_overrides=layer)


class InProcessDaemon:
    """`expect_connection=False` for tests of a broker that refuses the daemon."""

    def __init__(self, settings: Settings, *, expect_connection: bool = True) -> None:
        self.daemon = Daemon(settings)
        self._expect_connection = expect_connection
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name="daemon", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self.daemon.run(self._stop))
        except BaseException as err:  # surfaced by the test
            self.error = err

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> InProcessDaemon:
        self._thread.start()
        if not self._expect_connection:
            return self
        deadline = time.monotonic() + 30  # a model, when enabled, loads before the daemon connects
        while not self.daemon.bus.subscribed and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.02)
        assert self.daemon.bus.subscribed, f"daemon did not connect: {self.daemon.bus.last_error or self.error}"
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(20)
        assert not self._thread.is_alive(), "daemon did not stop"
        assert self.error is None, self.error

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_config(path: Path, port: int, state_dir: Path, extra: str = "") -> Path:
    path.write_text(
        f'node_id = "sub-node"\nstate_dir = "{state_dir}"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\nmetrics_interval_s = 1.0\nreconnect_max_s = 1.0\n'
        "[model]\nenabled = false\n[voice]\nenabled = false\n" + extra + "\n[intent.semantic]\nenabled = false\n"
    )
    return path


def start_subprocess_daemon(config: Path, env_extra: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_SLM_")}
    env.update(env_extra or {})
    return subprocess.Popen(
        [sys.executable, "-m", "edge_slm", "run", "--config", str(config), "--profile", "generic"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def terminate(proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err.decode(errors="replace")

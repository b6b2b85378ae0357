"""A real Mosquitto broker per test and a small recording MQTT client."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from edge_slm.broker import wait_listening
from edge_slm.errors import StartupError


@dataclass
class Broker:
    port: int
    workdir: Path
    conf: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.workdir / "mosquitto.log").open("ab")
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_listening(self.port, self.proc)
        except StartupError as err:
            raise RuntimeError(f"{err.message}: {(self.workdir / 'mosquitto.log').read_text()}") from None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


def start_broker(workdir: Path, port: int, extra_conf: str = "", anonymous: bool = True) -> Broker:
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "mosquitto.conf"
    # `user root`: when the tests run as root, stop Mosquitto dropping to its own user, which
    # could not read the test's private files (password file, certificates, persistence).
    conf.write_text(
        f"listener {port} 127.0.0.1\n"
        "user root\n"
        f"allow_anonymous {'true' if anonymous else 'false'}\n"
        "persistence true\n"
        f"persistence_location {workdir}/\n"
        "max_queued_messages 100000\n"
        f"{extra_conf}\n"
    )
    broker = Broker(port, workdir, conf)
    broker.start()
    return broker


@dataclass
class Recorder:
    """Subscribes and records every message; wait_for() polls with a deadline."""

    port: int
    topics: list[str]
    client_id: str = ""
    persistent: bool = False
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    client: Any = None

    def __post_init__(self) -> None:
        self._connected = threading.Event()
        client_id = self.client_id or f"rec-{time.monotonic_ns()}"
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not self.persistent
        )
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        if not self._connected.wait(10):
            raise RuntimeError("recorder could not connect")

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        for topic in self.topics:
            client.subscribe(topic, qos=1)
        time.sleep(0.05)
        self._connected.set()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def json_on(self, topic_prefix: str) -> list[dict[str, Any]]:
        with self.lock:
            items = [(t, p) for t, p in self.messages if t.startswith(topic_prefix)]
        out = []
        for _, payload in items:
            try:
                out.append(json.loads(payload))
            except ValueError:
                continue
        return out

    def topics_seen(self) -> list[str]:
        with self.lock:
            return [t for t, _ in self.messages]

    def wait_for(self, predicate: Any, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return bool(predicate())

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def publisher(port: int) -> Any:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{time.monotonic_ns()}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client

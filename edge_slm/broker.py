"""Finding or starting an MQTT broker for the demo: a reachable one, else a private
Mosquitto on a free port, else amqtt's embedded Python broker if it is installed."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from edge_slm.errors import StartupError


def reachable(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def demo_broker(host: str, port: int) -> Iterator[tuple[str, int, str]]:
    """Yields (host, port, description)."""
    if reachable(host, port):
        yield host, port, f"existing broker at {host}:{port}"
        return
    if shutil.which("mosquitto"):
        with _mosquitto() as new_port:
            yield "127.0.0.1", new_port, f"private mosquitto on 127.0.0.1:{new_port}"
        return
    with _amqtt() as new_port:
        yield "127.0.0.1", new_port, f"embedded amqtt broker on 127.0.0.1:{new_port}"


@contextlib.contextmanager
def _mosquitto() -> Iterator[int]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="edge-slm-broker-") as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        # set_tcp_nodelay: alerts go out at once, not behind Nagle's algorithm (README, broker settings)
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n")
        proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_listening(port, proc)
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextlib.contextmanager
def _amqtt() -> Iterator[int]:
    try:
        from amqtt.broker import Broker  # type: ignore[import-not-found]
    except ImportError as err:
        raise StartupError(
            "no MQTT broker: none is reachable, mosquitto is not installed (apt-get install mosquitto) "
            "and the embedded broker is missing (pip install amqtt)"
        ) from err
    import asyncio

    port = free_port()
    loop = asyncio.new_event_loop()
    config = {"listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}}, "auth": {"allow-anonymous": True}}
    broker = Broker(config, loop=loop)
    thread = threading.Thread(target=loop.run_forever, name="amqtt", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(broker.start(), loop).result(10)
    try:
        yield port
    finally:
        asyncio.run_coroutine_threadsafe(broker.shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)


def wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    """Block until a broker process accepts connections on `port` (10 s at most)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if reachable("127.0.0.1", port, 0.2):
            return
        if proc.poll() is not None:
            raise StartupError(f"mosquitto exited with code {proc.returncode} while starting")
        time.sleep(0.05)
    raise StartupError("mosquitto did not start listening within 10 s")

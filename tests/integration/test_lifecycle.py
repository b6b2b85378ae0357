"""The daemon's lifecycle: build does no I/O, a signal during the model load is acted on at once,
a second signal ends a shutdown that hangs."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from edge_slm.runtime import Daemon
from tests.daemon_fixtures import daemon_settings
from tests.mqtt_fixtures import Broker

# A daemon process whose model load (or close) blocks: stands in for a large model on a slow SD
# card, which no test model here takes long enough to load.
SCRIPT = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    from edge_slm.commands.common import configure_logging
    from edge_slm.commands.run import run_until_signalled
    from edge_slm.runtime import Daemon
    from tests.daemon_fixtures import daemon_settings

    class CloseHangs:
        model_name = "close-hangs"
        def close(self):
            threading.Event().wait()
        def prepare_prefix(self, system, few_shot=()):
            return None

    def load_slowly(settings):
        print("loading the model", file=sys.stderr, flush=True)
        threading.Event().wait()

    def load_then_hang_on_close(settings):
        return CloseHangs()

    port, state, mode = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    settings = daemon_settings(port, state, model={"enabled": True, "explain_alerts": False})
    loader = load_slowly if mode == "slow-load" else load_then_hang_on_close
    configure_logging("info")
    sys.exit(run_until_signalled(settings, Daemon(settings, engine_loader=loader)))
    """
)


def start(tmp_path: Path, port: int, mode: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(port), str(tmp_path / "state"), mode],
        cwd=Path(__file__).resolve().parents[2],
        stderr=subprocess.PIPE,
    )


def wait_for_line(proc: subprocess.Popen[bytes], text: str, timeout_s: float) -> None:
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout_s
    seen = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline().decode(errors="replace")
        seen.append(line)
        if text in line:
            return
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"{text!r} not logged; stderr: {''.join(seen)}")


def test_sigterm_during_the_model_load_exits_within_a_second(tmp_path: Path, broker: Broker) -> None:
    proc = start(tmp_path, broker.port, "slow-load")
    try:
        wait_for_line(proc, "loading the model", 30)
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
        elapsed = time.monotonic() - signalled
    finally:
        proc.kill()
    assert code == 0
    assert elapsed < 1.0, f"exited {elapsed:.2f} s after SIGTERM"


def test_a_second_signal_ends_a_shutdown_that_hangs(tmp_path: Path, broker: Broker) -> None:
    proc = start(tmp_path, broker.port, "close-hangs")
    try:
        wait_for_line(proc, "edge-slm running", 30)
        proc.send_signal(signal.SIGTERM)
        wait_for_line(proc, "shutting down", 10)
        time.sleep(0.5)
        assert proc.poll() is None, "the shutdown was expected to hang in the model's close()"
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
        elapsed = time.monotonic() - signalled
    finally:
        proc.kill()
    assert code == 1 and elapsed < 1.0


def test_build_opens_loads_and_connects_nothing(tmp_path: Path) -> None:
    state = tmp_path / "not-yet"
    settings = daemon_settings(1, state, model={"enabled": True, "path": str(tmp_path / "no-such.gguf")})
    daemon = Daemon(settings)
    assert not state.exists()  # the outbox is opened by startup()
    assert daemon.outbox is None and daemon.engine is None and not daemon.bus.connected

"""A real audio device for tests: a private PulseAudio server with a null sink whose monitor is the
default source. Tests play WAVs into the sink with `paplay`; the code under test records the monitor
through PortAudio's ALSA "pulse" device (libasound2-plugins).

The server runs in a private runtime directory with its own socket, so it never touches a desktop's
PulseAudio; PULSE_SERVER / PULSE_RUNTIME_PATH are set in os.environ while it is in use (libpulse
reads them each time it connects, so PortAudio streams opened later in this process find it).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest

SINK = "edge_test"


def pulseaudio_available() -> bool:
    return all(shutil.which(tool) for tool in ("pulseaudio", "paplay", "pactl"))


class PulseServer:
    """Start/kill/restart a private PulseAudio daemon; use as a context manager."""

    def __init__(self, rate_hz: int = 48000, runtime_dir: Path | None = None) -> None:
        self.rate_hz = rate_hz
        self._own_dir = runtime_dir is None
        self.runtime_dir = runtime_dir or Path(tempfile.mkdtemp(prefix="edge-pulse-"))
        self.socket = self.runtime_dir / "native"
        self.script = self.runtime_dir / "default.pa"
        self.proc: subprocess.Popen[bytes] | None = None
        self._saved_env: dict[str, str | None] = {}

    @property
    def env(self) -> dict[str, str]:
        return {
            "PULSE_SERVER": f"unix:{self.socket}",
            "PULSE_RUNTIME_PATH": str(self.runtime_dir),
            "PULSE_STATE_PATH": str(self.runtime_dir / "state"),
            "PULSE_COOKIE": str(self.runtime_dir / "cookie"),
        }

    def start(self, timeout_s: float = 10.0) -> None:
        self.script.write_text(
            f"load-module module-native-protocol-unix socket={self.socket} auth-anonymous=1\n"
            f"load-module module-null-sink sink_name={SINK} rate={self.rate_hz} channels=1 "
            f"sink_properties=device.description=EdgeTestSink\n"
            f"set-default-sink {SINK}\n"
            f"set-default-source {SINK}.monitor\n"
        )
        env = {**os.environ, **self.env, "HOME": str(self.runtime_dir)}
        self.proc = subprocess.Popen(
            [
                "pulseaudio",
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--system=false",
                "--use-pid-file=false",
                "--disallow-module-loading=false",
                "--log-target=stderr",
                "--log-level=error",
                "-n",
                "-F",
                str(self.script),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pulseaudio exited with {self.proc.returncode}")
            if self.socket.exists() and self.pactl("info", check=False).returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError("pulseaudio did not come up")

    def kill(self) -> None:
        """SIGKILL the server (an unplugged device / crashed server as the client sees it)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(5)
        self.socket.unlink(missing_ok=True)

    def restart(self) -> None:
        self.kill()
        self.start()

    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["pactl", *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            check=check,
            timeout=10,
        )

    def __enter__(self) -> PulseServer:
        self.start()
        for key, value in self.env.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if self._own_dir:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)


def play_wav(server: PulseServer, path: Path, timeout_s: float = 30.0) -> None:
    """Play a WAV into the null sink and wait until it has been played."""
    subprocess.run(
        ["paplay", f"--device={SINK}", str(path)],
        env={**os.environ, **server.env},
        check=True,
        timeout=timeout_s,
        capture_output=True,
    )


def start_playing(server: PulseServer, path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["paplay", f"--device={SINK}", str(path)],
        env={**os.environ, **server.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def pulse_server() -> Iterator[PulseServer]:
    if not pulseaudio_available():
        pytest.skip("pulseaudio / pulseaudio-utils not installed (apt-get install pulseaudio pulseaudio-utils)")
    with PulseServer() as server:
        yield server

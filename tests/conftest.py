"""Shared fixtures: a real Mosquitto broker on a free port, and MQTT test clients."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_slm.broker import free_port
from tests.mqtt_fixtures import Broker, start_broker


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """In CI every test must run: `.ci/run` installs everything the suite needs, so a skip there
    means a missing install step, and it fails instead of passing silently."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where nothing may be skipped: {report.longrepr}"


@pytest.fixture()
def broker(tmp_path: Path) -> Iterator[Broker]:
    if shutil.which("mosquitto") is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    b = start_broker(tmp_path / "broker", free_port())
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture()
def state_dir(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir()
    return path


@pytest.fixture(autouse=True)
def _no_user_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read the developer's own EDGE_SLM_* settings."""
    for key in list(os.environ):
        if key.startswith("EDGE_SLM_"):
            monkeypatch.delenv(key, raising=False)


__all__ = ["free_port"]

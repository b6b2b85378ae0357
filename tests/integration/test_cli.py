"""The command line as a user's script sees it (CONTRACT §1): output shapes, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def edge_slm(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_SLM_")}
    return subprocess.run(
        [sys.executable, "-m", "edge_slm", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "code"),
    [(("bogus",), 2), (("models",), 2), (("run", "--config"), 2), (("intent",), 2)],
)
def test_usage_errors_are_one_line_exit_2(args: tuple[str, ...], code: int) -> None:
    result = edge_slm(*args)
    assert result.returncode == code
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize(
    ("env", "key"),
    [({"EDGE_SLM_MODEL": "nosuch"}, "model.name"), ({"EDGE_SLM_MODEL": "/nonexistent/x.gguf"}, "model.path")],
)
def test_check_config_refuses_a_model_that_cannot_exist(env: dict[str, str], key: str) -> None:
    result = edge_slm("check-config", "--profile", "generic", env=env)
    assert result.returncode == 3 and key in result.stderr and "Traceback" not in result.stderr


def test_check_config_prints_the_effective_config(tmp_path: Path) -> None:
    config = tmp_path / "site.toml"
    config.write_text('node_id = "n7"\n[mqtt]\nport = 1999\n')
    result = edge_slm(
        "check-config",
        "--profile",
        "raspberry-pi-4",
        env={"EDGE_SLM_CONFIG": str(config), "EDGE_SLM_MQTT_HOST": "broker.lan"},
    )
    assert result.returncode == 0, result.stderr
    assert (
        'node_id = "n7"' in result.stdout and "port = 1999" in result.stdout and 'host = "broker.lan"' in result.stdout
    )
    assert "n_threads = 3" in result.stdout


def test_intent_single_and_batch_shapes() -> None:
    single = edge_slm("intent", "--no-model", "navigate to Munich Airport")
    assert single.returncode == 0
    assert json.loads(single.stdout) == {
        "text": "navigate to Munich Airport",
        "intent": "navigate_to",
        "slots": {"destination": "Munich Airport"},
        "source": "grammar",
        "confidence": 1.0,
    }
    lines = [{"text": "call mom"}, {"text": "how long until we arrive"}, {"text": "tell me a joke"}]
    batch = edge_slm("intent", "--batch", "--no-model", stdin="".join(json.dumps(x) + "\n" for x in lines))
    out = [json.loads(line) for line in batch.stdout.splitlines()]
    assert [o["intent"] for o in out] == ["call_contact", "eta", "unknown"]
    assert all(set(o) == {"text", "intent", "slots", "source", "confidence"} for o in out)

from __future__ import annotations

from pathlib import Path

import pytest

from edge_slm.config import load_settings, render_toml
from edge_slm.errors import ConfigError
from edge_slm.profiles import available_profiles, detect_board, load_profile


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "site.toml"
    path.write_text(text)
    return str(path)


def test_defaults_and_profile() -> None:
    s = load_settings(profile="generic", environ={})
    assert s.mqtt.port == 1883 and s.mqtt.topic_prefix == "edge"
    assert s.profile == "generic"


def test_layers_in_order(tmp_path: Path) -> None:
    cfg = write(tmp_path, 'node_id = "n1"\n[mqtt]\nport = 1884\nhost = "broker"\n[model]\nn_ctx = 512\n')
    env = {"EDGE_SLM_MQTT_PORT": "1999", "EDGE_SLM_MODEL": "/m/x.gguf"}
    s = load_settings(cfg, "raspberry-pi-4", environ=env, cli_overrides={"log_level": "debug"})
    assert s.node_id == "n1"
    assert s.mqtt.host == "broker"  # site
    assert s.mqtt.port == 1999  # env beats site
    assert s.model.n_ctx == 512  # site beats profile (1024)
    assert s.model.n_threads == 3  # from the profile
    assert s.model.path == "/m/x.gguf"
    assert s.log_level == "debug"


def test_env_config_path_and_model_name(tmp_path: Path) -> None:
    cfg = write(tmp_path, '[poi]\nfile = "/data/p.csv"\n')
    s = load_settings(
        profile="generic",
        environ={"EDGE_SLM_CONFIG": cfg, "EDGE_SLM_MODEL": "gemma3-270m", "EDGE_SLM_STATE_DIR": "/tmp/x"},
    )
    assert s.poi.file == "/data/p.csv"
    assert s.model.name == "gemma3-270m" and s.model.path == ""
    assert str(s.effective_state_dir) == "/tmp/x"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[mqtt]\nprot = 1\n", "mqtt.prot"),
        ("bogus = 1\n", "bogus"),
        ('[mqtt]\nport = "abc"\n', "mqtt.port"),
        ("[mqtt]\nport = 70000\n", "mqtt.port"),
        ("[voice]\nenabled = 1\n", "voice.enabled"),
        ('[voice]\nactivation = "clap"\n', "voice.activation"),
        ("[model]\nn_ctx = 0\n", "model.n_ctx"),
        ('[mqtt]\ntopic_prefix = "a/#"\n', "mqtt.topic_prefix"),
        ("mqtt = 3\n", "mqtt"),
    ],
)
def test_invalid_values_name_the_dotted_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, text), "generic", environ={})
    assert err.value.key == key
    assert key in err.value.message


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[mqtt\n"), "generic", environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(str(tmp_path / "missing.toml"), "generic", environ={})


def test_every_profile_is_valid() -> None:
    names = available_profiles()
    assert {"raspberry-pi-4", "raspberry-pi-5", "jetson-orin-nano", "head-unit", "generic"} <= set(names)
    for name in names:
        s = load_settings(profile=name, environ={})
        assert s.board.name == name
        assert load_profile(name)["model"]["memory_budget_mb"] > 0


def test_render_masks_password(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, '[mqtt]\npassword = "hunter2"\n'), "generic", environ={})
    text = render_toml(s)
    assert "hunter2" not in text and 'password = "********"' in text


@pytest.mark.parametrize(
    ("model", "release", "expected"),
    [
        ("Raspberry Pi 5 Model B Rev 1.0\0", False, "raspberry-pi-5"),
        ("Raspberry Pi 4 Model B Rev 1.4\0", False, "raspberry-pi-4"),
        ("NVIDIA Jetson Orin Nano Developer Kit\0", False, "jetson-orin-nano"),
        (None, True, "jetson-orin-nano"),
        (None, False, "generic"),
        ("Some other board", False, "generic"),
    ],
)
def test_board_detection(tmp_path: Path, model: str | None, release: bool, expected: str) -> None:
    dt = tmp_path / "model"
    if model is not None:
        dt.write_text(model)
    rel = tmp_path / "nv_tegra_release"
    if release:
        rel.write_text("# R36")
    assert detect_board(dt, rel) == expected

"""Firmware profiles: per-board config layers in `firmware_profiles/*.toml`, and board detection."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from edge_slm.errors import ConfigError

PROFILE_DIR = Path(__file__).resolve().parent / "firmware_profiles"

_DEVICE_TREE_MODEL = Path("/proc/device-tree/model")
_JETSON_RELEASE = Path("/etc/nv_tegra_release")


def profile_dir() -> Path:
    """Profiles ship inside the package (so a wheel has them); the repo's top-level
    `firmware_profiles/` is a symlink to the same folder."""
    return PROFILE_DIR


def available_profiles() -> list[str]:
    return sorted(p.stem for p in profile_dir().glob("*.toml"))


def load_profile(name: str) -> dict[str, Any]:
    path = profile_dir() / f"{name}.toml"
    if not name or "/" in name or not path.is_file():
        known = ", ".join(available_profiles())
        raise ConfigError("profile", f"unknown firmware profile {name!r} (known: {known})")
    with path.open("rb") as fh:
        try:
            return tomllib.load(fh)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError("profile", f"profile {path} is not valid TOML: {err}") from err


def detect_board(device_tree_model: Path = _DEVICE_TREE_MODEL, jetson_release: Path = _JETSON_RELEASE) -> str:
    """Guess the profile from what the board says about itself; `generic` when unsure."""
    if jetson_release.exists():
        return "jetson-orin-nano"
    try:
        model = device_tree_model.read_text(errors="replace").strip("\0 \n").lower()
    except OSError:
        return "generic"
    if "raspberry pi 5" in model:
        return "raspberry-pi-5"
    if "raspberry pi 4" in model:
        return "raspberry-pi-4"
    if "jetson" in model or "orin" in model:
        return "jetson-orin-nano"
    return "generic"

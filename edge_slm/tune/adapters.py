"""Which LoRA adapter the daemon loads (no torch: the daemon imports this).

`model.lora_path` is a GGUF LoRA adapter path, "" for none, or "auto": the adapter tuned for the configured
named model when one is present: first the site's own (`edge-slm tune` installs it into
`{state_dir}/adapters/{model}.lora.gguf`), else the one shipped in this package
(`edge_slm/tune/adapters/{model}.lora.gguf`). With `model.path` set (a custom GGUF), "auto" means none:
an adapter only fits the base model it was trained on.
"""

from __future__ import annotations

import os
from pathlib import Path

from edge_slm.config import ModelSettings

AUTO = "auto"
SHIPPED_DIR = Path(__file__).resolve().parent / "adapters"


def adapter_name(model_name: str) -> str:
    return f"{model_name}.lora.gguf"


def installed_adapter(model_name: str, state_dir: str | os.PathLike[str]) -> Path:
    """Where `edge-slm tune` installs a site's adapter for a named model."""
    return Path(state_dir).expanduser() / "adapters" / adapter_name(model_name)


def shipped_adapter(model_name: str) -> Path | None:
    path = SHIPPED_DIR / adapter_name(model_name)
    return path if path.is_file() else None


def resolve_lora_path(settings: ModelSettings, state_dir: str | os.PathLike[str]) -> str:
    """The adapter file to pass to llama.cpp, or "" for none."""
    if settings.lora_path != AUTO:
        return settings.lora_path
    if settings.path or not settings.name:
        return ""
    site = installed_adapter(settings.name, state_dir)
    if site.is_file():
        return str(site)
    shipped = shipped_adapter(settings.name)
    return str(shipped) if shipped else ""

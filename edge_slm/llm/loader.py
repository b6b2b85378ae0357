"""From settings to a running engine: resolve the model reference, inspect the GGUF, refuse one
that cannot fit the memory budget, then load it. Every failure is a ModelError or
DependencyMissing (exit 3) that names the cause."""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge_slm.config import Settings
    from edge_slm.llm.engine import LlamaCppEngine
    from edge_slm.llm.gguf_info import GgufInfo, MemoryEstimate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    engine: LlamaCppEngine
    info: GgufInfo
    estimate: MemoryEstimate


def check_model(settings: Settings) -> MemoryEstimate:
    """Resolve, inspect and admit the configured model without loading it (a fraction of a
    second): a missing, corrupt or too large model raises ModelError up front."""
    from edge_slm.llm.gguf_info import check_admission, inspect_gguf
    from edge_slm.llm.models import resolve_model

    path = resolve_model(settings.model, settings.model_cache_dir)
    return check_admission(inspect_gguf(path), settings.model)


def load_model(settings: Settings, *, state_dir: str | os.PathLike[str] | None = None) -> LoadedModel:
    from edge_slm.llm.engine import LlamaCppEngine, import_llama_cpp
    from edge_slm.llm.gguf_info import check_admission, inspect_gguf
    from edge_slm.llm.models import KNOWN_MODELS, resolve_model
    from edge_slm.tune.adapters import resolve_lora_path  # no torch here: picks the "auto" LoRA adapter

    ms = dataclasses.replace(settings.model, lora_path=resolve_lora_path(settings.model, settings.effective_state_dir))
    path = resolve_model(ms, settings.model_cache_dir)
    info = inspect_gguf(path)
    estimate = check_admission(info, ms)
    import_llama_cpp()  # DependencyMissing before anything else is attempted
    entry = None if ms.path else KNOWN_MODELS.get(ms.name)
    key = f"{entry.name}-{entry.sha256[:16]}" if entry is not None and entry.sha256 else None
    name = entry.name if entry is not None else path.stem
    sdir = (
        Path(state_dir) if state_dir is not None else (settings.effective_state_dir if ms.save_prefix_state else None)
    )
    engine = LlamaCppEngine(path, ms, name=name, state_dir=sdir, model_key=key)
    log.info("model %s: estimated %s, budget %d MB", name, estimate.describe(), ms.memory_budget_mb)
    return LoadedModel(engine, info, estimate)


def load_engine(settings: Settings, *, state_dir: str | os.PathLike[str] | None = None) -> LlamaCppEngine:
    return load_model(settings, state_dir=state_dir).engine

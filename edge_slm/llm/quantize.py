"""Quantise a GGUF model with llama.cpp's own `llama_model_quantize` (no separate binary needed).

Progress: llama.cpp logs one line per tensor (`[  3/ 21] blk.0.attn_q.weight ...`); those lines are
turned into a tqdm bar on stderr when `progress` is true.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_slm.errors import ModelError

log = logging.getLogger(__name__)

# Quantisation names accepted on the command line -> llama_ftype values (llama.h).
QUANT_TYPES: dict[str, int] = {
    "F32": 0,
    "F16": 1,
    "Q4_0": 2,
    "Q4_1": 3,
    "Q8_0": 7,
    "Q5_0": 8,
    "Q5_1": 9,
    "Q2_K": 10,
    "Q3_K_S": 11,
    "Q3_K_M": 12,
    "Q3_K_L": 13,
    "Q4_K_S": 14,
    "Q4_K_M": 15,
    "Q5_K_S": 16,
    "Q5_K_M": 17,
    "Q6_K": 18,
    "IQ4_NL": 25,
    "IQ4_XS": 30,
    "BF16": 32,
}
_PROGRESS = re.compile(r"\[\s*(\d+)\s*/\s*(\d+)\s*\]")


@dataclass(frozen=True)
class QuantizeResult:
    src: Path
    dst: Path
    qtype: str
    src_bytes: int
    dst_bytes: int
    elapsed_s: float


def quantize(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    qtype: str = "Q4_K_M",
    *,
    n_threads: int = 0,
    progress: bool = True,
    allow_requantize: bool = False,
) -> QuantizeResult:
    """Write `dst`, a `qtype` quantisation of `src`. Raises ModelError on any failure."""
    from edge_slm.llm.engine import import_llama_cpp
    from edge_slm.llm.gguf_info import inspect_gguf
    from edge_slm.llm.native_logs import NATIVE_LOGS

    name = qtype.strip().upper()
    if name not in QUANT_TYPES:
        raise ModelError(f"unknown quantisation {qtype!r}; choose from {', '.join(QUANT_TYPES)}")
    src_p, dst_p = Path(src), Path(dst)
    info = inspect_gguf(src_p)  # one clear line for missing/corrupt input
    if src_p.resolve() == dst_p.resolve():
        raise ModelError("quantize: the output must be a different file from the input")
    lc = import_llama_cpp()
    NATIVE_LOGS.install(lc, False)
    params = lc.llama_model_quantize_default_params()
    params.ftype = QUANT_TYPES[name]
    params.nthread = n_threads if n_threads > 0 else (os.cpu_count() or 1)
    params.allow_requantize = allow_requantize or info.file_type not in ("ALL_F32", "F16", "BF16")
    bar = _bar(progress, len(info.tensor_types) and sum(info.tensor_types.values()), name)

    def on_line(line: str) -> None:
        m = _PROGRESS.search(line)
        if m and bar is not None:
            bar.n = int(m.group(1))
            bar.refresh()

    dst_p.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst_p.with_name(dst_p.name + ".part")
    started = time.monotonic()
    NATIVE_LOGS.line_hook = on_line
    try:
        rc = lc.llama_model_quantize(str(src_p).encode(), str(tmp).encode(), params)
    finally:
        NATIVE_LOGS.line_hook = None
        if bar is not None:
            bar.close()
    if rc != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        detail = NATIVE_LOGS.last_error() or f"llama_model_quantize returned {rc}"
        raise ModelError(f"quantize {src_p.name} to {name} failed: {detail}")
    os.replace(tmp, dst_p)
    result = QuantizeResult(src_p, dst_p, name, src_p.stat().st_size, dst_p.stat().st_size, time.monotonic() - started)
    log.info("quantized %s -> %s (%s) in %.1f s", src_p.name, dst_p.name, name, result.elapsed_s)
    return result


def _bar(enabled: bool, total: int, desc: str) -> Any:
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="tensor", desc=f"quantize {desc}", file=sys.stderr)


__all__ = ["QUANT_TYPES", "QuantizeResult", "quantize"]

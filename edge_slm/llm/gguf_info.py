"""GGUF metadata and the memory admission check (the only module importing `gguf`).

`inspect_gguf` reads the header of a GGUF file without loading weights (the file is
memory-mapped; only the header pages are touched). `estimate_memory` predicts the
resident memory of a llama.cpp process serving that model, and `check_admission`
refuses a model whose estimate exceeds the profile's `memory_budget_mb`.

The estimate (all in MiB, "MB" in names for brevity) predicts resident memory (RSS), not
address space:

- weights: the bytes of every tensor (with mmap they become resident as they are used; after the
  first generation every page has been touched), plus the second, interleaved copy the CPU backend
  makes of 2-D Q4_0/Q4_K/IQ4_NL weights (AVX2/NEON "repack").
- KV cache: n_layer x n_ctx x n_head_kv x (head_dim_k x size(type_k) + head_dim_v x size(type_v)).
  llama-cpp-python keeps full-size caches for sliding-window layers too, so no SWA discount.
- compute: the pages actually touched for one micro-batch: attention scores (n_ubatch x n_ctx x n_head
  floats, none with flash attention), activations (n_ubatch x (6 n_embd + 3 n_ff) floats) and one row
  of logits. llama.cpp *reserves* n_ubatch rows of logits (256 MiB for Gemma's 262k vocabulary) but
  only the last token's row is computed, so those pages never become resident.
- overhead: Python, numpy and libllama after import (48 MiB, measured on x86-64) plus ~160 bytes per
  vocabulary token for llama.cpp's tokenizer tables.

Calibrated against measured RSS at the generic profile (n_ctx 2048, n_batch 256): SmolLM2-135M Q4_1
estimate 220.9 MiB vs 220.2 measured (+0.3 %), Gemma 3 270M Q4_K_M 392.1 vs 398.4 (-1.6 %); see
docs/llm-engine.md. Budgets should still keep some slack.
"""

from __future__ import annotations

import logging
import math
import mmap
import os
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_slm.errors import ModelError

if TYPE_CHECKING:
    from edge_slm.config import ModelSettings

log = logging.getLogger(__name__)

MIB = 1024 * 1024
GGUF_MAGIC = b"GGUF"
FIXED_OVERHEAD_MB = 48.0  # python + numpy + libllama after import, measured on x86-64

# Bytes per element of the KV cache types the config accepts.
KV_TYPE_BYTES: dict[str, float] = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}

# Approximate bits per weight of common llama.cpp quantisations (whole-model average),
# used to suggest a smaller quant when the model does not fit at any context size.
QUANT_BPW: dict[str, float] = {
    "F16": 16.0,
    "Q8_0": 8.5,
    "Q6_K": 6.6,
    "Q5_K_M": 5.7,
    "Q4_K_M": 4.9,
    "Q4_1": 5.0,
    "Q4_0": 4.5,
    "Q3_K_M": 3.9,
    "Q2_K": 3.0,
}

# Weight types the llama.cpp CPU backend repacks (AVX2 / NEON) into a second, interleaved copy.
_REPACKED_TYPES = frozenset({"Q4_0", "Q4_K", "IQ4_NL"})
# Per-token cost of the vocabulary tables llama.cpp keeps (strings, maps, scores), measured.
_VOCAB_BYTES_PER_TOKEN = 160


@dataclass(frozen=True)
class GgufInfo:
    """What the header of one GGUF file says."""

    path: Path
    file_size_bytes: int
    version: int
    architecture: str
    name: str
    parameter_count: int
    file_type: str
    tensor_types: dict[str, int]
    tensor_bytes: int
    repack_bytes: int  # bytes of 2-D Q4_0/Q4_K/IQ4_NL weights the CPU backend copies into an interleaved layout
    context_length: int
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    n_ff: int
    head_dim_k: int
    head_dim_v: int
    sliding_window: int
    vocab_size: int
    tokenizer_model: str
    chat_template: str
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def bits_per_weight(self) -> float:
        return self.tensor_bytes * 8 / self.parameter_count if self.parameter_count else 0.0


@dataclass(frozen=True)
class MemoryEstimate:
    """Predicted resident memory, in MiB."""

    weights_mb: float
    kv_cache_mb: float
    compute_mb: float
    overhead_mb: float
    n_ctx: int
    n_batch: int
    type_k: str
    type_v: str
    gpu_weights_mb: float = 0.0  # the part of weights_mb offloaded to a GPU (unified memory counts it too)

    @property
    def total_mb(self) -> float:
        return self.weights_mb + self.kv_cache_mb + self.compute_mb + self.overhead_mb

    def describe(self) -> str:
        return (
            f"{self.total_mb:.0f} MB (weights {self.weights_mb:.0f}, KV cache {self.kv_cache_mb:.0f} at "
            f"n_ctx={self.n_ctx} {self.type_k}/{self.type_v}, compute {self.compute_mb:.0f}, "
            f"overhead {self.overhead_mb:.0f})"
        )


def _fail(path: Path, problem: str) -> ModelError:
    return ModelError(f"model file {path}: {problem}")


def inspect_gguf(path: str | os.PathLike[str]) -> GgufInfo:
    """Read a GGUF header. Any problem (missing, not GGUF, truncated, corrupt) raises ModelError."""
    p = Path(path)
    try:
        size = p.stat().st_size
        with p.open("rb") as fh:
            magic = fh.read(4)
    except FileNotFoundError as err:
        raise _fail(p, "does not exist") from err
    except IsADirectoryError as err:
        raise _fail(p, "is a directory, not a GGUF file") from err
    except OSError as err:
        raise _fail(p, f"cannot be read ({err.strerror})") from err
    if magic != GGUF_MAGIC:
        raise _fail(p, "is not a GGUF file (bad magic)")

    try:
        import gguf  # noqa: F401  (the only import of gguf in the project)
    except ImportError as err:  # pragma: no cover - gguf is a core dependency
        from edge_slm.errors import DependencyMissing

        raise DependencyMissing("the gguf package is missing: pip install 'edge-slm'") from err

    try:
        with p.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            header = _HeaderParser(buf).parse()
    except _Corrupt as err:
        raise _fail(p, f"is corrupt or truncated ({err})") from err
    except (struct.error, IndexError, OverflowError, UnicodeDecodeError, MemoryError) as err:
        raise _fail(p, f"is corrupt or truncated ({_short(err)})") from err
    except OSError as err:
        raise _fail(p, f"cannot be read ({err.strerror or err})") from err
    return _info_from_header(p, size, header)


class _Corrupt(Exception):
    pass


@dataclass
class _Header:
    version: int
    fields: dict[str, Any]
    array_lengths: dict[str, int]
    tensors: list[tuple[str, tuple[int, ...], int, int]]  # name, dims, ggml type, offset
    data_offset: int


# GGUF value types: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool, 8 string, 9 array, 10 u64, 11 i64, 12 f64
_SCALAR: dict[int, struct.Struct] = {
    0: struct.Struct("<B"),
    1: struct.Struct("<b"),
    2: struct.Struct("<H"),
    3: struct.Struct("<h"),
    4: struct.Struct("<I"),
    5: struct.Struct("<i"),
    6: struct.Struct("<f"),
    7: struct.Struct("<?"),
    10: struct.Struct("<Q"),
    11: struct.Struct("<q"),
    12: struct.Struct("<d"),
}
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_MAX_KEEP_ARRAY = 64  # longer arrays (the vocab, merges, scores) are skipped and only counted


class _HeaderParser:
    """A small GGUF v2/v3 header reader: much faster than gguf.GGUFReader on 256k-token vocabularies,
    because it skips arrays instead of materialising every element."""

    def __init__(self, buf: mmap.mmap) -> None:
        self.buf = buf
        self.off = 0
        self.size = len(buf)

    def _need(self, n: int) -> None:
        if n < 0 or self.off + n > self.size:
            raise _Corrupt(f"header runs past the end of the file at byte {self.off}")

    def u32(self) -> int:
        self._need(4)
        (v,) = _U32.unpack_from(self.buf, self.off)
        self.off += 4
        return int(v)

    def u64(self) -> int:
        self._need(8)
        (v,) = _U64.unpack_from(self.buf, self.off)
        self.off += 8
        return int(v)

    def string(self) -> str:
        n = self.u64()
        self._need(n)
        raw = self.buf[self.off : self.off + n]
        self.off += n
        return raw.decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        n = self.u64()
        self._need(n)
        self.off += n

    def value(self, vtype: int) -> Any:
        if vtype == 8:
            return self.string()
        st = _SCALAR.get(vtype)
        if st is None:
            raise _Corrupt(f"unknown value type {vtype} at byte {self.off}")
        self._need(st.size)
        (v,) = st.unpack_from(self.buf, self.off)
        self.off += st.size
        return v

    def parse(self) -> _Header:
        if self.buf[:4] != GGUF_MAGIC:
            raise _Corrupt("bad magic")
        self.off = 4
        version = self.u32()
        if version not in (2, 3):
            raise _Corrupt(f"unsupported GGUF version {version}")
        n_tensors = self.u64()
        n_kv = self.u64()
        if n_tensors > 1_000_000 or n_kv > 1_000_000:
            raise _Corrupt("implausible tensor or key count")
        fields: dict[str, Any] = {}
        lengths: dict[str, int] = {}
        for _ in range(n_kv):
            key = self.string()
            vtype = self.u32()
            if vtype == 9:
                itype = self.u32()
                count = self.u64()
                lengths[key] = count
                if itype == 8:
                    if count <= _MAX_KEEP_ARRAY:
                        fields[key] = [self.string() for _ in range(count)]
                    else:
                        for _ in range(count):
                            self.skip_string()
                elif itype in _SCALAR:
                    width = _SCALAR[itype].size
                    self._need(width * count)
                    if count <= _MAX_KEEP_ARRAY:
                        fields[key] = [self.value(itype) for _ in range(count)]
                    else:
                        self.off += width * count
                else:
                    raise _Corrupt(f"unsupported array element type {itype} for key {key}")
            else:
                fields[key] = self.value(vtype)
        tensors: list[tuple[str, tuple[int, ...], int, int]] = []
        for _ in range(n_tensors):
            name = self.string()
            n_dims = self.u32()
            if n_dims > 8:
                raise _Corrupt(f"tensor {name} has {n_dims} dimensions")
            dims = tuple(self.u64() for _ in range(n_dims))
            ttype = self.u32()
            offset = self.u64()
            tensors.append((name, dims, ttype, offset))
        align = int(fields.get("general.alignment", 32) or 32)
        if align <= 0 or align & (align - 1):
            raise _Corrupt(f"invalid alignment {align}")
        data_offset = (self.off + align - 1) // align * align
        return _Header(version, fields, lengths, tensors, data_offset)


def _short(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text[:160]


def _info_from_header(p: Path, size: int, header: _Header) -> GgufInfo:
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

    fields = header.fields

    def get(key: str, default: Any = None) -> Any:
        return fields.get(key, default)

    arch = get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise _fail(p, "has no general.architecture key (not a model GGUF)")

    metadata: dict[str, Any] = dict(fields)
    for key, n in header.array_lengths.items():
        if key not in metadata:
            metadata[key] = f"[array of {n}]"

    tensor_types: Counter[str] = Counter()
    tensor_bytes = 0
    repack_bytes = 0
    params = 0
    for name, dims, ttype, offset in header.tensors:
        try:
            qtype = GGMLQuantizationType(ttype)
        except ValueError as err:
            raise _fail(p, f"is corrupt (tensor {name} has unknown type {ttype})") from err
        block, type_size = GGML_QUANT_SIZES[qtype]
        n_elem = math.prod(dims) if dims else 1
        n_bytes = n_elem * type_size // block
        end = header.data_offset + offset + n_bytes
        if end > size:
            raise _fail(p, f"is truncated (tensor {name} ends at byte {end}, the file has {size})")
        tensor_types[qtype.name] += 1
        tensor_bytes += n_bytes
        if qtype.name in _REPACKED_TYPES and len(dims) == 2 and not name.startswith("token_embd"):
            repack_bytes += n_bytes
        params += n_elem

    def arch_int(suffix: str, default: int = 0) -> int:
        value = get(f"{arch}.{suffix}", default)
        if isinstance(value, list):  # per-layer arrays (some hybrids): take the largest
            value = max(value) if value else default
        try:
            return int(value) if value is not None else default
        except (TypeError, ValueError):
            return default

    n_embd = arch_int("embedding_length")
    n_head = arch_int("attention.head_count")
    n_head_kv = arch_int("attention.head_count_kv", n_head) or n_head
    head_dim = n_embd // n_head if n_head else 0
    ft_raw = get("general.file_type")
    try:
        file_type = LlamaFileType(int(ft_raw)).name.removeprefix("MOSTLY_") if ft_raw is not None else "unknown"
    except (ValueError, TypeError):
        file_type = f"type {ft_raw}"
    vocab = header.array_lengths.get("tokenizer.ggml.tokens") or arch_int("vocab_size")

    return GgufInfo(
        path=p,
        file_size_bytes=size,
        version=header.version,
        architecture=arch,
        name=str(get("general.name", "") or ""),
        parameter_count=params,
        file_type=file_type,
        tensor_types=dict(tensor_types.most_common()),
        tensor_bytes=tensor_bytes,
        repack_bytes=repack_bytes,
        context_length=arch_int("context_length"),
        n_layer=arch_int("block_count"),
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=n_head_kv,
        n_ff=arch_int("feed_forward_length"),
        head_dim_k=arch_int("attention.key_length", head_dim) or head_dim,
        head_dim_v=arch_int("attention.value_length", head_dim) or head_dim,
        sliding_window=arch_int("attention.sliding_window"),
        vocab_size=int(vocab),
        tokenizer_model=str(get("tokenizer.ggml.model", "") or ""),
        chat_template=str(get("tokenizer.chat_template", "") or ""),
        metadata=metadata,
    )


def _pad(n: int, to: int = 256) -> int:
    return int(math.ceil(n / to) * to)


def estimate_memory(
    info: GgufInfo,
    n_ctx: int,
    n_batch: int = 512,
    type_k: str = "f16",
    type_v: str = "f16",
    n_gpu_layers: int = 0,
    flash_attn: bool = False,
) -> MemoryEstimate:
    """Predict the resident memory of a process serving `info` with these context settings."""
    if type_k not in KV_TYPE_BYTES or type_v not in KV_TYPE_BYTES:
        raise ModelError(f"unknown KV cache type {type_k!r}/{type_v!r} (choose from {', '.join(KV_TYPE_BYTES)})")
    n_ctx = max(1, n_ctx)
    n_ubatch = max(1, min(n_batch, 512, n_ctx))
    gpu_layers = info.n_layer if n_gpu_layers < 0 else min(n_gpu_layers, info.n_layer)
    cpu_share = 1.0 - (gpu_layers / info.n_layer if info.n_layer else 0.0)
    weights_mb = (info.tensor_bytes + info.repack_bytes * cpu_share) / MIB
    gpu_weights_mb = info.tensor_bytes / MIB * (1.0 - cpu_share)

    # KV cache: every layer holds n_ctx cells (llama-cpp-python keeps full-size SWA caches).
    per_cell = info.n_head_kv * (info.head_dim_k * KV_TYPE_BYTES[type_k] + info.head_dim_v * KV_TYPE_BYTES[type_v])
    ctx_cells = _pad(n_ctx)
    kv_mb = per_cell * info.n_layer * ctx_cells / MIB

    # Compute buffers that are actually touched: attention scores for one micro-batch (none with flash
    # attention), the layer activations, and one row of logits. llama.cpp *reserves* n_ubatch rows of
    # logits too, but only the last token's row is computed, so those pages never become resident.
    f32 = 4
    scores = 0 if flash_attn else n_ubatch * ctx_cells * max(info.n_head, 1) * f32
    acts = n_ubatch * (info.n_embd * 6 + max(info.n_ff, info.n_embd * 4) * 3) * f32
    compute_mb = (scores + acts + info.vocab_size * f32) / MIB
    overhead_mb = FIXED_OVERHEAD_MB + info.vocab_size * _VOCAB_BYTES_PER_TOKEN / MIB
    return MemoryEstimate(
        weights_mb=weights_mb,
        kv_cache_mb=kv_mb,
        compute_mb=compute_mb,
        overhead_mb=overhead_mb,
        n_ctx=n_ctx,
        n_batch=n_batch,
        type_k=type_k,
        type_v=type_v,
        gpu_weights_mb=gpu_weights_mb,
    )


def estimate_for_settings(info: GgufInfo, settings: ModelSettings) -> MemoryEstimate:
    return estimate_memory(
        info,
        n_ctx=settings.n_ctx,
        n_batch=settings.n_batch,
        type_k=settings.type_k,
        type_v=settings.type_v,
        n_gpu_layers=settings.n_gpu_layers,
        flash_attn=settings.flash_attn,
    )


def largest_fitting_ctx(info: GgufInfo, settings: ModelSettings, budget_mb: float) -> int:
    """The largest n_ctx (a multiple of 256, at least 256) whose estimate fits, or 0."""
    best = 0
    n_ctx = 256
    limit = max(settings.n_ctx, 256)
    while n_ctx <= limit:
        est = estimate_memory(
            info, n_ctx, settings.n_batch, settings.type_k, settings.type_v, settings.n_gpu_layers, settings.flash_attn
        )
        if est.total_mb > budget_mb:
            break
        best = n_ctx
        n_ctx += 256
    return best


def fitting_quants(info: GgufInfo, estimate: MemoryEstimate, budget_mb: float) -> list[str]:
    """Quantisations smaller than the file's that would fit at the same context size."""
    bpw = info.bits_per_weight
    if bpw <= 0:
        return []
    out = []
    for name, q_bpw in QUANT_BPW.items():
        if q_bpw >= bpw - 0.2:
            continue
        weights = estimate.weights_mb * q_bpw / bpw
        if estimate.total_mb - estimate.weights_mb + weights <= budget_mb:
            out.append(name)
    return out


def check_admission(info: GgufInfo, model_settings: ModelSettings) -> MemoryEstimate:
    """Return the estimate, or raise ModelError (one line) when it exceeds the memory budget."""
    est = estimate_for_settings(info, model_settings)
    budget = float(model_settings.memory_budget_mb)
    if est.total_mb <= budget:
        log.debug("model %s admitted: %s <= budget %.0f MB", info.path.name, est.describe(), budget)
        return est
    ctx = largest_fitting_ctx(info, model_settings, budget)
    if ctx:
        hint = f"set model.n_ctx = {ctx} or less"
    else:
        quants = fitting_quants(info, est, budget)
        hint = (
            f"use a smaller quantisation ({', '.join(quants[:3])}) or a smaller model"
            if quants
            else "use a smaller model or raise model.memory_budget_mb"
        )
    raise ModelError(
        f"model {info.path.name} needs about {est.total_mb:.0f} MB (weights {est.weights_mb:.0f}, "
        f"KV cache {est.kv_cache_mb:.0f}, compute {est.compute_mb:.0f}, overhead {est.overhead_mb:.0f}) "
        f"but model.memory_budget_mb is {budget:.0f}: {hint}"
    )


__all__ = [
    "GgufInfo",
    "MemoryEstimate",
    "check_admission",
    "estimate_for_settings",
    "estimate_memory",
    "inspect_gguf",
]

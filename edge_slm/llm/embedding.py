"""Sentence embeddings through llama-cpp-python in embedding mode (one runtime for every model).

`LlamaCppEncoder(path)` loads a BERT-style GGUF (mean pooling) and turns texts into L2-normalized
float32 vectors. It is small (all-MiniLM-L6-v2 Q8_0: 25 MB, ~2-4 ms a command on 2 cores) and has
its own llama.cpp context, so it never waits behind the SLM. `load_encoder(settings)` resolves the
configured encoder (a path or a known model name) like every other model: cache, wheel, hub.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from edge_slm.errors import ModelError

if TYPE_CHECKING:
    import numpy as np

    from edge_slm.config import Settings

log = logging.getLogger(__name__)

CONTEXT_TOKENS = 64  # a spoken command is far shorter; longer text is truncated, never refused


class SentenceEncoder(Protocol):
    """Texts in, one L2-normalized row per text out."""

    @property
    def model_name(self) -> str: ...

    @property
    def fingerprint(self) -> str: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...

    def close(self) -> None: ...


def file_fingerprint(path: Path) -> str:
    """Content identity of a model file (sha256), so cached outputs follow the weights, not the path."""
    from edge_slm.llm.models import recorded_sha256, sha256_file

    st = path.stat()
    sidecar = path.with_name(path.name + ".sha256")
    recorded = recorded_sha256(path)
    if recorded and sidecar.stat().st_mtime_ns >= st.st_mtime_ns:
        return recorded
    return sha256_file(path)


class LlamaCppEncoder:
    """A GGUF sentence encoder on its own llama.cpp context. Thread-safe (calls are serialized)."""

    def __init__(self, model_path: str | os.PathLike[str], *, n_threads: int = 1, name: str = "") -> None:
        from edge_slm.llm.engine import import_llama_cpp
        from edge_slm.llm.native_logs import NATIVE_LOGS

        llama_cpp = import_llama_cpp()
        NATIVE_LOGS.install(llama_cpp, False)
        self.model_path = Path(model_path)
        self._name = name or self.model_path.stem
        started = time.monotonic()
        try:
            self._llm: Any = llama_cpp.Llama(
                model_path=str(self.model_path),
                embedding=True,
                pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                n_ctx=CONTEXT_TOKENS,
                n_batch=CONTEXT_TOKENS,
                n_ubatch=CONTEXT_TOKENS,
                n_threads=max(1, n_threads),
                n_threads_batch=max(1, n_threads),
                n_gpu_layers=0,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as err:
            detail = NATIVE_LOGS.last_error() or str(err).splitlines()[0]
            raise ModelError(f"cannot load sentence encoder {self.model_path}: {detail}") from err
        self.load_s = time.monotonic() - started
        self.dim = int(self._llm.n_embd())
        self._fingerprint = file_fingerprint(self.model_path)
        self._lock = threading.Lock()
        log.info("sentence encoder %s loaded in %.2f s (dim %d)", self._name, self.load_s, self.dim)

    @property
    def model_name(self) -> str:
        return self._name

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # truncate=True bounds a long text to the context (commands are capped at 1000 chars anyway)
        with self._lock:
            rows = self._llm.embed([t or " " for t in texts], normalize=True, truncate=True)
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dim)

    def close(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()


def encoder_path(settings: Settings) -> Path:
    """The encoder GGUF named by `intent.semantic.model` (a path or a known name), resolved like
    other models: the model cache first, else built from its installed wheel into the cache."""
    from edge_slm.config import ModelSettings
    from edge_slm.llm.models import resolve_model

    ref = settings.intent.semantic.model
    if not ref:
        raise ModelError("no sentence encoder configured (intent.semantic.model)")
    if "/" in ref or ref.endswith(".gguf"):
        return resolve_model(ModelSettings(path=ref), settings.model_cache_dir)
    return resolve_model(ModelSettings(name=ref, path=""), settings.model_cache_dir)


def load_encoder(settings: Settings) -> LlamaCppEncoder:
    path = encoder_path(settings)
    return LlamaCppEncoder(path, n_threads=settings.intent.semantic.n_threads, name=path.stem)

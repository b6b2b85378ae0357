"""`LazyEngine`: an `LlmEngine` that loads the real one on first use (the `intent` command loads
the model only when the grammar needs help)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future

from edge_slm.errors import EdgeSlmError, ModelUnavailable
from edge_slm.llm.api import GenerationRequest, GenerationResult, LlmEngine

log = logging.getLogger(__name__)


class LazyEngine:
    """An `LlmEngine` that loads the real one on first use; a failed load is reported once and
    every later request fails fast with ModelUnavailable."""

    def __init__(self, loader: Callable[[], LlmEngine], name: str = "model") -> None:
        self._loader = loader
        self._name = name
        self._engine: LlmEngine | None = None
        self._failed: str | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._engine is not None

    def _get(self) -> LlmEngine:
        with self._lock:
            if self._engine is not None:
                return self._engine
            if self._failed is not None:
                raise ModelUnavailable(self._failed)
            try:
                self._engine = self._loader()
            except EdgeSlmError as err:
                self._failed = f"intent model not available: {err.message}"
            except Exception as err:  # a broken native library must not take the grammar tier down
                self._failed = f"intent model not available: {err.__class__.__name__}: {err}"
            if self._engine is None:
                log.warning("%s; answering from the grammar only", self._failed)
                raise ModelUnavailable(self._failed or "intent model not available")
            return self._engine

    @property
    def model_name(self) -> str:
        return self._engine.model_name if self._engine is not None else self._name

    def submit(self, request: GenerationRequest) -> Future[GenerationResult]:
        return self._get().submit(request)

    def generate(self, request: GenerationRequest) -> GenerationResult:
        return self._get().generate(request)

    def prepare_prefix(self, system: str, few_shot: Sequence[tuple[str, str]] = ()) -> object | None:
        return self._get().prepare_prefix(system, few_shot)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()

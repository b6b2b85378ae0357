"""The seam between the daemon and any language model (no llama_cpp import here).

Callers build a `GenerationRequest` and hand it to an `LlmEngine`. The engine serves one
request at a time, highest priority first (a waiting driver before alert explanations),
and gives up on a request whose deadline passes, raising `ModelTimeout`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

from edge_slm.errors import ModelUnavailable


class ModelOutputError(ModelUnavailable):
    """The model finished but its output is unusable (e.g. JSON cut off by max_tokens)."""


class Priority(enum.IntEnum):
    """Lower value is served first."""

    VOICE = 0
    EXPLANATION = 1
    BACKGROUND = 2


@dataclass(frozen=True)
class GenerationRequest:
    """One chat completion.

    `system` is the fixed prefix (kept identical across requests so its KV cache is reused);
    `user` is the per-request part. When `json_schema` is set the output is constrained to it
    and parsed into `GenerationResult.data`.
    """

    system: str
    user: str
    json_schema: dict[str, Any] | None = None
    max_tokens: int = 96
    temperature: float = 0.0
    priority: Priority = Priority.EXPLANATION
    deadline_s: float = 30.0  # seconds from submission
    few_shot: tuple[tuple[str, str], ...] = field(default_factory=tuple)  # (user, assistant) pairs in the fixed prefix


@dataclass(frozen=True)
class GenerationResult:
    text: str
    data: dict[str, Any] | None
    prompt_tokens: int
    completion_tokens: int
    elapsed_s: float
    queued_s: float = 0.0
    cached_tokens: int = 0  # prompt tokens served from the KV cache (the reused fixed prefix)
    prefill_s: float = 0.0  # time to the first generated token, excluding the queue


class LlmEngine(Protocol):
    """A loaded model behind one worker. Thread-safe to call."""

    @property
    def model_name(self) -> str: ...

    def submit(self, request: GenerationRequest) -> Future[GenerationResult]:
        """Queue a request; the future raises ModelTimeout or ModelUnavailable on failure."""
        ...

    def generate(self, request: GenerationRequest) -> GenerationResult:
        """Blocking convenience: submit and wait."""
        ...

    def prepare_prefix(self, system: str, few_shot: Sequence[tuple[str, str]] = ()) -> object | None:
        """Put a fixed prompt prefix (system + few-shot) into the model's cache ahead of use, loading a
        saved state where there is one. Blocks; returns what was done, or None for an engine
        without a prefix cache. Warming is an optimisation: callers log and go on when it fails."""
        ...

    def close(self) -> None: ...

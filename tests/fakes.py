"""The one stand-in engine for pure-logic tests (the real engine is tested with llama.cpp).

Answers every request with `answer` (a JSON object, or a GenerationResult), raises `error`, or
never answers (`hang=True`, a stuck model); records the requests and the prefixes it was asked
to prepare."""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

from edge_slm.llm.api import GenerationRequest, GenerationResult


class FakeEngine:
    def __init__(
        self,
        answer: dict[str, Any] | GenerationResult | None = None,
        error: Exception | None = None,
        *,
        hang: bool = False,
        name: str = "fake",
    ) -> None:
        self.answer = answer if answer is not None else {"intent": "unknown", "slots": {}}
        self.error = error
        self.hang = hang
        self.name = name
        self.requests: list[GenerationRequest] = []
        self.prefixes: list[tuple[str, Sequence[tuple[str, str]]]] = []
        self.closed = False

    @property
    def model_name(self) -> str:
        return self.name

    def submit(self, request: GenerationRequest) -> Future[GenerationResult]:
        self.requests.append(request)
        fut: Future[GenerationResult] = Future()
        if self.hang:
            return fut  # never resolves
        if self.error is not None:
            fut.set_exception(self.error)
        elif isinstance(self.answer, GenerationResult):
            fut.set_result(self.answer)
        else:
            data = dict(self.answer)
            fut.set_result(
                GenerationResult(text=json.dumps(data), data=data, prompt_tokens=1, completion_tokens=1, elapsed_s=0.0)
            )
        return fut

    def generate(self, request: GenerationRequest) -> GenerationResult:
        return self.submit(request).result()

    def prepare_prefix(self, system: str, few_shot: Sequence[tuple[str, str]] = ()) -> object | None:
        self.prefixes.append((system, few_shot))
        return None

    def close(self) -> None:
        self.closed = True

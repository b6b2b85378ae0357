"""The optional model rephrasing of replies: kept only when faithful to the template."""

from __future__ import annotations

import json
from concurrent.futures import Future

import pytest

from edge_slm.errors import ModelTimeout
from edge_slm.intent.rephrase import Rephraser, faithful
from edge_slm.llm.api import GenerationRequest, GenerationResult

T = "The nearest gas station is Shell Main St, 340 meters away."


@pytest.mark.parametrize(
    ("candidate", "ok"),
    [
        ("Shell Main St is the closest gas station, 340 meters away.", True),
        ("The closest gas station, Shell Main St, is 340 meters from here.", True),
        ("Shell Main St is the closest gas station, 350 meters away.", False),  # number changed
        ("The closest gas station is 340 meters away.", False),  # name dropped
        ("Shell Main St is 340 meters away, next to Aral.", False),  # name added
        ("Shell Main St is 340 meters away and open 24 hours.", False),  # number added
        ("", False),
        ("Shell Main St, 340 meters.\nAlso try Aral.", False),
    ],
)
def test_faithful(candidate: str, ok: bool) -> None:
    assert faithful(T, candidate) is ok


def test_negation_must_survive() -> None:
    assert faithful("No active warnings for the tires.", "Your tires have no active warnings.")
    assert not faithful("No active warnings for the tires.", "Your tires have active warnings.")


class Echo:
    def __init__(self, answer: str = "", error: Exception | None = None) -> None:
        self.answer, self.error = answer, error
        self.requests: list[GenerationRequest] = []

    @property
    def model_name(self) -> str:
        return "echo"

    def submit(self, request: GenerationRequest) -> Future[GenerationResult]:
        raise NotImplementedError

    def generate(self, request: GenerationRequest) -> GenerationResult:
        self.requests.append(request)
        if self.error:
            raise self.error
        return GenerationResult(text=self.answer, data=None, prompt_tokens=1, completion_tokens=1, elapsed_s=0.0)

    def close(self) -> None:
        pass


def test_rephraser_uses_model_only_when_faithful() -> None:
    good = "Shell Main St is the closest gas station, 340 meters away."
    assert Rephraser(Echo(good)).rephrase(T) == (good, True)
    assert Rephraser(Echo("Go to Aral, 2 km.")).rephrase(T) == (T, False)
    assert Rephraser(Echo(error=ModelTimeout("slow"))).rephrase(T) == (T, False)
    engine = Echo(json.dumps("x"))
    Rephraser(engine).rephrase(T)
    Rephraser(engine).rephrase("Calling mom.")
    assert engine.requests[0].system == engine.requests[1].system  # fixed, cacheable prefix

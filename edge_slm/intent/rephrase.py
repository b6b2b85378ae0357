"""Optional: let the model smooth a template reply, keeping it only if it stays faithful.

The template reply is grounded; a rephrasing is accepted only when every number and every name
(capitalised word) of the template survives, nothing numeric or named is added, negations are
unchanged and the text stays short. Otherwise the template text is used. The daemon does not use
it (no config switch; it would cost one model call per reply): only `answer(..., rephraser=...)`
callers do.
"""

from __future__ import annotations

import logging
import re
from collections import Counter

from edge_slm.errors import EdgeSlmError
from edge_slm.llm.api import GenerationRequest, LlmEngine, Priority

log = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "Rewrite the car assistant's reply so it sounds natural when spoken. Keep every number, name and "
    "fact exactly as written. Do not add facts, advice or places. One or two short sentences."
)
FEW_SHOT: tuple[tuple[str, str], ...] = (
    (
        "The nearest gas station is Shell Main St, 340 meters away.",
        "Shell Main St is the closest gas station, just 340 meters away.",
    ),
    ("No active warnings for the tires.", "Your tires have no active warnings."),
)

_NUMBER_RE = re.compile(r"\d+(?:[.:,]\d+)?")
_WORD_RE = re.compile(r"[A-Za-z][\w'-]*")
_NEGATIONS = frozenset({"no", "not", "don't", "can't", "cannot", "never", "none", "nothing", "isn't", "aren't"})


def _names(text: str) -> set[str]:
    """Capitalised words that do not start a sentence (names of places, people, roads)."""
    names: set[str] = set()
    for sentence in re.split(r"(?<=[.!?;:])\s+", text.strip()):
        words = _WORD_RE.findall(sentence)
        names.update(w for w in words[1:] if w[0].isupper() and w != "I")
    return names


def faithful(original: str, candidate: str) -> bool:
    """True when `candidate` keeps every number and name of `original` and adds none."""
    candidate = candidate.strip()
    if not candidate or "\n" in candidate or len(candidate) > 2 * len(original) + 40:
        return False
    if Counter(_NUMBER_RE.findall(original)) != Counter(_NUMBER_RE.findall(candidate)):
        return False
    original_words = {w.lower() for w in _WORD_RE.findall(original)}
    candidate_words = {w.lower() for w in _WORD_RE.findall(candidate)}
    if any(name.lower() not in candidate_words for name in _names(original)):
        return False
    if any(name.lower() not in original_words for name in _names(candidate)):
        return False
    return (original_words & _NEGATIONS) == (candidate_words & _NEGATIONS)


class Rephraser:
    def __init__(self, engine: LlmEngine, *, deadline_s: float = 4.0, max_tokens: int = 64) -> None:
        self._engine = engine
        self.deadline_s = deadline_s
        self.max_tokens = max_tokens

    def rephrase(self, text: str) -> tuple[str, bool]:
        """(reply text, whether the model's wording was used)."""
        request = GenerationRequest(
            system=SYSTEM_PROMPT,
            user=text,
            max_tokens=self.max_tokens,
            temperature=0.0,
            priority=Priority.VOICE,
            deadline_s=self.deadline_s,
            few_shot=FEW_SHOT,
        )
        try:
            candidate = self._engine.generate(request).text.strip()
        except EdgeSlmError as err:
            log.debug("rephrase skipped: %s", err.message)
            return text, False
        if faithful(text, candidate):
            return candidate, True
        log.debug("rephrase rejected: %r -> %r", text, candidate)
        return text, False

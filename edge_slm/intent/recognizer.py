"""`IntentRecognizer`: grammar first, the semantic tier second, the model third, `unknown` when none is sure."""

from __future__ import annotations

import dataclasses
import logging
import unicodedata
from typing import TYPE_CHECKING

from edge_slm.events import Intent
from edge_slm.intent.grammar import Grammar, default_grammar
from edge_slm.intent.model_tier import ModelTier
from edge_slm.intent.schema import IntentName
from edge_slm.llm.api import LlmEngine

if TYPE_CHECKING:
    from edge_slm.config import IntentSettings
    from edge_slm.intent.semantic import SemanticTier

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 1000


# Free-text slots are handed to the head unit as the user wrote them ("Café Müller", "José").
VERBATIM_SLOTS = ("destination", "contact", "title")
_EDGE_PUNCTUATION = '.,!?;:"“”‘’()[]'


def _fold(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(c for c in decomposed if c.isalnum())


def restore_spelling(text: str, slots: dict[str, str]) -> dict[str, str]:
    """Matching works on lowercased, accent-folded words; put the original spelling (case,
    accents, apostrophes) of a free-text slot back when its words appear verbatim in `text`."""
    words = text.split()
    folded = [_fold(w) for w in words]
    out = dict(slots)
    for name in VERBATIM_SLOTS:
        value = slots.get(name, "")
        target = [f for f in (_fold(w) for w in value.split()) if f]
        if not target:
            continue
        for start in range(len(words) - len(target) + 1):
            if folded[start : start + len(target)] == target:
                kept = (w.strip(_EDGE_PUNCTUATION) for w in words[start : start + len(target)])
                out[name] = " ".join(w for w in kept if w)
                break
    return out


class IntentRecognizer:
    """Turns a transcript into an `Intent`. Thread-safe; `recognize` blocks while the model runs."""

    def __init__(
        self,
        intent_settings: IntentSettings,
        engine: LlmEngine | None,
        *,
        grammar: Grammar | None = None,
        deadline_s: float = 8.0,
    ) -> None:
        self.settings = intent_settings
        if grammar is None:  # the built-in grammar is compiled once per process and shared
            grammar = (
                Grammar.load(intent_settings.grammar_files) if intent_settings.grammar_files else default_grammar()
            )
        self.grammar = grammar
        self.model_tier: ModelTier | None = None
        if engine is not None and intent_settings.model_fallback:
            self.model_tier = ModelTier(engine, self.grammar, deadline_s=deadline_s)
        self.semantic: SemanticTier | None = None

    def attach_semantic(self, tier: SemanticTier | None) -> None:
        """Put the semantic tier between the grammar and the model (`semantic.build_semantic_tier`)."""
        self.semantic = tier

    def recognize(self, text: str) -> Intent:
        """Every tier in turn; blocks while the model runs."""
        return self.recognize_fast(text) or self.recognize_with_model(text)

    def recognize_fast(self, text: str) -> Intent | None:
        """The tiers that answer in milliseconds; None when only the model tier could tell."""
        return self.fast_tiers(text) or self.not_understood(text)

    def not_understood(self, text: str) -> Intent | None:
        """What `recognize_fast` says when no fast tier understood `text`: `unknown` without a model
        tier, None when the model tier is to try."""
        if self.model_tier is not None:
            return None
        return Intent(text=text[:MAX_TEXT_CHARS], name=IntentName.UNKNOWN.value, slots={}, confidence=0.0)

    def fast_tiers(self, text: str) -> Intent | None:
        """What the grammar or the semantic tier make of `text`: an intent, `unknown` when it is refused
        (hostile text, empty text, a safety gate), or None when neither understood it."""
        text = text[:MAX_TEXT_CHARS]
        normalized = self.grammar.normalizer.normalize(text)
        if not normalized or self.grammar.is_hostile_text(text):
            return Intent(text=text, name=IntentName.UNKNOWN.value, slots={}, source="grammar")
        match = self.grammar.match_normalized(normalized)
        if match is not None:
            return Intent(text=text, name=match.intent, slots=restore_spelling(text, match.slots), source="grammar")
        # semantic tier: None = abstained; unknown = a safety gate said no, and the model may not overrule it
        if self.semantic is not None:
            semantic = self.semantic.classify(text, normalized)
            if semantic is not None:
                return dataclasses.replace(semantic, slots=restore_spelling(text, semantic.slots))
        return None

    def recognize_with_model(self, text: str) -> Intent:
        """The model tier (seconds on a small board); `unknown` without a model."""
        text = text[:MAX_TEXT_CHARS]
        if self.model_tier is None:
            return Intent(text=text, name=IntentName.UNKNOWN.value, slots={}, source="grammar", confidence=0.0)
        intent = self.model_tier.classify(text, self.grammar.normalizer.normalize(text))
        return dataclasses.replace(intent, slots=restore_spelling(text, intent.slots))

    def phrases_for_asr(self, max_phrases: int = 2000) -> list[str]:
        return self.grammar.phrases_for_asr(max_phrases)

"""Tier 2: the semantic tier, between the grammar and the SLM.

A small sentence encoder (all-MiniLM-L6-v2 GGUF through llama.cpp) embeds the normalized command;
it is scored against labelled examples of every intent (`intent.examples`) and of out-of-domain
speech (`unknown`). Per intent the score is the mean cosine of its `TOP_K` nearest examples.
The tier answers only when the best intent

- reaches `threshold` (`action_threshold` for navigate / call / calendar),
- leads the best other intent *and* the out-of-domain examples by `margin`,
- passes the safety gates (`intent.safety`: negation, cancellation, past, assistant talk,
  unsupported domains, two commands in one), and
- has its slot, found as a span of the user's own words (`intent.slots`) — an action without
  its slot never happens;

otherwise it abstains (None) and the next tier decides. Example embeddings are cached per text
(`intent.vector_cache`: shipped for the built-in examples, and in the state dir), keyed by the
encoder's content hash, so a start-up embeds only sentences no cache has seen.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_slm.errors import EdgeSlmError
from edge_slm.events import Intent
from edge_slm.intent.examples import Example, build_examples
from edge_slm.intent.grammar import REQUIRED_SLOTS, Grammar
from edge_slm.intent.safety import refusal
from edge_slm.intent.schema import ACTION_INTENTS, INTENT_SLOTS, IntentName
from edge_slm.intent.slots import SlotExtractor

if TYPE_CHECKING:
    import numpy as np

    from edge_slm.config import SemanticSettings, Settings
    from edge_slm.llm.embedding import SentenceEncoder

log = logging.getLogger(__name__)

TOP_K = 3
UNKNOWN = IntentName.UNKNOWN.value


@dataclass(frozen=True)
class SemanticScore:
    """What the tier saw for one command (for `--explain`-style debugging and the scorer)."""

    intent: str  # best intent other than unknown
    score: float
    runner_up: str
    runner_up_score: float
    unknown_score: float
    refused: str = ""  # why it abstained ("" when it answered)
    safety: bool = False  # refused by a safety gate: the command must stay unknown in every tier
    per_intent: tuple[tuple[str, float], ...] = ()  # every intent's score, best first


class SemanticTier:
    """Thread-safe. `classify(text, normalized)` returns an `Intent` (source "semantic") or None."""

    def __init__(
        self,
        settings: SemanticSettings,
        grammar: Grammar,
        encoder_loader: Callable[[], SentenceEncoder],
        *,
        cache_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self.grammar = grammar
        self.slots = SlotExtractor(grammar)
        self._loader = encoder_loader
        self._cache_dir = cache_dir
        self._lock = threading.Lock()
        self._encoder: SentenceEncoder | None = None
        self._failed = ""
        self._examples: list[Example] = []
        self._matrix: Any = None
        self._labels: Any = None
        self._intents: list[str] = []
        self.load_s = 0.0
        self.encoded_at_load = 0  # example texts no cache had (embedded during the load)

    # -- loading ---------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._matrix is not None

    @property
    def failed(self) -> str:
        return self._failed

    @property
    def example_count(self) -> int:
        return len(self._examples)

    def warm_up(self) -> bool:
        """Load the encoder and the example embeddings now (else on first use). False when unavailable."""
        with self._lock:
            return self._ensure_loaded()

    def _ensure_loaded(self) -> bool:
        if self._matrix is not None:
            return True
        if self._failed:
            return False
        started = time.monotonic()
        try:
            import numpy as np

            self._encoder = self._loader()
            self._examples = build_examples(self.grammar, self.settings.examples_file)
            self._matrix = self._example_matrix(self._encoder, self._examples)
            self._intents = sorted({ex.intent for ex in self._examples})
            index = {name: i for i, name in enumerate(self._intents)}
            self._labels = np.array([index[ex.intent] for ex in self._examples], dtype=np.int32)
            self.grammar.find_rule("when", "tomorrow")  # compiles the time rule now, not in the first command
        except EdgeSlmError as err:
            self._failed = f"semantic tier not available: {err.message}"
        except Exception as err:  # a broken native library must not take the other tiers down
            self._failed = f"semantic tier not available: {err.__class__.__name__}: {err}"
        if self._failed:
            log.warning("%s; the grammar and the model tier still answer", self._failed)
            self._matrix = None
            return False
        self.load_s = time.monotonic() - started
        log.info(
            "semantic tier ready: %d examples (%d embedded now) in %.2f s",
            len(self._examples),
            self.encoded_at_load,
            self.load_s,
        )
        return True

    def _example_matrix(self, encoder: SentenceEncoder, examples: list[Example]) -> np.ndarray:
        from edge_slm.intent.vector_cache import embed_with_cache

        fingerprint = encoder.fingerprint
        cache_file = self._cache_dir / f"vectors-{fingerprint[:16]}.npz" if self._cache_dir is not None else None
        matrix, encoded = embed_with_cache([ex.text for ex in examples], fingerprint, encoder.encode, cache_file)
        self.encoded_at_load = encoded
        return matrix

    # -- scoring ---------------------------------------------------------------------------------

    def score(self, normalized: str) -> SemanticScore | None:
        """Per-intent scores for a normalized command; None when the tier is unavailable."""
        import numpy as np

        with self._lock:
            if not self._ensure_loaded():
                return None
            assert self._encoder is not None
            query = self._encoder.encode([normalized])[0]
            matrix, labels, intents = self._matrix, self._labels, self._intents
        # einsum, not BLAS: OpenBLAS threads spin against llama.cpp and the SLM for a 0.5 MFLOP product
        sims = np.einsum("ij,j->i", matrix, query)
        per_intent: dict[str, float] = {}
        for i, name in enumerate(intents):
            row = sims[labels == i]
            k = min(TOP_K, row.shape[0])
            per_intent[name] = float(np.mean(np.partition(row, row.shape[0] - k)[-k:])) if k else -1.0
        unknown = per_intent.pop(UNKNOWN, -1.0)
        ranked = sorted(per_intent.items(), key=lambda kv: kv[1], reverse=True)
        best, best_score = ranked[0]
        runner, runner_score = ranked[1] if len(ranked) > 1 else ("", -1.0)
        return SemanticScore(best, best_score, runner, runner_score, unknown, per_intent=tuple(ranked))

    def classify(self, text: str, normalized: str) -> Intent | None:
        """The tier's answer (`unknown` when a safety gate refused), or None to let the next tier decide."""
        decision = self.decide(normalized)
        if decision is None:
            return None
        scored, slots = decision
        if scored.refused:
            if not scored.safety:
                return None
            return Intent(text, IntentName.UNKNOWN.value, {}, "semantic", round(scored.score, 3))
        return Intent(text, scored.intent, slots, "semantic", round(scored.score, 3))

    def decide(self, normalized: str) -> tuple[SemanticScore, dict[str, str]] | None:
        """Scores plus the verdict (`refused` says why it abstains); None when unavailable."""
        scored = self.score(normalized)
        if scored is None:
            return None
        settings = self.settings
        intent = scored.intent
        need = settings.action_threshold if intent in ACTION_INTENTS else settings.threshold
        reason = ""
        safety = False
        cue = self.slots.cue(normalized)
        cue_score = dict(scored.per_intent).get(cue, -1.0)
        cue_need = settings.action_threshold if cue in ACTION_INTENTS else settings.threshold
        if cue and cue != intent and cue in (scored.intent, scored.runner_up) and cue_score >= cue_need:
            # the opening words settle a near tie ("call the office": call vs navigate)
            scored = dataclasses.replace(
                scored, intent=cue, score=cue_score, runner_up=intent, runner_up_score=scored.score
            )
            intent = cue
            need = cue_need
        if scored.score < need:
            reason = f"below threshold ({scored.score:.3f} < {need:.2f})"
        elif cue != intent and scored.score - max(scored.runner_up_score, scored.unknown_score) < settings.margin:
            # (an unmistakable opening needs no margin over its neighbours; the safety gates still apply)
            other = scored.runner_up if scored.runner_up_score >= scored.unknown_score else UNKNOWN
            reason = f"no margin over {other}"
        else:
            intent = self._reroute(intent, normalized)
            reason = refusal(normalized, intent) or self.grammar_refusal(normalized)
            safety = bool(reason)
            if not reason and intent in ACTION_INTENTS and scored.score < settings.action_threshold:
                reason = f"below threshold ({scored.score:.3f} < {settings.action_threshold:.2f})"
        slots: dict[str, str] = {}
        if not reason:
            slots = self.slots.slots_for(intent, normalized)
            missing = [name for name in INTENT_SLOTS[intent] if name in REQUIRED_SLOTS and not slots.get(name)]
            if missing:
                reason = f"no {missing[0]} in the words"
        verdict = SemanticScore(
            intent, scored.score, scored.runner_up, scored.runner_up_score, scored.unknown_score, reason, safety
        )
        return verdict, slots

    def _reroute(self, intent: str, normalized: str) -> str:
        """Where the words settle what the encoder blurs: "swing by a store" is a search, "stop by the
        pharmacy on main street" a destination, "give the office a shout" a call."""
        if self.slots.is_reminder(normalized):
            return IntentName.CREATE_EVENT.value
        if intent == IntentName.NAVIGATE_TO.value and self.slots.generic_place(normalized):
            return IntentName.FIND_POI.value
        if intent == IntentName.FIND_POI.value and self.slots.particular_place(normalized):
            return IntentName.NAVIGATE_TO.value
        if intent != IntentName.CALL_CONTACT.value and self.slots.strong_contact(normalized):
            return IntentName.CALL_CONTACT.value
        return intent

    def grammar_refusal(self, normalized: str) -> str:
        if self.grammar.is_hostile(normalized):
            return "instruction to the assistant"
        if self.grammar.is_not_command(normalized):
            return "idiom"
        return ""

    def close(self) -> None:
        with self._lock:  # waits for a warm-up in progress; later calls abstain
            encoder, self._encoder = self._encoder, None
            self._matrix = None
            self._failed = self._failed or "semantic tier closed"
        if encoder is not None:
            encoder.close()


def build_semantic_tier(settings: Settings, grammar: Grammar) -> SemanticTier | None:
    """The tier as configured (None when `intent.semantic.enabled` is false); the encoder loads lazily."""
    semantic = settings.intent.semantic
    if not semantic.enabled:
        return None

    def load() -> SentenceEncoder:
        from edge_slm.llm.embedding import load_encoder

        return load_encoder(settings)

    return SemanticTier(semantic, grammar, load, cache_dir=settings.effective_state_dir / "semantic")

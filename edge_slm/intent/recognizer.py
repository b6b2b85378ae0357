"""`IntentRecognizer`: grammar first, the semantic tier second, the model third, `unknown` when none is sure.

Also `run_intent_cli`, the body of `edge-slm intent TEXT` and `edge-slm intent --batch`
(CONTRACT §1). The model is loaded lazily, at most once, and only when the grammar needs help;
if it cannot be loaded the grammar tier still answers and one warning goes to the log (stderr).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
import unicodedata
from collections.abc import Callable
from concurrent.futures import Future
from typing import IO, TYPE_CHECKING, Any

from edge_slm.errors import EXIT_OK, EXIT_USAGE, EdgeSlmError, ModelUnavailable
from edge_slm.events import Intent
from edge_slm.intent.grammar import Grammar, default_grammar
from edge_slm.intent.model_tier import ModelTier
from edge_slm.intent.schema import IntentName
from edge_slm.llm.api import GenerationRequest, GenerationResult, LlmEngine

if TYPE_CHECKING:
    from edge_slm.config import IntentSettings, Settings
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
        if self.model_tier is not None:
            intent = self.model_tier.classify(text, normalized)
            return dataclasses.replace(intent, slots=restore_spelling(text, intent.slots))
        return Intent(text=text, name=IntentName.UNKNOWN.value, slots={}, source="grammar", confidence=0.0)

    def phrases_for_asr(self, max_phrases: int = 2000) -> list[str]:
        return self.grammar.phrases_for_asr(max_phrases)


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

    def prepare_prefix(self, system: str, few_shot: Any = ()) -> Any:
        prepare = getattr(self._get(), "prepare_prefix", None)
        return prepare(system, few_shot) if prepare is not None else None

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()


def _default_loader(settings: Settings) -> Callable[[], LlmEngine]:
    def load() -> LlmEngine:
        from edge_slm.llm.engine import load_engine

        return load_engine(settings)

    return load


def _error_line(line_no: int, message: str) -> str:
    return json.dumps({"error": message, "line": line_no}, ensure_ascii=False)


def _emit(stdout: IO[str], payload: dict[str, Any]) -> None:
    stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")
    stdout.flush()


def run_intent_cli(
    settings: Settings,
    text: str | None,
    batch: bool,
    stdin: IO[str],
    stdout: IO[str],
    *,
    engine_loader: Callable[[], LlmEngine] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """`edge-slm intent TEXT` / `edge-slm intent --batch` (CONTRACT §1). Returns the exit code.

    Single: prints one `{"text", "intent", "slots", "source"}` object. Batch: reads JSON lines
    `{"text": ...}` and writes exactly one line per input line, in order; a bad line gets
    `{"error": ..., "line": n}` instead. The model (if enabled) is loaded once, when first needed.
    """
    if batch == (text is not None):
        message = "give either TEXT or --batch" if not batch else "TEXT and --batch exclude each other"
        if stderr is not None:
            stderr.write(f"edge-slm intent: {message}\n")
        else:
            log.error("edge-slm intent: %s", message)
        return EXIT_USAGE
    engine: LazyEngine | None = None
    if settings.intent.model_fallback and settings.model.enabled:
        engine = LazyEngine(engine_loader or _default_loader(settings), settings.model.name or "model")
    recognizer = IntentRecognizer(settings.intent, engine, deadline_s=settings.model.voice_deadline_s)
    from edge_slm.intent.semantic import build_semantic_tier

    recognizer.attach_semantic(build_semantic_tier(settings, recognizer.grammar))
    try:
        if text is not None:
            _emit(stdout, intent_payload(recognizer.recognize(text)))
            return EXIT_OK
        for line_no, line in enumerate(stdin, start=1):
            stdout.write(_batch_line(recognizer, line, line_no) + "\n")
            stdout.flush()
        return EXIT_OK
    finally:
        if engine is not None:
            engine.close()
        if recognizer.semantic is not None:
            recognizer.semantic.close()


def intent_payload(intent: Intent) -> dict[str, Any]:
    """CONTRACT §1 object plus the tier's `confidence` (1.0 for a grammar match)."""
    return {**intent.to_payload(), "confidence": round(float(intent.confidence), 3)}


def _batch_line(recognizer: IntentRecognizer, line: str, line_no: int) -> str:
    if not line.strip():
        return _error_line(line_no, "empty line")  # still one output line per input line
    try:
        item = json.loads(line)
    except json.JSONDecodeError as err:
        return _error_line(line_no, f"not JSON: {err.msg}")
    if not isinstance(item, dict):
        return _error_line(line_no, 'expected a JSON object with a "text" string')
    value = item.get("text")
    if not isinstance(value, str):
        return _error_line(line_no, 'missing "text" string')
    started = time.perf_counter()
    try:
        intent = recognizer.recognize(value)
    except Exception as err:  # one bad line never stops the batch
        log.exception("intent recognition failed on line %d", line_no)
        return _error_line(line_no, f"recognition failed: {err.__class__.__name__}")
    log.debug("line %d recognized in %.1f ms", line_no, (time.perf_counter() - started) * 1000)
    return json.dumps(intent_payload(intent), ensure_ascii=False)

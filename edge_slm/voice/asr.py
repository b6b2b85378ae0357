"""Speech recognition with Vosk. The only module that imports `vosk`.

Not thread-safe: the listener calls everything here from one single-worker executor ("asr").

Which transcript to trust (grammar vs open vocabulary), per utterance:

1. The utterance is decoded while it is spoken by the *grammar* recognizer (the command phrases from the
   intents, plus "[unk]" where the model has it). A grammar decoder maps every sound onto its phrases,
   so its output alone proves little: on this project's Korean model (no "[unk]") an English sentence
   came out as a Korean phrase with confidence 1.0, and Vosk's grammar is a phrase *loop*, so it can
   also return a concatenation of phrases that is no phrase at all.
2. So the grammar result is trusted only if its text is exactly one of the phrases, contains no
   "[unk]", and its weakest word (one wrong slot value makes a wrong command) has confidence (MBR
   posterior, 0-1) >= SURE_CONFIDENCE, or >= `min_grammar_confidence` *and* the open-vocabulary
   decoder's text shares at least MIN_AGREEMENT of its character bigrams with the phrase. Measured
   on the Korean model: right phrases came out at 1.0; "take me home" (English) was forced onto
   "음악 틀어 줘" with weakest word 0.62 while the open decoder heard "제 [2] 의 있어요" (similarity 0).
3. Otherwise the text of the *open-vocabulary* recognizer, which decoded the same audio alongside,
   goes on to the intent parser (grammar first, then the SLM). Both decoders run while the utterance
   is spoken (not the open one lazily afterwards): that doubles recognition CPU during speech (2 x
   ~0.18 of a core here) but keeps the end-of-speech -> transcript latency the same for commands and
   free speech; re-decoding afterwards would have added ~0.2 s per s of speech to every fallback.
4. An empty open-vocabulary result (noise, a cough) yields no transcript at all.

With `grammar_mode = false`, or when no phrase survives the vocabulary check, only open vocabulary runs.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from edge_slm.errors import DependencyMissing, ModelError
from edge_slm.voice.vosk_models import resolve_model

log = logging.getLogger(__name__)

UNK = "[unk]"
_PUNCT = re.compile(r"[^\w\s'\[\]-]+", re.UNICODE)


def normalize(text: str) -> str:
    """Lower case, punctuation removed, single spaces: the form phrases and results are compared in."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


#: A grammar result whose every word has at least this confidence is trusted outright.
SURE_CONFIDENCE = 0.95
#: Below that, the open-vocabulary text must share this much (character-bigram Dice) with the phrase.
MIN_AGREEMENT = 0.3


def similarity(a: str, b: str) -> float:
    """Dice coefficient of the character bigrams of `a` and `b`, spaces ignored (0 = nothing shared, 1 = same).

    Works for Hangul syllables as well as Latin letters, and tolerates an open-vocabulary decoder's
    typical errors (a word split in two, a wrong ending) that whole-word comparison would not.
    """
    x, y = a.replace(" ", ""), b.replace(" ", "")
    if len(x) < 2 or len(y) < 2:
        return 1.0 if x and x == y else 0.0
    bx = [x[i : i + 2] for i in range(len(x) - 1)]
    by = [y[i : i + 2] for i in range(len(y) - 1)]
    remaining = list(by)
    shared = 0
    for gram in bx:
        if gram in remaining:
            remaining.remove(gram)
            shared += 1
    return 2.0 * shared / (len(bx) + len(by))


def import_vosk(debug: bool = False) -> Any:
    try:
        import vosk
    except (ImportError, OSError) as err:
        raise DependencyMissing(f"vosk is not installed ({err}): pip install 'edge-slm[voice]'") from err
    vosk.SetLogLevel(0 if debug else -1)  # Kaldi logs to stderr otherwise
    return vosk


@dataclass(frozen=True, slots=True)
class WordTiming:
    word: str
    start_s: float  # seconds from the start of the utterance audio
    end_s: float
    confidence: float


@dataclass(frozen=True, slots=True)
class AsrResult:
    text: str
    confidence: float
    words: tuple[WordTiming, ...]
    mode: str  # "grammar" | "open" | "none"
    grammar_text: str = ""
    alternatives: tuple[str, ...] = ()  # other readings nearly as likely as `text` (Whisper's beam)

    @property
    def empty(self) -> bool:
        return not self.text


class Recognizer(Protocol):
    """One utterance at a time: begin, accept audio as it arrives, end."""

    sample_rate_hz: int

    def begin_utterance(self) -> None: ...

    def accept(self, pcm: bytes) -> None: ...

    def partial(self) -> str: ...

    def end_utterance(self) -> AsrResult: ...


class VoskModel:
    """A loaded Vosk model (hundreds of MB; load once, share between recognizers)."""

    def __init__(self, ref: str, cache_dir: Path | None = None, debug: bool = False) -> None:
        self.vosk = import_vosk(debug)
        self.path = resolve_model(ref, cache_dir)
        try:
            self.model: Any = self.vosk.Model(str(self.path))
        except Exception as err:  # vosk raises a bare Exception("Failed to create a model")
            raise ModelError(f"cannot load Vosk model {self.path}: {err}") from err

    def knows(self, word: str) -> bool:
        return int(self.model.vosk_model_find_word(word)) >= 0

    def usable_phrases(self, phrases: Iterable[str]) -> list[str]:
        """Normalized phrases whose every word is in the model's vocabulary (others cannot be decoded)."""
        usable: list[str] = []
        dropped: list[str] = []
        for phrase in dict.fromkeys(normalize(p) for p in phrases if p.strip()):
            (usable if all(self.knows(w) for w in phrase.split()) else dropped).append(phrase)
        if dropped:
            log.info(
                "%d of %d grammar phrases use words the Vosk model lacks, e.g. %r",
                len(dropped),
                len(dropped) + len(usable),
                dropped[0],
            )
        return usable

    def recognizer(self, sample_rate_hz: int, grammar: Sequence[str] | None = None) -> Any:
        args: list[Any] = [self.model, float(sample_rate_hz)]
        if grammar is not None:
            args.append(json.dumps(list(grammar), ensure_ascii=False))
        rec = self.vosk.KaldiRecognizer(*args)
        rec.SetWords(True)
        rec.SetPartialWords(False)
        return rec


class _Stream:
    """A KaldiRecognizer plus the bookkeeping to turn its stream-relative word times into utterance times."""

    def __init__(self, rec: Any, sample_rate_hz: int) -> None:
        self.rec = rec
        self.rate = sample_rate_hz
        self.fed_samples = 0
        self.utt_offset_s = 0.0
        self.words: list[WordTiming] = []

    def begin(self) -> None:
        self.utt_offset_s = self.fed_samples / self.rate
        self.words = []

    def accept(self, pcm: bytes) -> None:
        self.fed_samples += len(pcm) // 2
        if self.rec.AcceptWaveform(pcm):  # Vosk's own endpoint inside our utterance: keep the segment
            self._collect(self.rec.Result())

    def finish(self) -> list[WordTiming]:
        self._collect(self.rec.FinalResult())
        return self.words

    def _collect(self, raw: str) -> None:
        for w in json.loads(raw).get("result", []):
            self.words.append(
                WordTiming(
                    str(w["word"]),
                    float(w["start"]) - self.utt_offset_s,
                    float(w["end"]) - self.utt_offset_s,
                    float(w.get("conf", 1.0)),
                )
            )


class VoskRecognizer:
    """Grammar-first recognition with open-vocabulary fallback (policy in the module docstring).

    Both decoders are fed while the utterance is spoken, so the fallback adds no latency after the end
    of speech (measured: each costs ~0.18 s CPU per s of audio on this model, and only during
    utterances). `open_fallback=False` is the strict grammar-restricted mode: an untrusted grammar
    result gives an empty result instead of open-vocabulary text.
    """

    def __init__(
        self,
        model: VoskModel,
        sample_rate_hz: int = 16000,
        phrases: Sequence[str] = (),
        grammar_mode: bool = True,
        min_grammar_confidence: float = 0.6,
        open_fallback: bool = True,
    ) -> None:
        self.model = model
        self.sample_rate_hz = sample_rate_hz
        self.min_grammar_confidence = min_grammar_confidence
        self.phrases = model.usable_phrases(phrases) if grammar_mode else []
        self._phrase_set = frozenset(self.phrases)
        grammar = [*self.phrases, UNK] if self.phrases and model.knows(UNK) else list(self.phrases)
        self._grammar = _Stream(model.recognizer(sample_rate_hz, grammar), sample_rate_hz) if grammar else None
        use_open = self._grammar is None or open_fallback
        self._open = _Stream(model.recognizer(sample_rate_hz), sample_rate_hz) if use_open else None

    @property
    def grammar_active(self) -> bool:
        return self._grammar is not None

    @property
    def _streams(self) -> list[_Stream]:
        return [st for st in (self._grammar, self._open) if st is not None]

    def begin_utterance(self) -> None:
        for stream in self._streams:
            stream.begin()

    def accept(self, pcm: bytes) -> None:
        for stream in self._streams:
            stream.accept(pcm)

    def partial(self) -> str:
        stream = self._grammar or self._open
        assert stream is not None
        return str(json.loads(stream.rec.PartialResult()).get("partial", ""))

    def end_utterance(self) -> AsrResult:
        grammar_words = self._grammar.finish() if self._grammar is not None else None
        open_words = self._open.finish() if self._open is not None else []
        if grammar_words is None:
            return self._result(open_words, "open")
        grammar_text = " ".join(w.word for w in grammar_words)
        open_text = " ".join(w.word for w in open_words if w.word != UNK) if self._open is not None else None
        if self.trust_grammar(grammar_words, open_text):
            return self._result(grammar_words, "grammar")
        if self._open is None:
            return AsrResult("", 0.0, (), "none", grammar_text)
        result = self._result(open_words, "open")
        return AsrResult(result.text, result.confidence, result.words, result.mode, grammar_text)

    def trust_grammar(self, words: Sequence[WordTiming], open_text: str | None = None) -> bool:
        text = " ".join(w.word for w in words)
        if not words or text not in self._phrase_set or any(w.word == UNK for w in words):
            return False
        weakest = min(w.confidence for w in words)
        if weakest >= SURE_CONFIDENCE or open_text is None:
            return weakest >= self.min_grammar_confidence
        # Not sure: trust it only if the open-vocabulary decoder heard something like it too.
        return weakest >= self.min_grammar_confidence and similarity(text, open_text) >= MIN_AGREEMENT

    @staticmethod
    def _result(words: Sequence[WordTiming], mode: str) -> AsrResult:
        kept = tuple(w for w in words if w.word != UNK)
        if not kept:
            return AsrResult("", 0.0, (), "none")
        confidence = sum(w.confidence for w in kept) / len(kept)
        return AsrResult(" ".join(w.word for w in kept), confidence, kept, mode)


class PhraseSpotter:
    """Spots a phrase (the wake phrase) in an utterance with a small grammar.

    A grammar decoder maps every sound onto its grammar, so the grammar must give other speech
    somewhere else to go: "[unk]" where the model has it, plus `fillers` (the words of the command
    phrases). Measured on the Korean model: with the wake phrase alone every utterance (English
    included) came out as the wake phrase with confidence 1.0; with the command words as fillers only
    the wake phrase did. The phrase's weakest word must also reach `min_confidence`.
    """

    def __init__(
        self,
        model: VoskModel,
        phrases: Sequence[str],
        sample_rate_hz: int = 16000,
        min_confidence: float = 0.7,
        fillers: Iterable[str] = (),
    ) -> None:
        self.phrases = model.usable_phrases(phrases)
        if not self.phrases:
            raise ModelError(f"wake phrase {list(phrases)!r} uses words the Vosk model does not know")
        self.min_confidence = min_confidence
        wake_words = {w for p in self.phrases for w in p.split()}
        filler_words = [w for p in model.usable_phrases(fillers) for w in p.split() if w not in wake_words]
        grammar = [*self.phrases, *dict.fromkeys(filler_words)]
        if model.knows(UNK):
            grammar.append(UNK)
        self._stream = _Stream(model.recognizer(sample_rate_hz, grammar), sample_rate_hz)
        self.sample_rate_hz = sample_rate_hz

    def begin_utterance(self) -> None:
        self._stream.begin()

    def accept(self, pcm: bytes) -> None:
        self._stream.accept(pcm)

    def end_utterance(self) -> tuple[bool, float]:
        """(spotted, confidence of the weakest word of the spotted phrase)."""
        words = self._stream.finish()
        best = 0.0
        for phrase in self.phrases:
            n = len(phrase.split())
            for i in range(len(words) - n + 1):
                window = words[i : i + n]
                if " ".join(w.word for w in window) == phrase:
                    best = max(best, min(w.confidence for w in window))
        return best >= self.min_confidence, best

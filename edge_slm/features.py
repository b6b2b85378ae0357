"""Builds the model-backed and device-backed parts of the daemon (SLM engine, alert
explainer, intent recognizer, grounded responder, navigation facts, microphone listener)
and gives the runtime one small surface over them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edge_slm.config import Settings
from edge_slm.errors import DecodeError
from edge_slm.events import Alert, Reply, Transcript
from edge_slm.intent.answer import answer, build_responder
from edge_slm.intent.recognizer import IntentRecognizer
from edge_slm.llm.api import LlmEngine
from edge_slm.llm.explain import AlertExplainer
from edge_slm.nav.state import NavStateStore

if TYPE_CHECKING:
    from edge_slm.voice.listener import SourceFactory

log = logging.getLogger(__name__)


class Features:
    def __init__(
        self,
        settings: Settings,
        engine: LlmEngine | None,
        firing_alerts: Callable[[str | None], list[Alert]],
    ) -> None:
        self._settings = settings
        self.engine = engine
        self.status: dict[str, str] = {"model": f"loaded: {engine.model_name}" if engine else "disabled"}
        self.explainer = AlertExplainer(
            engine if settings.model.explain_alerts else None,
            deadline_s=settings.model.explain_deadline_s,
            max_tokens=settings.model.explain_max_tokens,
        )
        self.recognizer = IntentRecognizer(settings.intent, engine, deadline_s=settings.model.voice_deadline_s)
        self.nav = NavStateStore()
        vehicle = settings.voice.vehicle_device
        self.responder = build_responder(
            settings, self.nav, lambda: firing_alerts(vehicle or None), self.recognizer.grammar
        )
        if settings.poi.file and self.responder.pois is None:
            self.status["poi"] = f"unusable: {settings.poi.file}"
        self._listener: Any = None
        # Where the listener's audio comes from: None = the configured input device. The demo sets a
        # WAV file source here before the daemon starts, so spoken commands take the microphone path.
        self.voice_source_factory: SourceFactory | None = None

    # -- voice commands ---------------------------------------------------------------

    def warm_up(self) -> None:
        """Prefill the fixed prompt prefixes (or load them from disk) before the first alert
        or command needs them. Blocks; run it off the event loop."""
        self.explainer.warm()
        if self.recognizer.model_tier is not None:
            self.recognizer.model_tier.warm_up()  # last: a waiting driver's prefix stays hot

    def answer(self, transcript: Transcript) -> Reply:
        """Runs on the intent worker thread (the model tier may take a while)."""
        return answer(transcript, self.recognizer, self.responder)

    def update_nav(self, payload: bytes) -> str:
        """Keep the latest navigation state; returns the rejection reason for a bad payload."""
        if not payload.strip():
            self.nav.set(None)  # an empty retained message clears the state: facts are gone
            return ""
        try:
            self.nav.update(payload)
        except DecodeError as err:
            return str(err)
        return ""

    # -- microphone -------------------------------------------------------------------

    def start_voice(self, on_transcript: Callable[[Transcript], None], on_status: Callable[[str, str], None]) -> None:
        voice = self._settings.voice
        if not voice.enabled:
            self.status["microphone"] = "disabled"
            return
        from edge_slm.voice.recognizers import choose_engine, poi_names

        if not voice.vosk_model and choose_engine(voice, self._settings.model_cache_dir / "vosk") == "vosk":
            self.status["microphone"] = "off: no voice.vosk_model configured (transcripts over MQTT still work)"
            log.info("voice: no voice.vosk_model configured; listening for transcripts over MQTT only")
            return
        from edge_slm.voice.listener import VoiceListener

        phrases = self.recognizer.phrases_for_asr()
        self._listener = VoiceListener(
            voice,
            phrases,
            on_transcript,
            on_status,
            source_factory=self.voice_source_factory,
            cache_dir=self._settings.model_cache_dir / "vosk",
            vad=voice.vad,
            min_grammar_confidence=voice.min_grammar_confidence,
            open_fallback=voice.open_fallback,
            debug=self._settings.log_level == "debug",
            vocabulary=poi_names(self.responder.pois),
        )
        self._listener.start()

    def stop_voice(self) -> None:
        if self._listener is not None:
            self._listener.stop()

    def open_listen_window(self) -> None:
        if self._listener is not None:
            self._listener.open_listen_window()

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self._listener is not None:
            out["voice"] = dict(self._listener.counters())
        return out

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()


def build_features(settings: Settings, firing_alerts: Callable[[str | None], list[Alert]]) -> Features:
    """Loads the model (raising ModelError, exit 3, when it is missing or cannot fit)."""
    engine: LlmEngine | None = None
    if settings.model.enabled:
        from edge_slm.llm.engine import load_engine

        engine = load_engine(settings)
    return Features(settings, engine, firing_alerts)

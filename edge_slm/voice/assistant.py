"""The assistant's side of the voice flow, in one small surface for the runtime: dialog context for
`answer()`, spoken replies, spoken announcements of alerts, and the half-duplex check the microphone
path uses to ignore the assistant's own voice.

Speech needs `voice.enabled` and `voice.tts` other than "off"; the dialog context works without it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from edge_slm.config import VoiceSettings
from edge_slm.events import Alert, Reply
from edge_slm.intent.context import DialogContext
from edge_slm.voice.announce import AnnouncePolicy, parse_min_severity

log = logging.getLogger(__name__)


class Assistant:
    def __init__(self, voice: VoiceSettings) -> None:
        self._voice = voice
        self.context = DialogContext(
            ttl_s=voice.context_ttl_s,
            confirm_actions=voice.confirm_actions,
            confirm_below_confidence=voice.confirm_below_confidence,
        )
        self.announcer = AnnouncePolicy(
            parse_min_severity(voice.announce_severity), voice.vehicle_device, repeat_after_s=voice.announce_repeat_s
        )
        self.speaker: Any = None  # speaker.Speaker once started
        self.counters: dict[str, int] = {"announcements": 0, "barge_ins": 0}

    @property
    def speech_enabled(self) -> bool:
        return self._voice.enabled and self._voice.tts != "off"

    def start_speech(self, on_status: Callable[[str, str], None]) -> None:
        """Start the speaker (its thread loads the synthesizer). Never raises: problems go to on_status."""
        if not self.speech_enabled or self.speaker is not None:
            return
        from edge_slm.voice.speaker import build_speaker

        v = self._voice
        self.speaker = build_speaker(
            v.tts,
            v.output_device,
            piper_voice=v.piper_voice,
            threads=v.tts_threads,
            tail_s=v.speech_tail_ms / 1000.0,
            on_status=on_status,
        )

    def speak_reply(self, reply: Reply) -> bool | None:
        """Queue the reply for speech: True if queued, False if not (queue full, or the output device was
        missing at the last try: it is tried again, but the flag stays honest), None when speech is off."""
        if self.speaker is None:
            return None
        queued = self.speaker.say(reply.text, "reply") is not None
        return queued and not self.speaker.status.startswith("missing")

    def announce(self, alert: Alert) -> bool:
        """Speak this alert if the policy says so (queued after a reply in progress, never over it)."""
        if self.speaker is None:
            return False
        announcement = self.announcer.consider(alert)
        if announcement is None:
            return False
        log.info("announcing alert %s: %s", alert.id, announcement.text)
        self.counters["announcements"] += 1
        return self.speaker.say(announcement.text, "announcement") is not None

    def barge_in(self) -> None:
        """The wake phrase was heard while speaking (or not): stop talking, the driver comes first."""
        if self.speaker is not None:
            self.counters["barge_ins"] += 1
            self.speaker.interrupt()

    def heard_itself(self, start_ts: float, end_ts: float) -> bool:
        """Half-duplex: an utterance overlapping the assistant's own speech is not a command."""
        return self.speaker is not None and bool(self.speaker.heard_itself(start_ts, end_ts))

    def metrics(self) -> dict[str, Any]:
        if self.speaker is None:
            return {}
        return {
            **self.speaker.counters,
            **self.counters,
            "announcements_suppressed_repeat": self.announcer.suppressed_repeats,
            "announcements_suppressed_rate": self.announcer.suppressed_rate,
            "status": self.speaker.status,
        }

    def close(self) -> None:
        if self.speaker is not None:
            self.speaker.close()
            self.speaker = None

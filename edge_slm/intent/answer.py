"""One transcript in, one grounded `Reply` (with its actions) out: recognize, then respond.

Blocking (the model tier may run): never call it on the event loop. The daemon's voice flow
splits it: the fast tiers and `reply_to` on one worker, the model tier on another.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from edge_slm.events import Alert, Intent, Reply, Transcript
from edge_slm.intent.grammar import Grammar
from edge_slm.intent.recognizer import IntentRecognizer
from edge_slm.intent.rephrase import Rephraser
from edge_slm.intent.respond import Responder, canonical_category
from edge_slm.nav.poi import load_poi_index
from edge_slm.nav.state import NavStateStore
from edge_slm.sanitize import clean_slots

if TYPE_CHECKING:
    from edge_slm.config import Settings


def answer(
    transcript: Transcript,
    recognizer: IntentRecognizer,
    responder: Responder,
    clock: Callable[[], float] = time.monotonic,
    rephraser: Rephraser | None = None,
) -> Reply:
    """Recognize and respond; with a `rephraser`, the reply wording may come from the model
    (only when it keeps every number and name: see `intent.rephrase.faithful`)."""
    started = clock()
    intent = recognizer.recognize(transcript.text)
    return reply_to(transcript, intent, responder, started, clock, rephraser)


def reply_to(
    transcript: Transcript,
    intent: Intent,
    responder: Responder,
    started: float,
    clock: Callable[[], float] = time.monotonic,
    rephraser: Rephraser | None = None,
) -> Reply:
    """The grounded reply to an understood transcript; `latency_ms` counts from `started`."""
    intent = dataclasses.replace(intent, slots=clean_slots(intent.slots))  # echoed on voice/reply: no bidi, bounded
    text, actions = responder.respond(intent)
    if rephraser is not None and intent.name != "unknown":
        text, _by_model = rephraser.rephrase(text)
    return Reply(
        transcript_id=transcript.id,
        transcript=transcript.text,
        intent=intent,
        text=text,
        latency_ms=(clock() - started) * 1000.0,
        actions=actions,
    )


def build_responder(
    settings: Settings,
    nav: NavStateStore,
    firing_alerts: Callable[[], Sequence[Alert]],
    grammar: Grammar | None = None,
) -> Responder:
    """A Responder from config: `poi.file` (missing or unreadable -> warned once, replies say so)
    and `voice.vehicle_device` ("" = alerts of every device)."""
    pois = load_poi_index(settings.poi.file, lambda category: canonical_category(category, grammar))
    return Responder(nav, pois, firing_alerts, settings.voice.vehicle_device)

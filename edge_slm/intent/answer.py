"""One transcript in, one grounded `Reply` (with its actions) out: recognize, then respond.

Blocking (the model tier may run): never call it on the event loop. The daemon's voice flow
splits it: the fast tiers and `reply_to` on one worker, the model tier on another.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from edge_slm.events import Action, Alert, Intent, Reply, Transcript
from edge_slm.intent.context import DialogContext, Understand, confirmation_question
from edge_slm.intent.grammar import Grammar
from edge_slm.intent.readings import rival_reading, understood_alternative
from edge_slm.intent.recognizer import IntentRecognizer, restore_spelling
from edge_slm.intent.rephrase import Rephraser
from edge_slm.intent.respond import LatestReadings, RecentlyResolved, Responder, canonical_category
from edge_slm.intent.schema import IntentName
from edge_slm.nav.poi import load_poi_index
from edge_slm.nav.state import NavStateStore
from edge_slm.sanitize import clean_slots

if TYPE_CHECKING:
    from edge_slm.config import Settings

log = logging.getLogger(__name__)


def answer(
    transcript: Transcript,
    recognizer: IntentRecognizer,
    responder: Responder,
    clock: Callable[[], float] = time.monotonic,
    rephraser: Rephraser | None = None,
    context: DialogContext | None = None,
) -> Reply:
    """Recognize and respond, every tier in turn. With a `rephraser`, the reply wording may come
    from the model (only when it keeps every number and name: see `intent.rephrase.faithful`).
    With a `context`, follow-ups ("take me there", "no, call dad", "yes") are resolved against the
    speaker's last turn (the transcript's source) and actions may be held for confirmation."""
    started = clock()
    fast = answer_fast(transcript, recognizer, responder, started, clock, context)
    if fast is not None:
        return fast
    intent = recognizer.recognize_with_model(transcript.text)
    return reply_to(transcript, intent, responder, started, clock, rephraser, context, recognizer.fast_tiers)


def answer_fast(
    transcript: Transcript,
    recognizer: IntentRecognizer,
    responder: Responder,
    started: float,
    clock: Callable[[], float] = time.monotonic,
    context: DialogContext | None = None,
) -> Reply | None:
    """The reply when a follow-up of the last turn or a tier that answers in milliseconds
    understands the transcript; None when only the model tier could."""
    follow = context.follow_up(transcript.source, transcript.text, grammar_understand(recognizer)) if context else None
    if context is not None and follow is not None and follow.reply:  # a question answered, or cancelled
        intent = follow.intent
        text, actions = context.after_reply(transcript.source, intent, follow.reply, follow.actions, confirmed=True)
        return _reply(transcript, intent, text, actions, started, clock)
    if follow is not None:
        understood: Intent | None = follow.intent
    else:
        understood = recognizer.fast_tiers(transcript.text)
        if understood is None:  # not understood: maybe another reading of the words is (intent/readings.py)
            other = understood_alternative(transcript.alternatives, recognizer.fast_tiers)
            if other is not None:
                log.info("%r not understood; answering Whisper's other reading %r", transcript.text, other.text)
                return reply_to(transcript, other, responder, started, clock, context=context, heard_otherwise=True)
            understood = recognizer.not_understood(transcript.text)
    if understood is None:
        return None
    return reply_to(transcript, understood, responder, started, clock, None, context, recognizer.fast_tiers)


def reply_to(
    transcript: Transcript,
    intent: Intent,
    responder: Responder,
    started: float,
    clock: Callable[[], float] = time.monotonic,
    rephraser: Rephraser | None = None,
    context: DialogContext | None = None,
    understand: Understand | None = None,
    heard_otherwise: bool = False,
) -> Reply:
    """The grounded reply to an understood transcript; `latency_ms` counts from `started`. With
    `understand` (the fast tiers), the recognizer's other readings are checked too: one that would act
    otherwise makes the action a question (intent/readings.py), as does `heard_otherwise` (the intent
    is from another reading than the transcript's)."""
    intent = dataclasses.replace(intent, slots=clean_slots(intent.slots))  # echoed on voice/reply: no bidi, bounded
    text, actions = responder.respond(intent)
    if rephraser is not None and intent.name != "unknown":
        text, _by_model = rephraser.rephrase(text)
    if understand is not None and not heard_otherwise:
        rival = rival_reading(transcript.alternatives, actions, understand, responder)
        if rival is not None:
            log.info("%r might have been %r, which would act otherwise: asking first", transcript.text, rival)
            heard_otherwise = True
    if context is not None:
        place = ""
        if intent.name == IntentName.FIND_POI.value:
            found = responder.nearest_place(intent.slots.get("category", ""))
            place = found[0] if found is not None else ""
        # Only Whisper's confidence is on a scale we measured (Vosk's grammar results pass their own check);
        # a transcript from the bus is as sure as its sender made it.
        heard = transcript.confidence if transcript.recognizer == "whisper" else 1.0
        text, actions = context.after_reply(
            transcript.source,
            intent,
            text,
            actions,
            place=place,
            heard_confidence=heard,
            heard_otherwise=heard_otherwise,
        )
    elif heard_otherwise and actions:  # no dialog to hear the "yes": ask, and do nothing now
        text, actions = confirmation_question(actions[0]), ()
    elif any(a.confirm for a in actions):
        text = confirmation_question(next(a for a in actions if a.confirm))
        actions = tuple(a for a in actions if not a.confirm)
    return _reply(transcript, intent, text, actions, started, clock)


def _reply(
    transcript: Transcript,
    intent: Intent,
    text: str,
    actions: tuple[Action, ...],
    started: float,
    clock: Callable[[], float],
) -> Reply:
    return Reply(
        transcript_id=transcript.id,
        transcript=transcript.text,
        intent=intent,
        text=text,
        latency_ms=(clock() - started) * 1000.0,
        actions=actions,
    )


def grammar_understand(recognizer: IntentRecognizer) -> Understand:
    """The grammar tier alone, for context follow-ups (never waits for the model)."""

    def understand(text: str) -> Intent | None:
        match = recognizer.grammar.match(text)
        if match is None or recognizer.grammar.is_hostile_text(text):
            return None
        return Intent(text=text, name=match.intent, slots=restore_spelling(text, match.slots), source="grammar")

    return understand


def build_responder(
    settings: Settings,
    nav: NavStateStore,
    firing_alerts: Callable[[], Sequence[Alert]],
    grammar: Grammar | None = None,
    recently_resolved: RecentlyResolved | None = None,
    latest_readings: LatestReadings | None = None,
) -> Responder:
    """A Responder from config: `poi.file` (missing or unreadable -> warned once, replies say so)
    and `voice.vehicle_device` ("" = alerts of every device). `recently_resolved` and
    `latest_readings` (already narrowed to the vehicle device) let vehicle_status say what cleared
    lately and what the signals read now."""
    pois = load_poi_index(settings.poi.file, lambda category: canonical_category(category, grammar))
    return Responder(
        nav,
        pois,
        firing_alerts,
        settings.voice.vehicle_device,
        recently_resolved,
        latest_readings,
        contacts=settings.voice.contacts,
    )

"""One transcript in, one grounded `Reply` (with its actions) out: recognize, then respond.

Blocking (the model tier may run): the daemon calls it through `Features.answer` on its
single "intent" worker thread, never on the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from edge_slm.events import Alert, Intent, Reply, Transcript
from edge_slm.intent.context import DialogContext, Understand
from edge_slm.intent.grammar import Grammar
from edge_slm.intent.recognizer import IntentRecognizer, restore_spelling
from edge_slm.intent.rephrase import Rephraser
from edge_slm.intent.respond import LatestReadings, RecentlyResolved, Responder, canonical_category
from edge_slm.intent.schema import IntentName
from edge_slm.nav.poi import load_poi_index
from edge_slm.nav.state import NavStateStore

if TYPE_CHECKING:
    from edge_slm.config import Settings


def answer(
    transcript: Transcript,
    recognizer: IntentRecognizer,
    responder: Responder,
    clock: Callable[[], float] = time.monotonic,
    rephraser: Rephraser | None = None,
    context: DialogContext | None = None,
) -> Reply:
    """Recognize and respond; with a `rephraser`, the reply wording may come from the model
    (only when it keeps every number and name: see `intent.rephrase.faithful`). With a `context`,
    follow-ups ("take me there", "no, call dad", "yes") are resolved against the speaker's last turn
    (the transcript's source) and actions may be held for confirmation."""
    started = clock()
    follow = context.follow_up(transcript.source, transcript.text, grammar_understand(recognizer)) if context else None
    if context is not None and follow is not None and follow.reply:  # a question answered, or cancelled
        intent = follow.intent
        text, actions = context.after_reply(transcript.source, intent, follow.reply, follow.actions, confirmed=True)
    else:
        intent = follow.intent if follow is not None else recognizer.recognize(transcript.text)
        text, actions = responder.respond(intent)
        if rephraser is not None and intent.name != "unknown":
            text, _by_model = rephraser.rephrase(text)
        if context is not None:
            place = ""
            if intent.name == IntentName.FIND_POI.value:
                found = responder.nearest_place(intent.slots.get("category", ""))
                place = found[0] if found is not None else ""
            text, actions = context.after_reply(transcript.source, intent, text, actions, place=place)
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
    return Responder(nav, pois, firing_alerts, settings.voice.vehicle_device, recently_resolved, latest_readings)

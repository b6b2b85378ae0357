"""The recognizer's other readings of an utterance: a rival that would act otherwise makes the action a
question; when no tier understood the best reading, one they understand is taken instead (and its
action asked about).

Whisper's beam holds more than one reading of what was said (`Transcript.alternatives`: those nearly
as likely as the best). When one of them would cause a different action, the words were not heard
well enough to act on: "lunch on my calendar for Friday afternoon" beside "... Friday at noon", "go
turn the stadium" beside "go to the stadium". Confidence alone misses these: such a best reading is
often heard at 0.8 or more.

Readings that differ only in spelling ("Baker Street" / "Bakers Street", "8" / "eight") are the same
action, and a reading that causes no action (garbled, or only the model could tell) is no rival; one the
tiers refuse (hostile text, a safety gate) is.

In factory noise Whisper often hears "call" as "Paul" ("Paul, Doctor Patel."), with "Call Doctor Patel."
just behind it in the beam: nothing understands the first, so the second is answered, and a call it
would make is asked about first. If any reading is refused (hostile text, a safety gate), none is taken.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from edge_slm.events import Action, Intent
from edge_slm.intent.context import Understand
from edge_slm.intent.respond import Responder
from edge_slm.intent.schema import IntentName
from edge_slm.intent.slot_compare import canon_slot
from edge_slm.sanitize import clean_slots


def rival_reading(
    alternatives: Iterable[str], actions: Sequence[Action], understand: Understand, responder: Responder
) -> str | None:
    """The first alternative reading that would act otherwise than `actions` or that the tiers refuse, or
    None (no action to doubt, or every reading does the same or nothing). `understand` returns None for
    not understood and `unknown` for refused, like `IntentRecognizer.fast_tiers`."""
    if not actions:
        return None
    for text in alternatives:
        intent = understand(text)
        if intent is None:
            continue
        if intent.name == IntentName.UNKNOWN.value:  # refused (hostile text, a safety gate): not sure enough to act
            return text
        _, other = responder.respond(dataclasses.replace(intent, slots=clean_slots(intent.slots)))
        if other and not same_action(actions[0], other[0]):
            return text
    return None


def understood_alternative(alternatives: Iterable[str], understand: Understand) -> Intent | None:
    """The first other reading the fast tiers understand (`understand` returns None for not understood),
    or None: none is, or one of them is refused (`unknown`), and then no reading may act."""
    found: Intent | None = None
    for text in alternatives:
        intent = understand(text)
        if intent is None:
            continue
        if intent.name == IntentName.UNKNOWN.value:
            return None
        found = found or intent
    return found


def same_action(a: Action, b: Action) -> bool:
    """The same kind with the same slot values as a listener hears them (case, punctuation, spoken
    numbers and a plural "s" aside)."""
    if a.kind != b.kind or a.payload.keys() != b.payload.keys():
        return False
    return all(_as_heard(a.payload[key], key) == _as_heard(b.payload[key], key) for key in a.payload)


def _as_heard(value: str, key: str) -> str:
    words = canon_slot(value, key).split()
    return " ".join(w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words)

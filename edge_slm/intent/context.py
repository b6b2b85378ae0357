"""Dialog context: the last turn's entities carry over for a short time. Pure (no I/O); thread-safe.

Follow-ups it resolves, per speaker (the transcript's source), within `ttl_s` of the last turn:

- "take me there" / "go there"             -> navigate_to the place of the last turn
- "call them" / "call that place"          -> call_contact that place (or the last contact)
- "how far is it" after a place was found  -> find_poi of that category again (name and distance)
- "no, call dad" / "no, dad" / "i said dad" -> the correction, as the same kind of command
- with confirmation enabled for an action kind (`voice.confirm_actions`), or for one action that asks for it
  (`Action.confirm`: a contact name only close to a listed one), the action is held and the reply asks
  ("Call police? Say yes or no."); "yes" sends it, "no" drops it, anything else replaces it.

Only exact short phrases are treated as follow-ups (after folding case and punctuation), so a
normal command is never rewritten; with no fresh context they fall through to the recognizer.
Memory is bounded: one turn and one pending question per speaker, at most `max_speakers`.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from edge_slm.events import Action, Intent
from edge_slm.intent.normalize import basic_words
from edge_slm.intent.schema import IntentName

SOURCE = "context"

_EDGE_FILLERS = frozenset({"ok", "okay", "please", "hey", "um", "uh", "then", "now", "so", "alright"})


def _phrases(*texts: str) -> frozenset[tuple[str, ...]]:
    return frozenset(tuple(text.split()) for text in texts)


NAVIGATE_THERE = _phrases(
    "take me there", "go there", "navigate there", "drive there", "drive me there", "get me there", "bring me there",
    "take me to it", "navigate to it", "go to it", "take me to that place", "navigate to that place", "let us go there",
    "let us go", "route me there", "start navigation", "start the navigation", "guide me there", "directions there",
    "take me to that one", "navigate to that one", "go to that one",
)  # fmt: skip
CALL_THEM = _phrases(
    "call them", "call it", "call there", "phone them", "ring them", "give them a call", "call that place",
    "call the place", "call that one", "dial them", "call that number",
)  # fmt: skip
HOW_FAR = _phrases(
    "how far is it", "how far away is it", "how far is that", "how far", "how far away", "how far is it from here",
    "how far is that place", "how far away is that", "how far is that one", "where is it", "where is that",
)  # fmt: skip
YES = _phrases(
    "yes", "yes please", "yeah", "yep", "sure", "do it", "go ahead", "confirm", "correct", "right", "yes do it",
    "yes go ahead", "affirmative", "that is right", "yes call", "please do",
)  # fmt: skip
NO = _phrases("no", "nope", "cancel", "no thanks", "no thank you", "do not", "never mind", "stop", "forget it", "abort")
CORRECTION_PREFIXES: tuple[tuple[str, ...], ...] = (
    ("no", "i", "said"),
    ("no", "i", "meant"),
    ("i", "said"),
    ("i", "meant"),
    ("no", "not", "that"),
    ("not", "that"),
    ("no",),
    ("nope",),
    ("actually",),
)
# The words that make a bare correction value a command again: "no, dad" after a call -> "call dad".
_REDO_VERB = {
    IntentName.CALL_CONTACT.value: "call",
    IntentName.NAVIGATE_TO.value: "navigate to",
    IntentName.FIND_POI.value: "find a",
}

Understand = Callable[[str], Intent | None]  # fast tiers only (grammar, semantic); None = not understood


@dataclass(frozen=True, slots=True)
class FollowUp:
    """What a follow-up means: an `intent` to answer as usual, or a finished `reply` (with `actions`)."""

    intent: Intent
    reply: str = ""
    actions: tuple[Action, ...] = ()


@dataclass(frozen=True, slots=True)
class _Turn:
    intent: str
    place: str  # a found place or a destination: what "there" and "them" mean
    category: str  # a found place's category: what "how far is it" asks about again
    contact: str
    at: float


@dataclass(frozen=True, slots=True)
class _Pending:
    intent: Intent
    text: str  # the reply once confirmed
    actions: tuple[Action, ...]
    at: float


def confirmation_question(action: Action) -> str:
    if action.kind == "call":
        what = f"Call {action.payload.get('contact', '')}?"
    elif action.kind == "navigate":
        what = f"Navigate to {action.payload.get('destination', '')}?"
    else:
        what = f'Add "{action.payload.get("title", "")}" to your calendar?'
    return f"{what} Say yes or no."


def _core_words(text: str) -> tuple[str, ...]:
    words = basic_words(text)
    while words and words[0] in _EDGE_FILLERS:
        words = words[1:]
    while words and words[-1] in _EDGE_FILLERS:
        words = words[:-1]
    return tuple(words)


class DialogContext:
    def __init__(
        self,
        *,
        ttl_s: float = 60.0,
        confirm_actions: Sequence[str] = (),
        confirm_below_confidence: float = 0.0,
        confirm_ttl_s: float = 20.0,
        max_speakers: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_s = ttl_s
        self._confirm = frozenset(confirm_actions)
        self._confirm_below = confirm_below_confidence
        self._confirm_ttl_s = confirm_ttl_s
        self._max_speakers = max_speakers
        self._clock = clock
        self._lock = threading.Lock()
        self._turns: collections.OrderedDict[str, _Turn] = collections.OrderedDict()
        self._pending: collections.OrderedDict[str, _Pending] = collections.OrderedDict()

    # -- before recognition -----------------------------------------------------------------------
    def follow_up(self, speaker: str, text: str, understand: Understand) -> FollowUp | None:
        """The meaning of `text` given this speaker's last turn, or None to recognize it as usual."""
        words = _core_words(text)
        now = self._clock()
        with self._lock:
            pending = self._pending.pop(speaker, None)
            if pending is not None and now - pending.at > self._confirm_ttl_s:
                pending = None
            turn = self._turns.get(speaker)
            if turn is not None and now - turn.at > self._ttl_s:
                turn = None
        if pending is not None:
            if words in YES:
                confirmed = tuple(dataclasses.replace(a, confirm=False) for a in pending.actions)  # the driver said yes
                return FollowUp(dataclasses.replace(pending.intent, source=SOURCE), pending.text, confirmed)
            if words in NO:
                return FollowUp(Intent(text, IntentName.UNKNOWN.value, {}, SOURCE), "OK, cancelled.")
            # anything else: the question is dropped and the new words are answered
        if words in NAVIGATE_THERE:
            slots = {"destination": turn.place} if turn is not None and turn.place else {}
            return FollowUp(Intent(text, IntentName.NAVIGATE_TO.value, slots, SOURCE))
        if words in CALL_THEM:
            contact = (turn.place or turn.contact) if turn is not None else ""
            return FollowUp(
                Intent(text, IntentName.CALL_CONTACT.value, {"contact": contact} if contact else {}, SOURCE)
            )
        if words in HOW_FAR and turn is not None and turn.category:
            return FollowUp(Intent(text, IntentName.FIND_POI.value, {"category": turn.category}, SOURCE))
        correction = self._correction(words, turn, pending, understand)
        if correction is not None:
            return FollowUp(dataclasses.replace(correction, text=text, source=SOURCE))
        return None

    def _correction(
        self, words: tuple[str, ...], turn: _Turn | None, pending: _Pending | None, understand: Understand
    ) -> Intent | None:
        last_intent = pending.intent.name if pending is not None else (turn.intent if turn is not None else "")
        if not last_intent:
            return None
        for prefix in CORRECTION_PREFIXES:
            if words[: len(prefix)] == prefix and len(words) > len(prefix):
                rest = " ".join(words[len(prefix) :])
                break
        else:
            return None
        candidates = [rest]
        verb = _REDO_VERB.get(last_intent)
        if verb:
            candidates.append(f"{verb} {rest}")
        for candidate in candidates:
            intent = understand(candidate)
            if intent is not None and intent.name != IntentName.UNKNOWN.value:
                return intent
        return None

    # -- after the reply ----------------------------------------------------------------------------
    def after_reply(
        self,
        speaker: str,
        intent: Intent,
        text: str,
        actions: tuple[Action, ...],
        *,
        place: str = "",
        confirmed: bool = False,
        heard_confidence: float = 1.0,
        heard_otherwise: bool = False,
    ) -> tuple[str, tuple[Action, ...]]:
        """Remember this turn's entities; hold actions that need confirmation (unless `confirmed`: the
        answer to the question). `heard_confidence`: how sure our speech recognizer was of the words; below
        `confirm_below_confidence` every action is asked about first, and so it is when `heard_otherwise` (another
        reading of the words would act otherwise: intent/readings.py). Returns the reply text and actions
        to send now."""
        now = self._clock()
        unsure = heard_otherwise or heard_confidence < self._confirm_below
        held = [a for a in actions if unsure or a.kind in self._confirm or a.confirm]
        with self._lock:
            if held and not confirmed:
                self._remember(self._pending, speaker, _Pending(intent, text, actions, now))
                return confirmation_question(held[0]), ()
            slots = intent.slots
            place = place or slots.get("destination", "")
            category = slots.get("category", "") if intent.name == IntentName.FIND_POI.value else ""
            contact = slots.get("contact", "")
            if place or category or contact:  # a turn without entities ("what's the traffic") keeps the last ones
                last = self._turns.get(speaker)
                if last is not None and now - last.at <= self._ttl_s and (not place or place == last.place):
                    place, category = last.place, category or last.category  # "how far is it" still means it
                contact = contact or (last.contact if last is not None else "")
                self._remember(self._turns, speaker, _Turn(intent.name, place, category, contact, now))
        return text, actions

    def _remember(self, table: collections.OrderedDict[str, Any], speaker: str, value: Any) -> None:
        table.pop(speaker, None)
        table[speaker] = value
        while len(table) > self._max_speakers:
            table.popitem(last=False)

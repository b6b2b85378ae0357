"""Slots for semantic-tier hits, as spans of the user's own words: pure functions, no I/O.

The encoder says *what* was meant ("find_poi"); these span rules find *which* (a category, a
destination, a contact, an event title and time, a component) in the normalized words:

- destination: the words after the last place anchor ("to", "by", "at", "get me", ...), cut at a
  clause boundary, cleaned by the grammar's own destination rules, numbers as digits
  ("two twenty one baker street" -> "221 baker street");
- contact: the words a call phrase frames ("give X a ring", "get X on the line", "talk to X");
- title and when: the grammar's `when` rule finds the time (digits: "7:45 am"); the title is
  what is left once the request words are cut away;
- category: a spoken form from the grammar's category lists, else a need word ("sick" ->
  hospital, "fumes" -> fuel); never a guess from similarity alone;
- component: a spoken form from the grammar's component list, else a symptom word, else empty.

A slot that cannot be found is "" (the tier then abstains for intents that need it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from edge_slm.intent.grammar import Grammar
from edge_slm.intent.numbers import address_numbers

# Words after which a place follows, longest first; the last anchor in the utterance wins.
_PLACE_ANCHORS: tuple[tuple[str, ...], ...] = tuple(
    sorted(
        (
            tuple(a.split())
            for a in (
                "to", "too", "towards", "toward", "into", "over to", "back to", "navigate two", "go two", "head two",
                "drive two", "me two", "us two", "swing by", "stop by", "drop by", "come by",
                "pass by", "go by", "stop at", "drop me at", "drop me off at", "drop us at", "drop us off at",
                "pull in at", "pull into", "head for", "heading for", "make a stop at", "stop off at", "get me",
                "get us", "take me", "take us", "bring me", "bring us", "drive me", "drive us", "head", "go",
                "navigate", "directions to", "route to", "way to", "at",
            )
        ),
        key=len,
        reverse=True,
    )
)  # fmt: skip
# A place ends at a clause boundary or a trailing phrase that is about the trip, not the place.
_PLACE_END = re.compile(
    r" (and|then|so|because|cause|but|before|after|while|since|if|when|please|thanks|thank you|real quick"
    r"|quickly|right now|now|asap|on the way|on my way|on our way|on the way home|along the way|first|instead"
    r"|for a (minute|sec|second|bit)|for me|for us|as fast as|as soon as)\b.*$"
)
# Words that may stand right before a saved place said without a place anchor ("get me home",
# "head home", "the way home"). Any other word makes it part of another place's name: "my parents
# house", "the opera house", "the coffee house" are not home.
_SAVED_PLACE_LEADS = frozenset(
    {
        "me", "us", "go", "going", "get", "head", "heading", "drive", "driving", "back", "take", "bring",
        "navigate", "return", "returning", "lets", "let", "please", "now", "straight", "right", "just",
        "way", "route", "directions", "and", "then", "okay", "ok", "so", "time", "wanna", "to",
    }
)  # fmt: skip
_INDEFINITE = frozenset({"a", "an", "some", "any", "nearest", "closest", "nearby"})
_NEAREST = frozenset({"nearest", "closest", "nearby", "good", "decent", "cheap", "open", "local"})
_PARTICULAR = re.compile(r"^the (\w+ ){1,3}(on|at|in|near|off|by) (the )?\w+")
_PRONOUN_PLACES = frozenset(
    {
        "there",
        "here",
        "it",
        "that",
        "this",
        "that place",
        "the place",
        "somewhere",
        "back",
        "go",
        "get",
        "be",
        "drive",
        "head",
    }
)

_CONTACT_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p)
    for p in (
        r"\bgive (?P<c>.+?) a (ring|call|shout|buzz|bell|holler|phone call|quick call)\b",
        r"\b(get|put) (?P<c>.+?) on the (line|phone|speaker|speakerphone)\b",
        r"\b(put me through|patch me through|connect me|get me through|hook me up) (to|with) (?P<c>.+)",
        r"\b(make|place|start|put through) a (phone |quick )?call (to|with) (?P<c>.+)",
        r"\b(talk|speak|chat) (to|with) (?P<c>.+)",
        r"\b(call up|phone up|ring up|hit up|call|phone|ring|dial|facetime|reach|contact|get hold of|get ahold of)"
        r" (?P<c>.+)",
        r"\b(?P<c>.+?) (needs|wants) a call\b",
    )
)
# Openings that say which action is asked for, whatever the encoder makes of the rest.
_CUES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("call_contact", re.compile(r"^(call up|phone up|ring up|call|phone|ring|dial|facetime) \S")),
    ("call_contact", re.compile(r"^(make|place|start) a (phone |quick )?call (to|with) \S")),
    ("call_contact", re.compile(r"^(i want|i need|i would like) to (call|phone|ring|dial) \S")),
    (
        "navigate_to",
        re.compile(
            r"^(navigate|take me|take us|drive me|drive us|get me|get us|bring me|bring us)"
            r" (over |back |down |up )?(to|too|two|home)\b"
        ),
    ),
    ("navigate_to", re.compile(r"^(we are|i am) (going|heading|driving|headed) (over |back )?to \S")),
    ("create_event", re.compile(r"^(remind (me|us)|set a reminder|schedule|(do not|dont) (let me )?forget)\b")),
)
_CALL_FIRST = re.compile(r"^(call up|phone up|ring up|call|phone|ring|dial|facetime) (?P<c>.+)")
_REMINDER_FIRST = re.compile(
    r"^(remind (me|us)|set a reminder|(do not|dont) (let me )?forget|make a note"
    r"|make sure i (remember|do not forget))\b"
)
_CONTACT_END = re.compile(
    r" (and|then|so|because|cause|but|about|regarding|to (say|tell|ask|see|let)|please|right now|now|real quick"
    r"|quickly|for me|asap|when|after|before|if)\b.*$"
)

# Request words cut from the front of an event title, longest first.
_TITLE_LEADS: tuple[tuple[str, ...], ...] = tuple(
    sorted(
        (
            tuple(a.split())
            for a in (
                "remind me", "remind us", "reminder", "set a reminder", "i need a reminder", "add a reminder",
                "make a reminder", "create a reminder", "do not let me forget", "dont let me forget",
                "do not forget", "dont forget", "make sure i", "make sure we", "remember", "make a note", "note",
                "put", "add", "schedule", "set up", "setup", "book", "plan", "arrange", "pencil in", "pencil",
                "block out", "block off", "block", "save", "mark", "create", "make", "i have", "we have",
                "i have got", "there is", "new", "enter", "write down", "jot down", "can you", "could you",
                "i need to", "i want to", "i would like to", "add in", "put in", "put down", "to", "about", "of",
                "for", "that", "that i", "a", "an", "the", "me", "in", "an event", "an appointment",
                "a calendar event", "a calendar entry", "an entry", "event", "appointment for", "appointment",
                "on my calendar", "to my calendar", "in my calendar", "on the calendar", "called", "named",
            )
        ),
        key=len,
        reverse=True,
    )
)  # fmt: skip
_TITLE_TAIL = re.compile(
    r" (on|to|in|into|onto|for) (my|the|our) (calendar|schedule|agenda|diary|planner)$|"
    r" (on|to|in|into|for|at|by)$| (please|for me|thanks|thank you|reminder|as a reminder)$"
)
_TITLE_CALENDAR = re.compile(r"\b(on|to|in|into|onto) (my|the|our) (calendar|schedule|agenda|diary|planner)\b")

# Need and symptom words the grammar's lists do not have ("i need cash" is in them; "fumes" is not).
NEED_WORDS: Mapping[str, str] = {
    "fuel": "fuel", "gas": "fuel", "petrol": "fuel", "diesel": "fuel", "tank": "fuel", "fumes": "fuel",
    "fill up": "fuel", "gas light": "fuel", "fuel light": "fuel", "empty": "fuel",
    "sick": "hospital", "hurt": "hospital", "injured": "hospital", "injury": "hospital", "bleeding": "hospital",
    "doctor": "hospital", "clinic": "hospital", "ambulance": "hospital", "emergency": "hospital", "pain": "hospital",
    "cut": "hospital", "broke": "hospital", "fever": "hospital", "allergic reaction": "hospital",
    "prescription": "pharmacy", "medicine": "pharmacy", "meds": "pharmacy", "medication": "pharmacy",
    "pills": "pharmacy", "aspirin": "pharmacy", "ibuprofen": "pharmacy", "painkillers": "pharmacy",
    "cash": "atm", "money": "atm", "withdraw": "atm", "bank": "atm",
    "hungry": "restaurant", "starving": "restaurant", "eat": "restaurant", "food": "restaurant",
    "burger": "restaurant", "pizza": "restaurant", "lunch": "restaurant", "dinner": "restaurant",
    "breakfast": "restaurant", "snack": "restaurant",
    "coffee": "coffee", "caffeine": "coffee", "latte": "coffee", "espresso": "coffee", "cappuccino": "coffee",
    "crash": "hotel", "sleep": "hotel", "motel": "hotel", "hotel": "hotel", "room": "hotel", "tired": "hotel",
    "pee": "restroom", "bathroom": "restroom", "restroom": "restroom", "toilet": "restroom", "potty": "restroom",
    "charge": "charging", "charger": "charging", "charging": "charging", "plug in": "charging",
    "percent": "charging", "range": "charging",
    "park": "parking", "parking": "parking", "leave the car": "parking", "stash the car": "parking",
    "leave my car": "parking", "stash": "parking",
    "groceries": "supermarket", "grocery": "supermarket", "store": "supermarket", "milk": "supermarket",
    "supermarket": "supermarket", "supplies": "supermarket",
    "wash": "car wash", "filthy": "car wash", "dirty": "car wash", "muddy": "car wash",
    "mechanic": "mechanic", "garage": "mechanic", "shop": "mechanic", "repair": "mechanic", "fix my car": "mechanic",
    "tow": "mechanic", "breakdown": "mechanic", "broke down": "mechanic",
}  # fmt: skip
SYMPTOM_WORDS: Mapping[str, str] = {
    "air": "tires", "puncture": "tires", "flat": "tires", "tyre": "tires", "tire": "tires", "wheel": "tires",
    "squealing": "brakes", "squeaking": "brakes", "squeal": "brakes", "grinding": "brakes", "stopping": "brakes",
    "pedal": "brakes", "juice": "battery", "charge": "battery", "wont start": "battery", "will not start": "battery",
    "temperature gauge": "coolant", "temp gauge": "coolant", "antifreeze": "coolant", "radiator": "coolant",
    "overheating": "engine", "check engine": "engine", "misfire": "engine", "stalling": "engine",
    "dipstick": "oil",
}  # fmt: skip


def _find_phrases(words: list[str], table: Mapping[str, str]) -> list[tuple[int, int, str]]:
    """Every (start, length, value) where a phrase of `table` occurs as whole words."""
    found: list[tuple[int, int, str]] = []
    max_len = max((len(k.split()) for k in table), default=0)
    for i in range(len(words)):
        for n in range(min(max_len, len(words) - i), 0, -1):
            value = table.get(" ".join(words[i : i + n]))
            if value is not None:
                found.append((i, n, value))
    return found


def _strip_leads(words: list[str], leads: Iterable[tuple[str, ...]]) -> list[str]:
    leads = tuple(leads)
    changed = True
    while changed and words:
        changed = False
        for lead in leads:
            if len(lead) < len(words) and tuple(words[: len(lead)]) == lead:
                words = words[len(lead) :]
                changed = True
                break
    return words


class SlotExtractor:
    """Span slot rules over normalized words, using the grammar's lists and slot cleaners."""

    def __init__(self, grammar: Grammar) -> None:
        self.grammar = grammar
        self._categories: dict[str, str] = {}
        for list_name in ("category", "category_verb", "category_need"):
            for form, value in grammar.lists.get(list_name, {}).items():
                self._categories.setdefault(form, value)
        self._components = dict(grammar.lists.get("component", {}))
        self._saved_places = dict(grammar.lists.get("saved_place", {}))

    # -- destination -----------------------------------------------------------------------

    def destination(self, normalized: str) -> str:
        words = normalized.split()
        anchors: list[int] = []  # index of the first word after each anchor
        i = 0
        while i < len(words):
            for anchor in _PLACE_ANCHORS:
                if tuple(words[i : i + len(anchor)]) == anchor:
                    anchors.append(i + len(anchor))
                    break
            i += 1
        spec = self.grammar.slots.get("destination")
        for start in reversed(anchors):
            raw = " ".join(words[start:])
            raw = _PLACE_END.sub("", " " + raw).strip()
            if not raw or raw in _PRONOUN_PLACES:
                continue
            if raw.split()[0] in ("me", "us"):  # "get me over to ..." is handled by the later anchor
                continue
            saved = self._saved_places.get(raw)
            if saved is not None:
                return saved
            value = spec.clean(raw, self.grammar.blocked_words) if spec is not None else raw
            if value and value not in _PRONOUN_PLACES:
                return " ".join(address_numbers(value.split()))
        for form, value in self._saved_places.items():  # "please get me home": no anchor needed
            form_words = form.split()
            if words[-len(form_words) :] != form_words:
                continue
            before = words[-len(form_words) - 1] if len(words) > len(form_words) else ""
            if not before or before in _SAVED_PLACE_LEADS:
                return value
        return ""

    def place_span(self, normalized: str) -> str:
        """The raw words after the last place anchor (before any cleaning), or ""."""
        words = normalized.split()
        last = -1
        i = 0
        while i < len(words):
            for anchor in _PLACE_ANCHORS:
                if tuple(words[i : i + len(anchor)]) == anchor and i + len(anchor) < len(words):
                    if words[i + len(anchor)] not in ("me", "us"):
                        last = i + len(anchor)
                    break
            i += 1
        return _PLACE_END.sub("", " " + " ".join(words[last:])).strip() if last >= 0 else ""

    def generic_place(self, normalized: str) -> str:
        """The category when the place is any one of a kind ("swing by a store", "go to the nearest
        pharmacy"): that is a search, not a destination. "" for a particular place."""
        words = self.place_span(normalized).split()
        if len(words) > 1 and words[0] in ("the", "my", "our") and words[1] in ("nearest", "closest"):
            words = words[1:]  # "the nearest pharmacy" is any pharmacy, the closest one
        if not words or words[0] not in _INDEFINITE:
            return ""
        rest = words[1:]
        if rest and rest[0] in _NEAREST:
            rest = rest[1:]
        return self.category(" ".join(rest)) if rest and len(rest) <= 3 else ""

    def particular_place(self, normalized: str) -> str:
        """The destination when a category word names one particular place ("the pharmacy on main
        street", "the bakery at the mall"), else ""."""
        span = self.place_span(normalized)
        if not _PARTICULAR.match(span):
            return ""
        return self.destination(normalized)

    # -- contact ---------------------------------------------------------------------------

    def strong_contact(self, normalized: str) -> str:
        """A contact framed by an unmistakable call idiom ("give X a shout", "get X on the line",
        "dial the office")."""
        spec = self.grammar.slots.get("contact")
        for pattern in (*_CONTACT_PATTERNS[:3], _CALL_FIRST):
            m = pattern.search(normalized)
            if m is not None:
                raw = _CONTACT_END.sub("", " " + m.group("c")).strip()
                value = spec.clean(raw, self.grammar.blocked_words) if spec is not None and raw else raw
                if value:
                    return value
        return ""

    def contact(self, normalized: str) -> str:
        spec = self.grammar.slots.get("contact")
        for pattern in _CONTACT_PATTERNS:
            for m in pattern.finditer(normalized):
                raw = _CONTACT_END.sub("", " " + m.group("c")).strip()
                if not raw:
                    continue
                value = spec.clean(raw, self.grammar.blocked_words) if spec is not None else raw
                if value:
                    return " ".join(address_numbers(value.split()))
        return ""

    # -- event -----------------------------------------------------------------------------

    @staticmethod
    def cue(normalized: str) -> str:
        """The intent an unmistakable opening asks for ("call ...", "take me to ..."), or ""."""
        for intent, pattern in _CUES:
            if pattern.match(normalized):
                return intent
        return ""

    @staticmethod
    def is_reminder(normalized: str) -> bool:
        """ "remind me to call john" asks for a reminder, whatever it is about."""
        return _REMINDER_FIRST.match(normalized) is not None

    def event(self, normalized: str) -> tuple[str, str]:
        """(title, when) of a calendar request; either may be ""."""
        words = normalized.split()
        when = ""
        span = self.grammar.find_rule("when", normalized)
        rest = words
        if span is not None:
            start, end = span
            spec = self.grammar.slots.get("when")
            raw = " ".join(words[start:end])
            when = (spec.clean(raw, frozenset()) if spec is not None else raw) or ""
            rest = words[:start] + words[end:]
        text = _TITLE_CALENDAR.sub(" ", " ".join(rest))
        title_words = _strip_leads(text.split(), _TITLE_LEADS)
        title = " ".join(title_words)
        while True:
            cut = _TITLE_TAIL.sub("", title)
            if cut == title:
                break
            title = cut
        spec = self.grammar.slots.get("title")
        cleaned = spec.clean(title, self.grammar.blocked_words) if spec is not None and title else title
        return cleaned or "", when

    # -- category / component -----------------------------------------------------------------

    def category(self, normalized: str, fallback: str = "") -> str:
        words = normalized.split()
        listed = _find_phrases(words, self._categories)
        if listed:  # the longest spoken form, the later one on a tie ("out of gas find a charger" -> charging)
            return max(listed, key=lambda f: (f[1], f[0]))[2]
        needs = _find_phrases(words, NEED_WORDS)
        if needs:
            return max(needs, key=lambda f: (f[1], f[0]))[2]
        return fallback

    def component(self, normalized: str) -> str:
        words = normalized.split()
        listed = _find_phrases(words, self._components)
        if listed:
            return max(listed, key=lambda f: (f[1], -f[0]))[2]
        symptoms = _find_phrases(words, SYMPTOM_WORDS)
        if symptoms:
            return max(symptoms, key=lambda f: (f[1], -f[0]))[2]
        return ""

    def slots_for(self, intent: str, normalized: str, category_fallback: str = "") -> dict[str, str]:
        if intent == "navigate_to":
            return {"destination": self.destination(normalized)}
        if intent == "call_contact":
            return {"contact": self.contact(normalized)}
        if intent == "create_event":
            title, when = self.event(normalized)
            return {"title": title, "when": when}
        if intent == "find_poi":
            return {"category": self.category(normalized, category_fallback)}
        if intent == "vehicle_status":
            return {"component": self.component(normalized)}
        return {}

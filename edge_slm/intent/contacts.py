"""Who a call may go to: the heard contact name checked against the site's contact list. Pure, no I/O.

A recognizer mishears names ("call Tom" -> "phone time", "Emma" -> "them"); without a check the
head unit is asked to dial whatever was heard, and it may match someone else. With a contact list
(`voice.contacts`), a call goes out only for a name on it:

- the heard name is on the list (case, accents, punctuation, a leading "my"/"the" aside): call it, spelled
  as the list spells it;
- it is close to exactly one name on the list (letters alike, or it holds every word of that name,
  "Bob Bat" -> "Bob"): that name, but only after the driver says yes;
- otherwise: no call; the reply says the name is not in the contacts;
- a phone number (only digits) is not a name: it is left to the action guard's dialer-code check.

An empty list switches the check off (the head unit resolves names itself), as before.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from edge_slm.intent.normalize import basic_words

#: Letters alike (difflib ratio) for a heard name to be offered as a known one ("ship supervisor" ~
#: "shift supervisor" 0.94, "tim" ~ "time" 0.86); below it the name is unknown ("with them" ~ "emma" 0.33).
CLOSE_RATIO = 0.75
#: The best known name must lead the next one by this much, else the heard name is ambiguous (unknown).
CLOSE_MARGIN = 0.05
_DROPPED_LEADING = ("my", "the", "a")


class ContactMatch(Enum):
    EXACT = "exact"  # on the list: call
    CLOSE = "close"  # like one name on the list: ask first
    UNKNOWN = "unknown"  # not on the list: do not call
    NUMBER = "number"  # digits, not a name
    UNCHECKED = "unchecked"  # no contact list configured


@dataclass(frozen=True, slots=True)
class ResolvedContact:
    match: ContactMatch
    name: str  # the list's spelling (EXACT, CLOSE) or the heard name (others)


def _key(name: str) -> str:
    words = basic_words(name)
    while len(words) > 1 and words[0] in _DROPPED_LEADING:
        words = words[1:]
    return " ".join(words)


_PHONE_CHARS = frozenset("0123456789 +-()*#,;")


def _is_number(name: str) -> bool:
    """A phone number as spoken: digits (and dialing marks) only. Words around digits ("my 10011",
    a misheard name) are a name, checked against the list like any other."""
    return sum(c.isdigit() for c in name) >= 3 and set(name) <= _PHONE_CHARS


class ContactBook:
    """The site's contact list; `resolve` says what a heard name may be called as."""

    def __init__(self, names: Iterable[str]) -> None:
        self._by_key: dict[str, str] = {}
        for name in names:
            key = _key(name)
            if key and not _is_number(name):
                self._by_key.setdefault(key, " ".join(name.split()))

    def __bool__(self) -> bool:
        return bool(self._by_key)

    def __len__(self) -> int:
        return len(self._by_key)

    def resolve(self, heard: str) -> ResolvedContact:
        heard = " ".join(heard.split())
        if _is_number(heard):
            return ResolvedContact(ContactMatch.NUMBER, heard)
        if not self._by_key:
            return ResolvedContact(ContactMatch.UNCHECKED, heard)
        key = _key(heard)
        if key in self._by_key:
            return ResolvedContact(ContactMatch.EXACT, self._by_key[key])
        scored = sorted(((self._closeness(key, known), known) for known in self._by_key), reverse=True)
        best, known = scored[0]
        runner_up = scored[1][0] if len(scored) > 1 else 0.0
        if best >= CLOSE_RATIO and best - runner_up >= CLOSE_MARGIN:
            return ResolvedContact(ContactMatch.CLOSE, self._by_key[known])
        return ResolvedContact(ContactMatch.UNKNOWN, heard)

    @staticmethod
    def _closeness(heard: str, known: str) -> float:
        ratio = difflib.SequenceMatcher(None, heard, known, autojunk=False).ratio()
        heard_words, known_words = heard.split(), known.split()
        if len(heard_words) > len(known_words) and all(w in heard_words for w in known_words):
            ratio = max(ratio, CLOSE_RATIO)  # "bob bat": every word of "bob" was heard, and one more
        return ratio


__all__ = ["CLOSE_MARGIN", "CLOSE_RATIO", "ContactBook", "ContactMatch", "ResolvedContact"]

"""Text normalization before intent matching: pure functions, no I/O.

A transcript from Vosk ("um take me to the airport"), from another recognizer over MQTT
("Take me to the airport, please.") or typed on the CLI all become the same word string:
lowercase ASCII-ish words separated by single spaces, contractions expanded, fillers and
politeness stripped, cheap ASR confusions repaired. The tables live in the grammar data file
(`[normalize]`) so users can extend them; `Normalizer` compiles them once.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

CONTRACTIONS: dict[str, str] = {
    "what's": "what is",
    "where's": "where is",
    "how's": "how is",
    "when's": "when is",
    "who's": "who is",
    "that's": "that is",
    "there's": "there is",
    "here's": "here is",
    "it's": "it is",
    "let's": "let us",
    "i'm": "i am",
    "i'd": "i would",
    "i'll": "i will",
    "i've": "i have",
    "we're": "we are",
    "we'll": "we will",
    "we'd": "we would",
    "you're": "you are",
    "they're": "they are",
    "isn't": "is not",
    "aren't": "are not",
    "don't": "do not",
    "doesn't": "does not",
    "can't": "cannot",
    "won't": "will not",
    "what're": "what are",
    "how're": "how are",
    "where're": "where are",
}

_PUNCT_RE = re.compile(r"[^\w\s':]+")
_COLON_RE = re.compile(r"(?<!\d):|:(?!\d)")
_DIGIT_AMPM_RE = re.compile(r"\b(\d{1,2}(?::\d{2})?)(am|pm)\b")
_DOTTED_RE = re.compile(r"\b([a-z])\.([a-z])\.(?:([a-z])\.)?")


def fold(text: str) -> str:
    """Unicode-fold, lowercase and strip accents ("Café" -> "cafe")."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return stripped.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'").lower()


def basic_words(text: str) -> list[str]:
    """Fold, expand contractions and split into words with punctuation removed."""
    s = fold(text)
    s = _DOTTED_RE.sub(lambda m: "".join(g for g in m.groups() if g) + " ", s)  # p.m. -> pm, e.t.a. -> eta
    s = s.replace("&", " and ")
    s = _PUNCT_RE.sub(" ", s)
    s = _COLON_RE.sub(" ", s)
    s = _DIGIT_AMPM_RE.sub(r"\1 \2", s)
    words: list[str] = []
    for raw in s.split():
        word = raw.strip("'_")
        if not word:
            continue
        expanded = CONTRACTIONS.get(word)
        if expanded:
            words.extend(expanded.split())
        else:
            words.append(word)
    return words


@dataclass(frozen=True)
class NormalizeTables:
    """The user-extendable tables (from the grammar data files)."""

    fillers: frozenset[str] = frozenset()
    leading: tuple[tuple[str, ...], ...] = ()
    trailing: tuple[tuple[str, ...], ...] = ()
    replace: Mapping[str, str] = field(default_factory=dict)

    @staticmethod
    def build(
        fillers: Iterable[str],
        leading: Iterable[str],
        trailing: Iterable[str],
        replace: Mapping[str, str],
    ) -> NormalizeTables:
        def phrases(items: Iterable[str]) -> tuple[tuple[str, ...], ...]:
            seen = {tuple(basic_words(p)) for p in items}
            seen.discard(())
            # longest first, so "i would like to" wins over "i would"
            return tuple(sorted(seen, key=lambda p: (-len(p), p)))

        rep = {" ".join(basic_words(k)): " ".join(basic_words(v)) for k, v in replace.items()}
        rep = {k: v for k, v in rep.items() if k}
        return NormalizeTables(
            fillers=frozenset(w for f in fillers for w in basic_words(f)),
            leading=phrases(leading),
            trailing=phrases(trailing),
            replace=rep,
        )


class Normalizer:
    """Turns raw transcript text into the canonical word string the grammar matches."""

    def __init__(self, tables: NormalizeTables) -> None:
        self._tables = tables
        self._replace_re: re.Pattern[str] | None = None
        if tables.replace:
            keys = sorted(tables.replace, key=len, reverse=True)
            self._replace_re = re.compile(r"(?<!\S)(?:" + "|".join(re.escape(k) for k in keys) + r")(?!\S)")

    def words(self, text: str) -> list[str]:
        words = [w for w in basic_words(text) if w not in self._tables.fillers]
        if self._replace_re is not None and words:
            joined = self._replace_re.sub(lambda m: self._tables.replace[m.group(0)], " ".join(words))
            words = joined.split()
        return self._strip_edges(words)

    def normalize(self, text: str) -> str:
        return " ".join(self.words(text))

    def _strip_edges(self, words: list[str]) -> list[str]:
        changed = True
        while changed and words:
            changed = False
            for phrase in self._tables.leading:
                n = len(phrase)
                if n < len(words) and tuple(words[:n]) == phrase:
                    words = words[n:]
                    changed = True
                    break
            for phrase in self._tables.trailing:
                n = len(phrase)
                if n < len(words) and tuple(words[-n:]) == phrase:
                    words = words[:-n]
                    changed = True
                    break
        return words


_NUMBER_WORDS: dict[str, int] = {
    "zero": 0, "oh": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
    "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50,
}  # fmt: skip
_TENS = {"twenty", "thirty", "forty", "fourty", "fifty"}
_HOURS = {w for w, n in _NUMBER_WORDS.items() if 1 <= n <= 12 and w != "oh"}


def _parse_minutes(words: list[str], i: int) -> tuple[int, int] | None:
    """Minutes spoken after an hour word: "thirty", "forty five", "oh five". Returns (value, words used)."""
    if i >= len(words):
        return None
    w = words[i]
    if w == "oh" and i + 1 < len(words) and words[i + 1] in _NUMBER_WORDS and 1 <= _NUMBER_WORDS[words[i + 1]] <= 9:
        return _NUMBER_WORDS[words[i + 1]], 2
    if w in _TENS:
        value = _NUMBER_WORDS[w]
        if i + 1 < len(words) and words[i + 1] in _NUMBER_WORDS and 1 <= _NUMBER_WORDS[words[i + 1]] <= 9:
            return value + _NUMBER_WORDS[words[i + 1]], 2
        return value, 1
    if w in _NUMBER_WORDS and 10 <= _NUMBER_WORDS[w] <= 19:
        return _NUMBER_WORDS[w], 1
    return None


def numbers_to_digits(words: list[str]) -> list[str]:
    """Spoken times and small counts to digits: "three thirty p m" -> "3:30 pm", "two hours" -> "2 hours"."""
    out: list[str] = []
    i = 0
    while i < len(words):
        w = words[i]
        if w in _HOURS or (w.isdigit() and 1 <= int(w) <= 12):
            hour = _NUMBER_WORDS[w] if w in _NUMBER_WORDS else int(w)
            minutes = _parse_minutes(words, i + 1) if w in _HOURS else None
            if minutes is not None and minutes[0] < 60:
                out.append(f"{hour}:{minutes[0]:02d}")
                i += 1 + minutes[1]
            else:
                out.append(w if w.isdigit() else str(hour))  # "010" in a phone number keeps its zero
                i += 1
            if i + 1 < len(words) and words[i] in ("p", "a") and words[i + 1] == "m":
                out.append(words[i] + "m")
                i += 2
            continue
        if w in _NUMBER_WORDS and w != "oh":
            value = _NUMBER_WORDS[w]
            if w in _TENS and i + 1 < len(words) and words[i + 1] in _NUMBER_WORDS:
                unit = _NUMBER_WORDS[words[i + 1]]
                if 1 <= unit <= 9:
                    out.append(str(value + unit))
                    i += 2
                    continue
            out.append(str(value))
            i += 1
            continue
        out.append(w)
        i += 1
    return out

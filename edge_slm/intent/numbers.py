"""Spoken numbers to digits, the way a head unit wants them: pure functions, no I/O.

Two readings, because a recognizer hands over words and the same words mean different things:
- addresses and names (`address_numbers`): digit groups are concatenated the way house numbers
  are said: "two twenty one baker street" -> "221 baker street", "forty two" -> "42",
  "one hundred main street" -> "100 main street", "nineteen oh five" -> "1905";
- times (`time_numbers`): "seven forty five am" -> "7:45 am", "three pm" -> "3 pm"
  (the grammar's own `numbers_to_digits`, shared so both tiers write times the same way).
"""

from __future__ import annotations

from edge_slm.intent.normalize import numbers_to_digits

UNITS: dict[str, int] = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
}  # fmt: skip
TEENS: dict[str, int] = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
TENS: dict[str, int] = {
    "twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
    "ninety": 90,
}  # fmt: skip
NUMBER_WORDS = frozenset(UNITS) | frozenset(TEENS) | frozenset(TENS) | {"hundred", "thousand", "oh"}


def _below_hundred(words: list[str], i: int) -> tuple[int, int] | None:
    """A number under 100 starting at words[i]: (value, words used)."""
    w = words[i]
    if w in TENS:
        if i + 1 < len(words) and words[i + 1] in UNITS and words[i + 1] != "zero":
            return TENS[w] + UNITS[words[i + 1]], 2
        return TENS[w], 1
    if w in TEENS:
        return TEENS[w], 1
    if w in UNITS:
        return UNITS[w], 1
    return None


def _chunk(words: list[str], i: int) -> tuple[str, int] | None:
    """One spoken group at words[i] as digits: "twenty one" -> "21", "three hundred five" -> "305",
    "twelve hundred" -> "1200", "two thousand ten" -> "2010", "oh" (inside a run) -> "0"."""
    first = _below_hundred(words, i)
    if first is None:
        return None
    value, used = first
    j = i + used
    if j < len(words) and words[j] == "thousand" and value < 100:
        value *= 1000
        j += 1
        if j < len(words) and words[j] in UNITS and j + 1 < len(words) and words[j + 1] == "hundred":
            value += UNITS[words[j]] * 100
            j += 2
        rest = _below_hundred(words, j) if j < len(words) and words[j] != "oh" else None
        if rest is not None:
            value += rest[0]
            j += rest[1]
        return str(value), j - i
    if j < len(words) and words[j] == "hundred" and value < 100:
        value *= 100
        j += 1
        if j < len(words) and words[j] == "and":
            j += 1
        rest = _below_hundred(words, j) if j < len(words) else None
        if rest is not None:
            value += rest[0]
            j += rest[1]
        elif words[j - 1] == "and":
            j -= 1  # "one hundred and" with nothing after: the "and" is not ours
        return str(value), j - i
    return str(value), used


def address_numbers(words: list[str]) -> list[str]:
    """Runs of number words become one digit string, groups concatenated as house numbers are said."""
    out: list[str] = []
    i = 0
    while i < len(words):
        chunk = _chunk(words, i)
        if chunk is None:
            out.append(words[i])
            i += 1
            continue
        digits, used = chunk
        i += used
        while i < len(words):  # "two" "twenty one" -> "221"; "nineteen" "oh" "five" -> "1905"
            if words[i] == "oh" and i + 1 < len(words) and words[i + 1] in UNITS:
                digits += "0"
                i += 1
                continue
            nxt = _chunk(words, i)
            if nxt is None:
                break
            digits += nxt[0]
            i += nxt[1]
        out.append(digits)
    return out


def time_numbers(words: list[str]) -> list[str]:
    """Spoken times and counts to digits ("seven forty five am" -> "7:45 am", "twenty minutes" -> "20 minutes")."""
    return numbers_to_digits(words)


def normalize_address(text: str) -> str:
    return " ".join(address_numbers(text.split()))


def normalize_time(text: str) -> str:
    return " ".join(time_numbers(text.split()))

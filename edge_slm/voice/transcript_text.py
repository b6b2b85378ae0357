"""Whisper's written English -> the text the intent tiers read. Pure functions, no I/O.

Whisper writes what it hears as subtitles: capitals, punctuation, digits ("at 9 am", "in 2 hours").
The intent normalizer already reads digits and number words alike ("nine thirty" and "9:30" both
become "9:30"), strips punctuation and expands contractions, so this module only repairs the slips
Whisper makes on short spoken commands, each one only where the repair is unambiguous:

- "9M" / "9:30M" (a spoken "nine am" run together): an upper-case M straight after an hour is "am"
  (a lower-case "5m" stays: metres or minutes);
- "9.30 am", "at 11.30" (Whisper's British time format, before am/pm or after at/by/until/...): "9:30 am",
  "at 11:30"; "745am" (digits run together before
  am/pm, minutes 00-59): "7:45 am";
- "at 430", "by 1015" (a spoken "four thirty" written as one number after a time word): "at 4:30", "by 10:15",
  only where nothing but the end of the sentence or a time word follows ("at 430 tomorrow", "at 1015 to call
  Bob"), so "at 221 Baker Street" stays an address;
- "1,000": thousands separators dropped ("1000");
- a leading "I" before a question or command word ("I how much further" from "uh how much
  further"): dropped, since "I how ..." is never an English sentence; so is a leading "I'm" ("um") before
  a command verb in its bare form ("I'm navigate to ...");
- "any motel's on the way" (a plural written with an apostrophe after "any"): "any motels";
- "Ad ..." opening a command (homophone of the calendar verb "add"; also after "calendar," / "please"): "Add ...";
  "At haircut to my calendar", "At team lunch on Friday at noon", "Had dentist on Monday at 3" (no verb at
  all, then a calendar cue: "add" heard as "at" or "had"; not before a number or time word): "Add ...";
- "But soccer practice on the calendar ..." / "Both ..." (the calendar verb "put" heard as "but" or "both":
  a sentence opening so, with "on my/the calendar" and no verb of its own): "Put ...";
- "create an event call team lunch" ("called" before a name; "an event call" is no English): "an event called
  team lunch";
- "set in appointment" (the article "an" heard as "in" before a vowel-initial calendar noun, after a verb that
  makes one: set, make, add, create, schedule, book): "set an appointment";
- "an F charger", "the closest F-charger" ("EV" heard as the letter F after an article or "closest",
  "nearest", ... and before a charger or charging word; a lone capital F there is no English): "an EV charger";
- "is their" / "are their" (homophone) before "traffic", "any", "a", "delays", ...: "is there" / "are there"
  ("is their car ok" stays).
"""

from __future__ import annotations

import re

_RUN_TOGETHER_AM = re.compile(r"\b((?:[1-9]|1[0-2])(?::[0-5]\d)?)\s?M\b")
_RUN_TOGETHER_TIME = re.compile(r"\b((?:[1-9]|1[0-2]))([0-5]\d)\s?(?=(?:[ap]\.?m\b|[AP]\.?M\b))")
_DOTTED_TIME = re.compile(r"\b((?:[1-9]|1[0-2]))\.([0-5]\d)(?=\s?(?:[ap]\.?m\b|[AP]\.?M\b))")
_DOTTED_TIME_AFTER = re.compile(
    r"\b((?:at|by|until|till|before|after|around|from) (?:[01]?\d|2[0-3]))\.([0-5]\d)\b", re.IGNORECASE
)
# After a time word, before the end or a word that goes on talking about time (or starts the next clause).
_TIME_RUN_AFTER = re.compile(
    r"\b((?:at|by|until|till|before|after|around|from) (?:[1-9]|1\d|2[0-3]))([0-5]\d)"
    r"(?=\s*(?:[.,!?;]|$|(?:today|tonight|tomorrow|this|next|on|in|o'clock|and|to|for|with|please)\b))",
    re.IGNORECASE,
)
_THOUSANDS = re.compile(r"\b(\d{1,3}),(?=\d{3}\b)")
_THEIR = re.compile(
    r"\b(is|are|Is|Are) their(?= (?:any|a|an|some|much|traffic|congestion|construction|roadworks?|delays?|"
    r"accidents?|jams?|hold ?ups?)\b)"
)
_LEADING_AD = re.compile(r"^((?:(?:calendar|please|ok|okay)[,:]?\s+)?)ad\b(?!['-])", re.IGNORECASE)
_AT_FOR_ADD = re.compile(
    r"^(?:at|had)\b(?!\s+(?:\d|noon|midnight|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|half|quarter)\b)"
    # a verb elsewhere: "at" is meant ("At home, add ...", "At the office, call Bob")
    r"(?!.*\b(?:add|put|schedule|set|create|book|make|move|call|phone|ring|dial|navigate|drive|take|go|find|show|"
    r"remind|tell|get)\b)"
    # and it goes on like a calendar entry: "to my calendar", a day, a time
    r"(?=.*\b(?:to (?:my|the) (?:calendar|schedule|agenda)|monday|tuesday|wednesday|thursday|friday|saturday|"
    r"sunday|today|tomorrow|tonight|at \d|at noon|at midnight)\b)",
    re.IGNORECASE,
)
_BUT_FOR_PUT = re.compile(
    r"^(?:but|both)\b(?=.*\bon (?:my|the|our) (?:calendar|schedule|agenda)\b)"
    r"(?!.*\b(?:add|put|set|create|book|make|move|call|phone|ring|dial|navigate|drive|take|go|find|show|remind)\b)"
    # and no sentence of its own before it ("but the meeting is on my calendar already" stays)
    r"(?!.*\b(?:i|it|its|is|are|was|were|be|been|said|says|have|has|had|do|does|did|not|already|that|there)\b.*"
    r"\bon (?:my|the|our) (?:calendar|schedule|agenda)\b)",
    re.IGNORECASE,
)
_EVENT_CALL = re.compile(r"\b((?:an?|the) event) call\b(?= \w)", re.IGNORECASE)
_IN_FOR_AN = re.compile(
    r"\b((?:set|make|add|create|schedule|book|put)\s+)in(?=\s+(?:appointment|event|alarm|entry|interview|invite|"
    r"errand|oil change)\b)",
    re.IGNORECASE,
)
_LEADING_I = re.compile(
    r"^\s*I,?\s+(?=(?:how|what|where|when|why|which|is|are|will|take|find|navigate|call|remind|show|set|get)\b)",
    re.IGNORECASE,
)
# "um" written as "I'm": only before a command verb in its bare form, which "I'm" can never precede
# ("I'm set", "I'm calling" stay)
_LEADING_IM = re.compile(
    r"^\s*I['’]?m,?\s+(?=(?:navigate|call|dial|phone|find|take|drive|remind|show|add|put|schedule|book)\b)",
    re.IGNORECASE,
)
# "Any motel's on the way": a plural written with an apostrophe after "any", where "any X is" would not be said
_ANY_PLURAL = re.compile(
    r"\b(any|Any) (\w+)['’]s\b(?= (?:on|near|nearby|around|close|along|ahead|open|in|up|left)\b|[.?!]*$)"
)

# "EV" heard as "F": a lone capital F (or "F-") between an article or a place word and a charger or charging
# word ("Terminal F charging station" stays)
_F_FOR_EV = re.compile(r"\b(an|the|any|closest|nearest|next|nearby) F[- ](?=charg(?:ers?|ing)\b)")


def repair(text: str) -> str:
    """`text` with the slips above repaired; whitespace collapsed. Idempotent."""
    s = " ".join(text.split())
    s = _RUN_TOGETHER_AM.sub(r"\1 am", s)
    s = _DOTTED_TIME.sub(r"\1:\2", s)
    s = _DOTTED_TIME_AFTER.sub(r"\1:\2", s)
    s = _RUN_TOGETHER_TIME.sub(r"\1:\2 ", s)
    s = _TIME_RUN_AFTER.sub(r"\1:\2", s)
    while _THOUSANDS.search(s):
        s = _THOUSANDS.sub(r"\1", s)
    s = _THEIR.sub(r"\1 there", s)
    s = _LEADING_I.sub("", s)
    s = _LEADING_IM.sub("", s)
    s = _ANY_PLURAL.sub(r"\1 \2s", s)
    s = _LEADING_AD.sub(lambda m: m.group(1) + ("Add" if m.group(0)[len(m.group(1))] == "A" else "add"), s)
    s = _AT_FOR_ADD.sub(lambda m: "Add" if m.group(0)[0].isupper() else "add", s)
    s = _BUT_FOR_PUT.sub(lambda m: "Put" if m.group(0)[0].isupper() else "put", s)
    s = _EVENT_CALL.sub(r"\1 called", s)
    s = _IN_FOR_AN.sub(r"\1an", s)
    s = _F_FOR_EV.sub(r"\1 EV ", s)
    return s

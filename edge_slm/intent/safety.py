"""Safety gates for meaning-based intents: pure functions over normalized text, no I/O.

A sentence encoder hears "don't call mom" close to "call mom". Before the semantic tier's answer
is believed, these gates decide whether the utterance may become that intent at all:

- negations of an action ("don't call mom", "no wait don't take me home") and cancellations
  ("never mind", "scratch that", "cancel the route"): never an action, never any intent;
- talk about the past ("i already called dad", "we drove there last week"): never an action;
- questions about the assistant ("what can you do", "are you a robot"): unknown;
- unsupported domains (music and media, climate and cabin, messages): unknown;
- two commands in one ("call mom and play music"): unknown, like the grammar tier;
- injection attempts are refused earlier (`Grammar.is_hostile_text`) and idioms by
  `Grammar.is_not_command`; both are checked again here so the tier is safe on its own.

`refusal(normalized, intent)` returns why the utterance may not become `intent`, or "" when it may.
"""

from __future__ import annotations

import re

from edge_slm.intent.schema import ACTION_INTENTS

_CANCEL = re.compile(
    r"\b(never ?mind|nevermind|forget (it|that|about it|this)|scratch that|cancel|abort|call (it|that|this) off"
    r"|stop (the )?(navigation|navigating|route|routing|guidance|call|calling|reminder)"
    r"|end (the )?(route|navigation|call)"
    r"|undo|disregard that|not now|no thanks|no thank you)\b"
)
# "don't let me forget to ..." and "do not forget to ..." ask for a reminder: not a negation
_REMINDER_NEGATION = re.compile(r"\b(do not|dont|don't) (let me |you )?forget\b|\bmake sure i do not forget\b")
_NEGATION = re.compile(
    r"\b(do not|dont|don't|does not|doesnt|did not|didnt|never|no need to|no need|quit|rather not"
    r"|not|no|nope|nah|changed my mind|hold off)\b"
)
_PAST_ACTION = re.compile(
    r"\b(called|phoned|rang|dialed|dialled|talked|spoke|drove|went|navigated|visited|took|were at|was at|been to"
    r"|scheduled|booked|added|reminded|arrived|got back|came back|already|yesterday|last (week|night|month|year"
    r"|time|summer|winter|spring|fall|autumn|weekend|monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
    r"|ago|earlier|this morning)\b"
)
_PAST_TALK = re.compile(
    r"\b(yesterday|last (week|night|month|year|summer|winter|spring|fall|autumn|weekend)|ago|back then|used to"
    r"|went (really |so )?(well|badly|great|fine))\b"
)
_ASSISTANT = re.compile(
    r"\b(are you|who (made|built|created|designed|are) you|your name|yourself|about you|do you (have|like|love|think"
    r"|feel|know who|dream|sleep|eat)|what can you do|what do you do|can you (hear|understand|see|feel|think|learn)"
    r"|how are you|how old are you|you are (a|an|so|very|the|my|not|stupid|smart|funny|great|awesome|useless)"
    r"|are you (there|listening|awake|real|a|an|human|ok|okay|sure)|thank you|thanks|good (job|morning|night|bot)"
    r"|i love you|you suck)\b"
)
_MEDIA = re.compile(
    r"(^|\b(and|then|to|just|please) )(play|playing|put on)\b"
    r"|\bplay (some|something|me|my|the next|the last|a |an |music)"
    r"|\b(playlist|song|songs|music|radio|podcast|podcasts|album|albums|track|tracks|volume|spotify"
    r"|audiobook|pause|resume|shuffle|repeat|louder|quieter|mute|unmute|station \d+|fm|am radio|tune in|rewind)\b"
)
_CLIMATE = re.compile(
    r"\b(heat|heater|heated|heating|ac|a c|air con|air conditioning|aircon|air conditioner|fan|fans|defrost|defroster"
    r"|demister|warmer|cooler|colder|hotter|climate|thermostat|seat warmer|window|windows|sunroof|moonroof|wipers"
    r"|headlights|high beams|fog lights|interior lights?|dome light|trunk|mirror|mirrors|cruise control)\b"
    r"|\bset (the )?(temperature|temp)\b|\b(temperature|temp) (to|up|down)\b|\bturn (on|off|up|down)\b"
    r"|\b(it is|i am|im|we are) (too )?(cold|freezing|hot|boiling|chilly|stuffy)( in here)?$"
)
_MESSAGES = re.compile(
    r"\b(text|texts|texting|sms|messages|email|emails|e mail|whatsapp|telegram|send|sending|reply"
    r"|voicemail|inbox)\b|(?<!warning )(?<!error )(?<!alert )\bmessage\b"
)
_OTHER_DOMAINS = re.compile(
    r"\b(weather|(will|is) it (going to )?(rain|snow)|forecast|joke|jokes|stock|stocks|score|scores|recipe|recipes"
    r"|how do you make|how do i make|capital of|president|translate|define|definition|spell|calculate|plus|minus"
    r"|meaning of life|alarm|timer|wake me)\b"
)
_COMPOUND = re.compile(
    r"\b(and|then|also|plus)\b.*\b(call|phone|ring|dial|remind|schedule|navigate|text|play|turn|open|send|set|book"
    r"|message|email|unlock|find|search|take me to|drive me to|directions to)\b"
)
_IDIOMS = re.compile(
    r"\b(raining cats and dogs|break a leg|hit the sack|hit the hay|piece of cake|under the weather|on the fence"
    r"|cost an arm and a leg|spill the beans|call it a (day|night)"
    r"|driv(e|es|en|ing) me (crazy|nuts|mad|insane|up the wall)"
    r"|drives? (him|her|them|us) (crazy|nuts|mad)|go fly a kite|take a hike|get lost|hit the road jack"
    r"|over the moon|once in a blue moon|bite the bullet|let the cat out|miss the boat|in hot water|blow off steam"
    r"|ring a bell|rings a bell|call the shots|off the hook|on the road again)\b"
)


def refusal(normalized: str, intent: str) -> str:
    """Why `normalized` may not become `intent` ("" when nothing stands in the way)."""
    if not normalized:
        return "empty"
    text = normalized
    if _CANCEL.search(text):
        return "cancellation"
    if _IDIOMS.search(text):
        return "idiom"
    if _ASSISTANT.search(text):
        return "question about the assistant"
    for name, pattern in (("media", _MEDIA), ("climate and cabin", _CLIMATE), ("messages", _MESSAGES)):
        if pattern.search(text):
            return f"unsupported domain: {name}"
    if intent in ACTION_INTENTS or intent == "find_poi":
        if _OTHER_DOMAINS.search(text):
            return "unsupported domain"
        if _PAST_ACTION.search(text):
            return "talk about the past"
    if intent in ACTION_INTENTS:
        if _NEGATION.search(_REMINDER_NEGATION.sub(" ", text)):
            return "negation"
        if _COMPOUND.search(text):
            return "two commands in one"
    elif intent != "vehicle_status" and intent != "find_poi":
        if _PAST_TALK.search(text):
            return "talk about the past"
        if _OTHER_DOMAINS.search(text):
            return "unsupported domain"
    return ""

"""The semantic tier's pure rules, as plain tables: number words, span slots, safety gates.
(The encoder itself is exercised in tests/integration/test_semantic_tier.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_slm.intent.grammar import default_grammar
from edge_slm.intent.numbers import normalize_address, normalize_time
from edge_slm.intent.safety import refusal
from edge_slm.intent.slots import SlotExtractor

GRAMMAR = default_grammar()
SLOTS = SlotExtractor(GRAMMAR)


def norm(text: str) -> str:
    return GRAMMAR.normalizer.normalize(text)


@pytest.mark.parametrize(
    ("spoken", "digits"),
    [
        ("two twenty one baker street", "221 baker street"),
        ("forty two elm avenue", "42 elm avenue"),
        ("one hundred main street", "100 main street"),
        ("one hundred and five oak lane", "105 oak lane"),
        ("three fifty fifth avenue", "350 fifth avenue"),
        ("fourteen oak lane", "14 oak lane"),
        ("nineteen oh five market street", "1905 market street"),
        ("twelve hundred park avenue", "1200 park avenue"),
        ("two thousand ten broadway", "2010 broadway"),
        ("one two three main street", "123 main street"),
        ("main street", "main street"),
        ("the oh so quiet cafe", "the oh so quiet cafe"),
    ],
)
def test_address_numbers(spoken: str, digits: str) -> None:
    assert normalize_address(spoken) == digits


@pytest.mark.parametrize(
    ("spoken", "digits"),
    [
        ("seven forty five am", "7:45 am"),
        ("nine thirty p m", "9:30 pm"),
        ("three pm", "3 pm"),
        ("tomorrow at ten", "tomorrow at 10"),
        ("in twenty minutes", "in 20 minutes"),
        ("friday at noon", "friday at noon"),
    ],
)
def test_time_numbers(spoken: str, digits: str) -> None:
    assert normalize_time(spoken) == digits


@pytest.mark.parametrize(
    ("text", "destination"),
    [
        ("can you get me over to two twenty one baker street", "221 baker street"),
        ("swing by the post office on the way", "post office"),
        ("drop me off at the library real quick", "library"),
        ("pick someone up at the station and take me there", "station"),
        ("stop by the pharmacy on main street", "pharmacy on main street"),
        ("please get me home", "home"),
        ("i want to go to forty two elm avenue", "42 elm avenue"),
        ("take me there", ""),
        ("two twenty one baker street is where i need to go", ""),
        ("take me too the gym", "gym"),
        ("navigate two school", "school"),
        # a saved place said without an anchor only after a word that can lead it: "house" in
        # another place's name is not home (Whisper: "I drive for my parents' house")
        ("head home", "home"),
        ("show me the way home", "home"),
        ("i drive for my parents house", ""),
        ("we should check out the opera house", ""),
    ],
)
def test_destination_spans(text: str, destination: str) -> None:
    assert SLOTS.destination(norm(text)) == destination


@pytest.mark.parametrize(
    ("text", "contact"),
    [
        ("get my sister on the line", "sister"),
        ("give the office a shout", "office"),
        ("i need to talk to dave", "dave"),
        ("let me speak with doctor patel", "doctor patel"),
        ("put me through to the plumber", "plumber"),
        ("dial mike's cell", "mike"),
        ("phone kevin back", "kevin"),
        ("call it off", ""),
        ("call me", ""),
    ],
)
def test_contact_spans(text: str, contact: str) -> None:
    assert SLOTS.contact(norm(text)) == contact


@pytest.mark.parametrize(
    ("text", "title", "when"),
    [
        ("remind me at seven forty five am to take my pills", "take my pills", "7:45 am"),
        ("put the dentist in my calendar for thursday at three pm", "dentist", "thursday at 3 pm"),
        ("dont let me forget the car service on monday", "car service", "monday"),
        ("schedule a call with the bank tomorrow at ten", "call with the bank", "tomorrow at 10"),
        ("block out two pm wednesday for the school play", "school play", "2 pm wednesday"),
        ("make a note to buy milk", "buy milk", ""),
    ],
)
def test_event_spans(text: str, title: str, when: str) -> None:
    assert SLOTS.event(norm(text)) == (title, when)


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("almost out of fuel where can i fill up", "fuel"),
        ("my kid is sick where is urgent care", "hospital"),
        ("i need cash", "atm"),
        ("im running on fumes", "fuel"),
        ("need a caffeine fix", "coffee"),
        ("the battery is getting low where can i plug in", "charging"),
        ("we need somewhere to crash tonight", "hotel"),
        ("something nice", ""),
    ],
)
def test_category_spans(text: str, category: str) -> None:
    assert SLOTS.category(norm(text)) == category


@pytest.mark.parametrize(
    ("text", "component"),
    [
        ("the brakes feel kind of soft", "brakes"),
        ("do my tires need air", "tires"),
        ("the temperature gauge is in the red", "coolant"),
        ("how much juice is left", "battery"),
        ("is my car okay to drive", ""),
    ],
)
def test_component_spans(text: str, component: str) -> None:
    assert SLOTS.component(norm(text)) == component


@pytest.mark.parametrize(
    ("text", "intent", "reason"),
    [
        ("dont call mom", "call_contact", "negation"),
        ("no wait dont take me home", "navigate_to", "negation"),
        ("please do not navigate to work", "navigate_to", "negation"),
        ("never mind cancel that", "navigate_to", "cancellation"),
        ("scratch that", "create_event", "cancellation"),
        ("i already called dad yesterday", "call_contact", "talk about the past"),
        ("we drove to the airport last week", "navigate_to", "talk about the past"),
        ("we drove to the airport last week", "eta", "talk about the past"),
        ("what can you do", "call_contact", "question about the assistant"),
        ("are you a robot", "eta", "question about the assistant"),
        ("play something by queen", "navigate_to", "unsupported domain: media"),
        ("turn up the heat", "vehicle_status", "unsupported domain: climate and cabin"),
        ("set the temperature to 72", "vehicle_status", "unsupported domain: climate and cabin"),
        ("send a text to mom saying i am on my way", "call_contact", "unsupported domain: messages"),
        ("it is raining cats and dogs", "find_poi", "idiom"),
        ("this traffic is driving me up the wall", "traffic", "idiom"),
        ("navigate home and then call mom", "navigate_to", "two commands in one"),
    ],
)
def test_safety_refuses(text: str, intent: str, reason: str) -> None:
    assert refusal(norm(text), intent) == reason


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("dont let me forget the car service on monday", "create_event"),
        ("stop by the pharmacy on main street", "navigate_to"),
        ("block out two pm wednesday for the school play", "create_event"),
        ("the brakes are not working", "vehicle_status"),
        ("when did i last change the oil", "vehicle_status"),
        ("the check engine light came on find a garage", "find_poi"),
        ("get my sister on the line", "call_contact"),
        ("is the warning message about the oil serious", "vehicle_status"),
    ],
)
def test_safety_lets_commands_through(text: str, intent: str) -> None:
    assert refusal(norm(text), intent) == ""


@pytest.mark.parametrize(
    ("text", "contact"),
    [("dial the office", "office"), ("give the office a shout", "office"), ("get dad on the phone", "dad")],
)
def test_unmistakable_call_phrases(text: str, contact: str) -> None:
    assert SLOTS.strong_contact(norm(text)) == contact


@pytest.mark.parametrize(
    ("text", "reminder"),
    [("remind me to call john in 2 hours", True), ("dont let me forget the milk", True), ("call john", False)],
)
def test_reminders_are_events(text: str, reminder: bool) -> None:
    assert SLOTS.is_reminder(norm(text)) is reminder


def test_examples_cover_every_intent_and_out_of_domain_speech() -> None:
    from edge_slm.intent.examples import build_examples
    from edge_slm.intent.schema import INTENT_SLOTS

    examples = build_examples(GRAMMAR)
    counts = {name: sum(ex.intent == name for ex in examples) for name in INTENT_SLOTS}
    assert min(counts.values()) >= 50, counts
    assert all(ex.category for ex in examples if ex.intent == "find_poi" and "gas station" in ex.text)


def test_site_examples_file(tmp_path: Path) -> None:
    from edge_slm.errors import ConfigError
    from edge_slm.intent.examples import build_examples, site_examples

    good = tmp_path / "site.jsonl"
    good.write_text('{"text": "beam me to the depot", "intent": "navigate_to", "slots": {}}\n\n')
    assert [ex.text for ex in site_examples(str(good))] == ["beam me to the depot"]
    assert "beam me to the depot" in {ex.text for ex in build_examples(GRAMMAR, str(good))}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x", "intent": "launch_rocket"}\n')
    with pytest.raises(ConfigError, match=r"bad\.jsonl:1"):
        site_examples(str(bad))
    with pytest.raises(ConfigError, match="cannot read"):
        site_examples(str(tmp_path / "missing.jsonl"))


@pytest.mark.parametrize(
    ("text", "category"),
    [("swing by a store", "supermarket"), ("take me to the nearest pharmacy", "pharmacy"), ("take me to the mall", "")],
)
def test_any_place_of_a_kind_is_a_search(text: str, category: str) -> None:
    assert SLOTS.generic_place(norm(text)) == category


@pytest.mark.parametrize(
    ("text", "intent"),
    [("call the office", "call_contact"), ("take me to my sister's", "navigate_to"), ("what a call", "")],
)
def test_openings_that_name_the_action(text: str, intent: str) -> None:
    assert SLOTS.cue(norm(text)) == intent

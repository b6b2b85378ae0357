"""Would another reading of the words act otherwise (intent/readings.py)? With the real grammar and responder."""

from __future__ import annotations

from edge_slm.config import IntentSettings
from edge_slm.events import Action
from edge_slm.intent.readings import rival_reading, same_action
from edge_slm.intent.recognizer import IntentRecognizer
from edge_slm.intent.respond import Responder
from edge_slm.nav.state import NavStateStore


def test_same_action_is_the_same_kind_and_slots_as_heard() -> None:
    nav = Action("navigate", {"destination": "221 Baker Street"})
    assert same_action(nav, Action("navigate", {"destination": "two twenty one Bakers street"}))
    assert not same_action(nav, Action("navigate", {"destination": "221 Parker Street"}))
    assert not same_action(nav, Action("call", {"contact": "221 Baker Street"}))
    lunch = Action("calendar", {"title": "lunch", "when": "friday at noon"})
    assert same_action(lunch, Action("calendar", {"title": "Lunch.", "when": "Friday at noon"}))
    assert not same_action(lunch, Action("calendar", {"title": "lunch", "when": "friday afternoon"}))
    assert not same_action(Action("call", {"contact": "jim"}), Action("call", {"contact": "tim"}))


def test_rival_reading_is_the_first_that_would_act_otherwise() -> None:
    intents = IntentRecognizer(IntentSettings(model_fallback=False), None)
    responder = Responder(NavStateStore(), None, lambda: (), "")
    _, actions = responder.respond(intents.recognize("navigate to the stadium"))
    assert actions == (Action("navigate", {"destination": "stadium"}),)
    readings = ("navigate to the stadiums", "go tell the stadium please", "navigate to the studio")
    assert rival_reading(readings, actions, intents.recognize_fast, responder) == "navigate to the studio"
    assert rival_reading(readings[:2], actions, intents.recognize_fast, responder) is None
    assert rival_reading(("call mom",), actions, intents.recognize_fast, responder) == "call mom"
    assert rival_reading(("call mom",), (), intents.recognize_fast, responder) is None  # nothing to doubt

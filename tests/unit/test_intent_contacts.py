"""Calls only to listed contacts (intent/contacts.py): a misheard name is asked about or refused, never dialled.

Pure logic with the real grammar, responder, dialog context and sample POI file. The names are made up here
(not taken from any evaluation set)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_slm.config import IntentSettings, PoiSettings, Settings, VoiceSettings, load_settings
from edge_slm.events import Action, Intent, Transcript
from edge_slm.intent.answer import answer, build_responder
from edge_slm.intent.contacts import ContactBook, ContactMatch
from edge_slm.intent.context import DialogContext
from edge_slm.intent.grammar import default_grammar
from edge_slm.intent.recognizer import IntentRecognizer
from edge_slm.nav.state import NavStateStore

POIS = Path(__file__).resolve().parents[1] / "data" / "pois_sample.csv"
POSITION = {"lat": 52.5219, "lon": 13.4132}
BOOK = ("Mom", "Dad", "Tim", "Uncle Bob", "Bob", "Night Shift Lead", "Dr. Okafor", "José Pérez", "Priya")


@pytest.mark.parametrize(
    ("heard", "match", "name"),
    [
        ("mom", ContactMatch.EXACT, "Mom"),
        ("my mom", ContactMatch.EXACT, "Mom"),  # "call my mom"
        ("jose perez", ContactMatch.EXACT, "José Pérez"),  # the list's spelling goes to the head unit
        ("dr okafor", ContactMatch.EXACT, "Dr. Okafor"),
        ("night shit lead", ContactMatch.CLOSE, "Night Shift Lead"),  # letters alike: asked first
        ("doctor okafor", ContactMatch.CLOSE, "Dr. Okafor"),
        ("doctor okoye", ContactMatch.UNKNOWN, "doctor okoye"),  # not alike enough: not guessed
        ("bob brown", ContactMatch.CLOSE, "Bob"),  # every word of "Bob" heard, and one more
        ("time", ContactMatch.CLOSE, "Tim"),
        ("them", ContactMatch.UNKNOWN, "them"),
        ("sarah", ContactMatch.UNKNOWN, "sarah"),
        ("0176 555 0100", ContactMatch.NUMBER, "0176 555 0100"),  # a number is the dialer-code check's job
        ("+49 (176) 555-0100", ContactMatch.NUMBER, "+49 (176) 555-0100"),
        ("my 10011", ContactMatch.UNKNOWN, "my 10011"),  # words and digits: a misheard name, not dialled
    ],
)
def test_a_heard_name_is_resolved_against_the_list(heard: str, match: ContactMatch, name: str) -> None:
    resolved = ContactBook(BOOK).resolve(heard)
    assert (resolved.match, resolved.name) == (match, name)


def test_ambiguous_or_no_list() -> None:
    assert ContactBook(("Karen", "Caren")).resolve("aren").match is ContactMatch.UNKNOWN  # two alike: not guessed
    assert ContactBook(()).resolve("anyone").match is ContactMatch.UNCHECKED  # no list: the check is off
    assert not ContactBook(["", "  ", "0176 5550100"])  # blanks and numbers are not names


def responder(contacts: tuple[str, ...]):  # type: ignore[no-untyped-def]
    settings = Settings(poi=PoiSettings(file=str(POIS)), voice=VoiceSettings(contacts=contacts))
    nav = NavStateStore()
    nav.update({"destination": None, "position": POSITION})
    return build_responder(settings, nav, lambda: [])


def call(contact: str) -> Intent:
    return Intent(text=f"call {contact}", name="call_contact", slots={"contact": contact})


def test_the_responder_calls_listed_names_asks_about_close_ones_and_refuses_others() -> None:
    r = responder(BOOK)
    assert r.respond(call("my mom")) == ("Calling Mom.", (Action("call", {"contact": "Mom"}),))
    assert r.respond(call("night shit lead"))[1] == (Action("call", {"contact": "Night Shift Lead"}, confirm=True),)
    assert r.respond(call("them")) == ("them is not in your contacts, so I did not call.", ())
    unchecked = responder(())
    assert unchecked.respond(call("them"))[1] == (Action("call", {"contact": "them"}),)  # no list: as before


class Dialog:
    def __init__(self, contacts: tuple[str, ...], context: bool = True) -> None:
        self.responder = responder(contacts)
        self.recognizer = IntentRecognizer(IntentSettings(model_fallback=False), None, grammar=default_grammar())
        self.context = DialogContext() if context else None

    def say(self, text: str) -> tuple[str, tuple[Action, ...]]:
        reply = answer(
            Transcript(id="t", text=text, source="microphone"), self.recognizer, self.responder, context=self.context
        )
        return reply.text, reply.actions


def test_a_close_name_is_dialled_only_after_yes() -> None:
    d = Dialog(BOOK)
    assert d.say("call time") == ("Call Tim? Say yes or no.", ())
    assert d.say("yes") == ("Calling Tim.", (Action("call", {"contact": "Tim"}),))  # confirmed: published plainly
    assert d.say("call time")[1] == ()
    assert d.say("no") == ("OK, cancelled.", ())
    assert d.say("call dad") == ("Calling Dad.", (Action("call", {"contact": "Dad"}),))  # listed: no question


def test_without_a_dialog_a_close_name_is_asked_about_and_not_dialled() -> None:
    d = Dialog(BOOK, context=False)
    assert d.say("call time") == ("Call Tim? Say yes or no.", ())


def test_a_found_place_can_still_be_called_with_a_contact_list() -> None:
    d = Dialog(BOOK)
    d.say("find a pharmacy")
    assert d.say("call them")[1] == (Action("call", {"contact": "Apotheke am Alex"}),)


def test_contacts_config_key_feeds_the_check() -> None:
    settings = load_settings(None, None, environ={}, cli_overrides={"voice": {"contacts": ["Mom", "Priya"]}})
    assert settings.voice.contacts == ("Mom", "Priya") and VoiceSettings().contacts == ()

"""Grounded replies: answer an `Intent` from facts only (CONTRACT §4).

`eta` and `traffic` come from the latest nav state, `find_poi` from the POI index and the current
position, `vehicle_status` from the alerts currently firing. Every number, place and fault in a
reply is copied from those facts; when a fact is missing the reply says so. Only the three
allowlisted intents produce an `Action`, and only with a non-empty, cleaned slot value.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence

from edge_slm.detect.spoken import SpokenSignal, say_value, spoken_signal
from edge_slm.events import Action, Alert, AlertState, Intent
from edge_slm.intent.contacts import ContactBook, ContactMatch
from edge_slm.intent.grammar import Grammar, default_grammar
from edge_slm.intent.normalize import basic_words
from edge_slm.intent.schema import IntentName
from edge_slm.nav.poi import PoiIndex
from edge_slm.nav.state import NavState, NavStateStore
from edge_slm.sanitize import clean_text, is_safe_name, is_vehicle_signal

log = logging.getLogger(__name__)

MAX_ACTION_CHARS = 200
MAX_ALERTS_SPOKEN = 3
MAX_CLEARED_SPOKEN = 2
MAX_READINGS_SPOKEN = 6
READING_FRESH_S = 300.0  # older readings are not "now"

RecentlyResolved = Callable[[], Sequence[tuple[Alert, float]]]  # (resolved alert, wall-clock time it cleared)
LatestReadings = Callable[[], Mapping[str, tuple[float, float]]]  # signal -> (value, wall-clock arrival)

CATEGORY_LABELS: dict[str, tuple[str, str]] = {  # canonical -> (singular, plural)
    "fuel": ("gas station", "gas stations"),
    "charging": ("charging station", "charging stations"),
    "parking": ("parking place", "parking places"),
    "restaurant": ("restaurant", "restaurants"),
    "coffee": ("coffee shop", "coffee shops"),
    "hospital": ("hospital", "hospitals"),
    "pharmacy": ("pharmacy", "pharmacies"),
    "hotel": ("hotel", "hotels"),
    "atm": ("ATM", "ATMs"),
    "supermarket": ("supermarket", "supermarkets"),
    "restroom": ("restroom", "restrooms"),
    "car wash": ("car wash", "car washes"),
    "mechanic": ("mechanic", "mechanics"),
}

# component -> lowercase fragments of signal or rule names that belong to it
COMPONENT_KEYS: dict[str, tuple[str, ...]] = {
    "engine": ("combustionengine", "engine", "coolant", "oil"),  # not "powertrain": that includes EV batteries
    "coolant": ("coolant",),
    "oil": ("engineoil", "oil"),
    "battery": ("battery", "stateofcharge", "voltage"),
    "tires": ("tire", "tyre", "wheel"),
    "brakes": ("brake",),
}

COMPONENT_LABELS: dict[str, str] = {"tires": "tires", "brakes": "brakes"}

UNKNOWN_REPLY = (
    "Sorry, I can't help with that. I can navigate, tell you the arrival time or the traffic, "
    "find places nearby, call a contact, add a calendar event or check the car."
)


def say_duration(seconds: float) -> str:
    """'less than a minute', 'about 21 minutes', 'about 1 hour and 5 minutes'."""
    if seconds < 60:
        return "less than a minute"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} minute{'s' if minutes != 1 else ''}"
    hours, rest = divmod(minutes, 60)
    text = f"about {hours} hour{'s' if hours != 1 else ''}"
    if rest:
        text += f" and {rest} minute{'s' if rest != 1 else ''}"
    return text


def say_distance(metres: float) -> str:
    """'350 meters', '1.2 kilometers', '14 kilometers'."""
    if metres < 100:
        return f"{round(metres):.0f} meters"
    if metres < 1000:
        return f"{round(metres / 10) * 10:.0f} meters"
    km = metres / 1000
    if km < 10:
        return f"{km:.1f} kilometers"
    return f"{round(km):.0f} kilometers"


def clean_value(value: str) -> str:
    """An action payload value: printable, single-spaced, bounded."""
    return clean_text(value, MAX_ACTION_CHARS)


def spoken_alert(alert: Alert) -> str:
    """What the driver hears for one alert. The summary is template text around the signal name, and
    names come off the bus: it is spoken only when the signal and device are plain identifiers;
    otherwise a fixed phrase without the name."""
    if is_safe_name(alert.signal) and is_safe_name(alert.device):
        summary = clean_text(alert.summary, 240).rstrip(". ")
        if summary:
            return summary
        return f"{alert.signal} {alert.rule}" if is_safe_name(alert.rule) else alert.signal
    return f"a {alert.severity.label} warning on a signal with an unusable name"


def canonical_category(text: str, grammar: Grammar | None = None) -> str | None:
    """A POI file's category as an intent category ("Gas Station" -> "fuel"); unknown ones are kept folded."""
    folded = " ".join(basic_words(text.replace("_", " ")))
    if not folded:
        return None
    return (grammar or default_grammar()).canonical("category", folded) or folded


def component_matches(component: str, alert: Alert) -> bool:
    return signal_matches(component, f"{alert.signal} {alert.rule}")


def signal_matches(component: str, names: str) -> bool:
    if not component:
        return True
    haystack = names.lower().replace("_", "").replace(".", " ")
    keys = COMPONENT_KEYS.get(component, (component.lower(),))
    return any(key in haystack for key in keys)


def say_ago(seconds: float) -> str:
    """'just now', '20 seconds ago', 'about 3 minutes ago'."""
    if seconds < 3:
        return "just now"
    if seconds < 60:
        return f"{round(seconds)} seconds ago"
    return f"{say_duration(seconds)} ago"


class Responder:
    """Builds the reply text and head-unit actions for one intent."""

    def __init__(
        self,
        nav: NavStateStore,
        pois: PoiIndex | None,
        firing_alerts: Callable[[], Sequence[Alert]],
        vehicle_device: str,
        recently_resolved: RecentlyResolved | None = None,
        latest_readings: LatestReadings | None = None,
        clock: Callable[[], float] = time.time,
        contacts: Sequence[str] = (),
    ) -> None:
        self._nav = nav
        self._pois = pois
        self._firing_alerts = firing_alerts
        self._vehicle_device = vehicle_device
        self._recently_resolved = recently_resolved
        self._latest_readings = latest_readings
        self._clock = clock
        # a call goes to a listed contact or a known place ("call them" after a search); no list = no check
        places = [p.name for group in pois.by_category.values() for p in group] if pois is not None else []
        self._contacts = ContactBook([*contacts, *places]) if contacts else ContactBook(())
        self._handlers: dict[str, Callable[[Intent], tuple[str, tuple[Action, ...]]]] = {
            IntentName.NAVIGATE_TO: self._navigate,
            IntentName.ETA: self._eta,
            IntentName.TRAFFIC: self._traffic,
            IntentName.FIND_POI: self._find_poi,
            IntentName.CALL_CONTACT: self._call,
            IntentName.CREATE_EVENT: self._calendar,
            IntentName.VEHICLE_STATUS: self._vehicle_status,
        }

    @property
    def pois(self) -> PoiIndex | None:
        return self._pois

    def respond(self, intent: Intent) -> tuple[str, tuple[Action, ...]]:
        handler = self._handlers.get(intent.name)
        if handler is None:
            return UNKNOWN_REPLY, ()
        return handler(intent)

    # ---- actions --------------------------------------------------------------------------

    def _navigate(self, intent: Intent) -> tuple[str, tuple[Action, ...]]:
        destination = clean_value(intent.slots.get("destination", ""))
        if not destination:
            return "Where would you like to go?", ()
        return f"Starting navigation to {destination}.", (Action("navigate", {"destination": destination}),)

    def _call(self, intent: Intent) -> tuple[str, tuple[Action, ...]]:
        contact = clean_value(intent.slots.get("contact", ""))
        if not contact:
            return "Who would you like to call?", ()
        resolved = self._contacts.resolve(contact)
        if resolved.match is ContactMatch.UNKNOWN:
            return f"{contact} is not in your contacts, so I did not call.", ()
        if resolved.match in (ContactMatch.EXACT, ContactMatch.CLOSE):
            contact = resolved.name
        confirm = resolved.match is ContactMatch.CLOSE  # a misheard name: asked before anyone is dialled
        return f"Calling {contact}.", (Action("call", {"contact": contact}, confirm=confirm),)

    def _calendar(self, intent: Intent) -> tuple[str, tuple[Action, ...]]:
        title = clean_value(intent.slots.get("title", ""))
        when = clean_value(intent.slots.get("when", ""))
        if not title:
            return "What should I put in your calendar?", ()
        text = f'Adding "{title}" to your calendar' + (f" for {when}." if when else ".")
        return text, (Action("calendar", {"title": title, "when": when}),)

    # ---- grounded answers -----------------------------------------------------------------

    def _route(self) -> NavState | None:
        return self._nav.latest

    def _eta(self, intent: Intent) -> tuple[str, tuple[Action, ...]]:
        state = self._route()
        if state is None:
            return "I don't have any route information right now, so I can't tell when you'll arrive.", ()
        if not state.has_route:
            return "There's no active route, so I can't tell when you'll arrive.", ()
        where = f" at {state.destination}" if state.destination else ""
        distance = f", {say_distance(state.distance_m)} to go" if state.distance_m is not None else ""
        if state.eta_s is None:
            if state.distance_m is None:
                return "I don't have an arrival time for this route.", ()
            to = f" to {state.destination}" if state.destination else ""
            return f"It's {say_distance(state.distance_m)}{to}; I don't have an arrival time.", ()
        return f"You should arrive{where} in {say_duration(state.eta_s)}{distance}.", ()

    def _traffic(self, intent: Intent) -> tuple[str, tuple[Action, ...]]:
        state = self._route()
        if state is None or state.traffic is None:
            return "I don't have any traffic information right now.", ()
        delays = [t for t in state.traffic if t.delay_s > 0 or t.description]
        if not delays:
            return "No traffic delays are reported on your route.", ()
        parts = []
        for item in delays[:MAX_ALERTS_SPOKEN]:
            what = item.description or "a delay"
            parts.append(f"{what}, adding {say_duration(item.delay_s)}" if item.delay_s > 0 else what)
        count = len(delays)
        text = f"{count} traffic delay{'s' if count != 1 else ''} on your route: " + "; ".join(parts)
        if count > MAX_ALERTS_SPOKEN:
            text += f"; and {count - MAX_ALERTS_SPOKEN} more"
        total = sum(t.delay_s for t in delays)
        if count > 1 and total > 0:
            text += f". In total {say_duration(total)} of delay"
        return text + ".", ()

    def _find_poi(self, intent: Intent) -> tuple[str, tuple[Action, ...]]:
        category = intent.slots.get("category", "")
        if not category:
            return "What kind of place are you looking for?", ()
        singular, plural = CATEGORY_LABELS.get(category, (category, category))
        if self._pois is None:
            return f"I don't have a list of places, so I can't find a {singular} nearby.", ()
        state = self._route()
        if state is None or state.position is None:
            return f"I don't know the current position, so I can't find the nearest {singular}.", ()
        found = self.nearest_place(category)
        if found is None:
            return f"I don't have any {plural} in my list of places.", ()
        name, metres = found
        return f"The nearest {singular} is {name}, {say_distance(metres)} away.", ()

    def nearest_place(self, category: str) -> tuple[str, float] | None:
        """(name, metres) of the nearest place of `category` from the current position, if known."""
        state = self._route()
        if self._pois is None or state is None or state.position is None or not category:
            return None
        found = self._pois.nearest(category, state.position.lat, state.position.lon)
        return None if found is None else (found[0].name, found[1])

    def _is_vehicle_alert(self, alert: Alert) -> bool:
        """The vehicle device's alerts; with no `voice.vehicle_device` set, alerts on VSS
        `Vehicle.` signals only (a pump's or a stranger's alerts are never read to the driver)."""
        if self._vehicle_device:
            return alert.device == self._vehicle_device
        return is_vehicle_signal(alert.signal)

    def _vehicle_status(self, intent: Intent) -> tuple[str, tuple[Action, ...]]:
        component = intent.slots.get("component", "")
        try:
            alerts = list(self._firing_alerts())
        except Exception:  # the alert source is another module's state; never let it break a reply
            log.exception("reading firing alerts failed")
            return "I can't read the vehicle's warnings right now.", ()
        relevant = [
            a
            for a in alerts
            if a.state is AlertState.FIRING and self._is_vehicle_alert(a) and component_matches(component, a)
        ]
        label = COMPONENT_LABELS.get(component, component)
        readings = self._readings(component)
        cleared, mentioned = self._cleared(component, relevant, readings)
        if not relevant:
            text = f"No active warnings for the {label}." if component else "No active warnings."
            if cleared and component:
                return f"{text} {cleared}", ()
            rest = {signal: reading for signal, reading in readings.items() if signal not in mentioned}
            summary = self._summary(rest) if rest or not mentioned else ""
            return " ".join(part for part in (text, cleared, summary) if part), ()
        relevant.sort(key=lambda a: (-int(a.severity), a.ts))
        spoken = [spoken_alert(a) for a in relevant[:MAX_ALERTS_SPOKEN]]
        count = len(relevant)
        head = f"{count} active warning{'s' if count != 1 else ''}" + (f" for the {label}" if component else "")
        text = f"{head}: " + "; ".join(spoken)
        if count > MAX_ALERTS_SPOKEN:
            text += f"; and {count - MAX_ALERTS_SPOKEN} more"
        return text + "." + (f" {cleared}" if cleared else ""), ()

    # ---- recent history: cleared warnings and current readings -------------------------------

    def _readings(self, component: str) -> dict[str, tuple[SpokenSignal, float]]:
        """Fresh readings of known signals matching `component`: signal -> (spoken name, value)."""
        if self._latest_readings is None:
            return {}
        try:
            latest = dict(self._latest_readings())
        except Exception:  # another module's state; a reply without readings beats no reply
            log.exception("reading the latest signal values failed")
            return {}
        now = self._clock()
        out: dict[str, tuple[SpokenSignal, float]] = {}
        for signal, (value, at) in sorted(latest.items()):
            spoken = spoken_signal(signal)
            if spoken is not None and now - at <= READING_FRESH_S and signal_matches(component, signal):
                out[signal] = (spoken, value)
        return out

    def _cleared(
        self, component: str, firing: Sequence[Alert], readings: Mapping[str, tuple[SpokenSignal, float]]
    ) -> tuple[str, set[str]]:
        """'The engine coolant warning cleared 20 seconds ago; the temperature is now 90 °C.', and the
        signals it named."""
        if self._recently_resolved is None:
            return "", set()
        try:
            resolved = list(self._recently_resolved())
        except Exception:
            log.exception("reading recently resolved alerts failed")
            return "", set()
        firing_keys = {(a.device, a.signal) for a in firing}
        now = self._clock()
        parts: list[str] = []
        seen: set[tuple[str, str]] = set()
        mentioned: set[str] = set()
        for alert, at in resolved:  # newest first
            key = (alert.device, alert.signal)
            if key in seen or key in firing_keys or not component_matches(component, alert):
                continue
            if self._vehicle_device and alert.device != self._vehicle_device:
                continue
            seen.add(key)
            mentioned.add(alert.signal)
            spoken = spoken_signal(alert.signal)
            if spoken is None:
                parts.append(f"A warning cleared {say_ago(now - at)}.")
                continue
            sentence = f"The {spoken.subject} warning cleared {say_ago(now - at)}"
            now_value = say_value(spoken, readings[alert.signal][1]) if alert.signal in readings else ""
            if now_value:
                sentence += f"; the {spoken.quantity} is now {now_value}"
            parts.append(sentence + ".")
            if len(parts) >= MAX_CLEARED_SPOKEN:
                break
        return " ".join(parts), mentioned

    def _summary(self, readings: Mapping[str, tuple[SpokenSignal, float]]) -> str:
        """'Current readings: engine coolant 90 °C, battery voltage 12.6 V, tire pressures 228 to 240 kPa.'"""
        if self._latest_readings is None:
            return ""
        if not readings:
            return "I have no recent readings from the vehicle."
        items: list[str] = []
        groups: dict[str, list[tuple[SpokenSignal, float]]] = {}
        for spoken, value in readings.values():
            if spoken.group:
                groups.setdefault(spoken.group, []).append((spoken, value))
            elif value_text := say_value(spoken, value):
                items.append(f"{spoken.subject} {value_text}")
        for group, members in groups.items():
            values = sorted(v for _, v in members)
            low, high = say_value(members[0][0], values[0]), say_value(members[0][0], values[-1])
            if not low or not high:
                continue
            if len(members) == 1:
                items.append(f"{members[0][0].subject} {low}")
            elif low == high:
                items.append(f"{group} all {low}")
            else:
                items.append(f"{group} {low.split()[0]} to {high}")
        if not items:
            return ""
        more = len(items) - MAX_READINGS_SPOKEN
        text = "Current readings: " + ", ".join(items[:MAX_READINGS_SPOKEN])
        return text + (f", and {more} more." if more > 0 else ".")

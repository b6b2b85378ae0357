"""Grounded replies: answer an `Intent` from facts only (CONTRACT §4).

`eta` and `traffic` come from the latest nav state, `find_poi` from the POI index and the current
position, `vehicle_status` from the alerts currently firing. Every number, place and fault in a
reply is copied from those facts; when a fact is missing the reply says so. Only the three
allowlisted intents produce an `Action`, and only with a non-empty, cleaned slot value.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from edge_slm.events import Action, Alert, AlertState, Intent
from edge_slm.intent.grammar import Grammar, default_grammar
from edge_slm.intent.normalize import basic_words
from edge_slm.intent.schema import IntentName
from edge_slm.nav.poi import PoiIndex
from edge_slm.nav.state import NavState, NavStateStore
from edge_slm.sanitize import clean_text, is_safe_name, is_vehicle_signal

log = logging.getLogger(__name__)

MAX_ACTION_CHARS = 200
MAX_ALERTS_SPOKEN = 3

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
    if not component:
        return True
    haystack = f"{alert.signal} {alert.rule}".lower().replace("_", "").replace(".", " ")
    keys = COMPONENT_KEYS.get(component, (component.lower(),))
    return any(key in haystack for key in keys)


class Responder:
    """Builds the reply text and head-unit actions for one intent."""

    def __init__(
        self,
        nav: NavStateStore,
        pois: PoiIndex | None,
        firing_alerts: Callable[[], Sequence[Alert]],
        vehicle_device: str,
    ) -> None:
        self._nav = nav
        self._pois = pois
        self._firing_alerts = firing_alerts
        self._vehicle_device = vehicle_device
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
        return f"Calling {contact}.", (Action("call", {"contact": contact}),)

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
        found = self._pois.nearest(category, state.position.lat, state.position.lon)
        if found is None:
            return f"I don't have any {plural} in my list of places.", ()
        poi, metres = found
        return f"The nearest {singular} is {poi.name}, {say_distance(metres)} away.", ()

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
        if not relevant:
            return (f"No active warnings for the {label}." if component else "No active warnings."), ()
        relevant.sort(key=lambda a: (-int(a.severity), a.ts))
        spoken = [spoken_alert(a) for a in relevant[:MAX_ALERTS_SPOKEN]]
        count = len(relevant)
        head = f"{count} active warning{'s' if count != 1 else ''}" + (f" for the {label}" if component else "")
        text = f"{head}: " + "; ".join(spoken)
        if count > MAX_ALERTS_SPOKEN:
            text += f"; and {count - MAX_ALERTS_SPOKEN} more"
        return text + ".", ()

"""The closed set of intents and their slots (CONTRACT §4). Nothing outside it ever happens."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType


class IntentName(enum.StrEnum):
    NAVIGATE_TO = "navigate_to"
    ETA = "eta"
    TRAFFIC = "traffic"
    FIND_POI = "find_poi"
    CALL_CONTACT = "call_contact"
    CREATE_EVENT = "create_event"
    VEHICLE_STATUS = "vehicle_status"
    UNKNOWN = "unknown"


INTENT_SLOTS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        IntentName.NAVIGATE_TO.value: ("destination",),
        IntentName.ETA.value: (),
        IntentName.TRAFFIC.value: (),
        IntentName.FIND_POI.value: ("category",),
        IntentName.CALL_CONTACT.value: ("contact",),
        IntentName.CREATE_EVENT.value: ("title", "when"),
        IntentName.VEHICLE_STATUS.value: ("component",),
        IntentName.UNKNOWN.value: (),
    }
)

# Intents that make the head unit do something (CONTRACT §2 `{prefix}/actions/{kind}`).
ACTION_INTENTS: frozenset[str] = frozenset(
    {IntentName.NAVIGATE_TO.value, IntentName.CALL_CONTACT.value, IntentName.CREATE_EVENT.value}
)

ALL_SLOTS: tuple[str, ...] = ("destination", "category", "contact", "title", "when", "component")

"""Home Assistant MQTT discovery (`ha.discovery = true`).

Each monitored device appears in Home Assistant as a device with one `problem` binary sensor per
rule family (`vibration`, `coolant`, `anomaly`, ...): on while one of its alerts fires, with the
severity, value, summary, action and explanation as attributes. The node appears as a device too,
with sensors for the last transcript and reply. Every entity's availability follows the node's
status topic (`online`/`offline`, the Last Will). Config, state and attributes are retained, so
Home Assistant finds them after its own restart; unique ids are stable across ours.

Payloads follow https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery (full key names).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from edge_slm import __version__
from edge_slm.events import Alert, AlertState, Explanation

Publish = Callable[[str, str, bool], None]  # (topic, payload, retain)

_ID_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
# Bounded: a sender inventing device ids cannot fill Home Assistant (and the broker's retained
# store) with entities; past this many (device, family) pairs new ones are counted, not announced.
MAX_ENTITIES = 1000
ORIGIN = {"name": "edge-slm", "sw_version": __version__, "support_url": "https://github.com/edge-slm/edge-slm"}


def ha_id(text: str) -> str:
    """An id Home Assistant accepts in topics and unique ids ([a-zA-Z0-9_-]); a short hash keeps two
    device ids that differ only in other characters apart."""
    safe = _ID_UNSAFE.sub("_", text)[:48]
    if safe == text:
        return safe
    return f"{safe}_{hashlib.sha256(text.encode()).hexdigest()[:6]}"


def rule_family(rule: str) -> str:
    """`coolant.overheat` -> `coolant`; `anomaly` -> `anomaly`."""
    return rule.split(".", 1)[0] or "alert"


class HaDiscovery:
    def __init__(self, discovery_prefix: str, topic_prefix: str, node: str, status_topic: str, publish: Publish):
        self._discovery = discovery_prefix
        self._prefix = topic_prefix
        self._node = node
        self._status_topic = status_topic
        self._publish = publish
        self._announced: set[tuple[str, str]] = set()  # (device, family) with a config published
        self._attributes: dict[str, dict[str, Any]] = {}  # alert id -> attributes (for the explanation)
        self.messages = 0
        self.refused_entities = 0

    # -- topics -------------------------------------------------------------------------------

    def _state_topic(self, device: str, family: str) -> str:
        return f"{self._prefix}/ha/{ha_id(device)}/{family}/state"

    def _attributes_topic(self, device: str, family: str) -> str:
        return f"{self._prefix}/ha/{ha_id(device)}/{family}/attributes"

    def _availability(self) -> dict[str, Any]:
        return {
            "availability_topic": self._status_topic,
            "payload_available": "online",
            "payload_not_available": "offline",
        }

    def _node_device(self) -> dict[str, Any]:
        return {
            "identifiers": [f"edge_slm_{ha_id(self._node)}"],
            "name": f"edge-slm {self._node}",
            "manufacturer": "edge-slm",
            "model": "edge-slm node",
            "sw_version": __version__,
        }

    # -- messages -----------------------------------------------------------------------------

    def node_configs(self) -> list[tuple[str, dict[str, Any]]]:
        node = ha_id(self._node)
        out = []
        for key, name, template in (
            ("last_transcript", "Last voice command", "{{ value_json.transcript }}"),
            ("last_reply", "Last voice reply", "{{ value_json.text }}"),
        ):
            out.append(
                (
                    f"{self._discovery}/sensor/{node}/{key}/config",
                    {
                        "name": name,
                        "unique_id": f"edge_slm_{node}_{key}",
                        "state_topic": f"{self._prefix}/voice/reply",
                        "value_template": template,
                        "icon": "mdi:microphone-message",
                        "device": self._node_device(),
                        "origin": ORIGIN,
                        **self._availability(),
                    },
                )
            )
        return out

    def device_config(self, device: str, family: str) -> tuple[str, dict[str, Any]]:
        dev = ha_id(device)
        return (
            f"{self._discovery}/binary_sensor/{dev}/{family}_problem/config",
            {
                "name": f"{family.replace('_', ' ').capitalize()} problem",
                "unique_id": f"edge_slm_{dev}_{family}_problem",
                "device_class": "problem",
                "state_topic": self._state_topic(device, family),
                "payload_on": "ON",
                "payload_off": "OFF",
                "json_attributes_topic": self._attributes_topic(device, family),
                "device": {
                    "identifiers": [f"edge_slm_device_{dev}"],
                    "name": device[:64],
                    "manufacturer": "edge-slm",
                    "model": "monitored device",
                    "via_device": f"edge_slm_{ha_id(self._node)}",
                },
                "origin": ORIGIN,
                **self._availability(),
            },
        )

    def announce_node(self) -> None:
        """At every connect (retained: Home Assistant also finds it after its own restart)."""
        for topic, config in self.node_configs():
            self._send(topic, config)

    def on_alert(self, alert: Alert) -> None:
        family = rule_family(alert.rule)
        if (alert.device, family) not in self._announced:
            if len(self._announced) >= MAX_ENTITIES:
                self.refused_entities += 1
                return
            self._announced.add((alert.device, family))
            self._send(*self.device_config(alert.device, family))
        firing = alert.state is AlertState.FIRING
        attributes = {
            "alert_id": alert.id,
            "rule": alert.rule,
            "signal": alert.signal,
            "severity": alert.severity.label,
            "value": alert.value,
            "summary": alert.summary,
            "action": alert.action,
            "state": alert.state.value,
        }
        if firing:
            self._attributes[alert.id] = attributes
            if len(self._attributes) > 10_000:  # bounded: the oldest alerts' attributes go first
                self._attributes.pop(next(iter(self._attributes)))
        else:
            self._attributes.pop(alert.id, None)
        self._send(self._attributes_topic(alert.device, family), attributes)
        self._publish(self._state_topic(alert.device, family), "ON" if firing else "OFF", True)
        self.messages += 1

    def on_explanation(self, alert: Alert, explanation: Explanation) -> None:
        attributes = self._attributes.get(alert.id)
        if attributes is None:
            return  # resolved meanwhile
        attributes = {**attributes, "explanation": explanation.to_payload()}
        self._attributes[alert.id] = attributes
        self._send(self._attributes_topic(alert.device, rule_family(alert.rule)), attributes)

    def _send(self, topic: str, payload: dict[str, Any]) -> None:
        self._publish(topic, json.dumps(payload, ensure_ascii=False, separators=(",", ":")), True)
        self.messages += 1

"""Topic templates (CONTRACT §2) and validation of untrusted topic segments."""

from __future__ import annotations

import enum
from dataclasses import dataclass

_FORBIDDEN_IN_SEGMENT = ("+", "#", "\0", "/")
MAX_SEGMENT_BYTES = 256


class TopicError(ValueError):
    """A topic or segment is unusable; the message is the dead-letter reason."""


def validate_segment(segment: str, what: str = "segment") -> str:
    """Reject text that would turn into a wildcard, a new level or an empty level."""
    if not segment:
        raise TopicError(f"empty {what}")
    for bad in _FORBIDDEN_IN_SEGMENT:
        if bad in segment:
            shown = {"\0": "NUL"}.get(bad, bad)
            raise TopicError(f"{what} contains forbidden character {shown!r}")
    if len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
        raise TopicError(f"{what} longer than {MAX_SEGMENT_BYTES} bytes")
    if not segment.isprintable():
        raise TopicError(f"{what} contains control characters")
    return segment


class Route(enum.Enum):
    """Which flow an inbound message belongs to."""

    TELEMETRY = "telemetry"
    TRANSCRIPT = "transcript"
    NAV_STATE = "nav_state"
    LISTEN = "listen"
    LLM_RESPONSE = "llm_response"  # answers from the model worker pool (model.mode = "pool")


@dataclass(frozen=True)
class Topics:
    prefix: str
    node: str
    pooled_model: bool = False  # the node's model work goes to the worker pool
    # Telemetry filters of this process (mqtt.telemetry_filters: one device group per ingest
    # worker); empty: every device's telemetry.
    telemetry_filters: tuple[str, ...] = ()

    # inbound: what the daemon subscribes to, and where each message goes (kept side by side)
    @property
    def subscriptions(self) -> list[tuple[str, int]]:
        """(filter, QoS). Voice commands at QoS 0: they are live only, so the broker does not queue
        them for us while we are down (an hour-old "call mom" is no command)."""
        pooled = [(self.llm_response, 1)] if self.pooled_model else []
        live = [(self.transcript, 0), (self.listen, 0)]
        telemetry = [(f, 1) for f in self.telemetry_filters or (self.telemetry_filter,)]
        return [*telemetry, (self.nav_state, 1), *live, *pooled]

    def route(self, topic: str) -> Route | None:
        """The flow for an inbound topic; None for anything the daemon did not subscribe to."""
        if topic.startswith(f"{self.prefix}/telemetry/"):
            return Route.TELEMETRY
        if self.pooled_model and topic == self.llm_response:
            return Route.LLM_RESPONSE
        return {self.transcript: Route.TRANSCRIPT, self.nav_state: Route.NAV_STATE, self.listen: Route.LISTEN}.get(
            topic
        )

    @property
    def llm_response(self) -> str:
        return f"{self.prefix}/llm/response/{self.node}"

    @property
    def telemetry_filter(self) -> str:
        return f"{self.prefix}/telemetry/+"

    @property
    def transcript(self) -> str:
        return f"{self.prefix}/voice/transcript"

    @property
    def nav_state(self) -> str:
        return f"{self.prefix}/nav/state"

    @property
    def listen(self) -> str:
        return f"{self.prefix}/voice/listen"

    # outbound
    def alert(self, device: str) -> str:
        return f"{self.prefix}/alerts/{validate_segment(device, 'device id')}"

    def explanation(self, device: str) -> str:
        return f"{self.alert(device)}/explanation"

    @property
    def status(self) -> str:
        return f"{self.prefix}/status/{self.node}"

    @property
    def metrics(self) -> str:
        return f"{self.prefix}/metrics/{self.node}"

    @property
    def deadletter(self) -> str:
        return f"{self.prefix}/deadletter"

    @property
    def heard(self) -> str:
        return f"{self.prefix}/voice/heard"

    @property
    def reply(self) -> str:
        return f"{self.prefix}/voice/reply"

    def action(self, kind: str) -> str:
        return f"{self.prefix}/actions/{validate_segment(kind, 'action kind')}"

    def device_from_telemetry_topic(self, topic: str) -> str:
        """`{prefix}/telemetry/{device}` -> device; raises TopicError for anything else."""
        head = f"{self.prefix}/telemetry/"
        if not topic.startswith(head):
            raise TopicError(f"not a telemetry topic: {topic!r}")
        return validate_segment(topic[len(head) :], "device id")

"""Immutable values that cross module boundaries. Pure data: no I/O, no threads."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Severity(enum.IntEnum):
    INFO = 1
    WARNING = 2
    CRITICAL = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        return cls[text.strip().upper()]


class AlertState(enum.Enum):
    FIRING = "firing"
    RESOLVED = "resolved"


SignalValue = float | bool


@dataclass(frozen=True, slots=True)
class Sample:
    """One decoded telemetry message: every valid signal of one device at one instant."""

    device: str
    ts: float
    signals: dict[str, SignalValue]
    received_ts: float


@dataclass(frozen=True, slots=True)
class Finding:
    """A detector's verdict on one signal at one sample: a condition holds or has cleared."""

    device: str
    signal: str
    rule: str
    severity: Severity
    firing: bool
    value: float
    ts: float
    onset_ts: float
    summary: str
    action: str
    notes: str = ""


@dataclass(frozen=True, slots=True)
class Alert:
    """The contract's alert object (CONTRACT §3)."""

    id: str
    device: str
    signal: str
    rule: str
    severity: Severity
    state: AlertState
    value: float
    ts: float
    summary: str
    action: str
    onset_ts: float = 0.0
    notes: str = ""

    def to_payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "device": self.device,
            "signal": self.signal,
            "rule": self.rule,
            "severity": self.severity.label,
            "state": self.state.value,
            "value": self.value,
            "ts": self.ts,
            "summary": self.summary,
            "action": self.action,
        }


@dataclass(frozen=True, slots=True)
class Explanation:
    """Follow-up text for an alert (CONTRACT §2, `/explanation`)."""

    alert_id: str
    device: str
    summary: str
    action: str
    explained_by: str  # "model" | "template"
    cause: str = ""
    evidence: tuple[str, ...] = ()  # short facts with numbers behind the cause
    confidence: float | None = None  # the diagnosis' share of belief in its top cause, 0-1
    alternative: str = ""  # the runner-up cause, if any
    basis: str = ""  # "knowledge" (pack fault knowledge), "signals" (co-movement), "rule" (the rule's text only)

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "id": self.alert_id,
            "summary": self.summary,
            "action": self.action,
            "explained_by": self.explained_by,
        }
        if self.cause:
            payload["cause"] = self.cause
        if self.evidence:
            payload["evidence"] = list(self.evidence)
        if self.confidence is not None:
            payload["confidence"] = self.confidence
        if self.alternative:
            payload["alternative"] = self.alternative
        if self.basis:
            payload["basis"] = self.basis
        return payload


@dataclass(frozen=True, slots=True)
class Transcript:
    """Text of one utterance, from the microphone or from `{prefix}/voice/transcript`."""

    id: str
    text: str
    source: str  # "microphone" | "mqtt" | "cli"
    confidence: float = 1.0
    start_s: float = 0.0
    end_s: float = 0.0
    received_ts: float = 0.0
    seq: int = 0  # arrival order in the voice flow (a later command of a source outranks an earlier one)
    recognizer: str = ""  # the microphone's speech recognizer ("whisper" | "vosk"); "" from the bus
    alternatives: tuple[str, ...] = ()  # the recognizer's other readings, nearly as likely (intent/readings.py)


@dataclass(frozen=True, slots=True)
class Intent:
    """What a command means (CONTRACT §4)."""

    text: str
    name: str
    slots: dict[str, str] = field(default_factory=dict)
    source: str = "grammar"  # "grammar" | "model"
    confidence: float = 1.0

    def to_payload(self) -> dict[str, Any]:
        return {"text": self.text, "intent": self.name, "slots": dict(self.slots), "source": self.source}


@dataclass(frozen=True, slots=True)
class Action:
    """A command for the head unit, published on `{prefix}/actions/{kind}`."""

    kind: str  # "navigate" | "call" | "calendar"
    payload: dict[str, str]
    confirm: bool = False  # held until the driver says yes (a contact only close to a known one); not published


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to one transcript (CONTRACT §2, `voice/reply`)."""

    transcript_id: str
    transcript: str
    intent: Intent
    text: str
    latency_ms: float
    actions: tuple[Action, ...] = ()
    spoken: bool | None = None  # None: speech output is off (the payload then has no "spoken")

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "id": self.transcript_id,
            "transcript": self.transcript,
            "intent": self.intent.name,
            "slots": dict(self.intent.slots),
            "text": self.text,
            "latency_ms": round(self.latency_ms, 3),
            "source": self.intent.source,  # which tier understood it ("context": a follow-up of the last turn)
        }
        if self.spoken is not None:
            payload["spoken"] = self.spoken
        return payload

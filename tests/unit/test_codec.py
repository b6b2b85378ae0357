from __future__ import annotations

import pytest

from edge_slm.errors import DecodeError
from edge_slm.telemetry.codec import decode_telemetry

NOW = 1_732_700_000.0

GOOD = [
    (b'{"ts": 1732700000.5, "signals": {"a": 1}}', 1732700000.5, {"a": 1.0}),
    (b'{"signals": {"a": 2.5, "b": true}}', NOW, {"a": 2.5, "b": True}),
    (b'{"ts": 1732700001, "signals": {"x": -3}, "extra": "ignored"}', 1732700001.0, {"x": -3.0}),
    (b'{"ts": 12.5, "signals": {"x": 1}}', 12.5, {"x": 1.0}),  # relative event time is still event time
]


@pytest.mark.parametrize(("payload", "ts", "signals"), GOOD)
def test_decodes_valid_payloads(payload: bytes, ts: float, signals: dict[str, object]) -> None:
    decoded = decode_telemetry("pump-1", payload, NOW)
    assert decoded.sample.ts == ts
    assert decoded.sample.signals == signals
    assert decoded.sample.device == "pump-1"
    assert decoded.rejected_signals == {}


BAD = [
    (b"\xff\xfe", "not UTF-8"),
    (b"not json", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'{"ts": 1}', "no 'signals' object"),
    (b'{"signals": []}', "no 'signals' object"),
    (b'{"signals": {}}', "empty"),
    (b'{"signals": {"a": "hot"}}', "no valid signal"),
    (b'{"signals": {"a": NaN}}', "not valid JSON"),
    (b'{"signals": {"a": Infinity}}', "not valid JSON"),
    (b'{"signals": {"a": 1e999}}', "no valid signal"),
    (b'{"ts": "yesterday", "signals": {"a": 1}}', "'ts' must be a number"),
    (b'{"ts": 1732700000500, "signals": {"a": 1}}', "milliseconds"),
    (b'{"ts": -5, "signals": {"a": 1}}', "non-negative"),
    (b'{"ts": 1' + b"0" * 400 + b', "signals": {"a": 1}}', "too large"),
    (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    (b'{"signals": {"a": 1}, "pad": "' + b"x" * 300_000 + b'"}', "too large"),
]


@pytest.mark.parametrize(("payload", "reason"), BAD)
def test_rejects_malformed_payloads_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as err:
        decode_telemetry("pump-1", payload, NOW)
    assert reason in str(err.value)


def test_keeps_valid_signals_and_reports_the_rest() -> None:
    decoded = decode_telemetry("car-1", b'{"signals": {"ok": 1, "bad": "x", "nested": {"a": 1}}}', NOW)
    assert decoded.sample.signals == {"ok": 1.0}
    assert set(decoded.rejected_signals) == {"bad", "nested"}

"""`{prefix}/nav/state` parsing and the latest-state store."""

from __future__ import annotations

import json

import pytest

from edge_slm.errors import DecodeError
from edge_slm.nav.state import NavStateStore, Position, TrafficDelay, parse_nav_state

GOOD = {
    "destination": "Airport",
    "eta_s": 1260,
    "distance_m": 18400.5,
    "position": {"lat": 52.52, "lon": 13.405},
    "traffic": [{"description": "Accident on A100", "delay_s": 300}],
}


def test_parses_full_payload() -> None:
    state = parse_nav_state(json.dumps(GOOD).encode(), received_ts=5.0)
    assert state.destination == "Airport"
    assert state.eta_s == 1260.0
    assert state.distance_m == 18400.5
    assert state.position == Position(52.52, 13.405)
    assert state.traffic == (TrafficDelay("Accident on A100", 300.0),)
    assert state.received_ts == 5.0
    assert state.has_route


def test_null_destination_and_missing_fields_mean_unknown() -> None:
    state = parse_nav_state({"destination": None})
    assert state.destination is None and state.eta_s is None and state.position is None and state.traffic is None
    assert not state.has_route
    assert parse_nav_state({"traffic": []}).traffic == ()


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        json.dumps({**GOOD, "eta_s": "soon"}).encode(),
        json.dumps({**GOOD, "eta_s": -5}).encode(),
        json.dumps({**GOOD, "eta_s": True}).encode(),
        json.dumps({**GOOD, "distance_m": [1]}).encode(),
        json.dumps({**GOOD, "position": {"lat": 95, "lon": 0}}).encode(),
        json.dumps({**GOOD, "position": {"lat": 1}}).encode(),
        json.dumps({**GOOD, "position": "here"}).encode(),
        json.dumps({**GOOD, "traffic": {"a": 1}}).encode(),
        json.dumps({**GOOD, "traffic": ["jam"]}).encode(),
        json.dumps({**GOOD, "traffic": [{"description": 5, "delay_s": 1}]}).encode(),
        json.dumps({**GOOD, "traffic": [{"description": "x", "delay_s": "long"}]}).encode(),
        json.dumps({**GOOD, "destination": 42}).encode(),
        b'{"eta_s": NaN}',
        b'{"eta_s": Infinity}',
    ],
)
def test_rejects_malformed(payload: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_nav_state(payload)


def test_store_keeps_latest_valid() -> None:
    store = NavStateStore()
    assert store.latest is None
    store.update(json.dumps(GOOD))
    with pytest.raises(DecodeError):
        store.update(b"{broken")
    assert store.rejected == 1
    latest = store.latest
    assert latest is not None and latest.destination == "Airport"
    store.update({"destination": "Home", "eta_s": 60})
    latest = store.latest
    assert latest is not None and latest.destination == "Home"


def test_text_is_cleaned() -> None:
    state = parse_nav_state({"destination": "  Main\x00  St  ", "traffic": [{"description": "a\n b", "delay_s": 0}]})
    assert state.destination == "Main St"
    assert state.traffic == (TrafficDelay("a b", 0.0),)

"""Property-based fuzzing of every parser that sees untrusted input. Seed-fixed budget here;
`tools/fuzz.py` runs the long campaign."""

from __future__ import annotations

import json
import math
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from edge_slm.bus.topics import TopicError, Topics
from edge_slm.config import IntentSettings, load_settings
from edge_slm.errors import ConfigError, DecodeError
from edge_slm.intent.action_guard import ActionGuard, is_dialer_code
from edge_slm.intent.answer import answer
from edge_slm.intent.recognizer import IntentRecognizer
from edge_slm.intent.respond import Responder
from edge_slm.nav.state import NavStateStore
from edge_slm.telemetry.codec import decode_telemetry
from edge_slm.transcripts import parse_transcript

NOW = 1_790_000_000.0
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_value = st.recursive(
    json_leaf,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=20,
)
telemetry_like = st.fixed_dictionaries(
    {},
    optional={
        "ts": json_value | st.floats(min_value=0, max_value=2e9),
        "signals": st.dictionaries(st.text(max_size=30), json_value, max_size=6),
    },
)


def _dumps(doc: object) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()


@seed(1234)
@FUZZ
@given(st.binary(max_size=512))
def test_codec_on_random_bytes(payload: bytes) -> None:
    try:
        decoded = decode_telemetry("dev", payload, NOW)
    except DecodeError as err:
        assert str(err)
        return
    assert all(isinstance(v, bool) or math.isfinite(v) for v in decoded.sample.signals.values())


@seed(1234)
@FUZZ
@given(telemetry_like)
def test_codec_on_json_shapes(doc: dict[str, object]) -> None:
    try:
        decoded = decode_telemetry("dev", _dumps(doc), NOW)
    except DecodeError as err:
        assert str(err)
        return
    assert decoded.sample.signals
    assert all(
        isinstance(v, bool) or (isinstance(v, float) and math.isfinite(v)) for v in decoded.sample.signals.values()
    )


@seed(1234)
@FUZZ
@given(st.text(max_size=80))
def test_telemetry_topics_never_yield_wildcards(device: str) -> None:
    topics = Topics("edge", "n")
    try:
        got = topics.device_from_telemetry_topic(f"edge/telemetry/{device}")
    except TopicError:
        return
    assert got and not set(got) & {"+", "#", "/", "\0"}
    assert topics.alert(got).count("/") == 2


@seed(1234)
@FUZZ
@given(st.binary(max_size=300) | json_value.map(_dumps))
def test_transcripts(payload: bytes) -> None:
    try:
        transcript = parse_transcript(payload, NOW)
    except DecodeError as err:
        assert str(err)
        return
    assert transcript.text.strip() and "\n" not in transcript.text


hostile_text = st.text(alphabet=st.sampled_from([*"abcmo *#+;,.0123456789", "\u202e", "\u200b", "\x00", "\n"]))
commands = st.tuples(st.sampled_from(["call", "navigate to", "take me to", "add", "check the"]), hostile_text).map(
    lambda vt: {"text": f"{vt[0]} {vt[1]}", "id": vt[1][:8] or None}
)
_NAV = NavStateStore()
_RESPONDER = Responder(_NAV, None, list, "")
_RECOGNIZER = IntentRecognizer(IntentSettings(model_fallback=False), None)


@seed(1234)
@FUZZ
@given(commands | json_value)
def test_transcripts_answered_cleanly_and_never_dial_codes(doc: object) -> None:
    try:
        transcript = parse_transcript(_dumps(doc), NOW)
    except DecodeError:
        return
    reply = answer(transcript, _RECOGNIZER, _RESPONDER)
    actions, _ = ActionGuard(clock=lambda: NOW).filter_actions(transcript, reply.actions)
    for text in [reply.text, reply.transcript, *reply.intent.slots.values()]:
        assert not any(ch in text for ch in "\u202e\u200b\x00\n"), text
    assert all(len(v) <= 200 for v in reply.intent.slots.values())
    assert not any(a.kind == "call" and is_dialer_code(a.payload["contact"]) for a in actions)


nav_like = st.fixed_dictionaries(
    {},
    optional={
        "destination": json_value,
        "eta_s": json_value | st.integers(min_value=-(10**400), max_value=10**400),
        "distance_m": json_value,
        "position": json_value | st.fixed_dictionaries({"lat": json_value, "lon": json_value}),
        "traffic": json_value | st.lists(st.fixed_dictionaries({"description": json_value, "delay_s": json_value})),
    },
)


@seed(1234)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nav_like.map(_dumps) | st.binary(max_size=200))
def test_nav_state_fails_only_with_decode_error(payload: bytes) -> None:
    try:
        NavStateStore().update(payload)
    except DecodeError as err:
        assert str(err)


toml_scalar = st.one_of(
    st.integers(-5, 70000), st.booleans(), st.text(max_size=10), st.floats(allow_nan=False, allow_infinity=False)
)
keys = st.sampled_from(
    ["node_id", "mqtt", "port", "host", "model", "n_ctx", "voice", "enabled", "bogus", "detect", "cooldown_s"]
)


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value)


@seed(1234)
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(st.dictionaries(keys, st.one_of(toml_scalar, st.dictionaries(keys, toml_scalar, max_size=3)), max_size=4))
def test_config_loader_fails_only_with_config_error(tmp_path: Path, doc: dict[str, object]) -> None:
    lines: list[str] = []
    tables = []
    for key, value in doc.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {_toml(value)}")
    for key, table in tables:
        lines.append(f"[{key}]")
        lines += [f"{k} = {_toml(v)}" for k, v in table.items()]
    path = tmp_path / "fuzz.toml"
    path.write_text("\n".join(lines) + "\n")
    try:
        load_settings(str(path), "generic", environ={})
    except ConfigError as err:
        assert err.message.startswith("config error")

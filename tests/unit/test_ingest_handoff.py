"""Pure parts of the ingest path: the thread -> loop hand-off, ingest health, telemetry
filters, and the fast codec against the standard-library reference."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from edge_slm.bus.handoff import CallQueue
from edge_slm.bus.ingest_health import BEHIND_WAIT_S, BrokerDropWatch, IngestHealth
from edge_slm.config import load_settings
from edge_slm.errors import ConfigError, DecodeError
from edge_slm.telemetry import codec
from edge_slm.telemetry.filters import filter_error, telemetry_filters


def test_a_burst_of_posts_from_a_thread_wakes_the_loop_once_and_runs_every_call_in_order() -> None:
    async def scenario() -> tuple[list[int], int]:
        loop = asyncio.get_running_loop()
        calls = CallQueue(loop)
        calls.waker.bind_to_current_thread()
        seen: list[int] = []

        def producer() -> None:
            for i in range(5000):
                calls.post(seen.append, i)

        thread = threading.Thread(target=producer)
        thread.start()
        thread.join()  # the loop is "busy" (not running callbacks) during the whole burst
        for _ in range(10):
            await asyncio.sleep(0)
        return seen, calls.waker.wakeups

    seen, wakeups = asyncio.run(scenario())
    assert seen == list(range(5000))
    assert wakeups == 1  # one byte in asyncio's self-pipe, not 5,000


def test_a_failing_callback_does_not_drop_the_others() -> None:
    async def scenario() -> list[str]:
        calls = CallQueue(asyncio.get_running_loop())
        seen: list[str] = []
        calls.post(lambda: 1 / 0)
        calls.post(seen.append, "after")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return seen

    assert asyncio.run(scenario()) == ["after"]


def test_ingest_health_says_at_once_when_it_falls_behind_and_when_it_caught_up() -> None:
    health = IngestHealth(inbox_capacity=1000)
    assert health.observe(100.0, depth=3, oldest_received_ts=99.99) == ""
    warning = health.observe(101.0, depth=600, oldest_received_ts=100.9)
    assert "falling behind" in warning and "600" in warning
    assert health.behind and health.behind_episodes == 1
    assert health.observe(101.5, depth=400, oldest_received_ts=101.5 - BEHIND_WAIT_S) == ""  # rate-limited
    assert "caught up" in health.observe(103.0, depth=1, oldest_received_ts=102.999)
    assert not health.behind and health.snapshot()["queue_wait_max_ms"] >= 1000.0


def test_broker_drops_are_counted_from_the_first_value_seen() -> None:
    watch = BrokerDropWatch()
    assert watch.update(b"120") == ""  # drops before we connected are the baseline
    assert watch.update(b"120") == ""
    assert "dropped 30 messages" in watch.update(b"150")
    assert watch.dropped_since_start == 30
    assert watch.update(b"junk") == "" and watch.dropped_since_start == 30


@pytest.mark.parametrize(
    ("topic_filter", "ok"),
    [
        ("edge/telemetry/+", True),
        ("edge/telemetry/pump-1", True),
        ("$share/ingest/edge/telemetry/+", True),
        ("edge/telemetry/#", False),
        ("edge/telemetry/a/b", False),
        ("edge/voice/transcript", False),
        ("$share//edge/telemetry/+", False),
        ("other/telemetry/+", False),
    ],
)
def test_telemetry_filters_are_checked(topic_filter: str, ok: bool) -> None:
    assert (filter_error("edge", topic_filter) == "") is ok


def test_telemetry_filters_default_and_config() -> None:
    assert telemetry_filters("edge", ()) == ["edge/telemetry/+"]
    settings = load_settings(
        None, "generic", environ={}, cli_overrides={"mqtt": {"telemetry_filters": ["edge/telemetry/a"]}}
    )
    assert settings.mqtt.telemetry_filters == ("edge/telemetry/a",)
    with pytest.raises(ConfigError, match="telemetry_filters"):
        load_settings(None, "generic", environ={}, cli_overrides={"mqtt": {"telemetry_filters": ["edge/#"]}})


json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
shapes = st.fixed_dictionaries(
    {},
    optional={
        "ts": json_leaf,
        "signals": st.dictionaries(st.text(max_size=10), json_leaf | st.lists(json_leaf, max_size=2), max_size=6),
    },
)


def _outcome(decode: object, payload: bytes) -> object:
    try:
        decoded = decode("dev", payload, 1_790_000_000.0)  # type: ignore[operator]
    except DecodeError as err:
        return ("error", str(err))
    return (decoded.sample.ts, decoded.sample.signals, decoded.rejected_signals)


@seed(1616)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shapes | st.binary(max_size=64))
def test_the_fast_codec_accepts_and_rejects_exactly_like_the_reference(doc: object) -> None:
    payload = doc if isinstance(doc, bytes) else json.dumps(doc, allow_nan=True).encode()
    assert _outcome(codec.decode_telemetry, payload) == _outcome(codec._decode_reference, payload)


def test_the_buffered_socket_serves_paho_reads_from_one_recv_and_says_what_is_pending() -> None:
    import socket

    from edge_slm.bus.paho_buffered import BufferedSocket

    left, right = socket.socketpair()
    try:
        left.setblocking(False)
        sock = BufferedSocket(left)
        with pytest.raises(BlockingIOError):
            sock.recv(1)  # nothing yet: paho sees "try again"
        right.sendall(b"\x30\x05hello\x30\x02hi")  # two packets in one segment
        time.sleep(0.01)
        assert sock.recv(1) == b"\x30" and sock.pending() == 10
        assert sock.recv(1) == b"\x05" and sock.recv(5) == b"hello"
        assert sock.recv(1) == b"\x30" and sock.recv(1) == b"\x02"
        assert sock.recv(10) == b"hi" and sock.pending() == 0  # a short read, as a socket gives
        assert sock.fileno() == left.fileno()  # everything else is the socket's
        right.close()
        time.sleep(0.01)
        assert sock.recv(1) == b""  # EOF reaches paho as it is
    finally:
        left.close()


def _publish_packet(topic: bytes, qos: int, retain: bool, mid: int, props: bytes, payload: bytes) -> dict:
    body = len(topic).to_bytes(2, "big") + topic + (mid.to_bytes(2, "big") if qos else b"") + props + payload
    return {"command": 0x30 | (qos << 1) | int(retain), "packet": body}


@pytest.mark.parametrize(
    ("topic", "qos", "retain", "with_props"),
    [(b"edge/telemetry/pump-1", 0, False, False), (b"edge/telemetry/pump-1", 1, True, False),
     (b"edge/llm/response/n", 1, False, True), (b"edge/x", 2, False, False)],
)  # fmt: skip
def test_the_mqtt5_publish_fast_path_reads_what_paho_reads(
    topic: bytes, qos: int, retain: bool, with_props: bool
) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from edge_slm.bus.paho_buffered import BufferedClient

    props = b"\x00"
    if with_props:
        wanted = Properties(PacketTypes.PUBLISH)
        wanted.ResponseTopic = "edge/llm/reply"
        wanted.CorrelationData = b"\x01\x02"
        props = wanted.pack()
    got = {}
    for name, cls in (("paho", mqtt.Client), ("fast", BufferedClient)):
        client = cls(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, manual_ack=True)
        client.on_message = lambda c, u, m, name=name: got.__setitem__(name, m)
        client._in_packet = _publish_packet(topic, qos, retain, 0x1234, props, b'{"signals": {"x": 1}}')
        client._handle_publish()  # QoS 2: stored until PUBREL (sending PUBREC fails unconnected)
        if qos == 2:
            got[name] = client._in_messages[0x1234]
    paho_msg, fast = got["paho"], got["fast"]
    for field in ("topic", "payload", "qos", "retain", "mid", "dup"):
        assert getattr(fast, field) == getattr(paho_msg, field), field
    if with_props:  # paho's own decoder: the reply fields reach the pool client
        assert fast.properties.ResponseTopic == "edge/llm/reply" and fast.properties.CorrelationData == b"\x01\x02"
    elif qos < 2:
        assert fast.properties is None  # decoded by the fast path (paho would build an empty Properties)


def test_the_policy_snapshot_built_per_change_equals_a_full_rebuild() -> None:
    from edge_slm.detect.policy import AlertPolicy, _alert_to_dict
    from edge_slm.events import Finding, Severity

    def finding(device: str, severity: Severity, firing: bool, ts: float) -> Finding:
        return Finding(device, "temp", "heat", severity, firing, 90.0, ts, 100.0, "hot", "cool it", "")

    policy = AlertPolicy(cooldown_s=0.0)
    for i in range(50):
        policy.apply(finding(f"d{i}", Severity.WARNING, True, 100.0 + i))
    for i in range(0, 50, 3):
        policy.apply(finding(f"d{i}", Severity.CRITICAL, True, 200.0))  # escalated in place
    for i in range(0, 50, 5):
        policy.apply(finding(f"d{i}", Severity.INFO, False, 300.0))  # resolved
    policy.apply(finding("d0", Severity.WARNING, True, 400.0))  # fires again
    rebuilt = [_alert_to_dict(alert) for alert in policy.firing()]
    assert policy.snapshot()["firing"] == rebuilt
    restored = AlertPolicy(cooldown_s=0.0)
    restored.restore(policy.snapshot())
    assert restored.snapshot() == policy.snapshot()


def test_the_client_sends_without_nagle_delay() -> None:
    """An alert written after a small PUBACK must not wait for the broker's delayed TCP ACK (~40 ms)."""
    import socket

    import paho.mqtt.client as mqtt

    from edge_slm.bus.paho_buffered import BufferedClient

    with socket.create_server(("127.0.0.1", 0)) as server:
        client = BufferedClient(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        client.connect("127.0.0.1", server.getsockname()[1])  # the TCP connection is enough here
        try:
            assert client._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        finally:
            client._sock_close()

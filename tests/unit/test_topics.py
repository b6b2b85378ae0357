from __future__ import annotations

import pytest

from edge_slm.bus.topics import Route, TopicError, Topics, validate_segment

T = Topics("edge", "node-1")


def test_contract_topics() -> None:
    assert T.telemetry_filter == "edge/telemetry/+"
    assert T.alert("pump-3") == "edge/alerts/pump-3"
    assert T.explanation("pump-3") == "edge/alerts/pump-3/explanation"
    assert T.status == "edge/status/node-1"
    assert T.metrics == "edge/metrics/node-1"
    assert T.deadletter == "edge/deadletter"
    assert T.heard == "edge/voice/heard"
    assert T.reply == "edge/voice/reply"
    assert T.action("navigate") == "edge/actions/navigate"
    assert T.device_from_telemetry_topic("edge/telemetry/car-1") == "car-1"


@pytest.mark.parametrize("segment", ["", "a+b", "#", "a/b", "a\0b", "x" * 300, "tab\there"])
def test_rejects_unsafe_segments(segment: str) -> None:
    with pytest.raises(TopicError):
        validate_segment(segment)


@pytest.mark.parametrize("topic", ["edge/telemetry/", "edge/telemetry/a/b", "other/telemetry/a"])
def test_rejects_bad_telemetry_topics(topic: str) -> None:
    with pytest.raises(TopicError):
        T.device_from_telemetry_topic(topic)


def test_accepts_unicode_device_ids() -> None:
    assert validate_segment("펌프-3") == "펌프-3"


@pytest.mark.parametrize(
    ("topic", "route"),
    [
        ("edge/telemetry/pump-3", Route.TELEMETRY),
        ("edge/telemetry/a/b", Route.TELEMETRY),  # routed, then rejected (dead-lettered) by the telemetry flow
        ("edge/voice/transcript", Route.TRANSCRIPT),
        ("edge/nav/state", Route.NAV_STATE),
        ("edge/voice/listen", Route.LISTEN),
        ("edge/voice/reply", None),
        ("other/telemetry/x", None),
    ],
)
def test_every_subscription_has_a_route(topic: str, route: Route | None) -> None:
    assert T.route(topic) is route


def test_subscriptions_cover_every_route() -> None:
    pooled = Topics("edge", "node-1", pooled_model=True)
    routed = {pooled.route(f.replace("+", "x")) for f, _qos in pooled.subscriptions}
    assert routed == set(Route)
    assert T.route("edge/llm/response/node-1") is None  # only a pooled node listens for answers

"""Beyond one board: Prometheus metrics over HTTP and Home Assistant MQTT discovery, against a
real Mosquitto and a real HTTP scrape."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

from edge_slm.broker import free_port
from tests.daemon_fixtures import InProcessDaemon, daemon_settings
from tests.mqtt_fixtures import Broker, Recorder, publisher

COOLANT = "Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature"

# Home Assistant's documented MQTT discovery keys (full names) for the platforms we announce:
# https://www.home-assistant.io/integrations/binary_sensor.mqtt/ and .../sensor.mqtt/
_COMMON = {
    "availability", "availability_mode", "availability_template", "availability_topic", "default_entity_id",
    "device", "enabled_by_default", "encoding", "entity_category", "entity_picture", "expire_after",
    "force_update", "icon", "json_attributes_template", "json_attributes_topic", "name", "object_id", "origin",
    "payload_available", "payload_not_available", "platform", "qos", "state_topic", "unique_id", "value_template",
}  # fmt: skip
HA_KEYS = {
    "binary_sensor": _COMMON | {"device_class", "off_delay", "payload_off", "payload_on"},
    "sensor": _COMMON | {"device_class", "last_reset_value_template", "options", "state_class",
                         "suggested_display_precision", "unit_of_measurement"},
}  # fmt: skip
HA_DEVICE_KEYS = {
    "configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model", "model_id", "name",
    "serial_number", "suggested_area", "sw_version", "via_device",
}  # fmt: skip
HA_BINARY_SENSOR_CLASSES = {"problem", "safety", "heat", "cold", "power", "running", "vibration", "connectivity"}


def check_ha_config(topic: str, config: dict[str, Any], discovery_prefix: str = "homeassistant") -> str:
    """Validate one discovery message against HA's schema; returns the platform."""
    parts = topic.split("/")
    assert parts[0] == discovery_prefix and parts[-1] == "config" and len(parts) in (4, 5), topic
    platform = parts[1]
    assert platform in HA_KEYS, topic
    assert all(p.replace("_", "").replace("-", "").isalnum() for p in parts[2:-1]), topic
    unknown = set(config) - HA_KEYS[platform]
    assert not unknown, f"keys Home Assistant does not know: {unknown}"
    assert isinstance(config["state_topic"], str) and config["state_topic"] and "+" not in config["state_topic"]
    assert config["unique_id"].replace("_", "").replace("-", "").isalnum()
    device = config["device"]
    assert (
        set(device) <= HA_DEVICE_KEYS
        and device["identifiers"]
        and all(isinstance(i, str) for i in device["identifiers"])
    )
    assert config["origin"]["name"] == "edge-slm"
    if platform == "binary_sensor":
        assert config["device_class"] in HA_BINARY_SENSOR_CLASSES
        assert config["payload_on"] != config["payload_off"]
    assert config["payload_available"] == "online" and config["payload_not_available"] == "offline"
    return platform


def coolant_fault(pub: Any, device: str, t0: float, hot_s: int, cool_s: int) -> None:
    for i in range(hot_s + cool_s):
        value = 121.0 if i < hot_s else 90.0
        pub.publish(f"edge/telemetry/{device}", json.dumps({"ts": t0 + i, "signals": {COOLANT: value}}), qos=1)


def test_home_assistant_discovery_is_retained_valid_and_follows_the_alert(broker: Broker, state_dir: Path) -> None:
    settings = daemon_settings(broker.port, state_dir, ha={"discovery": True})
    watch = Recorder(broker.port, ["edge/alerts/#"])
    with InProcessDaemon(settings):
        pub = publisher(broker.port)
        coolant_fault(pub, "car-7", 1_790_000_000, hot_s=30, cool_s=40)
        assert watch.wait_for(lambda: any(a.get("state") == "resolved" for a in watch.json_on("edge/alerts/car-7")), 20)
        pub.loop_stop()
        time.sleep(0.5)
    # A client that comes later (Home Assistant after its restart) gets everything retained.
    late = Recorder(broker.port, ["homeassistant/#", "edge/ha/#", "edge/status/#"])
    assert late.wait_for(lambda: len(late.json_on("homeassistant/")) >= 3, 5)
    configs = {t: json.loads(p) for t, p in late.messages if t.startswith("homeassistant/")}
    platforms = [check_ha_config(t, c) for t, c in configs.items()]
    assert platforms.count("binary_sensor") == 1 and platforms.count("sensor") == 2
    problem = configs["homeassistant/binary_sensor/car-7/coolant_problem/config"]
    assert problem["device"]["name"] == "car-7" and problem["device"]["via_device"] == "edge_slm_test-node"
    assert problem["availability_topic"] == "edge/status/test-node"
    states = [p for t, p in late.messages if t == problem["state_topic"]]
    assert states == [b"OFF"]  # the fault fired, then resolved: the retained state is the last one
    attributes = [json.loads(p) for t, p in late.messages if t == problem["json_attributes_topic"]]
    assert attributes[-1]["rule"] == "coolant.overheat" and attributes[-1]["state"] == "resolved"
    assert b"offline" in [p for t, p in late.messages if t == "edge/status/test-node"]
    late.close()
    watch.close()


def test_home_assistant_state_is_on_while_firing(broker: Broker, state_dir: Path) -> None:
    settings = daemon_settings(broker.port, state_dir, ha={"discovery": True, "discovery_prefix": "ha-test"})
    rec = Recorder(broker.port, ["ha-test/#", "edge/ha/#"])
    with InProcessDaemon(settings):
        pub = publisher(broker.port)
        coolant_fault(pub, "car 8", 1_790_000_000, hot_s=30, cool_s=0)  # a device id HA cannot use as it is
        assert rec.wait_for(lambda: any(p == b"ON" for _, p in rec.messages), 20)
        pub.loop_stop()
    configs = {t: json.loads(p) for t, p in rec.messages if t.startswith("ha-test/")}
    binary = [(t, c) for t, c in configs.items() if "/binary_sensor/" in t]
    assert len(binary) == 1
    check_ha_config(*binary[0], discovery_prefix="ha-test")
    assert binary[0][1]["device"]["name"] == "car 8"
    rec.close()


def test_prometheus_endpoint_serves_the_counters_on_localhost(broker: Broker, state_dir: Path) -> None:
    port = free_port()
    settings = daemon_settings(broker.port, state_dir, metrics={"http_port": port})
    with InProcessDaemon(settings):
        pub = publisher(broker.port)
        coolant_fault(pub, "car-1", 1_790_000_000, hot_s=30, cool_s=0)
        pub.publish("edge/telemetry/car-1", b"not json", qos=1)
        deadline = time.monotonic() + 20
        text = ""
        while time.monotonic() < deadline:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            if "edge_slm_telemetry_alerts_firing_total 1.0" in text and "edge_slm_deadlettered_total 1.0" in text:
                break
            time.sleep(0.3)
        pub.loop_stop()
    assert "edge_slm_telemetry_alerts_firing_total 1.0" in text, text
    assert "edge_slm_deadlettered_total 1.0" in text
    assert "# TYPE edge_slm_queues_inbound_depth gauge" in text
    assert 'edge_slm_component_up{component="model"} 0.0' in text  # disabled in these tests
    assert "edge_slm_rss_bytes" in text
    try:  # bound to localhost only
        urllib.request.urlopen(f"http://127.0.0.2:{port}/metrics", timeout=2)
        reached = True
    except OSError:
        reached = False
    assert not reached

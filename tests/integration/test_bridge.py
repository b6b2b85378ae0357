"""Gateway -> site broker: two real Mosquittos joined by packaging/mosquitto-bridge.conf. Alerts
reach the site broker, and those raised while the uplink is down arrive when it is back."""

from __future__ import annotations

import json
import time
from pathlib import Path

from edge_slm.broker import free_port
from tests.daemon_fixtures import InProcessDaemon, daemon_settings
from tests.mqtt_fixtures import Recorder, publisher, start_broker

BRIDGE_CONF = Path(__file__).resolve().parents[2] / "packaging" / "mosquitto-bridge.conf"
COOLANT = "Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature"


def bridge_to(site_port: int) -> str:
    conf = BRIDGE_CONF.read_text()
    conf = conf.replace("address site-broker.local:1883", f"address 127.0.0.1:{site_port}")
    return conf.replace("restart_timeout 2 30", "restart_timeout 1 1")


def overheat(device: str, t0: float) -> list[tuple[str, bytes]]:
    return [
        (f"edge/telemetry/{device}", json.dumps({"ts": t0 + i, "signals": {COOLANT: 121.0}}).encode())
        for i in range(30)
    ]


def test_alerts_reach_the_site_broker_and_survive_an_uplink_outage(tmp_path: Path) -> None:
    site = start_broker(tmp_path / "site", free_port())
    gateway = start_broker(tmp_path / "gateway", free_port(), extra_conf=bridge_to(site.port))
    # A persistent session: what the bridge delivers before this client is back is kept for it.
    site_rec = Recorder(site.port, ["edge/#"], client_id="site-operator", persistent=True)
    try:
        with InProcessDaemon(daemon_settings(gateway.port, tmp_path / "state")):
            pub = publisher(gateway.port)
            for topic, payload in overheat("car-1", 1_790_000_000):
                pub.publish(topic, payload, qos=1)
            assert site_rec.wait_for(lambda: bool(site_rec.json_on("edge/alerts/car-1")), 20), site_rec.messages
            assert site_rec.wait_for(lambda: ("edge/status/test-node", b"online") in site_rec.messages, 5)

            site.stop()  # the uplink goes down; the gateway keeps working alone
            for topic, payload in overheat("car-2", 1_790_000_100):
                pub.publish(topic, payload, qos=1)
            time.sleep(3.0)  # the gateway has raised the alert by now and queued it for the bridge
            site.start()
            site_rec.client.reconnect()
            assert site_rec.wait_for(lambda: bool(site_rec.json_on("edge/alerts/car-2")), 20), site_rec.messages
            alert = site_rec.json_on("edge/alerts/car-2")[0]
            assert alert["rule"] == "coolant.overheat" and alert["state"] == "firing"
            pub.loop_stop()
    finally:
        site_rec.close()
        gateway.stop()
        site.stop()

"""Dialog context and vehicle status from recent history through the daemon over real Mosquitto:
follow-ups publish the right actions, and "why is the engine light on" after a coolant alert cleared
says so with the temperature now."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.daemon_fixtures import InProcessDaemon, daemon_settings
from tests.mqtt_fixtures import Broker, Recorder, publisher

COOLANT = "Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature"
NAV = {"destination": None, "position": {"lat": 48.1374, "lon": 11.5755}}


def write_pois(path: Path) -> Path:
    path.write_text(
        "name,category,lat,lon\n"
        "Ionity Freimann,charging,48.1890,11.6140\n"
        "EnBW Sendlinger Tor,charging,48.1339,11.5668\n"
    )
    return path


def test_follow_ups_and_recent_history(broker: Broker, state_dir: Path, tmp_path: Path) -> None:
    settings = daemon_settings(
        broker.port,
        state_dir,
        poi={"file": str(write_pois(tmp_path / "pois.csv"))},
        voice={"enabled": False, "vehicle_device": "car-1", "confirm_actions": ["call"]},
        detect={"cooldown_s": 0.0},
    )
    rec = Recorder(broker.port, ["edge/#"])
    with InProcessDaemon(settings):
        pub = publisher(broker.port)
        pub.publish("edge/nav/state", json.dumps(NAV), qos=1, retain=True)

        def ask(ident: str, text: str) -> dict[str, Any]:
            pub.publish("edge/voice/transcript", json.dumps({"text": text, "id": ident}), qos=1)
            assert rec.wait_for(lambda: any(r["id"] == ident for r in rec.json_on("edge/voice/reply")), 10), ident
            return next(r for r in rec.json_on("edge/voice/reply") if r["id"] == ident)

        def actions(kind: str) -> list[dict[str, Any]]:
            return rec.json_on(f"edge/actions/{kind}")

        assert "EnBW Sendlinger Tor" in ask("1", "find a charging station")["text"]
        there = ask("2", "take me there")
        assert there["source"] == "context" and there["slots"] == {"destination": "EnBW Sendlinger Tor"}
        assert rec.wait_for(lambda: actions("navigate") == [{"destination": "EnBW Sendlinger Tor"}], 5)
        far = ask("3", "how far is it")
        assert far["intent"] == "find_poi" and "EnBW Sendlinger Tor" in far["text"] and "meters" in far["text"]
        assert ask("4", "call them")["text"] == "Call EnBW Sendlinger Tor? Say yes or no."
        assert ask("5", "yes")["text"] == "Calling EnBW Sendlinger Tor."
        assert rec.wait_for(lambda: actions("call") == [{"contact": "EnBW Sendlinger Tor"}], 5)
        assert ask("6", "call mom")["text"] == "Call mom? Say yes or no."
        assert ask("7", "no, call dad")["text"] == "Call dad? Say yes or no."
        assert ask("8", "yes")["slots"] == {"contact": "dad"}
        assert rec.wait_for(lambda: actions("call")[-1:] == [{"contact": "dad"}], 5)
        assert len(actions("call")) == 2  # mom was never called

        base = 1_790_000_000.0
        for i in range(12):
            pub.publish("edge/telemetry/car-1", json.dumps({"ts": base + i, "signals": {COOLANT: 121.0}}), qos=1)
        assert rec.wait_for(lambda: any(a.get("state") == "firing" for a in rec.json_on("edge/alerts/car-1")), 10)
        for i in range(12, 26):
            pub.publish("edge/telemetry/car-1", json.dumps({"ts": base + i, "signals": {COOLANT: 90.0}}), qos=1)
        assert rec.wait_for(lambda: any(a.get("state") == "resolved" for a in rec.json_on("edge/alerts/car-1")), 10)
        status = ask("9", "why is the engine light on")["text"]
        assert status.startswith("No active warnings for the engine. The engine coolant warning cleared ")
        assert status.endswith("; the temperature is now 90 °C."), status
        pub.publish(
            "edge/telemetry/car-1",
            json.dumps({"ts": base + 30, "signals": {"Vehicle.LowVoltageBattery.CurrentVoltage": 12.6}}),
            qos=1,
        )
        summary = ask("10", "is everything ok")["text"]
        assert summary.startswith("No active warnings. The engine coolant warning cleared "), summary
        assert summary.endswith("the temperature is now 90 °C. Current readings: battery voltage 12.6 V."), summary
    rec.close()


def test_calls_go_only_to_listed_contacts(broker: Broker, state_dir: Path) -> None:
    """With `voice.contacts`, a misheard name ("time" for "Tim") is asked about, an unlisted one is not dialled."""
    settings = daemon_settings(broker.port, state_dir, voice={"enabled": False, "contacts": ["Mom", "Tim"]})
    rec = Recorder(broker.port, ["edge/#"])
    with InProcessDaemon(settings):
        pub = publisher(broker.port)

        def ask(ident: str, text: str) -> str:
            pub.publish("edge/voice/transcript", json.dumps({"text": text, "id": ident}), qos=1)
            assert rec.wait_for(lambda: any(r["id"] == ident for r in rec.json_on("edge/voice/reply")), 10), ident
            return str(next(r for r in rec.json_on("edge/voice/reply") if r["id"] == ident)["text"])

        assert ask("1", "call my mom") == "Calling Mom."
        assert rec.wait_for(lambda: rec.json_on("edge/actions/call") == [{"contact": "Mom"}], 5)
        assert ask("2", "call time") == "Call Tim? Say yes or no."
        assert ask("3", "yes") == "Calling Tim."
        assert rec.wait_for(lambda: rec.json_on("edge/actions/call")[-1:] == [{"contact": "Tim"}], 5)
        assert ask("4", "call sarah") == "sarah is not in your contacts, so I did not call."
        assert ask("5", "call them") == "sarah is not in your contacts, so I did not call."  # follow-ups too
        assert ask("6", "what's the traffic like")  # a later reply: everything before it was published
        assert len(rec.json_on("edge/actions/call")) == 2

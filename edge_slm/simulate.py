"""Telemetry simulator: a car and a pump in normal operation with injected faults.

Traces are generated on event time (deterministic for a seed) and can be published at any
speed; `tools/simulate_telemetry.py` is the command-line front end and the demo uses it."""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

COOLANT = "Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature"
OIL = "Vehicle.Powertrain.CombustionEngine.EngineOil.Temperature"
BATTERY_V = "Vehicle.LowVoltageBattery.CurrentVoltage"
SOC = "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current"
TIRES = [f"Vehicle.Chassis.Axle.Row{r}.Wheel.{s}.Tire.Pressure" for r in (1, 2) for s in ("Left", "Right")]


@dataclass(frozen=True)
class Fault:
    """Between start_s and end_s (seconds from the trace start) `signal` moves to `value`,
    ramping over ramp_s."""

    device: str
    signal: str
    start_s: float
    end_s: float
    value: float
    ramp_s: float = 0.0


@dataclass(frozen=True)
class TelemetryEvent:
    ts: float
    device: str
    signals: dict[str, float]

    def payload(self) -> bytes:
        return json.dumps({"ts": round(self.ts, 3), "signals": self.signals}).encode()


def demo_faults() -> list[Fault]:
    return [
        Fault("car-1", COOLANT, start_s=60, end_s=200, value=116.0, ramp_s=30),
        Fault("car-1", TIRES[3], start_s=120, end_s=400, value=165.0, ramp_s=20),
        Fault("pump-1", "vibration_rms_mm_s", start_s=90, end_s=250, value=9.3, ramp_s=20),
        # the bearing heats with the vibration: the explanation names bearing damage, not unbalance
        Fault("pump-1", "bearing_temperature_c", start_s=90, end_s=250, value=80.0, ramp_s=40),
        Fault("pump-1", "flow_l_min", start_s=150, end_s=260, value=120.0, ramp_s=5),
    ]


def _normal(device: str, t: float, rng: random.Random) -> dict[str, float]:
    if device.startswith("car"):
        warm = 1 - math.exp(-t / 40.0)
        signals = {
            COOLANT: 40 + 50 * warm + rng.gauss(0, 0.6),
            OIL: 45 + 55 * warm + rng.gauss(0, 0.6),
            BATTERY_V: 14.1 + rng.gauss(0, 0.08),
            SOC: max(0.0, 80 - t / 60.0),
        }
        for tire in TIRES:
            signals[tire] = 235 + rng.gauss(0, 1.2)
        return signals
    return {
        "vibration_rms_mm_s": 2.1 + rng.gauss(0, 0.25),
        "bearing_temperature_c": 58 + rng.gauss(0, 0.8),
        "motor_current_a": 11.5 + rng.gauss(0, 0.3),
        "flow_l_min": 310 + rng.gauss(0, 6),
    }


def _apply_faults(
    device: str, t: float, signals: dict[str, float], faults: Iterable[Fault], rng: random.Random
) -> None:
    for fault in faults:
        if fault.device != device or not fault.start_s <= t < fault.end_s or fault.signal not in signals:
            continue
        progress = 1.0 if fault.ramp_s <= 0 else min(1.0, (t - fault.start_s) / fault.ramp_s)
        normal = signals[fault.signal]
        noise = rng.gauss(0, 0.01 * abs(fault.value))  # a faulty reading is still a noisy reading
        signals[fault.signal] = normal + (fault.value - normal) * progress + noise


def make_trace(
    duration_s: float,
    step_s: float = 1.0,
    devices: tuple[str, ...] = ("car-1", "pump-1"),
    faults: Iterable[Fault] = (),
    start_ts: float | None = None,
    seed: int = 7,
) -> Iterator[TelemetryEvent]:
    rng = random.Random(seed)
    t0 = time.time() if start_ts is None else start_ts
    fault_list = list(faults)
    steps = int(duration_s / step_s)
    for i in range(steps):
        t = i * step_s
        for device in devices:
            signals = _normal(device, t, rng)
            _apply_faults(device, t, signals, fault_list, rng)
            yield TelemetryEvent(t0 + t, device, {k: round(v, 3) for k, v in signals.items()})


class _Publisher(Protocol):
    def publish(self, topic: str, payload: bytes, qos: int = ...) -> Any: ...


def play(client: _Publisher, prefix: str, events: Iterable[TelemetryEvent], speed: float, qos: int = 1) -> int:
    """Publish events, pacing them `speed` times faster than their event time (0: no pacing)."""
    sent = 0
    wall0 = time.monotonic()
    first_ts: float | None = None
    for event in events:
        if first_ts is None:
            first_ts = event.ts
        if speed > 0:
            due = wall0 + (event.ts - first_ts) / speed
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        client.publish(f"{prefix}/telemetry/{event.device}", event.payload(), qos=qos)
        sent += 1
    return sent

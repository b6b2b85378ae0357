"""Seeded maintenance scenarios for scoring the detector: hours of event time of realistic
machine and vehicle behaviour (duty cycles, shifts, daily temperature cycles, noise) with
labelled faults (thresholds, stuck, stale, implausible, drift, intermittent, in-mode faults).

Written before the detectors were tuned; `tools/score_detection.py` runs them through
`Detector` + `AlertPolicy` and scores recall, false alerts and time to detect per family.
Pure and deterministic: the same seed gives the same trace."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from edge_slm.config import DetectSettings
from edge_slm.detect.detector import Detector
from edge_slm.detect.policy import AlertPolicy
from edge_slm.detect.rules import load_rules
from edge_slm.events import Alert, AlertState, Sample

T0 = 1_790_000_000.0
STEP_S = 2.0
DAY_S = 86_400.0

COOLANT = "Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature"
OIL = "Vehicle.Powertrain.CombustionEngine.EngineOil.Temperature"
BATTERY = "Vehicle.LowVoltageBattery.CurrentVoltage"
SPEED = "Vehicle.Speed"
TIRES = [
    f"Vehicle.Chassis.Axle.{row}.Wheel.{side}.Tire.Pressure" for row in ("Row1", "Row2") for side in ("Left", "Right")
]


@dataclass(frozen=True)
class Fault:
    device: str
    family: str
    rules: tuple[str, ...]  # an alert with any of these rules on the device detects the fault
    start_ts: float  # when it becomes detectable (a creeping fault: when it crosses the limit); TTD counts from here
    end_ts: float  # when the fault condition stops (trace end if it persists)
    onset_ts: float = 0.0  # when the physical fault began, if earlier; alerts from then on count as detections


@dataclass
class Trace:
    name: str
    family: str  # "healthy" or the fault family
    duration_s: float
    devices: tuple[str, ...]
    messages: list[tuple[str, float, dict[str, float | bool]]]  # (device, ts, signals), in ts order
    faults: list[Fault] = field(default_factory=list)


# -- building blocks ------------------------------------------------------------------------


def ambient_c(ts: float, phase: float) -> float:
    """Daily temperature cycle: 12 °C swing, warmest mid-afternoon."""
    return 20.0 + 6.0 * math.sin(2 * math.pi * ((ts - T0) / DAY_S) + phase)


class FirstOrder:
    """A temperature or pressure that follows its target with a time constant."""

    def __init__(self, value: float, tau_s: float) -> None:
        self.value, self.tau_s = value, tau_s

    def step(self, target: float, dt_s: float) -> float:
        self.value += (target - self.value) * (1 - math.exp(-dt_s / self.tau_s))
        return self.value


Mutator = Callable[[float, dict[str, float | bool]], None]  # (ts, signals) -> edits in place


def compressor(
    device: str, seed: int, hours: float, mutate: Mutator | None = None
) -> Iterator[tuple[str, float, dict]]:
    """Air compressor: loads until 7.5 bar, unloads until 6.5 bar (on/off every 1-2.5 min),
    current, discharge pressure and temperature, vibration and bearing temperature with it."""
    rng = random.Random(seed)
    phase = rng.uniform(0, 2 * math.pi)
    on, pressure = False, 7.0
    demand = 0.010  # bar/s drawn by the plant; wanders
    dis_temp, bearing = FirstOrder(60.0, 150.0), FirstOrder(50.0, 900.0)
    for i in range(int(hours * 3600 / STEP_S)):
        ts = T0 + i * STEP_S
        demand = min(0.016, max(0.006, demand + rng.gauss(0, 0.0002)))
        pressure += ((0.022 if on else 0.0) - demand) * STEP_S
        if on and pressure >= 7.5:
            on = False
        elif not on and pressure <= 6.5:
            on = True
        amb = ambient_c(ts, phase)
        signals: dict[str, float | bool] = {
            "motor_current_a": round((27.5 + rng.gauss(0, 0.4)) if on else (0.3 + abs(rng.gauss(0, 0.1))), 2),
            "discharge_pressure_bar": round(pressure + rng.gauss(0, 0.02), 3),
            "discharge_temperature_c": round(
                dis_temp.step((amb + 62) if on else (amb + 25), STEP_S) + rng.gauss(0, 0.3), 2
            ),
            "vibration_rms_mm_s": round((2.1 + rng.gauss(0, 0.15)) if on else (0.25 + abs(rng.gauss(0, 0.05))), 3),
            "bearing_temperature_c": round(bearing.step(amb + 32, STEP_S) + rng.gauss(0, 0.25), 2),
        }
        if mutate:
            mutate(ts, signals)
        yield device, ts, signals


def screw_compressor(device: str, seed: int, hours: float, mutate: Mutator | None = None) -> Iterator:
    """Screw compressor on load/unload control (added after tuning, closer to the issue's
    report): it never stops; loaded 1-2.5 min, unloaded 1-2.5 min; oil pressure, inlet valve
    and delivered air step with the state, current between 27 A loaded and 9 A unloaded."""
    rng = random.Random(seed)
    phase = rng.uniform(0, 2 * math.pi)
    loaded, left_s = True, rng.uniform(60, 150)
    oil_temp = FirstOrder(70.0, 200.0)
    for i in range(int(hours * 3600 / STEP_S)):
        ts = T0 + i * STEP_S
        left_s -= STEP_S
        if left_s <= 0:
            loaded, left_s = not loaded, rng.uniform(60, 150)
        amb = ambient_c(ts, phase)
        signals: dict[str, float | bool] = {
            "motor_current_a": round((27.0 if loaded else 9.0) + rng.gauss(0, 0.4), 2),
            "oil_pressure_bar": round((4.5 if loaded else 2.2) + rng.gauss(0, 0.05), 3),
            "inlet_valve_pct": round((100.0 if loaded else 0.0) + abs(rng.gauss(0, 0.3)) * (-1 if loaded else 1), 1),
            "air_delivery_m3_h": round((310.0 if loaded else 0.0) + (rng.gauss(0, 4) if loaded else 0.0), 1),
            "oil_temperature_c": round(oil_temp.step(amb + (58 if loaded else 48), STEP_S) + rng.gauss(0, 0.2), 2),
            "vibration_rms_mm_s": round((2.3 if loaded else 1.4) + rng.gauss(0, 0.12), 3),
        }
        if mutate:
            mutate(ts, signals)
        yield device, ts, signals


def pump(device: str, seed: int, hours: float, mutate: Mutator | None = None, shift_s: float = 7200.0) -> Iterator:
    """Process pump on shifts: day load (300 l/min), night load (180 l/min), with a 60 s ramp
    between; current, outlet pressure and filter differential pressure follow the flow."""
    rng = random.Random(seed)
    phase = rng.uniform(0, 2 * math.pi)
    bearing = FirstOrder(55.0, 900.0)
    flow_f = FirstOrder(300.0, 20.0)
    for i in range(int(hours * 3600 / STEP_S)):
        ts = T0 + i * STEP_S
        shift = int((ts - T0) // shift_s) % 2
        flow = flow_f.step(300.0 if shift == 0 else 180.0, STEP_S)
        load = flow / 300.0
        amb = ambient_c(ts, phase)
        signals: dict[str, float | bool] = {
            "flow_l_min": round(flow + rng.gauss(0, 3.0), 1),
            "motor_current_a": round(5.0 + 7.0 * load + rng.gauss(0, 0.2), 2),
            "outlet_pressure_bar": round(1.2 + 2.8 * load * load + rng.gauss(0, 0.04), 3),
            "filter_dp_kpa": round(10.0 * load * load + rng.gauss(0, 0.25), 2),
            "vibration_rms_mm_s": round(1.6 + 0.6 * load + rng.gauss(0, 0.12), 3),
            "bearing_temperature_c": round(bearing.step(amb + 30 + 8 * load, STEP_S) + rng.gauss(0, 0.25), 2),
        }
        if mutate:
            mutate(ts, signals)
        yield device, ts, signals


def fan(device: str, seed: int, hours: float, mutate: Mutator | None = None, noise: float = 1.0) -> Iterator:
    """Cooling-tower fan outdoors: steady load, temperatures swing with the daily cycle."""
    rng = random.Random(seed)
    phase = -math.pi / 2 + rng.uniform(-0.3, 0.3)  # coldest at the start: the whole rise in the trace
    bearing = FirstOrder(45.0, 900.0)
    for i in range(int(hours * 3600 / STEP_S)):
        ts = T0 + i * STEP_S
        amb = ambient_c(ts, phase)
        signals: dict[str, float | bool] = {
            "motor_current_a": round(6.2 + rng.gauss(0, 0.15 * noise), 2),
            "vibration_rms_mm_s": round(2.4 + rng.gauss(0, 0.35 * noise), 3),
            "bearing_temperature_c": round(bearing.step(amb + 25, STEP_S) + rng.gauss(0, 0.4 * noise), 2),
            "water_out_temperature_c": round(amb + 6 + rng.gauss(0, 0.3 * noise), 2),
            "air_humidity_pct": round(min(100.0, 60 - 1.5 * (amb - 20) + rng.gauss(0, 1.5 * noise)), 1),
        }
        if mutate:
            mutate(ts, signals)
        yield device, ts, signals


def car(device: str, seed: int, hours: float, mutate: Mutator | None = None) -> Iterator:
    """A long drive: cold start, town and motorway speeds, stops at lights."""
    rng = random.Random(seed)
    coolant, oil = FirstOrder(18.0, 300.0), FirstOrder(18.0, 700.0)
    speed, target, hold = 0.0, 50.0, 0.0
    tires = [rng.uniform(232, 242) for _ in TIRES]
    soc = 80.0
    for i in range(int(hours * 3600 / STEP_S)):
        ts = T0 + i * STEP_S
        hold -= STEP_S
        if hold <= 0:
            target = rng.choice([0.0, 30.0, 50.0, 50.0, 80.0, 110.0, 120.0])
            hold = rng.uniform(20, 600) if target else rng.uniform(10, 60)
        speed += max(-6.0, min(4.0, target - speed)) * 0.5
        load = speed / 120.0
        signals: dict[str, float | bool] = {
            SPEED: round(max(0.0, speed + rng.gauss(0, 0.5)), 1),
            COOLANT: round(coolant.step(88 + 6 * load, STEP_S) + rng.gauss(0, 0.4), 1),
            OIL: round(oil.step(95 + 15 * load, STEP_S) + rng.gauss(0, 0.4), 1),
            BATTERY: round(14.1 + rng.gauss(0, 0.05), 2),
        }
        for name, base in zip(TIRES, tires, strict=True):
            signals[name] = round(base + 4 * load + rng.gauss(0, 0.8), 1)
        soc = max(0.0, soc - 0.0006)
        if mutate:
            mutate(ts, signals)
        yield device, ts, signals


# -- fault mutators ------------------------------------------------------------------------


def ramp(ts: float, start: float, duration_s: float) -> float:
    """0 before start, rising linearly to 1 over duration_s, 1 after."""
    return min(1.0, max(0.0, (ts - start) / duration_s))


def merge(*streams: Iterator) -> list[tuple[str, float, dict]]:
    messages = [m for s in streams for m in s]
    messages.sort(key=lambda m: (m[1], m[0]))
    return messages


def H(hours: float) -> float:
    return T0 + hours * 3600.0


def build_scenarios(seed_offset: int = 0, names: set[str] | None = None) -> list[Trace]:
    """The suite (or the traces in `names`); another `seed_offset` gives fresh noise and timing
    for a held-out check."""
    traces: list[Trace] = []
    o = seed_offset

    def add(name: str, family: str, hours: float, streams: list[Iterator], faults: list[Fault] = ()) -> None:  # type: ignore[assignment]
        if names is not None and name not in names:
            return  # the generators are lazy: nothing is computed for a skipped trace
        messages = merge(*streams)
        devices = tuple(sorted({m[0] for m in messages}))
        traces.append(Trace(name, family, hours * 3600.0, devices, messages, list(faults)))

    # Healthy traces: every alert on them is a false alert.
    add(
        "healthy_compressors_duty_cycle", "healthy", 6, [compressor("comp-1", 1 + o, 6), compressor("comp-2", 2 + o, 6)]
    )
    add("healthy_pump_shift_changes", "healthy", 8, [pump("pump-1", 3 + o, 8, shift_s=5400.0)])
    add("healthy_fan_daily_cycle", "healthy", 8, [fan("fan-1", 4 + o, 8)])
    add(
        "healthy_noisy_machines",
        "healthy",
        4,
        [fan("fan-2", 5 + o, 4, noise=2.0), pump("pump-2", 6 + o, 4, shift_s=3000.0)],
    )
    add("healthy_vehicle_long_drive", "healthy", 4, [car("car-1", 7 + o, 4)])

    # Threshold faults the built-in packs already cover.
    def coolant_overheat(ts: float, s: dict) -> None:
        if H(2) <= ts < H(2.5):
            s[COOLANT] = round(float(s[COOLANT]) + 28 * ramp(ts, H(2), 300), 1)

    add(
        "threshold_coolant_overheat",
        "threshold",
        4,
        [car("car-2", 8 + o, 4, coolant_overheat)],
        [Fault("car-2", "threshold", ("coolant.overheat",), H(2), H(2.5))],
    )

    def oil_creep(ts: float, s: dict) -> None:  # +5 °C per 10 minutes from 2 h on
        if ts >= H(2):
            s[OIL] = round(float(s[OIL]) + 5 * (ts - H(2)) / 600, 1)

    add(
        "threshold_oil_creep",
        "threshold",
        3,
        [car("car-3", 9 + o, 3, oil_creep)],
        [Fault("car-3", "threshold", ("oil.overheat",), H(2) + 1500, H(3), onset_ts=H(2))],
    )

    def vibration_step(ts: float, s: dict) -> None:
        if ts >= H(3):
            s["vibration_rms_mm_s"] = round(float(s["vibration_rms_mm_s"]) + 3.6, 3)

    add(
        "threshold_vibration_iso",
        "threshold",
        5,
        [pump("pump-3", 10 + o, 5, vibration_step)],
        [Fault("pump-3", "threshold", ("vibration.iso10816",), H(3), H(5))],
    )

    def bearing_overheat(ts: float, s: dict) -> None:
        if ts >= H(2):
            s["bearing_temperature_c"] = round(float(s["bearing_temperature_c"]) + 45 * ramp(ts, H(2), 1800), 2)

    add(
        "threshold_bearing_overheat",
        "threshold",
        4,
        [fan("fan-3", 11 + o, 4, bearing_overheat)],
        [Fault("fan-3", "threshold", ("bearing.overheat", "bearing.drift"), H(2), H(4))],
    )

    def alternator_failure(ts: float, s: dict) -> None:
        if ts >= H(1.5):
            s[BATTERY] = round(float(s[BATTERY]) - 2.7 * ramp(ts, H(1.5), 900), 2)

    add(
        "threshold_battery_low",
        "threshold",
        3,
        [car("car-4", 12 + o, 3, alternator_failure)],
        [Fault("car-4", "threshold", ("battery.low_voltage",), H(1.5) + 700, H(3), onset_ts=H(1.5))],
    )

    def slow_puncture(ts: float, s: dict) -> None:
        if ts >= H(1):
            s[TIRES[3]] = round(float(s[TIRES[3]]) - 75 * ramp(ts, H(1), 2400), 1)

    add(
        "threshold_tire_slow_puncture",
        "threshold",
        3,
        [car("car-5", 13 + o, 3, slow_puncture)],
        [Fault("car-5", "threshold", ("tire.low_pressure",), H(1) + 1800, H(3), onset_ts=H(1))],
    )

    # Sensor health.
    def frozen_bearing(ts: float, s: dict) -> None:
        if H(2) <= ts < H(3):
            s["bearing_temperature_c"] = 63.42

    add(
        "stuck_bearing_sensor",
        "stuck",
        4,
        [compressor("comp-3", 14 + o, 4, frozen_bearing)],
        [Fault("comp-3", "stuck", ("sensor.stuck",), H(2), H(3))],
    )

    def frozen_flow(ts: float, s: dict) -> None:
        if H(2.5) <= ts < H(4):
            s["flow_l_min"] = 297.0

    add(
        "stuck_flow_sensor_on_shifts",
        "stuck",
        5,
        [pump("pump-4", 15 + o, 5, frozen_flow, shift_s=6000.0)],
        [Fault("pump-4", "stuck", ("sensor.stuck",), H(2.5), H(4))],
    )

    def lost_signal(ts: float, s: dict) -> None:
        if H(2) <= ts < H(2.5):
            del s["discharge_temperature_c"]

    add(
        "stale_signal",
        "stale",
        4,
        [compressor("comp-4", 16 + o, 4, lost_signal)],
        [Fault("comp-4", "stale", ("sensor.stale",), H(2), H(2.5))],
    )

    silent = (H(2), H(2.75))
    add(
        "stale_device",
        "stale",
        4,
        [fan("fan-4", 17 + o, 4), (m for m in pump("pump-5", 18 + o, 4) if not silent[0] <= m[1] < silent[1])],
        [Fault("pump-5", "stale", ("sensor.stale",), *silent)],
    )

    def open_circuit(ts: float, s: dict) -> None:
        if H(2) <= ts < H(2.5):
            s["bearing_temperature_c"] = 850.0  # an open RTD reads the top of its range

    add(
        "implausible_open_circuit",
        "implausible",
        4,
        [fan("fan-5", 19 + o, 4, open_circuit)],
        [Fault("fan-5", "implausible", ("sensor.implausible",), H(2), H(2.5))],
    )

    def negative_vibration(ts: float, s: dict) -> None:
        if H(1.5) <= ts < H(2):
            s["vibration_rms_mm_s"] = round(
                -3.2 + random.Random(int(ts)).gauss(0, 0.05), 3
            )  # an RMS cannot be negative

    add(
        "implausible_negative_rms",
        "implausible",
        3,
        [pump("pump-6", 20 + o, 3, negative_vibration)],
        [Fault("pump-6", "implausible", ("sensor.implausible",), H(1.5), H(2))],
    )

    def coolant_dropout(ts: float, s: dict) -> None:
        if H(1) <= ts < H(1.25):
            s[COOLANT] = -40.0  # a disconnected NTC reads the bottom of its range

    add(
        "implausible_coolant_dropout",
        "implausible",
        2,
        [car("car-6", 21 + o, 2, coolant_dropout)],
        [Fault("car-6", "implausible", ("sensor.implausible",), H(1), H(1.25))],
    )

    # Slow drift against a long reference.
    def clogging(ts: float, s: dict) -> None:
        if ts >= H(2):
            s["filter_dp_kpa"] = round(float(s["filter_dp_kpa"]) * (1 + 1.8 * ramp(ts, H(2), 7200)), 2)

    add(
        "drift_filter_clogging",
        "drift",
        5,
        [pump("pump-7", 22 + o, 5, clogging, shift_s=1e9)],
        [Fault("pump-7", "drift", ("filter.clogging", "anomaly"), H(2), H(5))],
    )

    def bearing_wear(ts: float, s: dict) -> None:
        if ts >= H(2):
            s["bearing_temperature_c"] = round(float(s["bearing_temperature_c"]) + 22 * ramp(ts, H(2), 3 * 3600), 2)

    add(
        "drift_bearing_wear_on_daily_cycle",
        "drift",
        6,
        [fan("fan-6", 23 + o, 6, bearing_wear)],
        [Fault("fan-6", "drift", ("bearing.drift",), H(2), H(6))],
    )

    def vibration_wear(ts: float, s: dict) -> None:
        # Corrected after first contact: wear shows while running; a stopped machine does not vibrate.
        if ts >= H(2) and float(s["motor_current_a"]) > 10:
            s["vibration_rms_mm_s"] = round(float(s["vibration_rms_mm_s"]) + 1.8 * ramp(ts, H(2), 3 * 3600), 3)

    add(
        "drift_vibration_wear_duty_cycle",
        "drift",
        6,
        [compressor("comp-5", 24 + o, 6, vibration_wear)],
        [Fault("comp-5", "drift", ("vibration.drift",), H(2), H(6))],
    )

    # Intermittent: short excursions past a threshold rule's limit, repeated.
    def loose_part(ts: float, s: dict) -> None:
        if H(2) <= ts < H(2.5) and (ts - H(2)) % 40 < 4:
            s["vibration_rms_mm_s"] = round(9.0 + random.Random(int(ts)).uniform(0, 1), 3)

    add(
        "intermittent_loose_part",
        "intermittent",
        4,
        [pump("pump-8", 25 + o, 4, loose_part)],
        [Fault("pump-8", "intermittent", ("vibration.iso10816.intermittent",), H(2), H(2.5))],
    )

    def coolant_spikes(ts: float, s: dict) -> None:
        if H(1.5) <= ts < H(2) and (ts - H(1.5)) % 120 < 6:
            s[COOLANT] = 112.0 + random.Random(int(ts)).uniform(0, 2)

    add(
        "intermittent_coolant_spikes",
        "intermittent",
        3,
        [car("car-7", 26 + o, 3, coolant_spikes)],
        [Fault("car-7", "intermittent", ("coolant.overheat.intermittent",), H(1.5), H(2))],
    )

    def battery_dips(ts: float, s: dict) -> None:
        if H(2) <= ts < H(2.5) and (ts - H(2)) % 90 < 8:
            s[BATTERY] = 11.3

    add(
        "intermittent_battery_dips",
        "intermittent",
        3,
        [car("car-8", 27 + o, 3, battery_dips)],
        [Fault("car-8", "intermittent", ("battery.low_voltage.intermittent",), H(2), H(2.5))],
    )

    # Faults inside an operating mode (adaptive anomaly detection per mode).
    def fouled_cooler(ts: float, s: dict) -> None:
        if ts >= H(3) and float(s["motor_current_a"]) > 10:
            s["discharge_temperature_c"] = round(float(s["discharge_temperature_c"]) + 25, 2)

    add(
        "mode_fault_compressor_hot_when_loaded",
        "mode",
        5,
        [compressor("comp-6", 28 + o, 5, fouled_cooler)],
        [Fault("comp-6", "mode", ("anomaly",), H(3), H(5))],
    )

    def pressure_collapse(ts: float, s: dict) -> None:
        if ts >= H(3):
            s["outlet_pressure_bar"] = round(float(s["outlet_pressure_bar"]) * 0.55, 3)

    add(
        "mode_fault_pump_pressure_loss",
        "mode",
        5,
        [pump("pump-9", 29 + o, 5, pressure_collapse, shift_s=5400.0)],
        [Fault("pump-9", "mode", ("anomaly",), H(3), H(5))],
    )

    def humidity_sensor_step(ts: float, s: dict) -> None:
        if ts >= H(3):
            s["air_humidity_pct"] = round(float(s["air_humidity_pct"]) - 30, 1)

    add(
        "mode_fault_fan_step",
        "mode",
        5,
        [fan("fan-7", 30 + o, 5, humidity_sensor_step)],
        [Fault("fan-7", "mode", ("anomaly",), H(3), H(5))],
    )

    # Added after tuning (not part of the first-contact suite): load/unload control.
    add("healthy_screw_compressor_load_unload", "healthy", 6, [screw_compressor("comp-7", 31 + o, 6)])

    def weak_oil_pump(ts: float, s: dict) -> None:
        if ts >= H(3) and float(s["motor_current_a"]) > 18:
            s["oil_pressure_bar"] = round(float(s["oil_pressure_bar"]) - 1.3, 3)  # 3.2 bar loaded instead of 4.5

    add(
        "mode_fault_screw_compressor_low_oil_pressure_loaded",
        "mode",
        5,
        [screw_compressor("comp-8", 32 + o, 5, weak_oil_pump)],
        [Fault("comp-8", "mode", ("anomaly",), H(3), H(5))],
    )
    return traces


# -- scoring --------------------------------------------------------------------------------

GRACE_S = 900.0


@dataclass
class TraceScore:
    trace: Trace
    detected: list[tuple[str, float]]  # (family, time to detect s) per detected fault
    missed: list[str]
    false_alerts: list[Alert]
    collateral: list[Alert]
    samples: int
    elapsed_s: float


def run_trace(trace: Trace, settings: DetectSettings) -> tuple[list[Alert], int, float]:
    detector = Detector(load_rules(settings.packs, settings.disable_rules), settings)
    policy = AlertPolicy(settings.cooldown_s)
    alerts: list[Alert] = []
    started = time.perf_counter()
    for device, ts, signals in trace.messages:
        sample = Sample(device, ts, dict(signals), ts)
        alerts += policy.tick(device, ts, lambda key: detector.is_active(key[0], key[2], key[1]))
        for finding in detector.process(sample):
            alert = policy.apply(finding)
            if alert is not None:
                alerts.append(alert)
    return alerts, len(trace.messages), time.perf_counter() - started


def score(trace: Trace, alerts: list[Alert], samples: int, elapsed_s: float) -> TraceScore:
    firing = [a for a in alerts if a.state is AlertState.FIRING]
    detected: list[tuple[str, float]] = []
    missed: list[str] = []
    used: set[int] = set()
    for fault in trace.faults:
        hits = [
            i
            for i, a in enumerate(firing)
            if a.device == fault.device
            and a.rule in fault.rules
            and (fault.onset_ts or fault.start_ts) <= a.ts <= fault.end_ts + GRACE_S
        ]
        if hits:
            detected.append((fault.family, max(0.0, firing[hits[0]].ts - fault.start_ts)))
            used.update(hits)
        else:
            missed.append(f"{fault.device}:{'|'.join(fault.rules)}")
    false_alerts: list[Alert] = []
    collateral: list[Alert] = []
    for i, a in enumerate(firing):
        if i in used:
            continue
        in_window = any(
            f.device == a.device and (f.onset_ts or f.start_ts) <= a.ts <= f.end_ts + GRACE_S for f in trace.faults
        )
        (collateral if in_window else false_alerts).append(a)
    return TraceScore(trace, detected, missed, false_alerts, collateral, samples, elapsed_s)

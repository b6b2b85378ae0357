"""Detection tables: traces in, exact alerts out (pure; no broker)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from edge_slm.config import DetectSettings
from edge_slm.detect.detector import Detector
from edge_slm.detect.policy import AlertPolicy
from edge_slm.detect.rules import load_rules
from edge_slm.errors import ConfigError
from edge_slm.events import Alert, Sample

COOLANT = "Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature"
TIRE_FL = "Vehicle.Chassis.Axle.Row1.Wheel.Left.Tire.Pressure"
BATTERY = "Vehicle.LowVoltageBattery.CurrentVoltage"
T0 = 1_732_700_000.0


def run(
    trace: list[tuple[float, str, str, float]], settings: DetectSettings | None = None, packs: tuple[str, ...] = ()
) -> list[Alert]:
    settings = settings or DetectSettings()
    detector = Detector(load_rules(packs), settings)
    policy = AlertPolicy(settings.cooldown_s)
    alerts: list[Alert] = []
    for ts, device, signal, value in trace:
        sample = Sample(device, ts, {signal: value}, ts)
        for finding in detector.process(sample):
            alert = policy.apply(finding)
            if alert:
                alerts.append(alert)
        alerts += policy.tick(device, ts, lambda key: detector.is_active(key[0], key[2], key[1]))
    return alerts


def series(
    device: str, signal: str, values: list[float], start: float = T0, step_s: float = 1.0
) -> list[tuple[float, str, str, float]]:
    return [(start + i * step_s, device, signal, v) for i, v in enumerate(values)]


def summary(alerts: list[Alert]) -> list[tuple[str, str, str, str, str]]:
    return [(a.device, a.signal, a.rule, a.severity.label, a.state.value) for a in alerts]


def noisy(base: float, spread: float, n: int, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [base + rng.uniform(-spread, spread) for _ in range(n)]


def test_normal_noise_raises_nothing() -> None:
    trace = series("car-1", COOLANT, noisy(92, 3, 600)) + series("pump-1", "vibration_rms_mm_s", noisy(2.0, 0.6, 600))
    trace += series("pump-1", "bearing_temperature_c", noisy(60, 2, 600)) + series(
        "pump-1", "motor_current_a", noisy(12, 0.8, 600)
    )
    trace += series("car-1", BATTERY, noisy(13.9, 0.3, 600)) + series("car-1", TIRE_FL, noisy(230, 3, 600))
    trace += series("pump-1", "flow_l_min", noisy(300, 10, 600))
    trace.sort()
    assert run(trace) == []


def test_single_glitch_raises_nothing() -> None:
    values = [92.0] * 30 + [150.0] + [92.0] * 30
    assert run(series("car-1", COOLANT, values)) == []


def test_sustained_overheat_fires_once_then_resolves() -> None:
    values = [92.0] * 20 + [112.0] * 40 + [95.0] * 40
    alerts = run(series("car-1", COOLANT, values))
    assert summary(alerts) == [
        ("car-1", COOLANT, "coolant.overheat", "warning", "firing"),
        ("car-1", COOLANT, "coolant.overheat", "warning", "resolved"),
    ]
    assert alerts[0].id == alerts[1].id
    assert alerts[0].ts == T0 + 30  # onset at 20 s, fires after for_s = 10 s of event time
    assert "112.0 °C" in alerts[0].summary and alerts[0].action


def test_step_to_critical_fires_critical_directly() -> None:
    alerts = run(series("car-1", COOLANT, [92.0] * 10 + [125.0] * 30))
    assert summary(alerts) == [("car-1", COOLANT, "coolant.overheat", "critical", "firing")]


def test_escalation_keeps_the_id() -> None:
    alerts = run(series("car-1", COOLANT, [92.0] * 10 + [112.0] * 30 + [125.0] * 30))
    assert [a.severity.label for a in alerts] == ["warning", "critical"]
    assert alerts[0].id == alerts[1].id


def test_hysteresis_holds_firing_between_limits() -> None:
    # 106 is below the 108 limit but above the 103 clear point: stays firing.
    alerts = run(series("car-1", COOLANT, [92.0] * 5 + [112.0] * 20 + [106.0] * 100))
    assert summary(alerts) == [("car-1", COOLANT, "coolant.overheat", "warning", "firing")]


def test_flapping_is_one_intermittent_alert_not_a_storm() -> None:
    # Behaviour change (issue 17): repeated short excursions used to raise nothing; now the
    # threshold rule never fires (never held for 10 s) but they are one intermittent-fault alert.
    values = [92.0] * 5
    for _ in range(20):
        values += [110.0] * 3 + [92.0] * 3  # never held for 10 s
    alerts = run(series("car-1", COOLANT, values))
    assert summary(alerts) == [("car-1", COOLANT, "coolant.overheat.intermittent", "warning", "firing")]
    assert alerts[0].onset_ts == T0 + 5  # the first excursion
    assert "3 times within 10 min" in alerts[0].summary


def test_durations_use_event_time_not_arrival() -> None:
    # Samples every 10 s: two over-limit samples 10 s apart already satisfy for_s.
    alerts = run(series("car-1", COOLANT, [92.0, 92.0, 115.0, 115.0], step_s=10.0))
    assert len(alerts) == 1 and alerts[0].ts == T0 + 30


def test_low_battery_and_tire_rules() -> None:
    trace = series("car-1", BATTERY, [12.6] * 5 + [11.5] * 40)
    trace += series("car-1", TIRE_FL, [230.0] * 5 + [170.0] * 40)
    alerts = run(sorted(trace))
    assert sorted(summary(alerts)) == [
        ("car-1", TIRE_FL, "tire.low_pressure", "warning", "firing"),
        ("car-1", BATTERY, "battery.low_voltage", "warning", "firing"),
    ]
    tire = next(a for a in alerts if a.rule == "tire.low_pressure")
    assert "front left" in tire.summary


def test_tires_are_separate_alerts() -> None:
    rr = "Vehicle.Chassis.Axle.Row2.Wheel.Right.Tire.Pressure"
    trace = sorted(
        series("car-1", TIRE_FL, [230.0] * 3 + [150.0] * 30) + series("car-1", rr, [230.0] * 3 + [150.0] * 30)
    )
    assert {a.signal for a in run(trace)} == {TIRE_FL, rr}


RAPID_LOSS_PACK = """
[[rules]]
id = "tire.rapid_pressure_loss"
signal = "Vehicle.Chassis.Axle.*.Wheel.*.Tire.Pressure"
kind = "rate"
direction = "below"
critical = -30.0
hysteresis = 15.0
window_s = 60.0
for_s = 5.0
summary = "Tire pressure at {position} is falling {rate:.0f} kPa per minute."
"""


def test_rate_rule_from_a_site_pack(tmp_path: Path) -> None:
    pack = tmp_path / "rate.toml"
    pack.write_text(RAPID_LOSS_PACK)
    values = [230.0] * 60 + [230.0 - 1.0 * i for i in range(1, 40)]  # -60 kPa/min, still above the low limit
    alerts = run(series("car-1", TIRE_FL, values), packs=(str(pack),))
    assert summary(alerts) == [("car-1", TIRE_FL, "tire.rapid_pressure_loss", "critical", "firing")]
    assert "front left" in alerts[0].summary and "falling" in alerts[0].summary


def test_vibration_iso10816_levels() -> None:
    alerts = run(series("pump-3", "vibration_rms_mm_s", [2.0] * 10 + [9.3] * 20))
    assert summary(alerts) == [("pump-3", "vibration_rms_mm_s", "vibration.iso10816", "critical", "firing")]
    assert alerts[0].value == 9.3


def test_motor_overcurrent_learned_baseline() -> None:
    # Behaviour change (issue 17): motor current is a mode signal; motor.overcurrent compares with
    # its highest level learned in anomaly_learn_s (600 s), so it judges after that, not after 20 samples.
    values = noisy(10, 0.3, LEARN) + [14.0] * 30
    alerts = run(series("pump-1", "motor_current_a", values))
    assert summary(alerts) == [("pump-1", "motor_current_a", "motor.overcurrent", "warning", "firing")]


def test_motor_start_from_idle_is_not_overcurrent() -> None:
    values = [0.0] * 40 + noisy(10, 0.3, 100)
    assert run(series("pump-1", "motor_current_a", values)) == []


def test_stuck_sensor_rule_from_a_site_pack(tmp_path: Path) -> None:
    pack = tmp_path / "stuck.toml"
    pack.write_text(
        '[[rules]]\nid = "vibration.sensor_stuck"\nsignal = "vibration_rms_mm_s"\nkind = "stuck"\n'
        'severity = "info"\nfor_s = 120.0\nmin_samples = 20\n'
    )
    values = noisy(2.0, 0.3, 20) + [2.2] * 200
    alerts = run(series("pump-1", "vibration_rms_mm_s", values, step_s=1.0), packs=(str(pack),))
    assert summary(alerts) == [("pump-1", "vibration_rms_mm_s", "vibration.sensor_stuck", "info", "firing")]


# Behaviour change (issue 17): the adaptive detector learns for anomaly_learn_s (600 s of event
# time) before it judges, so it can learn operating modes; these traces used to warm up in 100 s.
LEARN = 700


def test_anomaly_on_unknown_signal() -> None:
    values = noisy(300, 5, LEARN) + [150.0] * 20 + noisy(300, 5, 40, seed=2)
    alerts = run(series("pump-1", "flow_l_min", values))
    assert summary(alerts) == [
        ("pump-1", "flow_l_min", "anomaly", "warning", "firing"),
        ("pump-1", "flow_l_min", "anomaly", "warning", "resolved"),
    ]


def test_anomaly_needs_warmup_and_ignores_booleans() -> None:
    # A jump during warm-up is learned, not alerted; booleans get no detector.
    trace = series("d", "x", [1.0] * 5 + [500.0] * 10) + [(T0 + i, "d", "door_open", float(i % 2)) for i in range(100)]
    assert run(sorted(trace)) == []


def test_cooldown_suppresses_quick_refire_but_not_a_persisting_fault() -> None:
    values = [92.0] * 5 + [112.0] * 20 + [95.0] * 20 + [112.0] * 60
    alerts = run(series("car-1", COOLANT, values), DetectSettings(cooldown_s=60.0))
    states = [a.state.value for a in alerts]
    assert states == ["firing", "resolved", "firing"]
    assert alerts[2].ts >= alerts[1].ts + 60.0


def test_replay_gives_identical_alerts() -> None:
    trace = series("car-1", COOLANT, [92.0] * 10 + [120.0] * 30 + [90.0] * 40)
    assert run(trace) == run(trace)


def test_late_samples_are_ignored() -> None:
    trace = series("car-1", COOLANT, [92.0] * 10 + [120.0] * 15)
    trace.insert(12, (T0 - 100, "car-1", COOLANT, 500.0))
    alerts = run(trace)
    assert len(alerts) == 1 and alerts[0].value == 120.0


def test_site_pack_overrides_and_disables(tmp_path: Path) -> None:
    pack = tmp_path / "site.toml"
    pack.write_text(
        '[[rules]]\nid = "coolant.overheat"\nsignal = "Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature"\n'
        "warning = 100.0\nfor_s = 5.0\n"
        '[[rules]]\nid = "vibration.iso10816"\nsignal = "vibration_rms_mm_s"\nenabled = false\n'
        '[[rules]]\nid = "tank.level_low"\nsignal = "tank_level_pct"\n'
        'direction = "below"\nwarning = 10.0\nfor_s = 2.0\n'
    )
    trace = series("car-1", COOLANT, [92.0] * 5 + [103.0] * 20) + series("pump-3", "vibration_rms_mm_s", [9.0] * 30)
    trace += series("tank-1", "tank_level_pct", [50.0] * 5 + [5.0] * 10)
    alerts = run(sorted(trace), packs=(str(pack),))
    assert sorted(summary(alerts)) == [
        ("car-1", COOLANT, "coolant.overheat", "warning", "firing"),
        ("tank-1", "tank_level_pct", "tank.level_low", "warning", "firing"),
    ]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[[rules]]\nid = "x"\nsignal = "s"\nwarning = "hot"\n', "rules[x].warning"),
        ('[[rules]]\nid = "x"\nsignal = "s"\nkind = "magic"\nwarning = 1\n', "rules[x].kind"),
        ('[[rules]]\nid = "x"\nsignal = "s"\nwarning = 5\ncritical = 1\n', "rules[x]"),
        ('[[rules]]\nid = "x"\nsignal = "s"\nwarning = 5\ncolour = 1\n', "rules[x].colour"),
    ],
)
def test_bad_site_pack_names_the_rule(tmp_path: Path, text: str, key: str) -> None:
    pack = tmp_path / "bad.toml"
    pack.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_rules([str(pack)])
    assert key in err.value.message


def test_every_contract_signal_has_a_builtin_rule() -> None:
    detector = Detector(load_rules(), DetectSettings())
    for signal in [
        COOLANT,
        "Vehicle.Powertrain.CombustionEngine.EngineOil.Temperature",
        BATTERY,
        TIRE_FL,
        "Vehicle.Powertrain.TractionBattery.StateOfCharge.Current",
        "vibration_rms_mm_s",
        "bearing_temperature_c",
        "motor_current_a",
    ]:
        assert detector.rules_for(signal), signal


def test_policy_snapshot_round_trip() -> None:
    settings = DetectSettings()
    detector = Detector(load_rules(), settings)
    policy = AlertPolicy(settings.cooldown_s)
    for ts, device, signal, value in series("car-1", COOLANT, [92.0] * 5 + [120.0] * 20):
        for finding in detector.process(Sample(device, ts, {signal: value}, ts)):
            policy.apply(finding)
    restored = AlertPolicy(settings.cooldown_s)
    restored.restore(policy.snapshot())
    assert [a.id for a in restored.firing()] == [a.id for a in policy.firing()]


def test_replaying_a_trace_into_the_same_detector_repeats_its_alerts() -> None:
    trace = series("pump-1", "vibration_rms_mm_s", [2.0] * 10 + [9.0] * 40 + [2.0] * 40)
    alerts = run(trace + trace)  # the second copy jumps back in event time: a new epoch
    assert [a.state.value for a in alerts] == ["firing", "resolved", "firing", "resolved"]
    assert alerts[0].id == alerts[2].id


def test_one_future_dated_sample_does_not_blind_the_series() -> None:
    trace = series("pump-1", "vibration_rms_mm_s", [2.0] * 5)
    trace.append((T0 + 30 * 24 * 3600, "pump-1", "vibration_rms_mm_s", 2.0))
    trace += series("pump-1", "vibration_rms_mm_s", [2.0] * 5 + [9.0] * 30, start=T0 + 10)
    assert [a.rule for a in run(trace)] == ["vibration.iso10816"]


@pytest.mark.parametrize(("base", "noise", "step"), [(5.0, 0.05, 0.5), (400.0, 2.0, -40.0), (300.0, 0.5, 15.0)])
def test_anomaly_on_signals_with_a_large_offset(base: float, noise: float, step: float) -> None:
    values = noisy(base, noise, LEARN) + noisy(base + step, noise, 20, seed=3)
    assert [a.rule for a in run(series("plant-1", "some_signal", values))] == ["anomaly"]


def test_suppressed_alert_is_dropped_when_its_condition_cleared_meanwhile() -> None:
    values = [2.0] * 20 + [9.0] * 40 + [2.0] * 22 + [9.0] * 13 + [2.0] * 60
    alerts = run(series("pump-1", "vibration_rms_mm_s", values), DetectSettings(cooldown_s=30.0))
    assert [a.state.value for a in alerts] == ["firing", "resolved"]


def test_sparse_sampling_still_alerts() -> None:
    alerts = run(series("pump-1", "bearing_temperature_c", [60.0, 120.0, 120.0, 120.0], step_s=400.0))
    assert [(a.rule, a.severity.label) for a in alerts] == [("bearing.overheat", "critical")]

"""Diagnosis from the device's signals and the fault knowledge (pure core: plain tables)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from edge_slm.config import DetectSettings
from edge_slm.detect.detector import Detector
from edge_slm.detect.diagnose import diagnose, fault_shape, fmt_number
from edge_slm.detect.knowledge import load_knowledge
from edge_slm.detect.rules import load_rules
from edge_slm.errors import ConfigError
from edge_slm.events import Alert, AlertState, Sample, Severity

T = 10_000.0
KNOWLEDGE = load_knowledge()


def series(values: list[float], dt_s: float = 2.0, end: float = T) -> list[tuple[float, float]]:
    return [(end - (len(values) - 1 - i) * dt_s, v) for i, v in enumerate(values)]


def ramp(a: float, b: float, n: int = 60, start: int = 20) -> list[float]:
    return [a if i < start else a + (b - a) * min(1.0, (i - start) / (n - 11 - start)) for i in range(n)]


def alert(rule: str, signal: str, value: float, onset_s: float = 10.0) -> Alert:
    return Alert("x", "dev-1", signal, rule, Severity.WARNING, AlertState.FIRING, value, T, "s.", "a.", T - onset_s)


@pytest.mark.parametrize(
    ("values", "shape"),
    [
        (ramp(2.0, 9.0), "ramp"),
        ([2.0] * 50 + [9.0] * 10, "step"),
        ([2.0 + 3 * (1 - math.cos(2 * math.pi * i / 20)) for i in range(60)], "oscillation"),
        ([2.0] * 10 + [9.0 if (i % 15) < 3 else 2.0 for i in range(40)] + [9.0] * 10, "intermittent"),
    ],
)
def test_fault_shapes(values: list[float], shape: str) -> None:
    assert fault_shape(series(values), values[0], values[-1]).kind == shape


@pytest.mark.parametrize(
    ("rule", "signal", "value", "history", "cause"),
    [
        # vibration with a bearing heating over the same minutes: bearing damage
        (
            "vibration.iso10816",
            "vibration_rms_mm_s",
            6.0,
            {"vibration_rms_mm_s": ramp(2.1, 6.0), "bearing_temperature_c": ramp(60, 82)},
            "bearing_damage",
        ),
        # the same vibration, bearing cool: unbalance
        (
            "vibration.iso10816",
            "vibration_rms_mm_s",
            6.0,
            {"vibration_rms_mm_s": ramp(2.1, 6.0), "bearing_temperature_c": [60.0] * 60},
            "unbalance",
        ),
        # overheating while the coolant level falls: a leak
        (
            "coolant.overheat",
            "Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature",
            112.0,
            {
                "Vehicle.Powertrain.CombustionEngine.EngineCoolant.Temperature": ramp(90, 112),
                "Vehicle.Powertrain.CombustionEngine.EngineCoolant.Level": ramp(95, 60, start=10),
            },
            "coolant_leak",
        ),
        # low 12 V with the engine running: the alternator
        (
            "battery.low_voltage",
            "Vehicle.LowVoltageBattery.CurrentVoltage",
            11.5,
            {
                "Vehicle.LowVoltageBattery.CurrentVoltage": ramp(14.1, 11.5),
                "Vehicle.Powertrain.CombustionEngine.Speed": [2200.0] * 60,
            },
            "alternator",
        ),
        # no history at all: the most common cause, from the priors
        ("vibration.iso10816", "vibration_rms_mm_s", 6.0, {}, "unbalance"),
    ],
)
def test_top_cause(rule: str, signal: str, value: float, history: dict[str, list[float]], cause: str) -> None:
    d = diagnose(alert(rule, signal, value), {k: series(v) for k, v in history.items()}, KNOWLEDGE)
    assert d is not None and d.top.id == cause
    assert d.runner_up is not None and d.runner_up.id != cause
    assert 0 < d.confidence <= 1


def test_evidence_carries_the_numbers() -> None:
    history = {"vibration_rms_mm_s": ramp(2.1, 6.0), "bearing_temperature_c": ramp(60, 82)}
    d = diagnose(
        alert("vibration.iso10816", "vibration_rms_mm_s", 6.0), {k: series(v) for k, v in history.items()}, KNOWLEDGE
    )
    assert d is not None
    assert d.top.evidence[0] == "bearing temperature rose from 60 °C to 82 °C over the same 118 s"
    assert d.evidence[-1] == "vibration climbed from 2.1 mm/s to 6 mm/s over 50 s"


def test_unknown_signal_gets_the_signals_that_moved_with_it() -> None:
    history = {
        "flow_l_min": series(ramp(310, 180, start=40)),
        "discharge_pressure_bar": series(ramp(4.0, 5.8, start=40)),
        "ambient_temperature_c": series([25.0] * 60),
    }
    d = diagnose(alert("anomaly", "flow_l_min", 180), history, KNOWLEDGE)
    assert d is not None and d.basis == "signals" and d.top.id == "shared_change"
    assert d.top.evidence == ("discharge pressure rose from 4 bar to 5.8 bar at the same time",)
    alone = diagnose(
        alert("anomaly", "flow_l_min", 180), {**history, "discharge_pressure_bar": series([4.0] * 60)}, KNOWLEDGE
    )
    assert alone is not None and alone.top.id == "local_change"


@pytest.mark.parametrize(
    ("value", "text"), [(82.0, "82"), (9.34, "9.3"), (0.456, "0.46"), (236.4, "236"), (-5.1, "-5.1")]
)
def test_numbers_in_words(value: float, text: str) -> None:
    assert fmt_number(value) == text


def test_site_pack_adds_overrides_and_removes_causes(tmp_path: Path) -> None:
    pack = tmp_path / "site.toml"
    pack.write_text(
        """
[[rules]]
id = "tank.level_low"
signal = "tank_level_pct"
direction = "below"
warning = 10.0

[[causes]]
rule = "vibration.iso10816"
id = "unbalance"
prior = 3.0

[[causes]]
rule = "vibration.iso10816"
id = "cavitation"
enabled = false

[[causes]]
rule = "tank.level_low"
id = "leak"
name = "a leaking tank"
action = "Close the outlet valve and inspect the tank for leaks."
source = "site practice"
evidence = [{ signal = "flow_l_min", trend = "rising", min_change = 10, weight = 2 }]
"""
    )
    knowledge = load_knowledge([str(pack)])
    vib = {c.id: c for c in knowledge.causes_for("vibration.iso10816")}
    assert vib["unbalance"].prior == 3.0 and vib["unbalance"].name == "rotor unbalance" and "cavitation" not in vib
    assert [c.id for c in knowledge.causes_for("tank.level_low")] == ["leak"]
    assert any(r.id == "tank.level_low" for r in load_rules([str(pack)]))  # the rule loader ignores [[causes]]


CAUSE = '[[causes]]\nrule = "r"\nid = "c"\nname = "n"\naction = "a"\nsource = "s"\n'


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[[causes]]\nrule = "r"\nid = "c"\nname = "n"\naction = "a"\nsource = "s"\ncolour = 1\n', "colour"),
        ('[[causes]]\nrule = "r"\nid = "c"\nname = "n"\naction = "a"\n', "source"),
        (
            CAUSE + 'evidence = [{ shape = "zigzag", weight = 1 }]\n',
            "shape",
        ),
        (
            CAUSE + 'evidence = [{ trend = "rising", weight = 1 }]\n',
            "signal",
        ),
    ],
)
def test_bad_knowledge_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    pack = tmp_path / "bad.toml"
    pack.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_knowledge([str(pack)])
    assert key in err.value.key


def test_every_builtin_rule_has_knowledge_with_sources_and_actions() -> None:
    rules = {r.id for r in load_rules()}
    assert rules <= set(KNOWLEDGE.rules)
    for rule in rules:
        for cause in KNOWLEDGE.causes_for(rule):
            assert cause.source and cause.action.endswith(".") and cause.action[0].isupper()


def test_device_history_has_every_signal_of_the_device() -> None:
    det = Detector(load_rules(), DetectSettings())
    for i in range(5):
        det.process(Sample("pump-1", T + i, {"vibration_rms_mm_s": 2.0 + i, "flow_l_min": 300.0}, T + i))
        det.process(Sample("pump-2", T + i, {"vibration_rms_mm_s": 1.0}, T + i))
    hist = det.device_history("pump-1")
    assert set(hist) == {"vibration_rms_mm_s", "flow_l_min"}
    assert hist["vibration_rms_mm_s"][-1] == (T + 4, 6.0)

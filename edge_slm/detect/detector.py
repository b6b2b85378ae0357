"""Routes decoded samples to the rules, sensor-health checks and anomaly detectors that watch
each signal and turns their transitions into `Finding`s with template text. Pure; bounded
memory: at most `max_series_per_device` series per device and `max_tracked_series` in all; a
device over its cap gets its new series refused (counted), never another device's evicted."""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from edge_slm.config import DetectSettings
from edge_slm.detect import templates
from edge_slm.detect.anomaly import AnomalySeries
from edge_slm.detect.evaluate import RuleSeries, Transition
from edge_slm.detect.health import (
    IMPLAUSIBLE_RULE,
    MOVING_WITHIN_S,
    STALE_RULE,
    STUCK_RULE,
    KindIndex,
    SensorKind,
    SignalHealth,
    load_sensor_kinds,
)
from edge_slm.detect.rules import Rule, RuleKind, signal_pattern
from edge_slm.events import Alert, Finding, Sample, Severity

ANOMALY_RULE = "anomaly"
INTERMITTENT_SUFFIX = ".intermittent"
DEVICE_SIGNAL = "*"  # the signal of a whole-device alert (sensor.stale for a silent device)
# Event time going back by more than this starts a new epoch for the series (a replayed or
# restarted trace); smaller steps back are reordered samples and are skipped.
NEW_EPOCH_BACKWARD_S = 30.0
# The event clock (for devices that went silent) follows the newest sample, but a sample
# dated further than this past its arrival cannot move it: one bad clock must not make every
# other device look silent.
CLOCK_AHEAD_OF_ARRIVAL_S = 60.0
STALE_CHECK_EVERY_S = 10.0
# On a device with mode signals (motor current, speed) a departure waits this long for them to
# show a new operating mode before it counts as an anomaly.
MODE_WAIT_S = 60.0
# For this long after a new operating mode appeared, the device's signals learn which of their
# levels go with it instead of being judged against it.
MODE_YOUNG_S = 600.0


@dataclass(slots=True)
class _SignalState:
    rule_series: list[RuleSeries]
    anomaly: AnomalySeries | None
    history: deque[tuple[float, float]]
    last_ts: float
    health: SignalHealth | None = None

    @property
    def busy(self) -> bool:
        """Firing or building up: never evicted."""
        if any(s.firing is not None or s.intermittent_firing or s.pending for s in self.rule_series):
            return True
        if self.anomaly is not None and (self.anomaly.firing or self.anomaly.pending):
            return True
        return self.health is not None and self.health.pending


@dataclass(slots=True)
class _DeviceState:
    series: dict[str, _SignalState] = field(default_factory=dict)
    last_ts: float = -math.inf
    seen_clock: float = -math.inf
    interval_s: float = 0.0
    intervals: int = 0
    stale_allowed_s: float = 0.0  # largest stale allowance of its signals; 0: not watched
    stale_firing: bool = False
    stale_onset: float = 0.0
    next_stale_check: float = -math.inf
    mode_change_ts: float | None = None
    has_mode_signal: bool = False
    # the latest value change on the device, and the latest on a different signal: "others moving" in O(1)
    last_change_signal: str = ""
    last_change_ts: float = -math.inf
    other_change_ts: float = -math.inf
    mode_signal: str = ""  # the first mode signal: its current level is the device's operating mode
    mode_index: int = -1
    mode_moving: bool = False  # its mode signal is departing from its levels right now


class Detector:
    def __init__(
        self, rules: Sequence[Rule], settings: DetectSettings, sensor_kinds: list[SensorKind] | None = None
    ) -> None:
        self._settings = settings
        self._exact: dict[str, list[Rule]] = {}
        self._patterns: list[tuple[Rule, object]] = []
        for rule in rules:
            if "*" in rule.signal:
                self._patterns.append((rule, signal_pattern(rule.signal)))
            else:
                self._exact.setdefault(rule.signal, []).append(rule)
        self._rules_for_signal: dict[str, list[Rule]] = {}
        kinds = sensor_kinds if sensor_kinds is not None else load_sensor_kinds(settings.packs)
        self._kinds = KindIndex(kinds if settings.sensor_health_enabled else [])
        self._series: OrderedDict[tuple[str, str], _SignalState] = OrderedDict()
        self._devices: dict[str, _DeviceState] = {}
        self._clock = -math.inf
        self._next_device_check = -math.inf
        # disable_rules also names the rules without a pack entry: sensor.*, <id>.intermittent
        self._disabled = frozenset(settings.disable_rules)
        self.evicted_series = 0
        self.refused_series = 0
        self.late_samples = 0
        self.new_epochs = 0

    @property
    def tracked_series(self) -> int:
        return len(self._series)

    def rules_for(self, signal: str) -> list[Rule]:
        cached = self._rules_for_signal.get(signal)
        if cached is None:
            cached = list(self._exact.get(signal, ()))
            cached += [rule for rule, pattern in self._patterns if pattern.match(signal)]  # type: ignore[attr-defined]
            if len(self._rules_for_signal) < 100_000:
                self._rules_for_signal[signal] = cached
        return cached

    def history(self, device: str, signal: str) -> list[tuple[float, float]]:
        state = self._series.get((device, signal))
        return list(state.history) if state else []

    def device_mode(self, device: str) -> str:
        """The device's operating mode as evidence for diagnosis: for each mode signal, which of
        its learned levels it is at now ("motor_current_a: level 2 of 2 (27.6)"); "" if unknown."""
        dev = self._devices.get(device)
        if dev is None:
            return ""
        parts = []
        for signal, state in dev.series.items():
            a = state.anomaly
            if a is None or not a.silent or not a.modes or not state.history:
                continue
            value = state.history[-1][1]
            ranked = sorted(a.modes, key=lambda m: m.centre)
            nearest = min(range(len(ranked)), key=lambda i: abs(ranked[i].centre - value))
            parts.append(f"{templates.safe_name(signal)}: level {nearest + 1} of {len(ranked)} ({value:g})")
        return "; ".join(parts)

    def device_history(
        self, device: str, first: Iterable[str] = (), limit: int = 0
    ) -> dict[str, list[tuple[float, float]]]:
        """The recent history of one device's signals (for diagnosing its alerts): those named in
        `first` (the alerted signal, the ones the fault knowledge asks about), then the others, at
        most `limit` in all (0: no limit). A device with hundreds of signals then costs a diagnosis
        bounded work, whatever a sender invents."""
        dev = self._devices.get(device)
        if dev is None:
            return {}
        out: dict[str, list[tuple[float, float]]] = {}
        for signal in first:
            state = dev.series.get(signal)
            if state is not None:
                out[signal] = list(state.history)
        for signal, state in dev.series.items():
            if limit and len(out) >= limit:
                break
            if signal not in out:
                out[signal] = list(state.history)
        return out

    def restore_firing(self, alert: Alert) -> None:
        """After a restart: the rule that raised a persisted firing alert starts out firing,
        so it resolves (instead of firing again) when the signal is back to normal."""
        if alert.signal == DEVICE_SIGNAL and alert.rule == STALE_RULE:
            dev = self._devices.setdefault(alert.device, _DeviceState())
            dev.stale_firing, dev.stale_onset = True, alert.onset_ts
            return
        state = self._state(alert.device, alert.signal, numeric=True)
        if state is None:
            return
        for series in state.rule_series:
            if series.rule.id == alert.rule:
                series.firing = alert.severity
                series.onset_ts = alert.onset_ts
            elif series.rule.id + INTERMITTENT_SUFFIX == alert.rule:
                series.intermittent_firing, series.intermittent_onset_ts = True, alert.onset_ts
                series.last_excursion_ts = alert.ts
        if alert.rule == ANOMALY_RULE and state.anomaly is not None:
            state.anomaly.firing, state.anomaly.onset_ts = True, alert.onset_ts
        health = state.health
        if health is not None:
            if alert.rule == IMPLAUSIBLE_RULE:
                health.implausible_firing, health.implausible_onset = True, alert.onset_ts
            elif alert.rule == STUCK_RULE:
                health.stuck_firing, health.stuck_onset = True, alert.onset_ts
                health.flat_value = alert.value
            elif alert.rule == STALE_RULE:
                health.stale_firing, health.stale_onset = True, alert.onset_ts

    def learned_state(self) -> list[dict[str, object]]:
        """What the adaptive detectors have learned (anomaly modes, relative baselines, drift
        references), so a restart does not relearn a fault as the new normal."""
        out: list[dict[str, object]] = []
        for (device, signal), state in self._series.items():
            item: dict[str, object] = {"device": device, "signal": signal}
            if state.anomaly is not None:
                learned = state.anomaly.to_state()
                if learned is not None:
                    item["anomaly"] = learned
            baselines = {
                s.rule.id: [s.baseline, s.baseline_n]
                for s in state.rule_series
                if s.baseline is not None and s.rule.kind is RuleKind.RELATIVE
            }
            if baselines:
                item["baselines"] = baselines
            drift = {
                s.rule.id: [s.baseline, s.ewma, s.ewma_ts]
                for s in state.rule_series
                if s.rule.kind is RuleKind.DRIFT and s.reference_done
            }
            if drift:
                item["drift"] = drift
            if len(item) > 2:
                out.append(item)
        return out

    def restore_learned(self, items: list[dict[str, object]]) -> None:
        for item in items:
            device, signal = str(item["device"]), str(item["signal"])
            state = self._state(device, signal, numeric=True)
            if state is None:
                continue
            anomaly = item.get("anomaly")
            if state.anomaly is not None and anomaly is not None:
                state.anomaly.restore(anomaly)
            baselines = item.get("baselines")
            if isinstance(baselines, dict):
                for series in state.rule_series:
                    saved = baselines.get(series.rule.id)
                    if isinstance(saved, list) and len(saved) == 2 and saved[0] is not None:
                        series.baseline, series.baseline_n = float(saved[0]), int(saved[1])
            drift = item.get("drift")
            if isinstance(drift, dict):
                for series in state.rule_series:
                    saved = drift.get(series.rule.id)
                    if isinstance(saved, list) and len(saved) == 3:
                        series.baseline, series.ewma, series.ewma_ts = (float(x) for x in saved)
                        series.reference_done = True

    def process(self, sample: Sample) -> list[Finding]:
        findings: list[Finding] = []
        device = sample.device
        ts = sample.ts
        clock_ts = min(ts, sample.received_ts + CLOCK_AHEAD_OF_ARRIVAL_S)
        if clock_ts > self._clock:
            self._clock = clock_ts
        dev = self._devices.get(device)
        if dev is not None:
            self._note_device_sample(dev, sample, findings)
        series_map = self._series
        isfinite = math.isfinite
        for signal, raw in sample.signals.items():
            if type(raw) is float:  # what the codec hands over for every number
                value, numeric = raw, True
            elif isinstance(raw, bool):
                value = 1.0 if raw else 0.0
                numeric = False
            else:
                value, numeric = float(raw), True
            if not isfinite(value):
                continue
            key = (device, signal)
            state = series_map.get(key)
            if state is not None:
                series_map.move_to_end(key)  # least recently updated first, for `_evict_idle`
            else:
                state = self._state(device, signal, numeric)
                if state is None:
                    continue
            if ts < state.last_ts:
                if state.last_ts - ts <= NEW_EPOCH_BACKWARD_S:
                    self.late_samples += 1  # reordered: its durations would be wrong
                    continue
                state = self._new_epoch(device, signal, numeric)
            health = state.health
            if health is not None:
                if state.last_ts > -math.inf:
                    health.note_interval(ts - state.last_ts)
                state.last_ts = ts
                if health.stale_firing:
                    health.stale_firing = False
                    back = Transition(False, health.severity, 0.0, health.stale_onset, value, {})
                    findings.append(self._health_finding(sample, signal, value, STALE_RULE, back))
                plausible, t = health.check_plausible(value, ts)
                if t is not None:
                    findings.append(self._health_finding(sample, signal, value, IMPLAUSIBLE_RULE, t))
                if not plausible:
                    continue  # a broken sensor's reading says nothing about the machine
                if health.kind.stuck_for_s:
                    stuck, candidate = health.check_flat(value, ts)
                    if health.last_change_ts == ts:
                        self._note_change(device, signal, ts)
                    if candidate and self._others_moving(device, signal, ts):
                        stuck = health.fire_stuck(value)
                    if stuck is not None:
                        findings.append(self._health_finding(sample, signal, value, STUCK_RULE, stuck))
            state.last_ts = ts
            state.history.append((ts, value))
            anomaly = state.anomaly
            running_level = self._running_level(state) if anomaly is not None and anomaly.silent else None
            for series in state.rule_series:
                if running_level is not None and series.rule.kind is RuleKind.RELATIVE:
                    if running_level < 0:
                        continue  # a mode signal still learning its levels: no normal to compare with yet
                    series.baseline, series.baseline_n = (
                        running_level,
                        max(series.baseline_n, series.rule.warmup_samples),
                    )
                transition = series.update(value, ts)
                if transition:
                    findings.append(self._rule_finding(sample, signal, value, series.rule, transition))
                if series.intermittent is not None:
                    findings.append(self._intermittent_finding(sample, signal, value, series.rule, series.intermittent))
            if anomaly is not None:
                dev = dev or self._devices[device]
                if anomaly.silent:
                    transition = anomaly.update(value, ts)
                    if anomaly.novel_since is not None:  # a mode signal reached a new level: a new operating mode
                        dev.mode_change_ts, anomaly.novel_since = anomaly.novel_since, None
                    if signal == dev.mode_signal:
                        dev.mode_index, dev.mode_moving = anomaly.current_mode, anomaly.pending
                else:
                    young = dev.mode_change_ts is not None and ts - dev.mode_change_ts < MODE_YOUNG_S
                    hold_s = MODE_WAIT_S if dev.has_mode_signal else 0.0
                    transition = anomaly.update(
                        value, ts, dev.mode_change_ts, hold_s, dev.mode_index, young, dev.mode_moving
                    )
                if transition and not anomaly.silent:
                    findings.append(self._anomaly_finding(sample, signal, value, transition))
        dev = dev or self._devices.get(device)
        if dev is not None and dev.last_ts < ts:
            if dev.last_ts > -math.inf:
                self._note_interval(dev, ts - dev.last_ts)
            dev.last_ts = ts
            dev.seen_clock = self._clock
        if dev is not None and ts >= dev.next_stale_check:
            dev.next_stale_check = ts + STALE_CHECK_EVERY_S
            self._check_stale_signals(device, dev, sample, findings)
        if self._clock >= self._next_device_check:
            self._next_device_check = self._clock + STALE_CHECK_EVERY_S
            self._check_stale_devices(findings)
        if self._disabled and findings:
            findings = [f for f in findings if f.rule not in self._disabled]
        return findings

    # -- sensor health helpers --------------------------------------------------------------

    def _note_device_sample(self, dev: _DeviceState, sample: Sample, findings: list[Finding]) -> None:
        dev.seen_clock = self._clock
        if dev.stale_firing:
            dev.stale_firing = False
            t = Transition(False, Severity.WARNING, 0.0, dev.stale_onset, 0.0, {})
            findings.append(self._stale_finding(sample.device, DEVICE_SIGNAL, sample.ts, t, 0.0))

    @staticmethod
    def _note_interval(dev: _DeviceState, dt_s: float) -> None:
        dev.intervals += 1
        dev.interval_s = dt_s if dev.intervals == 1 else dev.interval_s + 0.1 * (dt_s - dev.interval_s)

    @staticmethod
    def _running_level(state: _SignalState) -> float | None:
        """For a mode signal with a `relative` rule (motor current): its highest level learned
        while learning (-1 until then), so a load/unload machine's normal is its loaded current,
        not the average or the unloaded one. None: the rule keeps its own learned baseline."""
        anomaly = state.anomaly
        if anomaly is None or not anomaly.silent:
            return None
        if not anomaly.modes:
            return -1.0
        return max(mode.centre for mode in anomaly.modes[: anomaly.fitted_modes])

    def _note_change(self, device: str, signal: str, ts: float) -> None:
        dev = self._devices[device]
        if signal != dev.last_change_signal:
            dev.other_change_ts, dev.last_change_signal = dev.last_change_ts, signal
        dev.last_change_ts = ts

    def _others_moving(self, device: str, signal: str, ts: float) -> bool:
        """Another signal of the device changed value within the last minute."""
        dev = self._devices.get(device)
        if dev is None:
            return False
        latest_other = dev.other_change_ts if dev.last_change_signal == signal else dev.last_change_ts
        return latest_other >= ts - MOVING_WITHIN_S

    def _check_stale_signals(self, device: str, dev: _DeviceState, sample: Sample, findings: list[Finding]) -> None:
        """Signals of a reporting device that stopped coming."""
        ts = sample.ts
        watched = 0.0
        for signal, state in dev.series.items():
            health = state.health
            if health is None:
                continue
            allowed = health.allowed_silence_s()
            if allowed is None:
                continue
            watched = max(watched, allowed)
            if not health.stale_firing and ts - state.last_ts > allowed:
                health.stale_firing, health.stale_onset = True, state.last_ts
                t = Transition(True, health.severity, allowed, state.last_ts, ts - state.last_ts, {})
                findings.append(self._stale_finding(device, signal, ts, t, health.interval_s))
        dev.stale_allowed_s = watched

    def _check_stale_devices(self, findings: list[Finding]) -> None:
        """Devices silent while the event clock moves on (other devices report)."""
        clock = self._clock
        for device, dev in self._devices.items():
            if dev.stale_firing or not dev.stale_allowed_s or dev.intervals < 10:
                continue
            allowed = max(dev.stale_allowed_s, 10 * dev.interval_s)
            if clock - dev.seen_clock > allowed:
                dev.stale_firing, dev.stale_onset = True, dev.last_ts
                t = Transition(True, Severity.WARNING, allowed, dev.last_ts, clock - dev.seen_clock, {})
                findings.append(self._stale_finding(device, DEVICE_SIGNAL, clock, t, dev.interval_s))

    # -- series bookkeeping ---------------------------------------------------------------------

    def _new_epoch(self, device: str, signal: str, numeric: bool) -> _SignalState:
        """Forget the series so a replayed trace is judged exactly like the live one."""
        old = self._drop(device, signal)
        state = self._state(device, signal, numeric)
        assert state is not None  # the slot was just freed
        for old_series, new_series in zip(old.rule_series, state.rule_series, strict=True):
            if old_series.firing is not None:  # still firing in the policy: let it resolve
                new_series.firing, new_series.onset_ts = old_series.firing, old_series.onset_ts
            if old_series.intermittent_firing:
                new_series.intermittent_firing = True
                new_series.intermittent_onset_ts = old_series.intermittent_onset_ts
        if old.anomaly is not None and state.anomaly is not None and old.anomaly.firing:
            state.anomaly.firing, state.anomaly.onset_ts = True, old.anomaly.onset_ts
        if old.health is not None and state.health is not None:
            h, o = state.health, old.health
            h.implausible_firing, h.implausible_onset = o.implausible_firing, o.implausible_onset
            h.stuck_firing, h.stuck_onset, h.flat_value = o.stuck_firing, o.stuck_onset, o.flat_value
        self.new_epochs += 1
        return state

    def _drop(self, device: str, signal: str) -> _SignalState:
        state = self._series.pop((device, signal))
        dev = self._devices.get(device)
        if dev is not None:
            dev.series.pop(signal, None)
            if not dev.series and not dev.stale_firing:
                del self._devices[device]
        return state

    def is_active(self, device: str, signal: str, rule: str) -> bool:
        """Whether the condition behind (device, signal, rule) holds now (not clearing)."""
        if signal == DEVICE_SIGNAL:
            dev = self._devices.get(device)
            return dev is not None and dev.stale_firing
        state = self._series.get((device, signal))
        if state is None:
            return False
        if rule == ANOMALY_RULE:
            return state.anomaly is not None and state.anomaly.firing and state.anomaly.normal_since is None
        health = state.health
        if health is not None and rule in (IMPLAUSIBLE_RULE, STUCK_RULE, STALE_RULE):
            return {
                IMPLAUSIBLE_RULE: health.implausible_firing and health.good_since is None,
                STUCK_RULE: health.stuck_firing,
                STALE_RULE: health.stale_firing,
            }[rule]
        if rule.endswith(INTERMITTENT_SUFFIX):
            base = rule[: -len(INTERMITTENT_SUFFIX)]
            return any(s.rule.id == base and s.intermittent_firing for s in state.rule_series)
        return any(s.rule.id == rule and s.firing is not None and s.clear_since is None for s in state.rule_series)

    def _state(self, device: str, signal: str, numeric: bool) -> _SignalState | None:
        key = (device, signal)
        state = self._series.get(key)
        if state is not None:
            self._series.move_to_end(key)
            return state
        dev = self._devices.get(device)
        if dev is not None and len(dev.series) >= self._settings.max_series_per_device:
            self.refused_series += 1  # this device's own cap: others keep their state
            return None
        if len(self._series) >= self._settings.max_tracked_series and not self._evict_idle():
            self.refused_series += 1
            return None
        rules = self.rules_for(signal)
        kind = self._kinds.kind_for(signal) if numeric else None
        anomaly = None
        silent = kind is not None and kind.role == "mode"
        unruled = all(rule.kind is RuleKind.DRIFT for rule in rules)
        if numeric and self._settings.anomaly_enabled and (silent or unruled):
            anomaly = AnomalySeries(
                warmup_samples=self._settings.anomaly_warmup_samples,
                z_threshold=self._settings.anomaly_z_threshold,
                for_s=self._settings.anomaly_for_s,
                min_samples=self._settings.anomaly_min_samples,
                learn_s=self._settings.anomaly_learn_s,
                transition_s=self._settings.anomaly_transition_s,
                silent=silent,
            )
        state = _SignalState(
            rule_series=[RuleSeries(rule) for rule in rules],
            anomaly=anomaly,
            history=deque(maxlen=self._settings.history_samples),
            last_ts=-math.inf,
            health=SignalHealth(kind) if kind is not None else None,
        )
        self._series[key] = state
        if dev is None:
            dev = self._devices[device] = _DeviceState()
        dev.series[signal] = state
        if silent and not dev.has_mode_signal:
            dev.has_mode_signal, dev.mode_signal = True, signal
        return state

    def _evict_idle(self) -> bool:
        """Make room by forgetting the least recently updated series if its device has been
        silent for `series_idle_evict_s` of event time and nothing about it is firing or pending."""
        key, state = next(iter(self._series.items()))
        dev = self._devices.get(key[0])
        idle = dev is None or self._clock - dev.seen_clock > self._settings.series_idle_evict_s
        if not idle or state.busy:
            return False
        self._drop(*key)
        self.evicted_series += 1
        return True

    # -- findings ---------------------------------------------------------------------------------

    def _rule_finding(self, sample: Sample, signal: str, value: float, rule: Rule, t: Transition) -> Finding:
        values = {
            "value": value,
            "limit": t.limit,
            "severity": t.severity.label,
            "unit": rule.unit,
            "label": rule.label or templates.safe_name(signal),
            "device": templates.safe_name(sample.device),
            "signal": templates.safe_name(signal),
            "position": templates.wheel_position(signal),
            "rate": t.context.get("rate", 0.0),
            "ratio": t.context.get("ratio", 0.0),
            "baseline": t.context.get("baseline", 0.0),
            "duration_s": t.context.get("duration_s", 0.0),
            "delta": t.context.get("delta", 0.0),
            "average": t.context.get("average", 0.0),
        }
        label = rule.label or templates.safe_name(signal)
        if t.firing:
            if rule.kind is RuleKind.DRIFT:
                fallback = templates.drift_summary(
                    label, t.context.get("average", value), t.context.get("baseline", 0.0), rule.unit
                )
            else:
                fallback = (
                    f"{label} is {value:g} {rule.unit}, beyond the {t.limit:g} {rule.unit} {t.severity.label} limit."
                )
            summary = templates.render(rule.summary, values, fallback)
            action = rule.action or "Inspect the equipment."
        else:
            summary = templates.resolved_summary(label, value, rule.unit)
            action = templates.RESOLVED_ACTION
        return self._finding(sample.device, signal, rule.id, t, value, sample.ts, summary, action, rule.notes)

    def _intermittent_finding(self, sample: Sample, signal: str, value: float, rule: Rule, t: Transition) -> Finding:
        label = rule.label or templates.safe_name(signal)
        if t.firing:
            summary = templates.intermittent_summary(
                label,
                int(t.context.get("count", rule.intermittent_count)),
                t.limit,
                rule.unit,
                rule.intermittent_window_s,
            )
            action = rule.action or "Inspect the equipment."
        else:
            summary = templates.intermittent_resolved(label, rule.intermittent_window_s)
            action = templates.RESOLVED_ACTION
        rule_id = rule.id + INTERMITTENT_SUFFIX
        return self._finding(sample.device, signal, rule_id, t, value, sample.ts, summary, action, rule.notes)

    def _health_finding(self, sample: Sample, signal: str, value: float, rule: str, t: Transition) -> Finding:
        name = templates.safe_name(signal)
        if rule == IMPLAUSIBLE_RULE:
            summary = (
                templates.implausible_summary(
                    name, value, t.context.get("min", -math.inf), t.context.get("max", math.inf)
                )
                if t.firing
                else f"{name} reads plausible values again ({value:g})."
            )
        elif rule == STALE_RULE:
            summary = templates.STALE_RESOLVED
        elif t.firing:
            summary = templates.stuck_summary(name, value, sample.ts - t.onset_ts)
        else:
            summary = f"{name} is changing again ({value:g})."
        action = templates.SENSOR_ACTION if t.firing else templates.RESOLVED_ACTION
        return self._finding(sample.device, signal, rule, t, value, sample.ts, summary, action, templates.SENSOR_NOTES)

    def _stale_finding(self, device: str, signal: str, ts: float, t: Transition, interval_s: float) -> Finding:
        if t.firing:
            summary = templates.stale_summary(
                templates.safe_name(signal) if signal != DEVICE_SIGNAL else "", t.measure, interval_s
            )
            action = templates.STALE_ACTION
        else:
            summary = templates.STALE_RESOLVED
            action = templates.RESOLVED_ACTION
        return self._finding(device, signal, STALE_RULE, t, 0.0, ts, summary, action, templates.SENSOR_NOTES)

    def _anomaly_finding(self, sample: Sample, signal: str, value: float, t: Transition) -> Finding:
        baseline = t.context.get("baseline", 0.0)
        name = templates.safe_name(signal)
        if t.firing:
            summary = templates.anomaly_summary(name, value, baseline, t.context.get("z", 0.0))
            action = templates.ANOMALY_ACTION
        else:
            summary = f"{name} is back within its learned normal range ({value:g})."
            action = templates.RESOLVED_ACTION
        notes = f"Learned normal about {baseline:.4g} with typical variation {t.context.get('spread', 0.0):.3g}."
        mode = self.device_mode(sample.device)
        if mode:
            notes += f" Operating mode: {mode}."
        return self._finding(sample.device, signal, ANOMALY_RULE, t, value, sample.ts, summary, action, notes)

    @staticmethod
    def _finding(
        device: str,
        signal: str,
        rule: str,
        t: Transition,
        value: float,
        ts: float,
        summary: str,
        action: str,
        notes: str,
    ) -> Finding:
        return Finding(
            device=device,
            signal=signal,
            rule=rule,
            severity=t.severity,
            firing=t.firing,
            value=value,
            ts=ts,
            onset_ts=t.onset_ts,
            summary=summary,
            action=action,
            notes=notes,
        )

"""Routes decoded samples to the rules and anomaly detectors that watch each signal and
turns their transitions into `Finding`s with template text. Pure; bounded memory."""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass

from edge_slm.config import DetectSettings
from edge_slm.detect import templates
from edge_slm.detect.anomaly import AnomalySeries
from edge_slm.detect.evaluate import RuleSeries, Transition
from edge_slm.detect.rules import Rule, signal_pattern
from edge_slm.events import Alert, Finding, Sample

ANOMALY_RULE = "anomaly"
# Event time going back by more than this starts a new epoch for the series (a replayed or
# restarted trace); smaller steps back are reordered samples and are skipped.
NEW_EPOCH_BACKWARD_S = 30.0


@dataclass
class _SignalState:
    rule_series: list[RuleSeries]
    anomaly: AnomalySeries | None
    history: deque[tuple[float, float]]
    last_ts: float


class Detector:
    def __init__(self, rules: Sequence[Rule], settings: DetectSettings) -> None:
        self._settings = settings
        self._exact: dict[str, list[Rule]] = {}
        self._patterns: list[tuple[Rule, object]] = []
        for rule in rules:
            if "*" in rule.signal:
                self._patterns.append((rule, signal_pattern(rule.signal)))
            else:
                self._exact.setdefault(rule.signal, []).append(rule)
        self._rules_for_signal: dict[str, list[Rule]] = {}
        self._series: OrderedDict[tuple[str, str], _SignalState] = OrderedDict()
        self.evicted_series = 0
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

    def device_history(self, device: str) -> dict[str, list[tuple[float, float]]]:
        """The recent history of every signal of one device (for diagnosing its alerts)."""
        return {signal: list(state.history) for (dev, signal), state in self._series.items() if dev == device}

    def restore_firing(self, alert: Alert) -> None:
        """After a restart: the rule that raised a persisted firing alert starts out firing,
        so it resolves (instead of firing again) when the signal is back to normal."""
        state = self._state(alert.device, alert.signal, numeric=True)
        for series in state.rule_series:
            if series.rule.id == alert.rule:
                series.firing = alert.severity
                series.onset_ts = alert.onset_ts
        if alert.rule == ANOMALY_RULE and state.anomaly is not None:
            state.anomaly.firing, state.anomaly.onset_ts = True, alert.onset_ts

    def learned_state(self) -> list[dict[str, object]]:
        """What the adaptive detectors have learned (anomaly normals, relative baselines),
        so a restart does not relearn a fault as the new normal."""
        out: list[dict[str, object]] = []
        for (device, signal), state in self._series.items():
            item: dict[str, object] = {"device": device, "signal": signal}
            if state.anomaly is not None and state.anomaly.n >= state.anomaly.warmup_samples:
                a = state.anomaly
                item["anomaly"] = [a.n, a.mean, a.var, a.m2]
            baselines = {s.rule.id: [s.baseline, s.baseline_n] for s in state.rule_series if s.baseline is not None}
            if baselines:
                item["baselines"] = baselines
            if len(item) > 2:
                out.append(item)
        return out

    def restore_learned(self, items: list[dict[str, object]]) -> None:
        for item in items:
            device, signal = str(item["device"]), str(item["signal"])
            state = self._state(device, signal, numeric=True)
            anomaly = item.get("anomaly")
            if state.anomaly is not None and isinstance(anomaly, list) and len(anomaly) == 4:
                state.anomaly.n = int(anomaly[0])
                state.anomaly.mean, state.anomaly.var, state.anomaly.m2 = (float(x) for x in anomaly[1:])
            baselines = item.get("baselines")
            if isinstance(baselines, dict):
                for series in state.rule_series:
                    saved = baselines.get(series.rule.id)
                    if isinstance(saved, list) and len(saved) == 2 and saved[0] is not None:
                        series.baseline, series.baseline_n = float(saved[0]), int(saved[1])

    def process(self, sample: Sample) -> list[Finding]:
        findings: list[Finding] = []
        for signal, raw in sample.signals.items():
            if isinstance(raw, bool):
                value = 1.0 if raw else 0.0
                numeric = False
            else:
                value, numeric = float(raw), True
            if not math.isfinite(value):
                continue
            state = self._state(sample.device, signal, numeric)
            if sample.ts < state.last_ts:
                if state.last_ts - sample.ts <= NEW_EPOCH_BACKWARD_S:
                    self.late_samples += 1  # reordered: its durations would be wrong
                    continue
                state = self._new_epoch(sample.device, signal, numeric)
            state.last_ts = sample.ts
            state.history.append((sample.ts, value))
            for series in state.rule_series:
                transition = series.update(value, sample.ts)
                if transition:
                    findings.append(self._rule_finding(sample, signal, value, series.rule, transition))
            if state.anomaly is not None:
                transition = state.anomaly.update(value, sample.ts)
                if transition:
                    findings.append(self._anomaly_finding(sample, signal, value, transition))
        return findings

    def _new_epoch(self, device: str, signal: str, numeric: bool) -> _SignalState:
        """Forget the series so a replayed trace is judged exactly like the live one."""
        old = self._series.pop((device, signal))
        state = self._state(device, signal, numeric)
        for old_series, new_series in zip(old.rule_series, state.rule_series, strict=True):
            if old_series.firing is not None:  # still firing in the policy: let it resolve
                new_series.firing, new_series.onset_ts = old_series.firing, old_series.onset_ts
        if old.anomaly is not None and state.anomaly is not None and old.anomaly.firing:
            state.anomaly.firing, state.anomaly.onset_ts = True, old.anomaly.onset_ts
        self.new_epochs += 1
        return state

    def is_active(self, device: str, signal: str, rule: str) -> bool:
        """Whether the condition behind (device, signal, rule) holds now (not clearing)."""
        state = self._series.get((device, signal))
        if state is None:
            return False
        if rule == ANOMALY_RULE:
            return state.anomaly is not None and state.anomaly.firing and state.anomaly.normal_since is None
        return any(s.rule.id == rule and s.firing is not None and s.clear_since is None for s in state.rule_series)

    def _state(self, device: str, signal: str, numeric: bool) -> _SignalState:
        key = (device, signal)
        state = self._series.get(key)
        if state is not None:
            self._series.move_to_end(key)
            return state
        rules = self.rules_for(signal)
        anomaly = None
        if not rules and numeric and self._settings.anomaly_enabled:
            anomaly = AnomalySeries(
                warmup_samples=self._settings.anomaly_warmup_samples,
                z_threshold=self._settings.anomaly_z_threshold,
                for_s=self._settings.anomaly_for_s,
                min_samples=self._settings.anomaly_min_samples,
            )
        state = _SignalState(
            rule_series=[RuleSeries(rule) for rule in rules],
            anomaly=anomaly,
            history=deque(maxlen=self._settings.history_samples),
            last_ts=-math.inf,
        )
        self._series[key] = state
        while len(self._series) > self._settings.max_tracked_series:
            self._series.popitem(last=False)  # least recently updated; a firing alert stays in the policy
            self.evicted_series += 1
        return state

    def _rule_finding(self, sample: Sample, signal: str, value: float, rule: Rule, t: Transition) -> Finding:
        values = {
            "value": value,
            "limit": t.limit,
            "severity": t.severity.label,
            "unit": rule.unit,
            "label": rule.label or signal,
            "device": sample.device,
            "signal": signal,
            "position": templates.wheel_position(signal),
            "rate": t.context.get("rate", 0.0),
            "ratio": t.context.get("ratio", 0.0),
            "baseline": t.context.get("baseline", 0.0),
            "duration_s": t.context.get("duration_s", 0.0),
        }
        if t.firing:
            label = rule.label or signal
            fallback = f"{label} is {value:g} {rule.unit}, beyond the {t.limit:g} {rule.unit} {t.severity.label} limit."
            summary = templates.render(rule.summary, values, fallback)
            action = rule.action or "Inspect the equipment."
        else:
            summary = templates.resolved_summary(rule.label or signal, value, rule.unit)
            action = templates.RESOLVED_ACTION
        return Finding(
            device=sample.device,
            signal=signal,
            rule=rule.id,
            severity=t.severity,
            firing=t.firing,
            value=value,
            ts=sample.ts,
            onset_ts=t.onset_ts,
            summary=summary,
            action=action,
            notes=rule.notes,
        )

    def _anomaly_finding(self, sample: Sample, signal: str, value: float, t: Transition) -> Finding:
        baseline = t.context.get("baseline", 0.0)
        if t.firing:
            summary = templates.anomaly_summary(signal, value, baseline, t.context.get("z", 0.0))
            action = templates.ANOMALY_ACTION
        else:
            summary = f"{signal} is back within its learned normal range ({value:g})."
            action = templates.RESOLVED_ACTION
        return Finding(
            device=sample.device,
            signal=signal,
            rule=ANOMALY_RULE,
            severity=t.severity,
            firing=t.firing,
            value=value,
            ts=sample.ts,
            onset_ts=t.onset_ts,
            summary=summary,
            action=action,
            notes=f"Learned normal about {baseline:.4g} with typical variation {t.context.get('spread', 0.0):.3g}.",
        )

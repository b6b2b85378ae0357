"""The latest value of every known signal per device, for "is everything ok" and "the temperature
is now 90 °C". Fed from decoded samples on the event loop; read from the intent worker.

Only signals with a spoken name (`detect.spoken`) are kept: those are the only ones a reply names,
and it bounds memory against a sender inventing signal names. Devices and signals per device are
capped too (oldest device forgotten first).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

from edge_slm.detect.spoken import spoken_signal
from edge_slm.events import Sample

MAX_DEVICES = 256
MAX_SIGNALS_PER_DEVICE = 64
MAX_CACHED_NAMES = 4096

LatestReading = tuple[float, float]  # (value, wall-clock time it arrived)


class LatestValues:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._devices: collections.OrderedDict[str, dict[str, LatestReading]] = collections.OrderedDict()
        # signal name -> whether it has a spoken name: asked for every signal of every message, and
        # a tire-position name costs a regex match. Bounded: invented names only cost the match again.
        self._kept: dict[str, bool] = {}

    def update(self, sample: Sample) -> None:
        now = self._clock()
        kept = self._kept
        known = {}
        for name, value in sample.signals.items():
            keep = kept.get(name)
            if keep is None:
                keep = spoken_signal(name) is not None
                if len(kept) >= MAX_CACHED_NAMES:
                    kept.clear()
                kept[name] = keep
            if keep and not isinstance(value, bool):
                known[name] = (float(value), now)
        if not known:
            return
        with self._lock:
            signals = self._devices.pop(sample.device, None) or {}
            for name, reading in known.items():
                if name in signals or len(signals) < MAX_SIGNALS_PER_DEVICE:
                    signals[name] = reading
            self._devices[sample.device] = signals
            while len(self._devices) > MAX_DEVICES:
                self._devices.popitem(last=False)

    def for_device(self, device: str | None) -> dict[str, LatestReading]:
        """signal -> (value, arrival time); for every device merged (newest wins) when `device` is None."""
        with self._lock:
            if device is not None:
                return dict(self._devices.get(device, {}))
            merged: dict[str, LatestReading] = {}
            for signals in self._devices.values():
                for name, reading in signals.items():
                    if name not in merged or reading[1] > merged[name][1]:
                        merged[name] = reading
            return merged

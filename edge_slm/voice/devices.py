"""`edge-slm devices`: the input devices PortAudio sees, with the rates each accepts for recording."""

from __future__ import annotations

from typing import Any

from edge_slm.voice.audio import import_sounddevice, rescan_devices

PROBE_RATES_HZ: tuple[int, ...] = (8000, 16000, 22050, 32000, 44100, 48000)


def list_input_devices() -> list[dict[str, Any]]:
    """One dict per input-capable device: name, index, host_api, channels, default_rate_hz, rates_hz
    (the probe rates it accepts for 16-bit mono capture), default (True for the system default input)."""
    sd = import_sounddevice()
    rescan_devices(sd)
    try:
        default_in = sd.default.device[0]
    except Exception:
        default_in = -1
    hostapis = sd.query_hostapis()
    devices: list[dict[str, Any]] = []
    for info in sd.query_devices():
        if int(info.get("max_input_channels", 0)) < 1:
            continue
        index = int(info["index"])
        rates = []
        for rate in PROBE_RATES_HZ:
            try:
                sd.check_input_settings(device=index, channels=1, dtype="int16", samplerate=rate)
                rates.append(rate)
            except Exception:
                continue
        devices.append(
            {
                "name": str(info["name"]),
                "index": index,
                "host_api": str(hostapis[info["hostapi"]]["name"]),
                "channels": int(info["max_input_channels"]),
                "default_rate_hz": int(info.get("default_samplerate") or 0),
                "rates_hz": rates,
                "default": index == default_in,
            }
        )
    return devices

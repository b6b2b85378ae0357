"""`edge-slm devices`: the input devices PortAudio sees, with the rates each accepts for recording."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from edge_slm.errors import EdgeSlmError
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


def cmd_devices(out: TextIO | None = None) -> int:
    """Print the input devices (for `voice.input_device`: a name or an index); exit code 0, 3 on error."""
    out = out or sys.stdout
    try:
        devices = list_input_devices()
    except EdgeSlmError as err:
        print(err.message, file=sys.stderr)
        return err.exit_code
    if not devices:
        print("no input devices found (is a microphone connected, or PulseAudio/PipeWire running?)", file=out)
        return 0
    print(f"{'index':>5}  {'default':7}  {'name':32}  {'host API':10}  rates (Hz)", file=out)
    for d in devices:
        rates = ",".join(str(r) for r in d["rates_hz"]) or "-"
        mark = "*" if d["default"] else ""
        print(f"{d['index']:>5}  {mark:7}  {d['name'][:32]:32}  {d['host_api'][:10]:10}  {rates}", file=out)
    print('set voice.input_device to a name (e.g. "pulse") or an index; "" means the default (*)', file=out)
    return 0

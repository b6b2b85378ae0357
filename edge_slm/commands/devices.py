"""`edge-slm devices`: audio input devices and their sample rates."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from edge_slm.errors import EdgeSlmError
from edge_slm.voice.devices import list_input_devices


def register(sub: Any) -> None:
    parser = sub.add_parser("devices", help="list audio input devices and their sample rates")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return list_devices()


def list_devices(out: TextIO | None = None) -> int:
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

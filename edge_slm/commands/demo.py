"""`edge-slm demo`: the whole system on this machine (see edge_slm/demo.py)."""

from __future__ import annotations

import argparse
from typing import Any

from edge_slm.commands.common import configure_logging


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "demo", help="the whole system on this machine: broker, daemon, simulated car and pump, voice commands"
    )
    parser.add_argument(
        "--duration", type=float, default=0.0, metavar="S", help="stop after S seconds (default: when the script ends)"
    )
    parser.add_argument("--no-model", action="store_true", help="template explanations only (no SLM)")
    parser.add_argument("--speed", type=float, default=20.0, help="simulated seconds per real second (default 20)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from edge_slm.demo import run_demo

    configure_logging(args.log_level or "warning")
    return run_demo(duration_s=args.duration, use_model=not args.no_model, speed=args.speed)

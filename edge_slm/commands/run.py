"""`edge-slm run`: the daemon, until SIGTERM/SIGINT (a second signal forces the exit)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from edge_slm.commands.common import add_config_flags, configure_logging, load_cli_settings
from edge_slm.errors import EXIT_OK


def register(sub: Any) -> None:
    parser = sub.add_parser("run", help="run the daemon until SIGTERM/SIGINT")
    add_config_flags(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = load_cli_settings(args)
    configure_logging(settings.log_level)
    from edge_slm.runtime import run_daemon

    asyncio.run(run_daemon(settings))
    return EXIT_OK

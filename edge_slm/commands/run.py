"""`edge-slm run`: the daemon, until SIGTERM/SIGINT (a second signal forces the exit)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import threading
from typing import TYPE_CHECKING, Any

from edge_slm.commands.common import add_config_flags, configure_logging, load_cli_settings
from edge_slm.config import Settings
from edge_slm.errors import EXIT_OK

if TYPE_CHECKING:
    from edge_slm.runtime import Daemon


def register(sub: Any) -> None:
    parser = sub.add_parser("run", help="run the daemon until SIGTERM/SIGINT")
    add_config_flags(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = load_cli_settings(args)
    configure_logging(settings.log_level)
    return run_until_signalled(settings)


def run_until_signalled(settings: Settings, daemon: Daemon | None = None) -> int:
    from edge_slm.runtime import run_daemon

    asyncio.run(run_daemon(settings, daemon))
    if any(t.name == "llm-load" and t.is_alive() for t in threading.enumerate()):
        # Stopped during a model load: do not wait for llama.cpp to finish reading the file.
        logging.shutdown()
        os._exit(EXIT_OK)
    return EXIT_OK

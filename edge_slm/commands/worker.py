"""`edge-slm worker`: serve pooled model requests from other nodes (see edge_slm/worker.py)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from edge_slm.commands.common import add_config_flags, configure_logging, load_cli_settings
from edge_slm.errors import EXIT_OK


def register(sub: Any) -> None:
    parser = sub.add_parser("worker", help="serve model requests for other nodes through the broker (pooled)")
    add_config_flags(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = load_cli_settings(args)
    configure_logging(settings.log_level)
    from edge_slm.llm.loader import load_engine
    from edge_slm.worker import run_worker

    engine = load_engine(settings)  # missing, corrupt or too large: exit 3 before connecting
    asyncio.run(run_worker(settings, engine))
    return EXIT_OK

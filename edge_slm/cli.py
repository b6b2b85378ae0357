"""Command line: parses the arguments, runs the chosen subcommand (edge_slm/commands/) and turns
errors into one stderr line and an exit code (CONTRACT §1). No logic lives here."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from edge_slm import __version__
from edge_slm.commands import COMMAND_MODULES
from edge_slm.errors import EXIT_CONFIG, EXIT_OK, EXIT_USAGE, EdgeSlmError


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line on stderr (CONTRACT §1), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="edge-slm", description="On-device SLM runtime: telemetry alerts and voice commands.")
    parser.add_argument("--version", action="version", version=f"edge-slm {__version__}")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="override log_level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # exits 2 on a usage error
    try:
        code: int = args.handler(args)
        return code
    except EdgeSlmError as err:
        print(f"edge-slm: {err.message}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:
        return EXIT_OK


__all__ = ["EXIT_CONFIG", "main"]

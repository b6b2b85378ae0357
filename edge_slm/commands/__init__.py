"""The `edge-slm` subcommands, one module each: `register(subparsers)` adds its parser and sets
`handler`, the function that runs it and returns the exit code. `cli.py` only parses and maps
errors to exit codes."""

from __future__ import annotations

from edge_slm.commands import check_config, demo, devices, intent, models, run, say, tune, worker

COMMAND_MODULES = (run, demo, check_config, intent, models, devices, worker, say, tune)

__all__ = ["COMMAND_MODULES"]

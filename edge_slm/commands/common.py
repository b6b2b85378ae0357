"""What every subcommand shares: the config flags, settings from them, and logging set-up."""

from __future__ import annotations

import argparse
import logging
import sys

from edge_slm.config import Settings, load_settings


def add_config_flags(parser: argparse.ArgumentParser, *, profile: bool = True) -> None:
    parser.add_argument("--config", metavar="FILE", help="site config TOML (default: $EDGE_SLM_CONFIG)")
    if profile:
        parser.add_argument("--profile", metavar="NAME", help="firmware profile (default: detected board)")


def load_cli_settings(args: argparse.Namespace, **cli_overrides: object) -> Settings:
    overrides: dict[str, object] = {}
    if getattr(args, "log_level", None):
        overrides["log_level"] = args.log_level
    overrides.update(cli_overrides)
    return load_settings(getattr(args, "config", None), getattr(args, "profile", None), cli_overrides=overrides)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )

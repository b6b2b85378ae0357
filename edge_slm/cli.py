"""Command line: argparse subcommands mapped to functions; errors become one stderr line
and an exit code (CONTRACT §1). No logic lives here."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from edge_slm import __version__
from edge_slm.config import Settings, load_settings, render_toml
from edge_slm.errors import EXIT_CONFIG, EXIT_OK, EXIT_USAGE, EdgeSlmError

log = logging.getLogger("edge_slm")


def _add_config_flags(parser: argparse.ArgumentParser, *, profile: bool = True) -> None:
    parser.add_argument("--config", metavar="FILE", help="site config TOML (default: $EDGE_SLM_CONFIG)")
    if profile:
        parser.add_argument("--profile", metavar="NAME", help="firmware profile (default: detected board)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="edge-slm", description="On-device SLM runtime: telemetry alerts and voice commands.")
    parser.add_argument("--version", action="version", version=f"edge-slm {__version__}")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="override log_level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    run = sub.add_parser("run", help="run the daemon until SIGTERM/SIGINT")
    _add_config_flags(run)

    demo = sub.add_parser(
        "demo", help="the whole system on this machine: broker, daemon, simulated car and pump, voice commands"
    )
    demo.add_argument(
        "--duration", type=float, default=0.0, metavar="S", help="stop after S seconds (default: when the script ends)"
    )
    demo.add_argument("--no-model", action="store_true", help="template explanations only (no SLM)")
    demo.add_argument("--speed", type=float, default=20.0, help="simulated seconds per real second (default 20)")

    check = sub.add_parser("check-config", help="validate and print the effective config")
    _add_config_flags(check)

    intent = sub.add_parser("intent", help="print the intent of TEXT as JSON (or of JSON lines on stdin with --batch)")
    _add_config_flags(intent)
    intent.add_argument("--batch", action="store_true", help='read JSON lines {"text": ...} on stdin')
    intent.add_argument("--no-model", action="store_true", help="grammar tier only")
    intent.add_argument("text", nargs="*", help="the command text")

    models = sub.add_parser("models", help="list, pull, inspect and quantize GGUF models")
    models_sub = models.add_subparsers(dest="models_command", metavar="ACTION", parser_class=_Parser)
    models_sub.required = True
    m_list = models_sub.add_parser("list", help="known models and whether they are in the cache")
    _add_config_flags(m_list)
    m_pull = models_sub.add_parser("pull", help="fetch a known model into the model cache")
    _add_config_flags(m_pull)
    m_pull.add_argument("name")
    m_inspect = models_sub.add_parser("inspect", help="print GGUF metadata and the memory estimate")
    _add_config_flags(m_inspect)
    m_inspect.add_argument(
        "path", nargs="?", default="", help="a GGUF file or a known model name (default: the configured model)"
    )
    m_quant = models_sub.add_parser("quantize", help="quantize a GGUF model")
    _add_config_flags(m_quant)
    m_quant.add_argument("src")
    m_quant.add_argument("dst")
    m_quant.add_argument("--type", dest="qtype", default="Q4_K_M")

    devices = sub.add_parser("devices", help="list audio input devices and their sample rates")
    del devices

    tune = sub.add_parser("tune", help="LoRA-tune the model on this site's rules and commands (needs [tune])")
    _add_config_flags(tune)
    from edge_slm.tune.cli import add_arguments as add_tune_arguments

    add_tune_arguments(tune)
    return parser


def _settings(args: argparse.Namespace, **cli_overrides: object) -> Settings:
    overrides: dict[str, object] = {}
    if getattr(args, "log_level", None):
        overrides["log_level"] = args.log_level
    overrides.update(cli_overrides)
    return load_settings(getattr(args, "config", None), getattr(args, "profile", None), cli_overrides=overrides)


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line on stderr (CONTRACT §1), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _configure_logging(settings.log_level)
    from edge_slm.runtime import run_daemon

    asyncio.run(run_daemon(settings))
    return EXIT_OK


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = _settings(args)
    from edge_slm.detect.rules import load_rules

    rules = load_rules(settings.detect.packs, settings.detect.disable_rules)  # site packs fail here, not at `run`
    from edge_slm.llm.models import check_reference

    if settings.model.enabled:
        check_reference(settings.model)
    sys.stdout.write(render_toml(settings))
    sys.stdout.write(f"# {len(rules)} rules: {', '.join(sorted(rule.id for rule in rules))}\n")
    return EXIT_OK


def cmd_intent(args: argparse.Namespace) -> int:
    overrides: dict[str, object] = {"model": {"enabled": False}} if args.no_model else {}
    settings = _settings(args, **overrides)
    _configure_logging(os.environ.get("EDGE_SLM_LOG_LEVEL", "warning"))
    text = " ".join(args.text).strip()
    if args.batch == bool(text):
        raise EdgeSlmError("intent: give either TEXT or --batch", exit_code=EXIT_USAGE)
    from edge_slm.intent.recognizer import run_intent_cli

    if settings.model.enabled and settings.intent.model_fallback:
        from edge_slm.llm.engine import check_model

        check_model(settings)  # a configured model that is missing or cannot fit is exit 3, as for `run`

    return run_intent_cli(settings, None if args.batch else text, args.batch, sys.stdin, sys.stdout)


def cmd_models(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _configure_logging(settings.log_level)
    from edge_slm.llm import cli_models

    action = args.models_command
    if action == "list":
        return cli_models.cmd_models_list(settings)
    if action == "pull":
        return cli_models.cmd_models_pull(settings, args.name)
    if action == "inspect":
        return cli_models.cmd_models_inspect(settings, args.path)
    return cli_models.cmd_models_quantize(settings, args.src, args.dst, args.qtype)


def cmd_devices(args: argparse.Namespace) -> int:
    from edge_slm.voice.devices import cmd_devices as list_devices

    return list_devices()


def cmd_tune(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _configure_logging(settings.log_level)
    from edge_slm.tune.cli import cmd_tune as run_tune

    return run_tune(settings, args)


def cmd_demo(args: argparse.Namespace) -> int:
    from edge_slm.demo import run_demo

    _configure_logging(args.log_level or "warning")
    return run_demo(duration_s=args.duration, use_model=not args.no_model, speed=args.speed)


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run,
    "demo": cmd_demo,
    "check-config": cmd_check_config,
    "intent": cmd_intent,
    "models": cmd_models,
    "devices": cmd_devices,
    "tune": cmd_tune,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 on a usage error
    try:
        return _COMMANDS[args.command](args)
    except EdgeSlmError as err:
        print(f"edge-slm: {err.message}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:
        return EXIT_OK


__all__ = ["EXIT_CONFIG", "main"]

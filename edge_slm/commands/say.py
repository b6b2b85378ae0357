"""`edge-slm say TEXT`: speak through the configured voice output (voice.tts, voice.output_device)."""

from __future__ import annotations

import argparse
from typing import Any

from edge_slm.commands.common import add_config_flags, configure_logging, load_cli_settings
from edge_slm.errors import EXIT_OK


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "say", help="speak TEXT through the configured voice output (voice.tts, voice.output_device)"
    )
    add_config_flags(parser)
    parser.add_argument("--tts", choices=["auto", "piper", "espeak"], help="override voice.tts")
    parser.add_argument("text", nargs="+", help="what to say")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = load_cli_settings(args)
    configure_logging(args.log_level or "warning")
    from edge_slm.voice.speaker import run_say

    v = settings.voice
    tts = args.tts or v.tts
    print(run_say(tts, v.output_device, " ".join(args.text), piper_voice=v.piper_voice, threads=v.tts_threads))
    return EXIT_OK

"""`edge-slm check-config`: validate and print the effective config (exit 3 naming the dotted key)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from edge_slm.commands.common import add_config_flags, load_cli_settings
from edge_slm.config import render_toml
from edge_slm.errors import EXIT_OK


def register(sub: Any) -> None:
    parser = sub.add_parser("check-config", help="validate and print the effective config")
    add_config_flags(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = load_cli_settings(args)
    from edge_slm.detect.rules import load_rules
    from edge_slm.llm.models import check_reference

    rules = load_rules(settings.detect.packs, settings.detect.disable_rules)  # site packs fail here, not at `run`
    if settings.model.enabled and settings.model.mode == "local":  # a pooled node loads no model
        check_reference(settings.model)
    sys.stdout.write(render_toml(settings))
    sys.stdout.write(f"# {len(rules)} rules: {', '.join(sorted(rule.id for rule in rules))}\n")
    from edge_slm.detect.knowledge import load_knowledge

    knowledge = load_knowledge(settings.detect.packs)  # and so do their [[causes]]
    causes = sum(len(knowledge.causes_for(rule)) for rule in knowledge.rules)
    sys.stdout.write(f"# {causes} fault causes for {len(knowledge.rules)} rules\n")
    return EXIT_OK

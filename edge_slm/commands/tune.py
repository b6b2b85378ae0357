"""`edge-slm tune`: generate data, train a LoRA adapter, score base vs tuned, install when it wins."""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_slm.commands.common import add_config_flags, configure_logging, load_cli_settings
from edge_slm.errors import EXIT_OK, DependencyMissing, ModelError

if TYPE_CHECKING:
    from edge_slm.config import Settings

log = logging.getLogger(__name__)

TRAINING_MODULES = ("torch", "transformers", "peft", "safetensors")


def register(sub: Any) -> None:
    parser = sub.add_parser("tune", help="LoRA-tune the model on this site's rules and commands (needs [tune])")
    add_config_flags(parser)
    add_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = load_cli_settings(args)
    configure_logging(settings.log_level)
    return cmd_tune(settings, args)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", metavar="DIR", help="run folder (default: {state_dir}/tune/{model})")
    parser.add_argument("--time-budget-s", type=float, default=3600.0, help="training stops after this (default 3600)")
    parser.add_argument("--max-steps", type=int, default=400, help="training steps at most (default 400)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--rank", type=int, default=16, help="LoRA rank (default 16)")
    parser.add_argument("--alpha", type=float, default=32.0, help="LoRA alpha (default 32)")
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    parser.add_argument("--commands-per-intent", type=int, default=150, help="training commands per intent")
    parser.add_argument("--explanations", type=int, default=400, help="training explanation examples")
    parser.add_argument("--eval-commands", type=int, default=150, help="held-out commands scored per model")
    parser.add_argument("--eval-explanations", type=int, default=40, help="held-out explanations scored per model")
    parser.add_argument("--blind", metavar="FILE", help="a labelled command set that is scored only (JSON lines)")
    parser.add_argument("--install-to", metavar="FILE", help="where a winning adapter goes (default: the state dir)")
    parser.add_argument("--no-install", action="store_true", help="score, but never install")
    parser.add_argument("--data-only", action="store_true", help="only write the generated examples")
    parser.add_argument("--seed", type=int, default=0)


def require_training_stack() -> None:
    missing = [m for m in TRAINING_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise DependencyMissing(f"edge-slm tune needs {', '.join(missing)}: pip install 'edge-slm[tune]'")


def cmd_tune(settings: Settings, args: argparse.Namespace) -> int:
    from edge_slm.llm.models import resolve_model
    from edge_slm.tune import pipeline
    from edge_slm.tune.adapters import installed_adapter
    from edge_slm.tune.train import TrainSettings

    model_path = resolve_model(settings.model, settings.model_cache_dir)
    name = settings.model.name if not settings.model.path else model_path.stem
    run_dir = Path(args.out).expanduser() if args.out else settings.effective_state_dir / "tune" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    if args.data_only:
        data = pipeline.build_data(run_dir, args.seed)
        print(json.dumps({k: len(v) for k, v in data.items()} | {"run_dir": str(run_dir)}))
        return EXIT_OK
    require_training_stack()
    if args.max_steps < 1 or args.time_budget_s <= 0 or args.rank < 1 or args.batch_size < 1:
        raise ModelError("tune: --max-steps, --time-budget-s, --rank and --batch-size must be positive")
    train_settings = TrainSettings(
        rank=args.rank, alpha=args.alpha, learning_rate=args.learning_rate, batch_size=args.batch_size,
        max_steps=args.max_steps, time_budget_s=args.time_budget_s, threads=args.threads, seed=args.seed,
        device=args.device,
    )  # fmt: skip
    mix = pipeline.DataMix(commands_per_intent=args.commands_per_intent, explanations=args.explanations, seed=args.seed)
    stage = pipeline.train_stage(model_path, run_dir, train_settings, mix)
    plan = pipeline.EvalPlan(
        max_commands=args.eval_commands, max_explanations=args.eval_explanations,
        blind_set=Path(args.blind) if args.blind else None, threads=max(1, args.threads),
    )  # fmt: skip
    install_to = None
    if not args.no_install:
        install_to = Path(args.install_to) if args.install_to else installed_adapter(name, settings.effective_state_dir)
    extra = {"train": stage.train, "command": "edge-slm tune " + " ".join(shlex.quote(a) for a in sys.argv[2:])}
    report = pipeline.decide_and_install(run_dir, model_path, stage.adapter_gguf, plan, install_to, extra)
    print((run_dir / "report.md").read_text())
    if report["installed"]:
        print(f'installed {report["installed_to"]}; profiles with model.lora_path = "auto" load it')
    return EXIT_OK

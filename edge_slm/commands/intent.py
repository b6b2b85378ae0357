"""`edge-slm intent TEXT` and `edge-slm intent --batch` (CONTRACT §1).

The model is loaded lazily, at most once, and only when the grammar needs help; if it cannot be
loaded the grammar tier still answers and one warning goes to the log (stderr)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from edge_slm.commands.common import add_config_flags, configure_logging, load_cli_settings
from edge_slm.config import Settings
from edge_slm.errors import EXIT_OK, EXIT_USAGE, EdgeSlmError
from edge_slm.events import Intent
from edge_slm.intent.recognizer import IntentRecognizer
from edge_slm.llm.api import LlmEngine
from edge_slm.llm.lazy import LazyEngine

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    parser = sub.add_parser("intent", help="print the intent of TEXT as JSON (or of JSON lines on stdin with --batch)")
    add_config_flags(parser)
    parser.add_argument("--batch", action="store_true", help='read JSON lines {"text": ...} on stdin')
    parser.add_argument("--no-model", action="store_true", help="grammar tier only (no SLM, no sentence encoder)")
    parser.add_argument("text", nargs="*", help="the command text")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    overrides: dict[str, object] = {}
    if args.no_model:  # grammar tier only: neither the SLM nor the sentence encoder
        overrides = {"model": {"enabled": False}, "intent": {"semantic": {"enabled": False}}}
    settings = load_cli_settings(args, **overrides)
    # stdout is JSON for another program: only warnings on stderr unless debugging is asked for
    configure_logging(args.log_level or ("debug" if settings.log_level == "debug" else "warning"))
    text = " ".join(args.text).strip()
    if args.batch == bool(text):
        raise EdgeSlmError("intent: give either TEXT or --batch", exit_code=EXIT_USAGE)
    if settings.model.enabled and settings.model.mode == "local" and settings.intent.model_fallback:
        from edge_slm.llm.loader import check_model

        check_model(settings)  # a configured model that is missing or cannot fit is exit 3, as for `run`
    return run_intent_cli(settings, None if args.batch else text, args.batch, sys.stdin, sys.stdout)


def _default_loader(settings: Settings) -> Callable[[], LlmEngine]:
    def load() -> LlmEngine:
        from edge_slm.llm.loader import load_engine

        return load_engine(settings)

    return load


def _error_line(line_no: int, message: str) -> str:
    return json.dumps({"error": message, "line": line_no}, ensure_ascii=False)


def _emit(stdout: IO[str], payload: dict[str, Any]) -> None:
    stdout.write(json.dumps(payload, ensure_ascii=False) + "\n")
    stdout.flush()


def run_intent_cli(
    settings: Settings,
    text: str | None,
    batch: bool,
    stdin: IO[str],
    stdout: IO[str],
    *,
    engine_loader: Callable[[], LlmEngine] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """`edge-slm intent TEXT` / `edge-slm intent --batch` (CONTRACT §1). Returns the exit code.

    Single: prints one `{"text", "intent", "slots", "source"}` object. Batch: reads JSON lines
    `{"text": ...}` and writes exactly one line per input line, in order; a bad line gets
    `{"error": ..., "line": n}` instead. The model (if enabled) is loaded once, when first needed.
    """
    if batch == (text is not None):
        message = "give either TEXT or --batch" if not batch else "TEXT and --batch exclude each other"
        if stderr is not None:
            stderr.write(f"edge-slm intent: {message}\n")
        else:
            log.error("edge-slm intent: %s", message)
        return EXIT_USAGE
    engine: LazyEngine | None = None
    # A pooled node's workers serve the daemon; this command answers with the local tiers only.
    if settings.intent.model_fallback and settings.model.enabled and settings.model.mode == "local":
        engine = LazyEngine(engine_loader or _default_loader(settings), settings.model.name or "model")
    recognizer = IntentRecognizer(settings.intent, engine, deadline_s=settings.model.voice_deadline_s)
    from edge_slm.intent.semantic import build_semantic_tier

    recognizer.attach_semantic(build_semantic_tier(settings, recognizer.grammar))
    try:
        if text is not None:
            _emit(stdout, intent_payload(recognizer.recognize(text)))
            return EXIT_OK
        for line_no, line in enumerate(stdin, start=1):
            stdout.write(_batch_line(recognizer, line, line_no) + "\n")
            stdout.flush()
        return EXIT_OK
    finally:
        if engine is not None:
            engine.close()
        if recognizer.semantic is not None:
            recognizer.semantic.close()


def intent_payload(intent: Intent) -> dict[str, Any]:
    """CONTRACT §1 object plus the tier's `confidence` (1.0 for a grammar match)."""
    return {**intent.to_payload(), "confidence": round(float(intent.confidence), 3)}


def _batch_line(recognizer: IntentRecognizer, line: str, line_no: int) -> str:
    if not line.strip():
        return _error_line(line_no, "empty line")  # still one output line per input line
    try:
        item = json.loads(line)
    except json.JSONDecodeError as err:
        return _error_line(line_no, f"not JSON: {err.msg}")
    if not isinstance(item, dict):
        return _error_line(line_no, 'expected a JSON object with a "text" string')
    value = item.get("text")
    if not isinstance(value, str):
        return _error_line(line_no, 'missing "text" string')
    started = time.perf_counter()
    try:
        intent = recognizer.recognize(value)
    except Exception as err:  # one bad line never stops the batch
        log.exception("intent recognition failed on line %d", line_no)
        return _error_line(line_no, f"recognition failed: {err.__class__.__name__}")
    log.debug("line %d recognized in %.1f ms", line_no, (time.perf_counter() - started) * 1000)
    return json.dumps(intent_payload(intent), ensure_ascii=False)

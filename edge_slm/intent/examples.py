"""Labelled examples for the semantic tier: pure functions (reading packaged data is the only I/O).

Three sources, in this order:
- sentences sampled from the grammar's templates (every intent, a few per template, slots filled
  from small pools; deterministic, seeded);
- the packaged `data/semantic_examples.jsonl` (indirect phrasings written for this tier, out-of-domain
  `unknown` examples, and the project's tunable command sets; see tools/build_semantic_examples.py);
- a site's own file (config `intent.semantic.examples_file`), JSON lines {"text", "intent", "slots"}.
"""

from __future__ import annotations

import importlib.resources
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from edge_slm.errors import ConfigError
from edge_slm.intent.grammar import Grammar
from edge_slm.intent.schema import INTENT_SLOTS
from edge_slm.intent.templates import Alt, RuleRef, Seq, SlotRef, Word

PACKAGED_EXAMPLES = "semantic_examples.jsonl"
MAX_SITE_EXAMPLES = 20000
MAX_EXAMPLE_CHARS = 300

_POOLS: dict[str, tuple[str, ...]] = {
    "destination": ("the airport", "main street", "the train station", "the mall", "the hospital", "the office",
                    "123 oak avenue", "grandma's house", "the stadium", "central park", "the library",
                    "the beach", "the city center", "the hotel", "the school", "the museum", "elm street"),
    "contact": ("mom", "dad", "john", "sarah", "the office", "my brother", "doctor smith", "my wife", "alex",
                "the babysitter", "grandpa", "maria"),
    "title": ("dentist appointment", "meeting with john", "pick up the kids", "gym", "lunch with sarah",
              "call the bank", "haircut", "team standup", "buy groceries", "soccer practice", "oil change"),
    "_dest": ("the airport", "home", "the office", "the hotel", "work"),
    "_road": ("the highway", "main street", "the bridge", "the interstate", "the freeway"),
}  # fmt: skip
_REGEX_RULE_SAMPLES: dict[str, tuple[str, ...]] = {
    "num": ("3", "10", "7:30", "9"),
    "ordnum": ("1st", "15th", "3rd"),
    "countnum": ("2", "10", "30"),
    "phonedigit": ("555", "0170", "2"),
}


@dataclass(frozen=True)
class Example:
    text: str
    intent: str
    category: str = ""  # find_poi examples: the canonical category they ask for


def _sample(node: object, grammar: Grammar, rng: random.Random, chosen: dict[str, str], depth: int = 0) -> str:
    if depth > 30:
        return ""
    if isinstance(node, Word):
        return node.text
    if isinstance(node, Seq):
        return " ".join(p for p in (_sample(i, grammar, rng, chosen, depth + 1) for i in node.items) if p)
    if isinstance(node, Alt):
        if node.optional and rng.random() < 0.5:
            return ""
        return _sample(rng.choice(node.options), grammar, rng, chosen, depth + 1)
    if isinstance(node, RuleRef):
        rule = grammar.rules.get(node.name)
        if isinstance(rule, Seq):
            return _sample(rule, grammar, rng, chosen, depth + 1)
        return rng.choice(_REGEX_RULE_SAMPLES.get(node.name, ("2",)))
    if isinstance(node, SlotRef):
        spec = grammar.slots.get(node.name)
        if spec is not None and spec.kind == "list" and spec.values:
            form = rng.choice(sorted(spec.values))
            chosen[spec.target] = spec.values[form]
            return form
        if spec is not None and spec.kind == "rule":
            rule = grammar.rules.get(spec.rule)
            return _sample(rule, grammar, rng, chosen, depth + 1) if isinstance(rule, Seq) else "5"
        pool = _POOLS.get(node.name) or _POOLS.get(spec.target if spec is not None else "", ()) or ("there",)
        return rng.choice(pool)
    return ""


def grammar_examples(grammar: Grammar, per_template: int = 5, seed: int = 7) -> list[Example]:
    """A few distinct sentences per template, each one the grammar itself would accept."""
    rng = random.Random(seed)
    out: list[Example] = []
    for intent, tree in grammar.sentences:
        seen: set[str] = set()
        for _ in range(per_template * 4):
            if len(seen) >= per_template:
                break
            chosen: dict[str, str] = {}
            text = " ".join(_sample(tree, grammar, rng, chosen).split())
            if not text or text in seen:
                continue
            seen.add(text)
            out.append(Example(text, intent, chosen.get("category", "")))
    return out


def parse_examples(lines: Iterable[str], origin: str) -> list[Example]:
    """JSON lines {"text", "intent", "slots"} -> examples; a bad line is a ConfigError naming it."""
    out: list[Example] = []
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ConfigError("intent.semantic.examples_file", f"{origin}:{line_no}: not JSON ({err.msg})") from err
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or row.get("intent") not in INTENT_SLOTS:
            raise ConfigError(
                "intent.semantic.examples_file",
                f'{origin}:{line_no}: expected {{"text": str, "intent": one of {", ".join(INTENT_SLOTS)}}}',
            )
        raw_slots = row.get("slots")
        slots: dict[str, object] = raw_slots if isinstance(raw_slots, dict) else {}
        text = " ".join(row["text"].split())[:MAX_EXAMPLE_CHARS]
        if text:
            out.append(Example(text, row["intent"], str(slots.get("category", "") or "")))
        if len(out) > MAX_SITE_EXAMPLES:
            raise ConfigError("intent.semantic.examples_file", f"{origin}: more than {MAX_SITE_EXAMPLES} examples")
    return out


def packaged_examples() -> list[Example]:
    resource = importlib.resources.files("edge_slm.intent").joinpath("data", PACKAGED_EXAMPLES)
    return parse_examples(resource.read_text("utf-8").splitlines(), PACKAGED_EXAMPLES)


def site_examples(path: str) -> list[Example]:
    try:
        lines = Path(path).expanduser().read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError("intent.semantic.examples_file", f"cannot read {path}: {err}") from err
    return parse_examples(lines, path)


def build_examples(grammar: Grammar, examples_file: str = "") -> list[Example]:
    """Every labelled example, normalized like a transcript, duplicates (same text) dropped."""
    rows = [*grammar_examples(grammar), *packaged_examples(), *(site_examples(examples_file) if examples_file else [])]
    out: list[Example] = []
    seen: set[tuple[str, str]] = set()
    for row in rows:
        text = grammar.normalizer.normalize(row.text)
        key = (text, row.intent)
        if text and key not in seen:
            seen.add(key)
            out.append(Example(text, row.intent, row.category))
    return out

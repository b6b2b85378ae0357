"""Sentence-template syntax: parse once, compile to regex, expand for the ASR phrase list.

Syntax (in the spirit of Rhasspy / Home Assistant sentence templates):

- `word`          a literal word (matched after normalization, so lowercase)
- `(a|b c)`       one of the alternatives
- `[a|b]`         optional (zero or one of the alternatives)
- `<rule>`        a named expansion from `[rules]`; a rule whose text starts with `re:` is a raw
                  regular expression matching one word
- `{slot}`        a slot: a list of values, a free-text span or a rule capture (see `[slots]`)

The compiled regex runs over the normalized text with a space after every word
("take me home "), so every word pattern carries its own trailing space and optional
parts need no special spacing.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

_TOKEN_RE = re.compile(r"\(|\)|\[|\]|\||<[\w-]+>|\{[\w-]+\}|[^\s()\[\]|<>{}]+")


class TemplateError(ValueError):
    """A template could not be parsed; the message says where."""


@dataclass(frozen=True, slots=True)
class Word:
    text: str


@dataclass(frozen=True, slots=True)
class RuleRef:
    name: str


@dataclass(frozen=True, slots=True)
class SlotRef:
    name: str


@dataclass(frozen=True, slots=True)
class Seq:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Alt:
    options: tuple[Seq, ...]
    optional: bool = False


Node = Word | RuleRef | SlotRef | Seq | Alt


def parse(template: str) -> Seq:
    """Parse one template into a tree; raises `TemplateError` on unbalanced brackets."""
    tokens = _TOKEN_RE.findall(template)
    pos = 0

    def parse_alt(closer: str | None) -> tuple[Seq, ...]:
        nonlocal pos
        options: list[Seq] = []
        items: list[Node] = []
        while pos < len(tokens):
            tok = tokens[pos]
            pos += 1
            if tok == "|":
                options.append(Seq(tuple(items)))
                items = []
            elif tok in (")", "]"):
                if tok != closer:
                    raise TemplateError(f"unexpected {tok!r} in {template!r}")
                options.append(Seq(tuple(items)))
                return tuple(options)
            elif tok in ("(", "["):
                inner = parse_alt(")" if tok == "(" else "]")
                items.append(Alt(inner, optional=tok == "["))
            elif tok.startswith("<"):
                items.append(RuleRef(tok[1:-1]))
            elif tok.startswith("{"):
                items.append(SlotRef(tok[1:-1]))
            else:
                items.append(Word(tok.lower()))
        if closer is not None:
            raise TemplateError(f"missing {closer!r} in {template!r}")
        options.append(Seq(tuple(items)))
        return tuple(options)

    options = parse_alt(None)
    if len(options) != 1:
        return Seq((Alt(options),))
    return options[0]


def words_regex(phrase: str) -> str:
    """Regex for a literal multi-word phrase, each word followed by a space."""
    return "".join(re.escape(w) + " " for w in phrase.split())


SlotCompiler = Callable[[str], str]  # slot name -> regex body (without the capture group)


class RegexBuilder:
    """Compiles template trees to regex text; numbers capture groups and remembers their slots."""

    def __init__(self, rules: dict[str, Seq | str], slot_body: SlotCompiler) -> None:
        self._rules = rules
        self._slot_body = slot_body
        self._rule_cache: dict[str, str] = {}
        self.group_slots: list[str] = []

    def reset(self) -> None:
        self.group_slots = []

    def build(self, node: Node, depth: int = 0) -> str:
        if depth > 20:
            raise TemplateError("rules nest too deeply (a rule refers to itself?)")
        if isinstance(node, Word):
            return re.escape(node.text) + " "
        if isinstance(node, Seq):
            return "".join(self.build(item, depth + 1) for item in node.items)
        if isinstance(node, Alt):
            body = "|".join(self.build(opt, depth + 1) for opt in node.options)
            return f"(?:{body})" + ("?" if node.optional else "")
        if isinstance(node, RuleRef):
            return self.rule_regex(node.name, depth + 1)
        group = f"g{len(self.group_slots)}"
        self.group_slots.append(node.name)
        return f"(?P<{group}>{self._slot_body(node.name)})"

    def rule_regex(self, name: str, depth: int = 0) -> str:
        if name in self._rule_cache:
            return self._rule_cache[name]
        rule = self._rules.get(name)
        if rule is None:
            raise TemplateError(f"unknown rule <{name}>")
        if isinstance(rule, str):
            text = f"(?:{rule}) "
        else:
            saved = self.group_slots
            self.group_slots = []
            text = self.build(rule, depth)
            if self.group_slots:
                raise TemplateError(f"rule <{name}> must not contain slots")
            self.group_slots = saved
        self._rule_cache[name] = text
        return text


def expand(
    node: Node,
    rules: dict[str, Seq | str],
    slot_values: Callable[[str], Sequence[str]],
    depth: int = 0,
) -> Iterator[str]:
    """Lazily enumerate the sentences a template can produce (slots filled from examples)."""
    if depth > 20:
        return
    if isinstance(node, Word):
        yield node.text
    elif isinstance(node, Seq):
        parts = [list(itertools.islice(expand(i, rules, slot_values, depth + 1), 12)) for i in node.items]
        for combo in itertools.product(*parts):
            yield " ".join(p for p in combo if p)
    elif isinstance(node, Alt):
        if node.optional:
            yield ""
        for opt in node.options:
            yield from expand(opt, rules, slot_values, depth + 1)
    elif isinstance(node, RuleRef):
        rule = rules.get(node.name)
        if isinstance(rule, Seq):
            yield from expand(rule, rules, slot_values, depth + 1)
        # a raw-regex rule (digits) has no spoken words to offer: the alternative is skipped
    else:
        yield from slot_values(node.name)

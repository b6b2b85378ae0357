"""Tier 1: the sentence-template grammar, shipped as data and extendable by the user.

`Grammar.load(extra_files)` reads the built-in `data/en.toml` and then each extra file
(config `intent.grammar_files`), which may add sentences, list values, rules, normalization
phrases and guard patterns. Templates compile to anchored regexes over the normalized text;
`Grammar.match(text)` returns the best match (fewest free-text words) or None in well under
a millisecond. `Grammar.phrases_for_asr()` gives a bounded phrase list for Vosk grammar mode.
"""

from __future__ import annotations

import functools
import importlib.resources
import itertools
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_slm.errors import ConfigError
from edge_slm.intent.normalize import Normalizer, NormalizeTables, basic_words, numbers_to_digits
from edge_slm.intent.schema import ALL_SLOTS, INTENT_SLOTS
from edge_slm.intent.templates import RegexBuilder, Seq, TemplateError, expand, parse, words_regex

BUILTIN_GRAMMAR = "en.toml"


@dataclass(frozen=True)
class SlotSpec:
    """How one slot is matched and cleaned."""

    name: str
    kind: str  # "list" | "text" | "rule"
    values: Mapping[str, str] = field(default_factory=dict)  # spoken form -> canonical value (list)
    rule: str = ""  # rule name (rule)
    max_words: int = 8
    strip_prefixes: tuple[tuple[str, ...], ...] = ()
    strip_suffixes: tuple[tuple[str, ...], ...] = ()
    reject: frozenset[str] = frozenset()
    blocked: frozenset[str] = frozenset()  # words this slot's value may not contain
    reject_patterns: tuple[re.Pattern[str], ...] = ()
    # trailing clauses cut from the value ("home after the meeting" -> "home"); each must match at the end
    strip_patterns: tuple[re.Pattern[str], ...] = ()
    examples: tuple[str, ...] = ()
    digits: bool = False
    output: str = ""  # the intent slot this fills; default: the slot's own name

    @property
    def target(self) -> str:
        return self.output or self.name

    def clean(self, raw: str, blocked: frozenset[str]) -> str | None:
        """The slot value for a captured span, or None when the span is not acceptable."""
        words = raw.split()
        if self.kind == "list":
            return self.values.get(" ".join(words))
        words = _strip_prefixes(words, self.strip_prefixes)
        stripped_suffix = False
        changed = True
        while changed and words:
            changed = False
            for suffix in self.strip_suffixes:
                if len(suffix) < len(words) and tuple(words[-len(suffix) :]) == suffix:
                    words = words[: -len(suffix)]
                    changed = stripped_suffix = True
                    break
            if changed:
                continue
            joined = " ".join(words)
            for pattern in self.strip_patterns:
                m = pattern.search(joined)
                if m is not None and m.start() > 0 and m.end() == len(joined):
                    words = joined[: m.start()].split()
                    changed = True  # a time clause, not a phone word: "mcdonald's after lunch" keeps its "'s"
                    break
        if stripped_suffix and words and words[-1].endswith("'s"):
            words = [*words[:-1], words[-1][:-2]]  # "call daniel's mobile" -> "daniel"
        if self.digits:
            words = numbers_to_digits(words)
        value = " ".join(words)
        if self.kind == "text" and (
            not value
            or value in self.reject
            or any(w in blocked or w in self.blocked for w in words)
            or any(p.search(value) for p in self.reject_patterns)
        ):
            return None
        return value


def _strip_prefixes(words: list[str], prefixes: tuple[tuple[str, ...], ...]) -> list[str]:
    changed = True
    while changed and words:
        changed = False
        for prefix in prefixes:
            if len(prefix) < len(words) and tuple(words[: len(prefix)]) == prefix:
                words = words[len(prefix) :]
                changed = True
                break
    return words


@dataclass(frozen=True)
class GrammarMatch:
    intent: str
    slots: dict[str, str]
    template: str
    free_words: int


@dataclass(frozen=True)
class _Compiled:
    intent: str
    template: str
    regex: re.Pattern[str]
    group_slots: tuple[str, ...]
    order: int


def plural_forms(phrase: str) -> list[str]:
    """Cheap English plurals of the last word, so lists need not spell them out."""
    head, _, last = phrase.rpartition(" ")
    prefix = f"{head} " if head else ""
    if not last or last[-1].isdigit() or len(last) < 3:
        return []
    if last.endswith(("s", "x", "ch", "sh")):
        forms = [last + "es"]
    elif last.endswith("y") and last[-2] not in "aeiou":
        forms = [last[:-1] + "ies"]
    else:
        forms = [last + "s"]
    return [prefix + f for f in forms]


class Grammar:
    """Compiled templates for every intent, plus the normalizer and guard built from the same data."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        norm = data.get("normalize", {})
        self.normalizer = Normalizer(
            NormalizeTables.build(
                norm.get("fillers", []), norm.get("leading", []), norm.get("trailing", []), norm.get("replace", {})
            )
        )
        guard = data.get("guard", {})
        self._guard = [re.compile(p) for p in guard.get("patterns", [])]
        self.blocked_words = frozenset(w for p in guard.get("blocked_words", []) for w in basic_words(p))
        # idioms and requests that only look like commands ("call it a day", "drive me crazy"): unknown
        self._not_commands = [re.compile(p) for p in guard.get("not_commands", [])]
        cues = data.get("model_tier", {}).get("cues", {})
        self.model_cues: dict[str, tuple[str, ...]] = {
            intent: tuple(" ".join(basic_words(w)) for w in words) for intent, words in cues.items()
        }
        self.lists: dict[str, dict[str, str]] = {}
        plural_lists = set(data.get("plural_lists", []))
        for list_name, table in data.get("lists", {}).items():
            self.lists[list_name] = self._build_list(table, list_name in plural_lists)
        self.rules: dict[str, Seq | str] = {}
        for rule_name, text in data.get("rules", {}).items():
            self.rules[rule_name] = text[3:] if text.startswith("re:") else parse(text)
        self.slots: dict[str, SlotSpec] = {
            name: self._build_slot(name, spec) for name, spec in data.get("slots", {}).items()
        }
        self._rule_patterns: dict[str, re.Pattern[str]] = {}
        builder = RegexBuilder(self.rules, self._slot_body)
        self._compiled: list[_Compiled] = []
        self._sentences: list[tuple[str, Seq]] = []
        order = 0
        for intent, spec in data.get("intents", {}).items():
            if intent not in INTENT_SLOTS or intent == "unknown":
                raise TemplateError(f"intent {intent!r} is not one of the supported intents")
            for template in spec.get("sentences", []):
                tree = parse(template)
                builder.reset()
                body = builder.build(tree)
                for slot in builder.group_slots:
                    if slot not in self.slots and not slot.startswith("_"):
                        raise TemplateError(f"unknown slot {{{slot}}} in {template!r}")
                regex = re.compile("^" + body + "$")
                self._compiled.append(_Compiled(intent, template, regex, tuple(builder.group_slots), order))
                self._sentences.append((intent, tree))
                order += 1

    # ---- construction -------------------------------------------------------------------

    @staticmethod
    def _build_list(table: Mapping[str, Sequence[str]], plurals: bool) -> dict[str, str]:
        values: dict[str, str] = {}
        for canonical, spoken in table.items():
            for phrase in [canonical.replace("_", " "), *spoken]:
                form = " ".join(basic_words(phrase))
                if not form:
                    continue
                values.setdefault(form, canonical)
                for plural in plural_forms(form) if plurals else ():
                    values.setdefault(plural, canonical)
        return values

    def _build_slot(self, name: str, spec: Mapping[str, Any]) -> SlotSpec:
        kind = str(spec.get("type", "text"))
        if kind not in ("list", "text", "rule"):
            raise TemplateError(f"slot {name}: type must be list, text or rule")
        values: dict[str, str] = {}
        if kind == "list":
            list_name = str(spec.get("list", name))
            if list_name not in self.lists:
                raise TemplateError(f"slot {name}: unknown list {list_name!r}")
            values = self.lists[list_name]
        prefixes = tuple(tuple(basic_words(p)) for p in spec.get("strip_prefixes", []))
        suffixes = tuple(tuple(basic_words(p)) for p in spec.get("strip_suffixes", []))
        output = str(spec.get("output", ""))
        if output and output not in ALL_SLOTS:
            raise TemplateError(f"slot {name}: output {output!r} is not a known slot")
        return SlotSpec(
            name=name,
            kind=kind,
            values=values,
            rule=str(spec.get("rule", "")),
            max_words=int(spec.get("max_words", 8)),
            strip_prefixes=tuple(sorted((p for p in prefixes if p), key=len, reverse=True)),
            strip_suffixes=tuple(sorted((p for p in suffixes if p), key=len, reverse=True)),
            output=output,
            reject=frozenset(" ".join(basic_words(r)) for r in spec.get("reject", [])),
            blocked=frozenset(w for b in spec.get("blocked_words", []) for w in basic_words(b)),
            reject_patterns=tuple(re.compile(p) for p in spec.get("reject_patterns", [])),
            strip_patterns=tuple(re.compile(p) for p in spec.get("strip_patterns", [])),
            examples=tuple(spec.get("examples", [])),
            digits=bool(spec.get("digits", False)),
        )

    def _slot_body(self, name: str) -> str:
        spec = self.slots.get(name)
        if spec is None:  # "{_anything}": a throwaway free-text span
            return r"(?:\S+ ){1,8}?"
        if spec.kind == "list":
            forms = sorted(spec.values, key=len, reverse=True)
            return "(?:" + "|".join(words_regex(f) for f in forms) + ")"
        if spec.kind == "rule":
            return RegexBuilder(self.rules, self._slot_body).rule_regex(spec.rule)
        return r"(?:\S+ ){1," + str(spec.max_words) + "}?"

    @classmethod
    def load(cls, extra_files: Iterable[str | Path] = ()) -> Grammar:
        """The built-in grammar merged with user files; a bad user file raises ConfigError."""
        text = importlib.resources.files("edge_slm.intent").joinpath("data", BUILTIN_GRAMMAR).read_text("utf-8")
        data = tomllib.loads(text)
        for path in extra_files:
            try:
                with Path(path).expanduser().open("rb") as fh:
                    data = merge_grammar_data(data, tomllib.load(fh))
            except (OSError, tomllib.TOMLDecodeError) as err:
                raise ConfigError("intent.grammar_files", f"cannot read {path}: {err}") from err
        try:
            return cls(data)
        except (TemplateError, re.error, ValueError, TypeError) as err:
            raise ConfigError("intent.grammar_files", f"bad grammar: {err}") from err

    # ---- use ------------------------------------------------------------------------------

    @property
    def sentences(self) -> list[tuple[str, Seq]]:
        """(intent, parsed template) for every template, in file order (the semantic tier samples them)."""
        return list(self._sentences)

    def is_hostile(self, normalized: str) -> bool:
        """True when the text looks like an attempt to instruct the assistant (prompt injection)."""
        return any(p.search(normalized) for p in self._guard)

    def is_not_command(self, normalized: str) -> bool:
        """True when the text is an idiom or a request that merely looks like a command (no intent)."""
        return any(p.search(normalized) for p in self._not_commands)

    def is_hostile_text(self, text: str) -> bool:
        """`is_hostile` on raw text, checked before and after normalization (which strips "you", "hey", ...)."""
        return self.is_hostile(" ".join(basic_words(text))) or self.is_hostile(self.normalizer.normalize(text))

    def match(self, text: str) -> GrammarMatch | None:
        """Best template match for raw text, or None."""
        if self.is_hostile(" ".join(basic_words(text))):
            return None
        return self.match_normalized(self.normalizer.normalize(text))

    def match_normalized(self, normalized: str) -> GrammarMatch | None:
        if not normalized or self.is_hostile(normalized) or self.is_not_command(normalized):
            return None
        subject = normalized + " "
        best: GrammarMatch | None = None
        best_key: tuple[int, int] | None = None
        for comp in self._compiled:
            m = comp.regex.match(subject)
            if m is None:
                continue
            found = self._slots_of(comp, m)
            if found is None:
                continue
            slots, free = found
            key = (free, comp.order)
            if best_key is None or key < best_key:
                best_key = key
                best = GrammarMatch(comp.intent, slots, comp.template, free)
        return best

    def _slots_of(self, comp: _Compiled, m: re.Match[str]) -> tuple[dict[str, str], int] | None:
        slots = {name: "" for name in INTENT_SLOTS[comp.intent]}
        free = 0
        for i, slot_name in enumerate(comp.group_slots):
            raw = m.group(f"g{i}")
            if raw is None:
                continue
            spec = self.slots.get(slot_name)
            if spec is None:  # throwaway span
                free += len(raw.split())
                if any(w in self.blocked_words for w in raw.split()):
                    return None
                continue
            value = spec.clean(raw, self.blocked_words)
            if value is None:
                return None
            if spec.kind == "text":
                free += len(raw.split())
            if spec.target in slots:
                slots[spec.target] = value
        if any(name in REQUIRED_SLOTS and not slots[name] for name in slots):
            return None
        return slots, free

    def find_rule(self, rule: str, normalized: str) -> tuple[int, int] | None:
        """Word span [start, end) of the longest stretch of `normalized` that a rule matches, or None."""
        pattern = self._rule_patterns.get(rule)
        if pattern is None:
            pattern = re.compile(RegexBuilder(self.rules, self._slot_body).rule_regex(rule))
            self._rule_patterns[rule] = pattern
        words = normalized.split()
        subject = normalized + " "
        best: tuple[int, int] | None = None
        offset = 0
        for i, word in enumerate(words):
            m = pattern.match(subject, offset)
            if m is not None and m.end() > m.start():
                end = i + len(subject[m.start() : m.end()].split())
                if best is None or end - i > best[1] - best[0]:
                    best = (i, end)
            offset += len(word) + 1
        return best

    def canonical(self, slot: str, value: str) -> str | None:
        """Canonical value of a list slot for a spoken/free value (used by the model tier)."""
        spec = self.slots.get(slot)
        if spec is None or spec.kind != "list":
            return None
        key = " ".join(self.normalizer.words(value)) or " ".join(basic_words(value))
        if key in spec.values:
            return spec.values[key]
        return value if value in spec.values.values() else None

    def list_forms(self, slot: str, canonical: str) -> list[str]:
        spec = self.slots.get(slot)
        if spec is None:
            return []
        return [form for form, value in spec.values.items() if value == canonical]

    def phrases_for_asr(self, max_phrases: int = 2000, per_template: int = 6) -> list[str]:
        """Whole command sentences for Vosk grammar mode (bounded), each one the grammar accepts.

        One sentence per template first, then one per slot value, round-robin over the slots (so
        every list value is decodable and a bound keeps some of each list), then more sentences
        per template, round-robin; "[unk]" comes last.
        """
        values = {name: self._slot_examples(name) for name in self.slots}
        skeletons = [
            list(itertools.islice(expand(tree, self.rules, lambda n: [f"\0{n}\0"]), per_template))
            for _intent, tree in self._sentences
        ]
        turn = itertools.count()

        def fill(skeleton: str, chosen: dict[str, str] | None = None) -> str | None:
            out: list[str] = []
            for i, part in enumerate(skeleton.split("\0")):
                if i % 2 == 0:
                    out.append(part)
                    continue
                if chosen and part in chosen:
                    out.append(chosen[part])
                    continue
                options = values.get(part) or ["there"]
                out.append(options[next(turn) % len(options)])
            return " ".join(" ".join(out).split()) or None

        phrases: dict[str, None] = {}

        def add(phrase: str | None) -> None:
            if phrase:
                phrases.setdefault(phrase, None)

        rounds = list(itertools.zip_longest(*skeletons))  # round-robin, so a bound keeps every intent
        for skeleton in rounds[0] if rounds else ():
            add(fill(skeleton) if skeleton else None)
        per_slot: list[list[tuple[str, str, str]]] = []  # then every slot value once
        for name, options in values.items():
            base = next((sk for group in skeletons for sk in group if f"\0{name}\0" in sk), None)
            if base is not None:
                per_slot.append([(base, name, value) for value in options])
        for batch in itertools.zip_longest(*per_slot):  # round-robin, so a long list cannot crowd out the rest
            for item in batch:
                if item is not None:
                    add(fill(item[0], {item[1]: item[2]}))
        for round_ in rounds[1:]:
            for skeleton in round_:
                add(fill(skeleton) if skeleton else None)
        out = list(phrases)[: max(0, max_phrases - 1)]
        out.append("[unk]")
        return out

    def _slot_examples(self, name: str) -> list[str]:
        spec = self.slots[name]
        if spec.kind == "list":
            return list(spec.values)
        if spec.kind == "rule":
            rule = self.rules.get(spec.rule)
            if isinstance(rule, Seq):
                return [s for s in itertools.islice(expand(rule, self.rules, lambda _n: []), 16) if s]
            return []
        return list(spec.examples) or ["there"]


@functools.lru_cache(maxsize=1)
def default_grammar() -> Grammar:
    """The built-in grammar, compiled once per process."""
    return Grammar.load()


REQUIRED_SLOTS = frozenset({"destination", "contact", "title", "category"})


def merge_grammar_data(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Merge a user grammar file into the base data: lists and sentences extend, rules and slots override."""
    out: dict[str, Any] = {k: v for k, v in base.items()}
    for key, value in extra.items():
        if key == "intents":
            intents = {k: {"sentences": list(v.get("sentences", []))} for k, v in out.get("intents", {}).items()}
            for name, spec in value.items():
                intents.setdefault(name, {"sentences": []})["sentences"].extend(spec.get("sentences", []))
            out["intents"] = intents
        elif key == "lists":
            lists = {k: {c: list(f) for c, f in v.items()} for k, v in out.get("lists", {}).items()}
            for list_name, table in value.items():
                target = lists.setdefault(list_name, {})
                for canonical, forms in table.items():
                    target.setdefault(canonical, []).extend(forms)
            out["lists"] = lists
        elif key in ("normalize", "guard", "model_tier"):
            section: dict[str, Any] = {
                k: (dict(v) if isinstance(v, Mapping) else list(v)) for k, v in out.get(key, {}).items()
            }
            for sub, items in value.items():
                if isinstance(items, Mapping):
                    section.setdefault(sub, {}).update(items)
                else:
                    section.setdefault(sub, []).extend(items)
            out[key] = section
        elif key in ("rules", "slots"):
            out[key] = {**out.get(key, {}), **value}
        else:
            out[key] = value
    return out

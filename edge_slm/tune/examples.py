"""Training/evaluation examples and the registry of the sources that generate them.

An `Example` is one chat turn the daemon really sends: the fixed system prompt of its task (the same text
the daemon uses), one user message, and the ideal assistant answer (JSON). Sources are pluggable: anything
that yields examples for a split can be registered (`register_source`), so richer site knowledge (a
diagnosis module, a site's own labelled commands) feeds the same pipeline later.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Task = Literal["command", "explain"]
Split = Literal["train", "heldout"]
SPLITS: tuple[Split, ...] = ("train", "heldout")


@dataclass(frozen=True)
class Example:
    task: Task
    user: str  # the user message exactly as the daemon writes it
    answer: str  # the ideal assistant message (JSON text)
    source: str  # which generator made it, and from which template/device (for split audits)
    meta: dict[str, Any] = field(default_factory=dict)  # what the evaluation needs (gold intent, alert facts)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @staticmethod
    def from_json(line: str) -> Example:
        raw = json.loads(line)
        if not isinstance(raw, dict) or raw.get("task") not in ("command", "explain"):
            raise ValueError("not an example: needs task = command|explain")
        return Example(
            task=raw["task"],
            user=str(raw["user"]),
            answer=str(raw["answer"]),
            source=str(raw.get("source", "")),
            meta=dict(raw.get("meta") or {}),
        )


# A source yields the examples of one split; `seed` makes it reproducible.
ExampleSource = Callable[[Split, int], Iterable[Example]]
_SOURCES: dict[str, ExampleSource] = {}


def register_source(name: str, source: ExampleSource) -> None:
    """Add (or replace) a generator of examples; `edge-slm tune` uses every registered source."""
    _SOURCES[name] = source


def sources() -> dict[str, ExampleSource]:
    # the built-in sources register themselves on import (always both: importing one of them
    # elsewhere first must not hide the other)
    from edge_slm.tune import command_data, explain_data  # noqa: F401

    return dict(_SOURCES)


def generate(split: Split, seed: int = 0, only: Iterable[str] = ()) -> list[Example]:
    wanted = set(only)
    out: list[Example] = []
    for name, source in sources().items():
        if wanted and name not in wanted:
            continue
        out.extend(source(split, seed))
    return out


def write_jsonl(path: Path, examples: Iterable[Example]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for ex in examples:
            fh.write(ex.to_json() + "\n")
            n += 1
    return n


def read_jsonl(path: Path) -> Iterator[Example]:
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield Example.from_json(line)
                except (ValueError, KeyError, TypeError) as err:
                    raise ValueError(f"{path}:{number}: {err}") from err

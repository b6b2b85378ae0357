#!/usr/bin/env python3
"""Build edge_slm/intent/data/semantic_examples.jsonl, the semantic tier's packaged examples.

It is the hand-written `semantic_extra.jsonl` (indirect phrasings, out-of-domain `unknown`s) plus
the project's tunable command sets (tests/data/commands.jsonl, commands_probe.jsonl). Held-out
sets stay out so they keep measuring generalization, and no line of the frozen blind set ever
becomes an example: a row whose normalized text equals one of its lines' (short commands such as
the same two words recur across sets) is dropped, and only the count is printed.

    python tools/build_semantic_examples.py             # the examples file
    python tools/build_semantic_examples.py --vectors   # also their embeddings (converts the encoder)

`--vectors` writes edge_slm/intent/data/semantic_vectors.npz: every built-in example (grammar
samples + the examples file) embedded by the wheel-converted all-MiniLM-L6-v2, so a fresh install
starts without embedding them. Run it again whenever the grammar or the examples change (a stale
file only costs start-up time: missing sentences are embedded and cached in the state dir).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "edge_slm" / "intent" / "data"
SOURCES = [DATA / "semantic_extra.jsonl", ROOT / "tests/data/commands.jsonl", ROOT / "tests/data/commands_probe.jsonl"]
FROZEN = ROOT / "tests/data/commands_blind_asr.jsonl"
OUT = DATA / "semantic_examples.jsonl"


def key(text: str) -> str:
    """Lines compare after the transcript normalization ("um take me home please" == "take me home")."""
    sys.path.insert(0, str(ROOT))
    from edge_slm.intent.grammar import default_grammar

    return default_grammar().normalizer.normalize(text) or " ".join(text.lower().split())


def build_vectors() -> int:
    import tempfile

    sys.path.insert(0, str(ROOT))
    from edge_slm.intent.examples import build_examples
    from edge_slm.intent.grammar import Grammar
    from edge_slm.intent.vector_cache import PACKAGED_VECTORS, write_vectors
    from edge_slm.llm.bert_gguf import convert_minilm_wheel
    from edge_slm.llm.embedding import LlamaCppEncoder

    with tempfile.TemporaryDirectory() as tmp:
        encoder = LlamaCppEncoder(convert_minilm_wheel(Path(tmp) / "minilm.gguf"))
        texts = sorted({ex.text for ex in build_examples(Grammar.load())})
        matrix = encoder.encode(texts)
        write_vectors(DATA / PACKAGED_VECTORS, encoder.fingerprint, texts, matrix)
        encoder.close()
    print(f"wrote {len(texts)} example vectors to {(DATA / PACKAGED_VECTORS).relative_to(ROOT)}")
    return 0


def main() -> int:
    frozen = {key(json.loads(line)["text"]) for line in FROZEN.read_text("utf-8").splitlines() if line.strip()}
    rows: list[str] = []
    seen: set[str] = set()
    overlap: dict[str, int] = {}
    for source in SOURCES:
        for line in source.read_text("utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            if key(row["text"]) in frozen:
                overlap[source.name] = overlap.get(source.name, 0) + 1
                continue
            if key(row["text"]) in seen:
                continue
            seen.add(key(row["text"]))
            slots = {"category": row["slots"]["category"]} if row.get("slots", {}).get("category") else {}
            rows.append(json.dumps({"text": row["text"], "intent": row["intent"], "slots": slots}, ensure_ascii=False))
    for name, count in overlap.items():
        print(f"dropped {count} row(s) of {name} that equal lines of the frozen blind set")
    OUT.write_text("\n".join(rows) + "\n", "utf-8")
    print(f"wrote {len(rows)} examples to {OUT.relative_to(ROOT)}")
    return build_vectors() if "--vectors" in sys.argv[1:] else 0


if __name__ == "__main__":
    sys.exit(main())

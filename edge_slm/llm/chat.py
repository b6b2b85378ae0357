"""Chat prompt assembly and prefix bookkeeping (pure: no llama_cpp import).

The prompt of every request is `fixed prefix + user turn`. The fixed prefix (system prompt and
few-shot pairs) renders to the same tokens on every request, so llama.cpp's prefix match keeps
its KV cache and only the user turn is evaluated. `prefix_hash` names a saved prefix state.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

Message = dict[str, str]


def build_messages(system: str, few_shot: Sequence[tuple[str, str]], user: str | None) -> list[Message]:
    messages: list[Message] = []
    if system:
        messages.append({"role": "system", "content": system})
    for question, answer in few_shot:
        messages.append({"role": "user", "content": question})
        messages.append({"role": "assistant", "content": answer})
    if user is not None:
        messages.append({"role": "user", "content": user})
    return messages


def render_chatml(messages: Sequence[Message], add_generation_prompt: bool = True) -> str:
    out = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return out + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def render_gemma(messages: Sequence[Message], add_generation_prompt: bool = True) -> str:
    """Gemma turns; Gemma has no system role, so the system text opens the first user turn."""
    out = []
    system = ""
    for m in messages:
        if m["role"] == "system":
            system = m["content"]
            continue
        role = "model" if m["role"] == "assistant" else "user"
        content = m["content"]
        if system and role == "user":
            content = f"{system}\n\n{content}"
            system = ""
        out.append(f"<start_of_turn>{role}\n{content}<end_of_turn>\n")
    if system:  # a system prompt with no user turn yet
        out.append(f"<start_of_turn>user\n{system}\n\n")
        return "".join(out)
    text = "".join(out)
    return text + ("<start_of_turn>model\n" if add_generation_prompt else "")


FALLBACK_RENDERERS = {"chatml": render_chatml, "gemma": render_gemma}
# End-of-turn text for the built-in formats, in case the model's EOS token is a different one.
FALLBACK_STOPS: dict[str, list[str]] = {"chatml": ["<|im_end|>"], "gemma": ["<end_of_turn>"]}


def fallback_format_for(architecture: str) -> str:
    """The built-in format used when a GGUF carries no chat template."""
    return "gemma" if architecture.startswith("gemma") else "chatml"


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def prefix_hash(system: str, few_shot: Sequence[tuple[str, str]]) -> str:
    """A stable name for one fixed prefix (16 hex digits of sha256 over its canonical JSON)."""
    canonical = json.dumps({"system": system, "few_shot": [list(p) for p in few_shot]}, sort_keys=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def schema_key(schema: dict[str, object]) -> str:
    """The schema as compact JSON. Key order is kept: it is the order the grammar makes the model write."""
    return json.dumps(schema, separators=(",", ":"))

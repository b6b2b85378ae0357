"""Turn examples into token ids exactly as the daemon's engine would prompt llama.cpp.

The tokenizer is llama.cpp's own (the GGUF loaded vocab-only) and the prompt is rendered with the GGUF's
chat template (or the engine's built-in fallback), so training sees the very tokens inference sees. The
system prompt is the daemon's; the few-shot pairs are left out by default (they are a fixed prefix at
inference, and leaving them out halves the training cost).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_slm.intent import model_tier
from edge_slm.llm import chat, explain
from edge_slm.tune.examples import Example, Task

IGNORE_INDEX = -100


def task_prompt(task: Task) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The daemon's fixed prefix (system prompt, few-shot pairs) for a task."""
    if task == "command":
        return model_tier.SYSTEM_PROMPT, model_tier.FEW_SHOT
    return explain.SYSTEM_PROMPT, explain.FEW_SHOT


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX on the prompt: only the answer is learned
    prefix_len: int = 0  # leading tokens shared by every example of the task (the fixed system prompt)


class PromptTokenizer:
    """llama.cpp's tokenizer and chat formatting for one GGUF (vocab only: loads in well under a second)."""

    def __init__(self, model_path: str | Path, *, few_shot: bool = False) -> None:
        import llama_cpp
        from llama_cpp import llama_chat_format

        self.few_shot = few_shot
        self._prefix_cache: dict[str, list[int]] = {}
        self._llm: Any = llama_cpp.Llama(model_path=str(model_path), vocab_only=True, verbose=False)
        meta = dict(self._llm.metadata or {})
        template = meta.get("tokenizer.chat_template", "")
        self.eos_id = int(self._llm.token_eos())
        self._formatter: Any = None
        self._end_of_turn = "<|im_end|>"
        if template:
            model = self._llm._model
            bos_id = self._llm.token_bos()
            eos = model.token_get_text(self.eos_id) if self.eos_id != -1 else ""
            bos = model.token_get_text(bos_id) if bos_id != -1 else ""
            self._formatter = llama_chat_format.Jinja2ChatFormatter(
                template=template, eos_token=eos, bos_token=bos, stop_token_ids=[self.eos_id]
            )
            self._fallback = chat.render_chatml
        else:
            fmt = chat.fallback_format_for(str(meta.get("general.architecture", "")))
            self._fallback = chat.FALLBACK_RENDERERS[fmt]
            self._end_of_turn = chat.FALLBACK_STOPS[fmt][0]

    def close(self) -> None:
        self._llm.close()

    def render(self, messages: list[chat.Message]) -> tuple[str, bool]:
        if self._formatter is not None:
            response = self._formatter(messages=messages)
            return str(response.prompt), bool(response.added_special)
        return self._fallback(messages, True), False

    def tokenize(self, text: str, *, add_bos: bool) -> list[int]:
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True))

    def prefix_ids(self, task: Task) -> list[int]:
        """The tokens every prompt of `task` starts with (two different user turns, common start)."""
        if task not in self._prefix_cache:
            self._prefix_cache[task] = self._prefix_ids(task)
        return self._prefix_cache[task]

    def _prefix_ids(self, task: Task) -> list[int]:
        system, few_shot = task_prompt(task)
        shots = few_shot if self.few_shot else ()
        a, _ = self.render(chat.build_messages(system, shots, "\x01a"))
        b, added_special = self.render(chat.build_messages(system, shots, "\x02b"))
        ids_a = self.tokenize(a, add_bos=not added_special)
        ids_b = self.tokenize(b, add_bos=not added_special)
        return ids_a[: chat.common_prefix_len(ids_a, ids_b)]

    def encode(self, example: Example, max_tokens: int = 512) -> Encoded:
        system, few_shot = task_prompt(example.task)
        messages = chat.build_messages(system, few_shot if self.few_shot else (), example.user)
        prompt, added_special = self.render(messages)
        prompt_ids = self.tokenize(prompt, add_bos=not added_special)
        answer_ids = self.tokenize(example.answer, add_bos=False)
        # the turn ends with the model's end-of-turn token (EOS for ChatML models like SmolLM2)
        end = self.tokenize(self._end_of_turn, add_bos=False)
        answer_ids = answer_ids + (end if end else [self.eos_id])
        answer_ids = answer_ids[: max(1, max_tokens // 2)]
        # too long: the prompt loses its start (the answer is what is learned, so it is kept)
        cut = max(0, len(prompt_ids) + len(answer_ids) - max_tokens)
        prompt_ids = prompt_ids[cut:]
        prefix = self.prefix_ids(example.task) if not cut else []
        shared = bool(prefix) and prompt_ids[: len(prefix)] == prefix and len(prefix) < len(prompt_ids)
        prefix_len = len(prefix) if shared else 0
        return Encoded(prompt_ids + answer_ids, [IGNORE_INDEX] * len(prompt_ids) + answer_ids, prefix_len)

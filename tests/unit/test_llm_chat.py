"""Prompt assembly and prefix hashing (pure)."""

from __future__ import annotations

from edge_slm.llm import chat


def test_prefix_hash_is_stable_and_sensitive() -> None:
    a = chat.prefix_hash("system", [("q", "a")])
    assert a == chat.prefix_hash("system", (("q", "a"),))
    assert len(a) == 16
    assert a != chat.prefix_hash("system ", [("q", "a")])
    assert a != chat.prefix_hash("system", [("q", "b")])
    assert a != chat.prefix_hash("system", [])


def test_messages_and_renderers() -> None:
    msgs = chat.build_messages("sys", [("u1", "a1")], "u2")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    chatml = chat.render_chatml(msgs)
    assert chatml.startswith("<|im_start|>system\nsys<|im_end|>\n")
    assert chatml.endswith("<|im_start|>user\nu2<|im_end|>\n<|im_start|>assistant\n")
    gemma = chat.render_gemma(msgs)
    assert gemma.startswith("<start_of_turn>user\nsys\n\nu1<end_of_turn>\n<start_of_turn>model\na1<end_of_turn>\n")
    assert gemma.endswith("<start_of_turn>model\n")
    assert chat.fallback_format_for("gemma3") == "gemma"
    assert chat.fallback_format_for("llama") == "chatml"


def test_rendered_prefix_is_a_prefix_of_every_prompt() -> None:
    for render in (chat.render_chatml, chat.render_gemma):
        one = render(chat.build_messages("S", [("q", "a")], "first"))
        two = render(chat.build_messages("S", [("q", "a")], "second question"))
        common = chat.common_prefix_len(list(one), list(two))
        assert "a" in one[:common]  # the few-shot answer is inside the shared part


def test_common_prefix_len() -> None:
    assert chat.common_prefix_len([1, 2, 3], [1, 2, 4]) == 2
    assert chat.common_prefix_len([], [1]) == 0
    assert chat.common_prefix_len([1, 2], [1, 2, 3]) == 2


def test_schema_key_keeps_property_order() -> None:
    key = chat.schema_key({"properties": {"summary": {}, "action": {}}})
    assert key.index("summary") < key.index("action")

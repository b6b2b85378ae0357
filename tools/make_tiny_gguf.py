#!/usr/bin/env python3
"""Write a tiny random-weight llama-architecture GGUF that llama.cpp can load and run.

It has a working SentencePiece-style tokenizer (byte fallback + every printable ASCII character,
with and without the word-start marker), ChatML special tokens and a ChatML chat template, so the
whole chat path (template, tokenize, prefix reuse, grammar) runs in milliseconds. The output is
gibberish: this model is for plumbing tests, never for behaviour.

    python tools/make_tiny_gguf.py OUT.gguf [--dtype f16|f32] [--n-embd 256] [--n-layer 2] [--seed 0]

The f32 variant is the input for quantisation tests (Q8_0, Q4_K_M). n_embd and n_ff are
multiples of 256 so K-quants apply without fallback.
"""

from __future__ import annotations

import argparse
import string
import sys
from pathlib import Path

import numpy as np

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPACE = "\u2581"  # SentencePiece word-start marker


def build_vocab() -> tuple[list[str], list[float], list[int]]:
    from gguf import TokenType

    tokens: list[str] = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
    types: list[int] = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL, TokenType.CONTROL, TokenType.CONTROL]
    scores: list[float] = [0.0] * len(tokens)
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        types.append(TokenType.BYTE)
        scores.append(0.0)
    chars = [c for c in string.printable if c not in " \t\n\r\x0b\x0c"]
    pieces = [SPACE, "\n", *chars, *(SPACE + c for c in chars)]
    for i, piece in enumerate(pieces):
        tokens.append(piece)
        types.append(TokenType.NORMAL)
        scores.append(-float(i) / 1000.0)
    return tokens, scores, [int(t) for t in types]


def write_tiny_gguf(
    out: str | Path,
    *,
    dtype: str = "f16",
    n_embd: int = 256,
    n_layer: int = 2,
    n_head: int = 4,
    n_head_kv: int = 2,
    n_ff: int = 512,
    n_ctx_train: int = 4096,
    seed: int = 0,
) -> Path:
    """Write the model and return its path."""
    import gguf

    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    np_dtype = np.float32 if dtype == "f32" else np.float16
    head_dim = n_embd // n_head
    tokens, scores, types = build_vocab()
    n_vocab = len(tokens)

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name(f"edge-slm tiny test model ({dtype})")
    w.add_context_length(n_ctx_train)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(head_dim)
    w.add_vocab_size(n_vocab)
    w.add_file_type(gguf.LlamaFileType.ALL_F32 if dtype == "f32" else gguf.LlamaFileType.MOSTLY_F16)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(4)  # <|im_end|>: ends an assistant turn
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_chat_template(CHATML_TEMPLATE)

    def mat(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * 0.05).astype(np_dtype)

    def norm() -> np.ndarray:
        return np.ones((n_embd,), dtype=np.float32)  # 1-D tensors stay f32, as llama.cpp expects

    w.add_tensor("token_embd.weight", mat(n_vocab, n_embd))
    for i in range(n_layer):
        w.add_tensor(f"blk.{i}.attn_norm.weight", norm())
        w.add_tensor(f"blk.{i}.attn_q.weight", mat(n_head * head_dim, n_embd))
        w.add_tensor(f"blk.{i}.attn_k.weight", mat(n_head_kv * head_dim, n_embd))
        w.add_tensor(f"blk.{i}.attn_v.weight", mat(n_head_kv * head_dim, n_embd))
        w.add_tensor(f"blk.{i}.attn_output.weight", mat(n_embd, n_head * head_dim))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", norm())
        w.add_tensor(f"blk.{i}.ffn_gate.weight", mat(n_ff, n_embd))
        w.add_tensor(f"blk.{i}.ffn_up.weight", mat(n_ff, n_embd))
        w.add_tensor(f"blk.{i}.ffn_down.weight", mat(n_embd, n_ff))
    w.add_tensor("output_norm.weight", norm())
    w.add_tensor("output.weight", mat(n_vocab, n_embd))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="output .gguf path")
    ap.add_argument("--dtype", choices=("f16", "f32"), default="f16")
    ap.add_argument("--n-embd", type=int, default=256)
    ap.add_argument("--n-layer", type=int, default=2)
    ap.add_argument("--n-ff", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    path = write_tiny_gguf(
        args.out, dtype=args.dtype, n_embd=args.n_embd, n_layer=args.n_layer, n_ff=args.n_ff, seed=args.seed
    )
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

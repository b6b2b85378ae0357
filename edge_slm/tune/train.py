"""LoRA training of a GGUF model with torch + transformers + peft (the `[tune]` extra; imported lazily).

The GGUF is loaded dequantized by transformers (`gguf_file=`), LoRA adapters are put on every attention
and MLP projection, and only the answer tokens are learned. Training stops at `max_steps` or when the
time budget is spent, whichever comes first, writing a checkpoint every `checkpoint_every_s`; a run
started again with the same output folder resumes from its checkpoint; a file named STOP in the output
folder ends it early (the adapter learned so far is kept).
"""

from __future__ import annotations

import json
import logging
import math
import random
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge_slm.tune.prompts import IGNORE_INDEX, Encoded

log = logging.getLogger(__name__)

TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class TrainSettings:
    rank: int = 16
    alpha: float = 32.0
    learning_rate: float = 2e-4
    batch_size: int = 4
    max_steps: int = 400
    time_budget_s: float = 3600.0
    warmup_steps: int = 10
    max_tokens: int = 512
    threads: int = 1
    seed: int = 0
    checkpoint_every_s: float = 300.0
    device: str = "auto"  # "auto": CUDA when present, else CPU


@dataclass
class TrainResult:
    adapter_dir: Path
    steps: int
    examples_seen: int
    wall_s: float
    load_s: float
    peak_rss_mb: float
    device: str
    stopped_by: str  # "max_steps" | "time_budget" | "stop_file"
    losses: list[float] = field(default_factory=list)
    resumed_from_step: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["adapter_dir"] = str(self.adapter_dir)
        out["final_loss"] = sum(self.losses[-10:]) / max(1, len(self.losses[-10:])) if self.losses else None
        return out


def peak_rss_mb() -> float:
    """This process's peak resident set size (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def load_base(model_path: Path, device: str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    loader: Any = AutoModelForCausalLM  # its stubs mistype from_pretrained's first argument
    model = loader.from_pretrained(str(model_path.parent), gguf_file=model_path.name, dtype=torch.float32)
    return model.to(device)


def _batches(data: Sequence[Encoded], batch_size: int, rng: random.Random) -> list[list[Encoded]]:
    """Batches of one shared prefix (one task) and similar length (less padding), in random order."""
    groups: dict[tuple[int, ...], list[Encoded]] = {}
    for e in data:
        groups.setdefault(tuple(e.input_ids[: e.prefix_len]), []).append(e)
    batches: list[list[Encoded]] = []
    for group in groups.values():
        group.sort(key=lambda e: (len(e.input_ids), rng.random()))
        batches += [group[k : k + batch_size] for k in range(0, len(group), batch_size)]
    rng.shuffle(batches)
    return batches


def _collate(batch: Sequence[Encoded], pad_id: int, device: str) -> dict[str, Any]:
    """The shared prefix once, then the rest of each example left-padded: every answer ends at the
    last position, so only the last `keep` positions need logits (the 49k-word output layer over whole
    prompts is most of the memory otherwise)."""
    import torch

    prefix_len = min(e.prefix_len for e in batch)
    if any(e.input_ids[:prefix_len] != batch[0].input_ids[:prefix_len] for e in batch):
        prefix_len = 0
    prefix = batch[0].input_ids[:prefix_len]
    rests = [(e.input_ids[prefix_len:], e.labels[prefix_len:]) for e in batch]
    width = max(len(ids) for ids, _ in rests)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    answer = 1
    for row, (row_ids, row_labels) in enumerate(rests):
        n = len(row_ids)
        ids[row, width - n :] = torch.tensor(row_ids)
        labels[row, width - n :] = torch.tensor(row_labels)
        mask[row, width - n :] = 1
        first = next((i for i, t in enumerate(row_labels) if t != IGNORE_INDEX), n)
        answer = max(answer, n - first)
    positions = prefix_len + (mask.cumsum(dim=1) - 1).clamp(min=0)
    return {
        "prefix": torch.tensor([prefix], dtype=torch.long).to(device),
        "input_ids": ids.to(device),
        "attention_mask": mask.to(device),
        "position_ids": positions.to(device),
        "labels": labels.to(device),
        "keep": min(width, answer + 1),
    }


def answer_loss(model: Any, batch: dict[str, Any]) -> Any:
    """Cross-entropy over the answer tokens only.

    The shared prefix (the task's system prompt) is evaluated once per batch without gradient and its
    KV cache reused by every row: the adapter still acts on the prefix, but learns only through the
    tokens after it (a stop-gradient that makes a step several times cheaper for short commands)."""
    import torch

    keep = int(batch["keep"])
    prefix = batch["prefix"]
    rows = batch["input_ids"].shape[0]
    mask = batch["attention_mask"]
    cache = None
    if prefix.shape[1]:
        with torch.no_grad():
            cache = model(input_ids=prefix, use_cache=True).past_key_values
        cache.batch_repeat_interleave(rows)
        ones = torch.ones((rows, prefix.shape[1]), dtype=mask.dtype, device=mask.device)
        mask = torch.cat([ones, mask], dim=1)
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=mask,
        position_ids=batch["position_ids"],
        past_key_values=cache,
        use_cache=cache is not None,
        logits_to_keep=keep,
    )
    logits = out.logits[:, :-1, :].float()
    targets = batch["labels"][:, -keep + 1 :] if keep > 1 else batch["labels"][:, :0]
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX
    )


def train_lora(
    model_path: Path,
    data: Sequence[Encoded],
    out_dir: Path,
    settings: TrainSettings,
    *,
    pad_id: int,
    progress: bool = True,
) -> TrainResult:
    """Train LoRA adapters on `data`; the adapter (peft format) is written to `out_dir/adapter`."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model

    if not data:
        raise ValueError("no training examples")
    torch.manual_seed(settings.seed)
    torch.set_num_threads(max(1, settings.threads))
    device = settings.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    started = time.monotonic()
    base = load_base(model_path, device)
    load_s = time.monotonic() - started
    checkpoint = out_dir / "checkpoint"
    state_file = checkpoint / "trainer_state.json"
    resumed = 0
    if state_file.is_file():
        model = PeftModel.from_pretrained(base, str(checkpoint), is_trainable=True)
        resumed = int(json.loads(state_file.read_text())["step"])
        log.info("resuming from %s at step %d", checkpoint, resumed)
    else:
        config = LoraConfig(
            r=settings.rank,
            lora_alpha=round(settings.alpha),
            target_modules=list(TARGET_MODULES),
            lora_dropout=0.0,
            bias="none",
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(base, config)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=0.0)
    if (checkpoint / "optimizer.pt").is_file():
        optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", map_location=device))

    def lr_at(step: int) -> float:  # linear warm-up, then cosine to 10 % over max_steps
        if step < settings.warmup_steps:
            return settings.learning_rate * (step + 1) / settings.warmup_steps
        frac = min(1.0, (step - settings.warmup_steps) / max(1, settings.max_steps - settings.warmup_steps))
        return settings.learning_rate * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * frac)))

    rng = random.Random(settings.seed + resumed)  # a resumed run does not replay the batches it already saw
    trimmed = [Encoded(e.input_ids[: settings.max_tokens], e.labels[: settings.max_tokens], e.prefix_len) for e in data]
    batches: list[list[Encoded]] = []
    losses: list[float] = []
    step = resumed
    seen = 0
    stopped_by = "max_steps"
    last_checkpoint = time.monotonic()
    train_started = time.monotonic()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=settings.max_steps, initial=resumed, desc="tune", unit="step", file=sys.stderr)

    def save(path: Path) -> None:
        model.save_pretrained(str(path))
        torch.save(optimizer.state_dict(), path / "optimizer.pt")
        (path / "trainer_state.json").write_text(json.dumps({"step": step, "losses": losses[-50:]}))

    while step < settings.max_steps:
        if time.monotonic() - started >= settings.time_budget_s:
            stopped_by = "time_budget"
            break
        if (out_dir / "STOP").exists():  # `touch RUN/STOP`: finish now with what was learned
            stopped_by = "stop_file"
            break
        if not batches:
            batches = _batches(trimmed, settings.batch_size, rng)
        batch = batches.pop()
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        loss = answer_loss(model, _collate(batch, pad_id, device))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        seen += len(batch)
        losses.append(float(loss.detach()))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if time.monotonic() - last_checkpoint >= settings.checkpoint_every_s:
            save(checkpoint)
            last_checkpoint = time.monotonic()
    if bar is not None:
        bar.close()
    adapter_dir = out_dir / "adapter"
    model.save_pretrained(str(adapter_dir))
    save(checkpoint)
    return TrainResult(
        adapter_dir=adapter_dir,
        steps=step,
        examples_seen=seen,
        wall_s=time.monotonic() - train_started,
        load_s=load_s,
        peak_rss_mb=peak_rss_mb(),
        device=device,
        stopped_by=stopped_by,
        losses=losses,
        resumed_from_step=resumed,
    )

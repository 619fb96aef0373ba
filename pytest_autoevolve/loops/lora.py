"""Local LoRA fine-tuning with transformers + peft on a curated chat dataset.

The loss covers the assistant's completion only (the end-of-turn token included). Training is
seeded, runs in float32 on the CPU (CUDA when present), saves a checkpoint after every epoch
and resumes from the last one. The result is an unmerged adapter in a versioned model folder
with a training manifest: the artifact the gate judges and `promote` installs.
"""

from __future__ import annotations

import json
import random
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pytest_autoevolve.files import write_json_atomic

MANIFEST = "training_manifest.json"


@dataclass(frozen=True)
class LoraSettings:
    """Hyperparameters of one LoRA run; CPU-friendly defaults for small models."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    learning_rate: float = 3e-3
    epochs: int = 12
    batch_size: int = 32
    seed: int = 0
    target_modules: tuple[str, ...] = ()


def read_examples(path: Path) -> list[list[dict[str, Any]]]:
    """The ``messages`` of every line of a chat fine-tuning JSONL file."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            messages = json.loads(line).get("messages")
            if not isinstance(messages, list) or not messages or messages[-1].get("role") != "assistant":
                raise ValueError(f"{path}:{number}: not a chat example ending with an assistant message")
            rows.append(messages)
    return rows


def encode(tokenizer: Any, messages: list[dict[str, Any]]) -> tuple[list[int], list[int]]:
    """Token ids of one example and labels that score only the final assistant reply and end-of-turn."""
    prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=False)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    reply_ids = tokenizer(str(messages[-1].get("content") or ""), add_special_tokens=False)["input_ids"]
    reply_ids = [*reply_ids, tokenizer.eos_token_id]
    return prompt_ids + reply_ids, [-100] * len(prompt_ids) + reply_ids


def _batches(tokenizer: Any, rows: list[tuple[list[int], list[int]]], size: int, rng: random.Random) -> list[Any]:
    import torch

    order = list(range(len(rows)))
    rng.shuffle(order)
    batches = []
    for start in range(0, len(order), size):
        chunk = [rows[i] for i in order[start : start + size]]
        width = max(len(ids) for ids, _ in chunk)
        pad = tokenizer.pad_token_id
        batches.append(
            {
                "input_ids": torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in chunk]),
                "attention_mask": torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in chunk]),
                "labels": torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in chunk]),
            }
        )
    return batches


def _targets(model: Any) -> list[str]:
    """Attention and MLP projections of common architectures present in ``model``."""
    known = ("c_attn", "c_proj", "c_fc", "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    return [n for n in known if n in names]


def next_version(root: Path, prefix: str = "v") -> Path:
    """``root/v<N>`` with N one past the highest existing version."""
    numbers = [
        int(p.name[len(prefix) :].split("-")[0])
        for p in root.glob(f"{prefix}*")
        if p.is_dir() and p.name[len(prefix) :].split("-")[0].isdigit()
    ]
    return root / f"{prefix}{max(numbers, default=0) + 1}"


def train_lora(
    base_path: Path,
    dataset: Path,
    out: Path,
    settings: LoraSettings | None = None,
    progress: Callable[[str], None] = print,
    base_name: str | None = None,
) -> dict[str, Any]:
    """Train an adapter on ``dataset/train.jsonl`` into ``out``; resume from ``out/checkpoint``.

    ``base_name`` is how the manifest and the adapter config name the base (e.g. ``tiny``),
    so the folder carries no machine path.
    """
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    settings = settings or LoraSettings()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(settings.seed)
    tokenizer = AutoTokenizer.from_pretrained(base_path, local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    base = AutoModelForCausalLM.from_pretrained(base_path, local_files_only=True, dtype=torch.float32)
    checkpoint = out / "checkpoint"
    state: dict[str, Any] = {"epoch": 0, "losses": []}
    targets = list(settings.target_modules) or _targets(base)
    if (checkpoint / "state.json").is_file():
        state = json.loads((checkpoint / "state.json").read_text(encoding="utf-8"))
        with warnings.catch_warnings():  # peft asks transformers 5 for a renamed attribute; nothing to act on
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
            model = PeftModel.from_pretrained(base, checkpoint, is_trainable=True)
        progress(f"resuming from epoch {state['epoch']} of {settings.epochs}")
    else:
        config = LoraConfig(
            r=settings.r,
            lora_alpha=settings.alpha,
            lora_dropout=settings.dropout,
            target_modules=targets,
            fan_in_fan_out=base.config.model_type == "gpt2",
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(base, config)
    model.to(device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=settings.learning_rate)
    if (checkpoint / "optimizer.pt").is_file():
        optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=True))
        torch.set_rng_state(torch.load(checkpoint / "rng.pt", weights_only=True))  # the model's dropout continues
    rows = [encode(tokenizer, messages) for messages in read_examples(dataset / "train.jsonl")]
    rng = random.Random(settings.seed)
    for _ in range(state["epoch"]):  # replay the shuffles of finished epochs so a resume continues the same order
        _batches(tokenizer, rows, settings.batch_size, rng)
    started = time.perf_counter()
    model.train()
    for epoch in range(state["epoch"], settings.epochs):
        total = 0.0
        batches = _batches(tokenizer, rows, settings.batch_size, rng)
        for batch in batches:
            loss = model(**{k: v.to(device) for k, v in batch.items()}).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
        state = {"epoch": epoch + 1, "losses": [*state["losses"], round(total / len(batches), 5)]}
        model.save_pretrained(checkpoint, save_embedding_layers=False)
        torch.save(optimizer.state_dict(), checkpoint / "optimizer.pt")
        torch.save(torch.get_rng_state(), checkpoint / "rng.pt")
        write_json_atomic(checkpoint / "state.json", state)
        progress(
            f"epoch {epoch + 1}/{settings.epochs}  loss {state['losses'][-1]:.3g}  {time.perf_counter() - started:.0f}s"
        )
    shown = base_name or str(base_path)
    for config in model.peft_config.values():
        config.base_model_name_or_path = shown
    model.save_pretrained(out, save_embedding_layers=False)  # LoRA leaves the embeddings alone: no lookup of the base
    (out / "README.md").unlink(missing_ok=True)  # peft's model card template: nothing of ours in it
    dataset_manifest = dataset / "manifest.json"
    provenance = json.loads(dataset_manifest.read_text(encoding="utf-8")) if dataset_manifest.is_file() else {}
    dataset_sha = provenance.get("sha256") or provenance.get("dataset_sha256")
    manifest = {
        "format_version": 1,
        "base_model": shown,
        "dataset": str(dataset),
        "dataset_sha256": dataset_sha,
        "examples": len(rows),
        "hyperparameters": {**asdict(settings), "target_modules": targets},
        "device": device,
        "loss_per_epoch": state["losses"],
    }
    write_json_atomic(out / MANIFEST, manifest)
    shutil.rmtree(checkpoint)
    return manifest

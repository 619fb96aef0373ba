"""Supervised LoRA with TRL's `SFTTrainer`: the loss covers the assistant's reply (and end of turn) only.

Each chat example becomes a prompt (every message but the last, rendered with the base's chat
template and its generation prompt) and a completion (the final assistant message), so TRL
masks the prompt out of the loss. ``val.jsonl``, when it has examples, gives an evaluation
loss after every epoch.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_autoevolve.loops.examples import DatasetError, validate_example
from pytest_autoevolve.loops.project import FineTuneError
from pytest_autoevolve.loops.training.base import (
    Job,
    Progress,
    check_device,
    dataset_provenance,
    finish,
    fit,
    load_base,
    lora_trainer,
    partial_folder,
    read_jsonl,
    trainer_options,
)


def prompt_completion(path: Path) -> list[dict[str, Any]]:
    """The chat examples of a JSONL file as TRL prompt/completion rows; `FineTuneError` for a bad line."""
    rows = []
    for number, row in enumerate(read_jsonl(path), start=1):
        try:
            validate_example(row)
        except DatasetError as exc:
            raise FineTuneError(f"{path}: example {number}: {exc}") from None
        messages = row["messages"]
        shaped: dict[str, Any] = {"prompt": messages[:-1], "completion": messages[-1:]}
        if "tools" in row:
            shaped["tools"] = json.dumps(row["tools"])
        rows.append(shaped)
    return rows


def max_length(model: Any, tokenizer: Any) -> int | None:
    """The longest sequence the base takes: its position table or the tokenizer's limit."""
    limits = [getattr(model.config, name, None) for name in ("n_positions", "max_position_embeddings")]
    limits.append(tokenizer.model_max_length if tokenizer.model_max_length < 1_000_000 else None)
    known = [int(limit) for limit in limits if isinstance(limit, int)]
    return min(known) if known else None


def sft_trainer(job: Job, progress: Progress) -> tuple[Any, dict[str, Any]]:
    """The `SFTTrainer` of ``job`` (its datasets prepared) and the manifest's dataset details."""
    from trl import SFTConfig, SFTTrainer

    assert job.data is not None
    device = check_device(job.settings)
    train = prompt_completion(job.data / "train.jsonl")
    val_path = job.data / "val.jsonl"
    val = prompt_completion(val_path) if val_path.is_file() else []
    if not train:
        raise FineTuneError(f"{job.data / 'train.jsonl'} holds no examples: curate a dataset first")
    model, tokenizer = load_base(job, device)
    config = SFTConfig(
        **trainer_options(job, partial_folder(job.out), device, evaluate=bool(val)),
        completion_only_loss=True,
        max_length=max_length(model, tokenizer),
    )
    trainer = lora_trainer(SFTTrainer, job, model, tokenizer, config, (train, val), progress)
    return trainer, {**dataset_provenance(job.data), "examples": len(train), "val_examples": len(val)}


def train_sft(job: Job, say: Callable[[str], None]) -> dict[str, Any]:
    """Train the adapter on ``job.data/train.jsonl`` (evaluating on ``val.jsonl``); the training manifest."""
    progress = Progress(job.settings, say)
    trainer, details = sft_trainer(job, progress)
    work = partial_folder(job.out)
    fit(trainer, work, say)
    return finish(job, trainer, work, details, progress)

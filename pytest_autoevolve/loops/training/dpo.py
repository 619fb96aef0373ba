"""Preference LoRA with TRL's `DPOTrainer` on curated pairs; the reference is the base with the adapter disabled."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

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
from pytest_autoevolve.loops.training.sft import max_length

LOSSES = ["sigmoid", "sft"]

WEIGHTS = [0.2, 1.0]
"""DPO's loss (weight 0.2) plus the chosen answer's supervised loss (weight 1), as RPO does: alone, DPO lowers the
likelihood of both answers of a small model."""

HOW = "make pairs with `autoevolve finetune curate RUN --pairs` (a passing and a failing answer per train scenario)"


def read_pairs(path: Path) -> list[dict[str, Any]]:
    """The preference rows of a pairs file; `FineTuneError` when one has no prompt, chosen or rejected answer."""
    rows = read_jsonl(path)
    for number, row in enumerate(rows, start=1):
        if not row.get("rejected"):
            raise FineTuneError(f"{path}: line {number} has no rejected answer: DPO trains on preference pairs; {HOW}")
        if not row.get("prompt") or not row.get("chosen"):
            raise FineTuneError(f"{path}: line {number} needs 'prompt' and 'chosen' beside 'rejected'; {HOW}")
    return rows


def train_dpo(job: Job, say: Callable[[str], None]) -> dict[str, Any]:
    """Train the adapter on ``job.data/train.jsonl`` pairs (evaluating on ``val.jsonl``); the training manifest."""
    from trl import DPOConfig, DPOTrainer

    assert job.data is not None
    device = check_device(job.settings)
    if not (job.data / "train.jsonl").is_file():
        raise FineTuneError(f"{job.data} holds no train.jsonl; {HOW}")
    train = read_pairs(job.data / "train.jsonl")
    val_path = job.data / "val.jsonl"
    val = read_pairs(val_path) if val_path.is_file() else []
    if not train:
        raise FineTuneError(f"{job.data / 'train.jsonl'} holds no pairs; {HOW}")
    model, tokenizer = load_base(job, device)
    work, progress = partial_folder(job.out), Progress(job.settings, say)
    config = DPOConfig(
        **trainer_options(job, work, device, evaluate=bool(val)),
        beta=job.settings.beta,
        loss_type=LOSSES,
        loss_weights=WEIGHTS,
        max_length=max_length(model, tokenizer),
    )
    trainer = lora_trainer(DPOTrainer, job, model, tokenizer, config, (train, val), progress)
    fit(trainer, work, say)
    details = {**dataset_provenance(job.data), "pairs": len(train), "val_pairs": len(val)}
    return finish(job, trainer, work, details, progress)

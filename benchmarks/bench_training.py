"""Training speed on the shipped demo dataset: the TRL SFT path against the hand loop it replaced, and 2 processes.

1. The hand loop the project used before TRL (kept here only, as the yardstick: float32, one
   process, a checkpoint per epoch) and ``train(method="sft")`` train the same LoRA on the same
   ``train.jsonl`` with the same settings; tokens per second of training (model loading left out),
   counted as the examples' tokens times the epochs; medians of 3 alternating runs.
2. The TRL path in 1 process and in 2 (accelerate, gloo on the CPU): wall time of the whole call
   (the launch included) and tokens per second of training.

    python benchmarks/bench_training.py [DATASET]
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pytest_autoevolve.loops.training import Job, TrainSettings, train
from pytest_autoevolve.tiny import TINY_DIR

DATASET = Path(__file__).resolve().parents[1] / "finetune" / "datasets" / "v1-4b2e41ac"
SETTINGS = TrainSettings(epochs=12, batch_size=32, seed=0)
REPEATS = 3


def examples(path: Path) -> list[list[dict[str, Any]]]:
    return [json.loads(line)["messages"] for line in path.read_text().splitlines() if line.strip()]


def encode(tokenizer, messages):
    prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=False)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    reply_ids = [*tokenizer(messages[-1]["content"], add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
    return prompt_ids + reply_ids, [-100] * len(prompt_ids) + reply_ids


def batches(tokenizer, rows, size, rng):
    import torch

    order = list(range(len(rows)))
    rng.shuffle(order)
    out = []
    for start in range(0, len(order), size):
        chunk = [rows[i] for i in order[start : start + size]]
        width, pad = max(len(ids) for ids, _ in chunk), tokenizer.pad_token_id
        out.append(
            {
                "input_ids": torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in chunk]),
                "attention_mask": torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in chunk]),
                "labels": torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in chunk]),
            }
        )
    return out


def hand_loop(dataset: Path, out: Path) -> tuple[float, int]:
    """The replaced loop: seconds of training and tokens trained on."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(SETTINGS.seed)
    tokenizer = AutoTokenizer.from_pretrained(TINY_DIR)
    base = AutoModelForCausalLM.from_pretrained(TINY_DIR, dtype=torch.float32)
    config = LoraConfig(
        r=SETTINGS.r,
        lora_alpha=SETTINGS.alpha,
        target_modules=["c_attn", "c_proj", "c_fc"],
        fan_in_fan_out=True,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(base, config)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=SETTINGS.learning_rate)
    rows = [encode(tokenizer, messages) for messages in examples(dataset / "train.jsonl")]
    rng, started = random.Random(SETTINGS.seed), time.perf_counter()
    model.train()
    for _ in range(SETTINGS.epochs):
        for batch in batches(tokenizer, rows, SETTINGS.batch_size, rng):
            loss = model(**batch).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.save_pretrained(out / "checkpoint", save_embedding_layers=False)
        torch.save(optimizer.state_dict(), out / "checkpoint" / "optimizer.pt")
    return time.perf_counter() - started, sum(len(ids) for ids, _ in rows) * SETTINGS.epochs


def trl_path(dataset: Path, out: Path, processes: int) -> tuple[float, float]:
    """Wall seconds of the call and seconds of the Trainer's training loop (checkpoints in)."""
    started = time.perf_counter()
    manifest = train(Job("sft", dataset, TINY_DIR, out, "tiny", SETTINGS), processes=processes, say=lambda _: None)
    return time.perf_counter() - started, manifest["train_seconds"]


def spread(seconds: list[float]) -> str:
    return f"{statistics.median(seconds):.1f} s ({min(seconds):.1f}-{max(seconds):.1f})"


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else DATASET
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "data"
        data.mkdir()
        (data / "train.jsonl").write_text((source / "train.jsonl").read_text())  # no val: training alone is timed
        count = len(examples(data / "train.jsonl"))
        print(f"dataset: {count} examples x {SETTINGS.epochs} epochs, batch {SETTINGS.batch_size}, tiny (351k params)")
        hands, trls, tokens = [], [], 0
        for turn in range(REPEATS):  # alternating, so a busy moment of the machine falls on both
            hand_s, tokens = hand_loop(data, Path(folder) / f"hand{turn}")
            hands.append(hand_s)
            trls.append(trl_path(data, Path(folder) / f"one{turn}", 1)[1])
        hand_s, trl_s = statistics.median(hands), statistics.median(trls)
        print(f"hand loop:   {tokens / hand_s:8.0f} tokens/s ({spread(hands)} of training, median of {REPEATS})")
        print(f"TRL SFT:     {tokens / trl_s:8.0f} tokens/s ({spread(trls)} of training, median of {REPEATS})")
        worst, best = min(hands) / max(trls), max(hands) / min(trls)
        print(f"TRL vs hand: {hand_s / trl_s:.2f}x the speed (between {worst:.2f}x and {best:.2f}x)")
        one_wall, one_s = trl_path(data, Path(folder) / "again", 1)
        two_wall, two_s = trl_path(data, Path(folder) / "two", 2)
        print(f"1 process:   {tokens / one_s:8.0f} tokens/s, {one_wall:.1f} s wall")
        print(f"2 processes: {tokens / two_s:8.0f} tokens/s, {two_wall:.1f} s wall (the launch included)")


if __name__ == "__main__":
    main()

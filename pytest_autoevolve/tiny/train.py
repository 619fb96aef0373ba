"""Deterministic training script for the embedded `tiny` model.

``python -m pytest_autoevolve.tiny.train --out pytest_autoevolve/tiny/model`` rebuilds
the shipped folder: a character-level tokenizer with a chat template and a small
GPT-2 trained on demo problems outside the eval split. It stops early on purpose,
so `tiny` solves the demo catalog only partly and the loops have room to improve it.
Training runs on one CPU thread with fixed seeds, so a rerun gives the same weights.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_autoevolve.tiny.demo import Problem, make_problem, splits

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

SPECIAL_TOKENS = ["<|pad|>", "<|unk|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
CHARACTERS = " 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+-=*/.,:;?!'\"()[]{}_#%&<>@"
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
HYPERPARAMETERS: dict[str, Any] = {
    "seed": 1234,
    "steps": 400,
    "batch_size": 64,
    "learning_rate": 3e-3,
    "warmup_steps": 50,
    "n_embd": 96,
    "n_layer": 3,
    "n_head": 4,
    "n_positions": 64,
    "tasks": ["add", "reverse", "upper"],
}


def build_tokenizer() -> PreTrainedTokenizerBase:
    """A character-level tokenizer with the chat template, loadable by `AutoTokenizer`."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS + list(CHARACTERS))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<|unk|>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens(SPECIAL_TOKENS)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<|pad|>",
        unk_token="<|unk|>",
        bos_token="<|end|>",
        eos_token="<|end|>",
        chat_template=CHAT_TEMPLATE,
        model_max_length=HYPERPARAMETERS["n_positions"],
    )


def build_model(tokenizer: PreTrainedTokenizerBase, hp: dict[str, Any]) -> PreTrainedModel:
    """A freshly initialised GPT-2 of a few hundred thousand parameters."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=hp["n_positions"],
        n_embd=hp["n_embd"],
        n_layer=hp["n_layer"],
        n_head=hp["n_head"],
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return GPT2LMHeadModel(config)


def encode_example(tokenizer: PreTrainedTokenizerBase, problem: Problem) -> tuple[list[int], list[int]]:
    """Token ids of one chat example and its labels (-100 outside the assistant reply)."""
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": problem.prompt}], add_generation_prompt=True, tokenize=False
    )
    prompt_ids = tokenizer(prompt)["input_ids"]
    reply_ids = tokenizer(problem.answer)["input_ids"] + [tokenizer.eos_token_id]
    return prompt_ids + reply_ids, [-100] * len(prompt_ids) + reply_ids


def _batch(tokenizer: PreTrainedTokenizerBase, problems: Sequence[Problem]) -> dict[str, Any]:
    import torch

    encoded = [encode_example(tokenizer, p) for p in problems]
    width = max(len(ids) for ids, _ in encoded)
    pad = tokenizer.pad_token_id
    input_ids = [ids + [pad] * (width - len(ids)) for ids, _ in encoded]
    labels = [lab + [-100] * (width - len(lab)) for _, lab in encoded]
    mask = [[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in encoded]
    return {
        "input_ids": torch.tensor(input_ids),
        "attention_mask": torch.tensor(mask),
        "labels": torch.tensor(labels),
    }


def train(out: Path, hp: dict[str, Any] | None = None, log_every: int = 100) -> dict[str, Any]:
    """Train `tiny` from scratch and save model, tokenizer and a training manifest to ``out``."""
    import torch

    hp = {**HYPERPARAMETERS, **(hp or {})}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(out, hp, log_every)
    finally:
        torch.set_num_threads(threads)


def _train(out: Path, hp: dict[str, Any], log_every: int) -> dict[str, Any]:
    import torch

    torch.manual_seed(hp["seed"])
    rng = random.Random(hp["seed"])
    held_out = {p.prompt for p in splits()[0]}
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, hp)
    optimizer = torch.optim.AdamW(model.parameters(), lr=hp["learning_rate"], weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / hp["warmup_steps"]))
    model.train()
    losses: list[float] = []
    started = time.perf_counter()
    for step in range(hp["steps"]):
        problems: list[Problem] = []
        while len(problems) < hp["batch_size"]:
            problem = make_problem(rng.choice(hp["tasks"]), rng)
            if problem.prompt not in held_out:
                problems.append(problem)
        loss = model(**_batch(tokenizer, problems)).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(round(loss.item(), 4))
        if log_every and (step + 1) % log_every == 0:
            elapsed = time.perf_counter() - started
            print(f"step {step + 1}/{hp['steps']}  loss {loss:.4f}  {elapsed:.0f}s", flush=True)
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config.max_new_tokens = 12
    model.generation_config.do_sample = False
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    manifest = {
        "hyperparameters": hp,
        "parameters": sum(p.numel() for p in model.parameters()),
        "loss_every_100_steps": losses[99::100],
        "held_out_eval_problems": len(held_out),
    }
    (out / "training_manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def solve(model_dir: Path, prompts: Sequence[str], batch_size: int = 64) -> list[str]:
    """Greedy replies of the model in ``model_dir`` to each prompt, batched."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    model.eval()
    replies: list[str] = []
    for start in range(0, len(prompts), batch_size):
        chats = [
            tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
            for p in prompts[start : start + batch_size]
        ]
        batch = tokenizer(chats, return_tensors="pt", padding=True)
        with torch.no_grad():
            out = model.generate(**batch, do_sample=False, max_new_tokens=12)
        new = out[:, batch["input_ids"].shape[1] :]
        replies += [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]
    return replies


def accuracy(model_dir: Path, problems: Sequence[Problem]) -> dict[str, float]:
    """Exact-match accuracy of the model on ``problems``, per task and overall."""
    replies = solve(model_dir, [p.prompt for p in problems])
    by_task: dict[str, list[bool]] = {}
    for problem, reply in zip(problems, replies, strict=True):
        by_task.setdefault(problem.task, []).append(reply == problem.answer)
    result = {task: sum(hits) / len(hits) for task, hits in by_task.items()}
    result["overall"] = sum(reply == p.answer for p, reply in zip(problems, replies, strict=True)) / len(problems)
    return result


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: train `tiny` and print its accuracy on the demo eval split."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder to write the model into")
    parser.add_argument("--steps", type=int, default=HYPERPARAMETERS["steps"], help="optimizer steps")
    args = parser.parse_args(argv)
    manifest = train(args.out, {"steps": args.steps})
    print(f"parameters: {manifest['parameters']}")
    print("eval accuracy:", json.dumps(accuracy(args.out, splits()[0])))


if __name__ == "__main__":
    main()

"""The training options of the command line, shared by ``autoevolve finetune train`` and the entry point."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from pytest_autoevolve.loops.training.base import METHODS, TrainSettings

DEFAULTS = {
    "sft": TrainSettings(),
    "dpo": TrainSettings(epochs=4, batch_size=16, beta=0.1),
    "grpo": TrainSettings(epochs=1, batch_size=32, max_steps=300, beta=0.02),
}

"""Each method's settings where the command line leaves them alone."""

HELP = {
    "r": "LoRA rank",
    "alpha": "LoRA alpha",
    "dropout": "LoRA dropout",
    "learning_rate": "learning rate (3e-3)",
    "epochs": "passes over the data (sft 12, dpo 4)",
    "batch_size": "examples per step, shared out among the processes (grpo: completions, a multiple of --generations)",
    "grad_accum": "gradient accumulation steps",
    "seed": "seed of the initialization, the order and the sampling",
    "target_modules": "module names LoRA adapts (default: the attention and MLP projections found)",
    "max_steps": "stop after N optimizer steps (grpo 300; -1: every epoch)",
    "max_seconds": "stop at the first step past N seconds (0: no limit)",
    "beta": "dpo: the preference strength (0.1); grpo: the KL weight to the base (0.02)",
    "generations": "grpo: completions sampled per prompt (8)",
    "max_completion_tokens": "grpo: the longest sampled completion (16)",
    "gradient_checkpointing": "recompute activations in the backward pass to save memory (GPU)",
    "qlora": "load the base in 4-bit with bitsandbytes under the adapter (GPU)",
}


def add_options(parser: argparse.ArgumentParser, *, processes: bool = True) -> None:
    """Add ``--method``, ``--processes`` (unless told not to) and one option per `TrainSettings` field."""
    parser.add_argument("--method", choices=METHODS, default="sft", help="sft (default), dpo or grpo")
    if processes:
        parser.add_argument(
            "--processes", type=int, default=1, metavar="N", help="data-parallel processes through accelerate"
        )
    for field in dataclasses.fields(TrainSettings):
        flags = [f"--{field.name.replace('_', '-')}"] + (["--lr"] if field.name == "learning_rate" else [])
        default = field.default
        options: dict[str, Any] = {"dest": field.name, "default": None, "help": HELP[field.name]}
        if isinstance(default, bool):
            options["action"] = "store_true"
        elif isinstance(default, tuple):
            options.update(nargs="+", metavar="NAME")
        else:
            options.update(type=type(default), metavar="N" if isinstance(default, int) else "X")
        parser.add_argument(*flags, **options)


def settings_of(args: argparse.Namespace) -> TrainSettings:
    """The method's defaults with the options given on the command line."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainSettings)}
    given = {
        name: tuple(value) if isinstance(value, list) else value for name, value in given.items() if value is not None
    }
    return dataclasses.replace(DEFAULTS[args.method], **given)


def settings_argv(settings: TrainSettings) -> list[str]:
    """The options that give ``settings`` back through `add_options`."""
    argv: list[str] = []
    for field in dataclasses.fields(TrainSettings):
        value, flag = getattr(settings, field.name), f"--{field.name.replace('_', '-')}"
        if isinstance(value, bool):
            argv += [flag] if value else []
        elif isinstance(value, tuple):
            argv += [flag, *value] if value else []
        else:
            argv += [flag, repr(value) if isinstance(value, float) else str(value)]
    return argv

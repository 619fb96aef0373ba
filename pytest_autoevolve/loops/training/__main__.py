r"""The training entry point: ``python -m pytest_autoevolve.loops.training`` (what ``accelerate launch`` runs).

Example, under your own accelerate configuration::

    accelerate launch --config_file fsdp.yaml -m pytest_autoevolve.loops.training \\
        finetune/datasets/v1-1a2b3c4d --method sft --base hf:models/base --out finetune/models/v7
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pytest_autoevolve.errors import AutoevolveError
from pytest_autoevolve.loops.training.base import Job, base_of, is_main_process, shown
from pytest_autoevolve.loops.training.launch import PREFIX, run_method
from pytest_autoevolve.loops.training.options import add_options, settings_of


def parser() -> argparse.ArgumentParser:
    """The entry point's options: the data, the base, the adapter folder and the training options."""
    parser = argparse.ArgumentParser(prog="python -m pytest_autoevolve.loops.training", description=__doc__)
    parser.add_argument("data", nargs="?", help="dataset folder (sft), pairs folder (dpo), project root (grpo)")
    parser.add_argument("--base", default="tiny", help="base model spec: tiny or hf:PATH (default tiny)")
    parser.add_argument("--out", required=True, help="the adapter folder to write")
    add_options(parser, processes=False)  # the launcher starts the processes
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Train one adapter in this process (one of several when a launcher started it)."""
    args = parser().parse_args(argv)
    say = print if is_main_process() else _quiet
    try:
        folder, name = base_of(args.base)
        data = Path(args.data) if args.data else (Path.cwd() if args.method == "grpo" else None)
        if data is None:
            raise AutoevolveError(f"--method {args.method} needs a data folder")
        job = Job(args.method, data, folder, Path(args.out), name, settings_of(args))
        manifest = run_method(job, lambda line: say(line, flush=True))
    except AutoevolveError as exc:
        print(f"{PREFIX}{exc}", file=sys.stderr)
        return exc.exit_status
    say(f"adapter written to {shown(Path(args.out))} ({manifest['method']}, {manifest['steps']} steps)")
    return 0


def _quiet(*_: object, **__: object) -> None:
    """Progress of a process other than the main one: not shown."""


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

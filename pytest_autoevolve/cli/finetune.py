"""The fine-tune commands of ``autoevolve``: finetune sample|curate|train, improve, promote, rollback."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pytest_autoevolve.errors import CommandError

EXAMPLES = {
    "improve": "autoevolve improve --rounds 2",
    "sample": "autoevolve finetune sample --k 8 --temperature 1.0",
    "curate": "autoevolve finetune curate .autoevolve/runs/20261121T120000Z-abc123",
    "train": "autoevolve finetune train finetune/datasets/v1-1a2b3c4d --epochs 12",
    "submit": "autoevolve finetune train finetune/datasets/v1-1a2b3c4d --backend openai --base gpt-4o-mini-2024-07-18",
    "promote": "autoevolve promote .autoevolve/runs/20261121T120000Z-abc123/summary.json",
    "rollback": "autoevolve rollback",
}


def _improve(args: argparse.Namespace, _extra: list[str]) -> int:
    from pytest_autoevolve.loops.finetune import improve

    results = improve(
        Path.cwd(),
        rounds=args.rounds,
        dry_run=args.dry_run,
        k=args.k,
        temperature=args.temperature,
        min_examples=args.min_examples,
    )
    for result in results:  # one JSON line per round, for scripts (the improve workflow reads them)
        print(json.dumps(result.__dict__, default=str))
    if args.dry_run:
        return 0
    return 0 if results and results[0].promoted else 1


def _sample(args: argparse.Namespace, _extra: list[str]) -> int:
    from pytest_autoevolve.loops.finetune import sample
    from pytest_autoevolve.loops.project import incumbent_of

    spec = args.model or incumbent_of(Path.cwd())
    run = sample(Path.cwd(), spec, k=args.k, temperature=args.temperature)
    print(f"sampled {spec} into {run.relative_to(Path.cwd()) if run.is_relative_to(Path.cwd()) else run}")
    return 0


def _curate(args: argparse.Namespace, _extra: list[str]) -> int:
    from pytest_autoevolve.loops.finetune import curate_runs

    root = Path.cwd()
    dataset = curate_runs(root, [Path(r) for r in args.runs], args.model or "")
    print(f"dataset written to {dataset.relative_to(root) if dataset.is_relative_to(root) else dataset}")
    return 0


def _train(args: argparse.Namespace, _extra: list[str]) -> int:
    from pytest_autoevolve.loops.finetune import base_of
    from pytest_autoevolve.loops.lora import LoraSettings, next_version, train_lora
    from pytest_autoevolve.loops.project import WORK_DIR, incumbent_of, update_config

    root, dataset = Path.cwd(), Path(args.dataset)
    if not (dataset / "train.jsonl").is_file():
        raise CommandError(f"{dataset} holds no train.jsonl: curate a dataset first (autoevolve finetune curate)")
    if args.backend == "openai":
        return _submit(args, root, dataset)
    base, prefix = base_of(args.base or incumbent_of(root))
    out = Path(args.out) if args.out else next_version(root / WORK_DIR / "models")
    settings = LoraSettings(epochs=args.epochs, learning_rate=args.lr, r=args.r, seed=args.seed)
    manifest = train_lora(base, dataset, out, settings, base_name=prefix)
    shown = out.relative_to(root) if out.is_relative_to(root) else out
    candidate = f"{prefix}+adapter={shown}"
    print(f"adapter written to {shown}; final loss {manifest['loss_per_epoch'][-1]:.3g}")
    _changed(update_config(root, {"candidate": candidate}))
    return 0


def _submit(args: argparse.Namespace, root: Path, dataset: Path) -> int:
    from pytest_autoevolve.loops.hosted import submit_fine_tune
    from pytest_autoevolve.loops.project import update_config

    if not args.base:
        raise CommandError("--backend openai needs --base MODEL (the hosted model to fine-tune)")
    val = dataset / "val.jsonl"
    job = submit_fine_tune(dataset / "train.jsonl", val if val.is_file() else None, args.base, suffix=args.suffix)
    print(f"job {job.job_id} {job.status}: model {job.fine_tuned_model}")
    _changed(update_config(root, {"candidate": f"openai:{job.fine_tuned_model}"}))
    return 0


def _changed(changes: list[str]) -> None:
    """Say how autoevolve.yaml changed."""
    from pytest_autoevolve.loops.project import CONFIG_FILE

    print(f"{CONFIG_FILE}: " + ("; ".join(changes) if changes else "unchanged"))


def _promote(args: argparse.Namespace, _extra: list[str]) -> int:
    from pytest_autoevolve.loops.promotion import promote

    entry = promote(
        Path.cwd(), Path(args.summary) if args.summary else None, force=args.force, reason=args.reason or ""
    )
    print(f"promoted {entry['incumbent']} (was {entry['previous']})" + (" [override]" if entry["override"] else ""))
    _changed(entry["changes"])
    return 0


def _rollback(args: argparse.Namespace, _extra: list[str]) -> int:
    from pytest_autoevolve.loops.promotion import rollback

    entry = rollback(Path.cwd())
    print(f"rolled back: incumbent is {entry['incumbent']} again (was {entry['previous']})")
    _changed(entry["changes"])
    return 0


def _sampling(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--k", type=int, default=8, help="samples per train scenario (default 8)")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1.0)")


def add_commands(commands: Any) -> None:
    """Register the fine-tune loop's subcommands."""
    improve = commands.add_parser(
        "improve",
        help="the whole fine-tune loop: sample, curate, train, gate, promote if passed",
        description="Run the fine-tune loop in the repository root (autoevolve.yaml, scenarios/). Only a "
        "promotion changes autoevolve.yaml. Exit 0 when a round promoted (or after --dry-run), 1 when the gate did "
        "not pass, 2 when the loop could not run (too few examples, a model it cannot train), 130 when interrupted.",
        epilog=f"example: {EXAMPLES['improve']}",
    )
    improve.add_argument("--rounds", type=int, default=1, help="rounds; each promotes before the next (default 1)")
    improve.add_argument(
        "--dry-run", action="store_true", help="sample and curate only (shows the curation); train nothing"
    )
    improve.add_argument(
        "--min-examples", type=int, default=20, metavar="N", help="fewest curated examples to train on (default 20)"
    )
    _sampling(improve)
    improve.set_defaults(handler=_improve)

    finetune = commands.add_parser(
        "finetune",
        help="one step of the fine-tune loop: sample, curate or train",
        description="One step of the fine-tune loop.",
    )
    steps = finetune.add_subparsers(dest="step", required=True, metavar="STEP")
    step = steps.add_parser("sample", help="rejection-sample the train split", epilog=f"example: {EXAMPLES['sample']}")
    step.add_argument("--model", help="spec to sample (default: the incumbent)")
    _sampling(step)
    step.set_defaults(handler=_sample)
    step = steps.add_parser(
        "curate", help="promotable trajectories into a versioned chat dataset", epilog=f"example: {EXAMPLES['curate']}"
    )
    step.add_argument("runs", nargs="+", help="run folders holding trajectories.jsonl")
    step.add_argument("--model", help="the spec that produced the runs (for the manifest)")
    step.set_defaults(handler=_curate)
    step = steps.add_parser(
        "train",
        help="LoRA-train locally, or submit a hosted fine-tune",
        epilog=f"examples:\n  {EXAMPLES['train']}\n  {EXAMPLES['submit']}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    step.add_argument("dataset", help="a dataset folder from curate")
    step.add_argument("--backend", choices=("lora", "openai"), default="lora", help="where to train (default lora)")
    step.add_argument("--base", help="base model: the incumbent by default (lora); the hosted model (openai)")
    step.add_argument("--out", help="adapter folder (default: finetune/models/v<N>)")
    step.add_argument("--epochs", type=int, default=12)
    step.add_argument("--lr", type=float, default=3e-3)
    step.add_argument("--r", type=int, default=16, help="LoRA rank")
    step.add_argument("--seed", type=int, default=0)
    step.add_argument("--suffix", help="hosted model name suffix")
    step.set_defaults(handler=_train)

    promote = commands.add_parser(
        "promote",
        help="make the candidate the incumbent after a passing gate",
        epilog=f"example: {EXAMPLES['promote']}",
    )
    promote.add_argument("summary", nargs="?", help="summary.json of the gate run of this incumbent/candidate pair")
    promote.add_argument("--force", action="store_true", help="promote without a passing gate (recorded)")
    promote.add_argument("--reason", help="why (recorded in the history)")
    promote.set_defaults(handler=_promote)
    rollback = commands.add_parser(
        "rollback", help="restore the incumbent the last promotion replaced", epilog=f"example: {EXAMPLES['rollback']}"
    )
    rollback.set_defaults(handler=_rollback)

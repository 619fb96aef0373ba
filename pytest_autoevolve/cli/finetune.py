"""The fine-tune commands of ``autoevolve``: finetune sample|curate|train, improve, promote, rollback."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pytest_autoevolve.errors import CommandError
from pytest_autoevolve.loops.training.base import METHODS
from pytest_autoevolve.loops.training.options import add_options

EXAMPLES = {
    "improve": "autoevolve improve --rounds 2",
    "improve-dpo": "autoevolve improve --method dpo",
    "sample": "autoevolve finetune sample --k 8 --temperature 1.0",
    "curate": "autoevolve finetune curate .autoevolve/runs/20261121T120000Z-abc123",
    "pairs": "autoevolve finetune curate .autoevolve/runs/20261121T120000Z-abc123 --pairs",
    "train": "autoevolve finetune train finetune/datasets/v1-1a2b3c4d --epochs 12 --processes 2",
    "dpo": "autoevolve finetune train finetune/pairs/v1-1a2b3c4d --method dpo",
    "grpo": "autoevolve finetune train --method grpo --max-steps 40",
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
        method=args.method,
        processes=args.processes,
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
    from pytest_autoevolve.loops.dataset import curation_line
    from pytest_autoevolve.loops.finetune import curate_runs
    from pytest_autoevolve.loops.pairs import curate_pairs
    from pytest_autoevolve.loops.project import WORK_DIR, project_catalog
    from pytest_autoevolve.run.results import git_commit

    root, runs = Path.cwd(), [Path(r) for r in args.runs]
    if args.pairs and args.min_step_score is not None:
        raise CommandError("--min-step-score filters the chat dataset; it does not apply to --pairs")
    if args.pairs:
        pairs = curate_pairs(
            runs, project_catalog(root), root / WORK_DIR / "pairs", model_spec=args.model, git_commit=git_commit(root)
        )
        shown = pairs.path.relative_to(root) if pairs.path.is_relative_to(root) else pairs.path
        print(f"{pairs.train} preference pairs ({pairs.val} val) written to {shown}")
        return 0
    dataset = curate_runs(root, runs, args.model or "", min_step_score=args.min_step_score)
    print(f"dataset written to {dataset.relative_to(root) if dataset.is_relative_to(root) else dataset}")
    print(curation_line(dataset))
    return 0


def _step_score(text: str) -> float:
    """``--min-step-score``: a number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"a number from 0 to 1, got {text!r}")
    return value


def _train(args: argparse.Namespace, _extra: list[str]) -> int:
    root = Path.cwd()
    if args.backend == "lora" and args.method == "grpo":
        return _train_local(args, root, root)
    dataset = Path(args.dataset or ".")
    if not (dataset / "train.jsonl").is_file():
        how = "curate pairs first (autoevolve finetune curate RUN --pairs)" if args.method == "dpo" else ""
        how = how or "curate a dataset first (autoevolve finetune curate RUN)"
        raise CommandError(f"{args.dataset or 'no dataset given'}: no train.jsonl there: {how}")
    if args.backend != "lora":
        return _submit(args, root, dataset)
    return _train_local(args, root, dataset)


def _train_local(args: argparse.Namespace, root: Path, data: Path) -> int:
    """LoRA-train here (or in ``--processes`` processes); the new adapter becomes the candidate."""
    from pytest_autoevolve.loops.project import WORK_DIR, incumbent_of, update_config
    from pytest_autoevolve.loops.training import Job, base_of, next_version, train
    from pytest_autoevolve.loops.training.options import settings_of

    base, prefix = base_of(args.base or incumbent_of(root))
    out = Path(args.out) if args.out else next_version(root / WORK_DIR / "models")
    manifest = train(Job(args.method, data, base, out, prefix, settings_of(args)), processes=args.processes)
    shown = out.relative_to(root) if out.is_relative_to(root) else out
    losses = manifest["curves"].get("loss") or [float("nan")]
    print(f"adapter written to {shown} ({args.method}, {manifest['steps']} steps); final loss {losses[-1]:.3g}")
    _changed(update_config(root, {"candidate": f"{prefix}+adapter={shown}"}))
    return 0


def _submit(args: argparse.Namespace, root: Path, dataset: Path) -> int:
    """Fine-tune on OpenAI or Azure OpenAI; the new model (on Azure: its ``--deployment``) becomes the candidate."""
    from pytest_autoevolve.loops.hosted import AzureTarget, submit_fine_tune
    from pytest_autoevolve.loops.project import CONFIG_FILE, update_config
    from pytest_autoevolve.settings import load_settings

    if not args.base:
        raise CommandError(f"--backend {args.backend} needs --base MODEL (the hosted model to fine-tune)")
    method = {"sft": "supervised", "dpo": "dpo"}.get(args.method)
    if method is None:
        raise CommandError(f"--backend {args.backend} trains with --method sft or dpo, not {args.method}")
    azure = None
    if args.backend == "azure":
        settings = load_settings(root)
        given = {"endpoint": args.azure_endpoint, "api_version": args.api_version}
        azure = AzureTarget.of(settings.incumbent, settings.models, **given)
    val = dataset / "val.jsonl"
    files = (dataset / "train.jsonl", val if val.is_file() else None)
    job = submit_fine_tune(*files, args.base, method=method, suffix=args.suffix, azure=azure)
    print(f"job {job.job_id} {job.status}: model {job.fine_tuned_model}")
    if azure is None:
        _changed(update_config(root, {"candidate": f"openai:{job.fine_tuned_model}"}))
    elif args.deployment:
        _changed(update_config(root, {"candidate": azure.candidate(args.deployment)}))
    else:
        mapping = json.dumps(azure.candidate("DEPLOYMENT"))
        print(f"deploy {job.fine_tuned_model} on the resource, then gate it with candidate: {mapping} in {CONFIG_FILE}")
        _changed([])
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


def _sampling(parser: argparse.ArgumentParser, temperature: float | None = 1.0) -> None:
    parser.add_argument("--k", type=int, default=8, help="samples per train scenario (default 8)")
    shown = "1.0; 0.5 with --method dpo" if temperature is None else f"{temperature}"
    parser.add_argument(
        "--temperature", type=float, default=temperature, help=f"sampling temperature (default {shown})"
    )


def add_commands(commands: Any) -> None:
    """Register the fine-tune loop's subcommands."""
    improve = commands.add_parser(
        "improve",
        help="the whole fine-tune loop: sample, curate, train, gate, promote if passed",
        description="Run the fine-tune loop in the repository root (autoevolve.yaml, scenarios/). Only a "
        "promotion changes autoevolve.yaml. Exit 0 when a round promoted (or after --dry-run), 1 when the gate did "
        "not pass, 2 when the loop could not run (too few examples, a model it cannot train), 130 when interrupted.",
        epilog=f"examples:\n  {EXAMPLES['improve']}\n  {EXAMPLES['improve-dpo']}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    improve.add_argument("--rounds", type=int, default=1, help="rounds; each promotes before the next (default 1)")
    improve.add_argument(
        "--dry-run", action="store_true", help="sample and curate only (shows the curation); train nothing"
    )
    improve.add_argument(
        "--min-examples", type=int, default=20, metavar="N", help="fewest curated examples to train on (default 20)"
    )
    improve.add_argument("--method", choices=METHODS, default="sft", help="how to train: sft (default), dpo, grpo")
    improve.add_argument(
        "--processes", type=int, default=1, metavar="N", help="data-parallel training processes (default 1)"
    )
    _sampling(improve, temperature=None)
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
        "curate",
        help="promotable trajectories into a versioned chat dataset (or preference pairs)",
        epilog=f"examples:\n  {EXAMPLES['curate']}\n  {EXAMPLES['pairs']}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    step.add_argument("runs", nargs="+", help="run folders holding trajectories.jsonl")
    step.add_argument("--model", help="the spec that produced the runs (for the manifest)")
    step.add_argument(
        "--pairs", action="store_true", help="preference pairs for dpo (a passing and a failing answer per scenario)"
    )
    step.add_argument(
        "--min-step-score",
        type=_step_score,
        metavar="X",
        help="drop a passing trajectory whose step_critic scored some step below X (0 to 1)",
    )
    step.set_defaults(handler=_curate)
    step = steps.add_parser(
        "train",
        help="LoRA-train locally, or submit a hosted fine-tune",
        epilog="examples:\n  " + "\n  ".join(EXAMPLES[name] for name in ("train", "dpo", "grpo", "submit")),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    step.add_argument("dataset", nargs="?", help="a dataset folder from curate (pairs for dpo; none for grpo)")
    step.add_argument(
        "--backend", choices=("lora", "openai", "azure"), default="lora", help="where to train (default lora)"
    )
    step.add_argument("--base", help="base model: the incumbent by default (lora); the hosted model (openai)")
    step.add_argument("--out", help="adapter folder (default: finetune/models/v<N>)")
    add_options(step)
    step.add_argument("--suffix", help="hosted model name suffix")
    step.add_argument("--azure-endpoint", help="azure: the resource (default: the incumbent's, $AZURE_OPENAI_ENDPOINT)")
    step.add_argument("--api-version", help="azure: the API version (default: the incumbent's, $OPENAI_API_VERSION)")
    step.add_argument("--deployment", help="azure: the deployment that will serve the new model (the candidate)")
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

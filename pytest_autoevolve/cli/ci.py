"""The ``autoevolve ci`` commands: what the GitHub Actions workflows run, the same on a laptop."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

EXAMPLE = 'autoevolve ci gate --base origin/main   (in a workflow: --base "$BASE_SHA")'


def _gate(args: argparse.Namespace, _extra: list[str]) -> int:
    from pytest_autoevolve.loops.ci import main_gate

    return main_gate(args.base, artifacts=args.artifacts, refresh=args.refresh, shard=args.shard)


def _merge(args: argparse.Namespace, extra: list[str]) -> int:
    """The verdict of all shards, by the rule they ran under, with its summary and reports in ARTIFACTS/ci/."""
    from pytest_autoevolve.cli.gate import _report
    from pytest_autoevolve.loops.ci import shard_results

    junits, rule = shard_results([Path(folder) for folder in args.shards])
    report = argparse.Namespace(
        command="ci-merge",
        junit=[str(path) for path in junits],
        gate_config=str(rule),
        seed=None,
        json=False,
        report_dir=str(Path(args.artifacts) / "ci"),
        incumbent=None,
        candidate=None,
        scorer=None,
        pass_value=[],
    )
    return _report(report, extra)


def _shard(text: str) -> tuple[int, int]:
    index, _, total = text.partition("/")
    if not (index.isdigit() and total.isdigit() and 1 <= int(index) <= int(total)):
        raise argparse.ArgumentTypeError(f"takes K/N with 1 <= K <= N (e.g. 2/4), got {text!r}")
    return int(index), int(total)


def add_commands(commands: Any) -> None:
    """Register ``ci gate`` and ``ci merge``."""
    ci = commands.add_parser(
        "ci",
        help="CI jobs: gate the working tree against a base commit, merge sharded gates",
        description="The jobs the GitHub Actions workflows run; they work the same on a laptop.",
        epilog=f"example: {EXAMPLE}",
    )
    jobs = ci.add_subparsers(dest="job", required=True, metavar="JOB")
    gate = jobs.add_parser(
        "gate",
        help="gate the working tree's candidate against the repository at --base, on the eval split",
        description="The incumbent is the repository at the base commit (its config, prompts, adapters and agent "
        "code, checked out in a git worktree), run on the working tree's eval catalog; its run is "
        "stored under ARTIFACTS/ci/incumbent/ keyed by base commit, catalog digest, incumbent spec, "
        "repeats and seed, and reused while they are unchanged. The candidate is the working tree. "
        "Results: ARTIFACTS/ci/summary.json, report.md, report.html and junit.xml, and the run under "
        "ARTIFACTS/runs/. Exit 0 only when the gate passes, 1 when it fails or is inconclusive, 2 "
        "when it cannot run (an unknown base, or a base whose tree is the working tree's), 130 when "
        "interrupted (Ctrl-C).",
        epilog=f"example: {EXAMPLE}",
    )
    gate.add_argument("--base", required=True, metavar="REF", help="the commit the change is based on")
    gate.add_argument("--artifacts", default=".autoevolve", metavar="DIR", help="artifacts folder (.autoevolve)")
    gate.add_argument("--refresh", action="store_true", help="run the base again even when a stored run matches")
    gate.add_argument(
        "--shard",
        type=_shard,
        metavar="K/N",
        help="run shard K of N of the catalog (both sides); exit 0 when it ran completely; "
        "the verdict is autoevolve ci merge's",
    )
    gate.set_defaults(handler=_gate)
    merge = jobs.add_parser(
        "merge",
        help="the verdict of the shards of a sharded ci gate",
        description="Each SHARD folder holds one `ci gate --shard K/N` run's junit.xml, gate-rule.json and "
        "shard.json (ARTIFACTS/ci/ of that run). Shards 1..N of one base commit and rule must all be "
        "there. Writes summary.json, report.md and report.html into ARTIFACTS/ci/. Exit 0 only when "
        "the gate passes, 1 when it fails or is inconclusive, 2 when the shards are missing or of "
        "different runs.",
        epilog="example: autoevolve ci merge shards/*",
    )
    merge.add_argument("shards", nargs="+", metavar="SHARD", help="a folder of one shard's results")
    merge.add_argument("--artifacts", default=".autoevolve", metavar="DIR", help="artifacts folder (.autoevolve)")
    merge.set_defaults(handler=_merge)

"""The ``autoevolve ci`` commands: what the GitHub Actions workflows run, the same on a laptop."""

from __future__ import annotations

import argparse
from typing import Any

EXAMPLE = 'autoevolve ci gate --base origin/main   (in a workflow: --base "$BASE_SHA")'


def _gate(args: argparse.Namespace, _extra: list[str]) -> int:
    from pytest_autoevolve.loops.ci import main_gate

    return main_gate(args.base, artifacts=args.artifacts, refresh=args.refresh)


def add_commands(commands: Any) -> None:
    """Register ``ci gate``."""
    ci = commands.add_parser(
        "ci",
        help="CI jobs: gate the working tree against a base commit",
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
    gate.set_defaults(handler=_gate)

"""The ``autoevolve evolve`` command: the edit-score-gate loop."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXAMPLE = "autoevolve evolve --iterations 4 --proposer space:evolve-space.yaml --targets autoevolve.yaml"


def _evolve(args: argparse.Namespace, _extra: list[str]) -> int:
    from pytest_autoevolve.loops.evolve import Loop
    from pytest_autoevolve.loops.proposers import make_proposer

    root = Path.cwd()
    try:
        proposer = make_proposer(
            args.proposer, root, max_tokens=args.proposer_max_tokens, max_cost=args.proposer_max_cost
        )
        loop = Loop(
            root,
            proposer,
            targets=args.targets,
            split=args.split,
            tag=args.tag,
            max_seconds=args.max_seconds,
            iteration_seconds=args.iteration_seconds,
        )
        result = loop.run(args.iterations)
    except KeyboardInterrupt:
        print("autoevolve: interrupted; the branch is back at its last kept commit with a clean tree", file=sys.stderr)
        return 130
    kept = sum(i.decision == "kept" for i in result.iterations)
    print(
        f"start {result.start_candidate} {result.start_score}; best {result.best_candidate} {result.best_score}; "
        f"{kept} kept of {len(result.iterations)}; gate {result.verdict.upper()}; "
        f"report {result.log_dir}/report.md"
    )
    return 0 if result.verdict == "pass" else 1


def add_commands(commands: Any) -> None:
    """Register ``evolve``."""
    evolve = commands.add_parser(
        "evolve",
        help="the edit-score-gate loop: propose an edit, score it, keep it as a commit or revert it",
        description="Run the loop in the repository root on a new branch autoevolve/<tag>; gate the best kept "
        "state against the start on the eval split. Exit 0 only when that gate passes.",
        epilog=f"example: {EXAMPLE}",
    )
    evolve.add_argument("--iterations", type=int, default=4, help="iterations at most (default 4)")
    evolve.add_argument(
        "--proposer",
        default="space:evolve-space.yaml",
        metavar="PROPOSER",
        help="space:FILE, llm:SPEC or python:module:function (default: a space file)",
    )
    evolve.add_argument(
        "--targets", nargs="+", default=["autoevolve.yaml"], help="the files edits may change (default autoevolve.yaml)"
    )
    evolve.add_argument("--split", choices=("train", "eval", "all"), default="train", help="scoring split (train)")
    evolve.add_argument("--tag", help="names the branch autoevolve/TAG and the log folder (default: a timestamp)")
    evolve.add_argument(
        "--max-seconds", type=float, help="total budget: no iteration starts after it; a running score stops at it"
    )
    evolve.add_argument(
        "--iteration-seconds",
        type=float,
        help="stop an iteration's scoring after this many seconds and revert its edit",
    )
    evolve.add_argument(
        "--proposer-max-tokens", type=int, metavar="N", help="llm proposer: stop once its calls have used N tokens"
    )
    evolve.add_argument(
        "--proposer-max-cost",
        type=float,
        metavar="USD",
        help="llm proposer: stop once its calls have cost this much (model prices)",
    )
    evolve.set_defaults(handler=_evolve)

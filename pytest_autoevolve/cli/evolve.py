"""The ``autoevolve evolve`` command: the edit-score-gate loop."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pytest_autoevolve.errors import AutoevolveError

EXAMPLE = "autoevolve evolve --iterations 4 --proposer space:evolve-space.yaml --targets autoevolve.yaml"

DESCRIPTION = """\
Run the loop in the repository root on a new branch autoevolve/<tag>; gate the best kept state
against the start on the eval split. You end on the branch you started on; the kept commits stay
on autoevolve/<tag> (removed when nothing was kept). The log, results.tsv and report.md are in
.autoevolve/evolve/<tag>/.

exit status: 0 the final gate passed; 1 it did not (fail or inconclusive, nothing kept included);
2 the loop could not run or do its work (a bad option, the proposer failing --max-proposer-errors
times in a row, the final gate unable to run); 130 interrupted (Ctrl-C; the log and report say
what was done)."""


def _evolve(args: argparse.Namespace, _extra: list[str]) -> int:
    from pytest_autoevolve.loops.evolve import Loop, outcome_lines
    from pytest_autoevolve.loops.proposer_specs import make_proposer
    from pytest_autoevolve.loops.proposers import EvolveError

    root = Path.cwd()
    budgets = {"max_tokens": args.proposer_max_tokens, "max_cost": args.proposer_max_cost}
    proposer = make_proposer(args.proposer, root, max_heuristics=args.max_heuristics, targets=args.targets, **budgets)
    edit_kb = args.max_edit_kb
    limits = {"max_proposer_errors": args.max_proposer_errors, "max_edit_bytes": edit_kb and int(edit_kb * 1024)}
    loop = Loop(
        root,
        proposer,
        targets=args.targets,
        split=args.split,
        tag=args.tag,
        max_seconds=args.max_seconds,
        iteration_seconds=args.iteration_seconds,
        create=args.create,
        **{name: value for name, value in limits.items() if value is not None},
    )
    try:
        result = loop.run(args.iterations)
    except AutoevolveError:  # said in one line by the command line
        raise
    except Exception as exc:  # a bug, not a user's mistake: one line here, the traceback kept in the log folder
        where = loop.log_dir.relative_to(loop.root)
        raise EvolveError(
            f"the loop crashed: {type(exc).__name__}: {exc}; what it did is in {where}/report.md, "
            f"the traceback in {where}/traceback.txt"
        ) from exc
    for line in outcome_lines(result):
        print(line)
    if result.error:
        raise EvolveError(result.error)
    return 0 if result.verdict == "pass" else 1


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
        return value

    return parse


def add_commands(commands: Any) -> None:
    """Register ``evolve``."""
    evolve = commands.add_parser(
        "evolve",
        help="the edit-score-gate loop: propose an edit, score it, keep it as a commit or revert it",
        description=DESCRIPTION,
        epilog=f"example: {EXAMPLE}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    evolve.add_argument("--iterations", type=_positive(int), default=4, help="iterations at most (default 4)")
    evolve.add_argument(
        "--proposer",
        default="space:evolve-space.yaml",
        metavar="PROPOSER",
        help="space:FILE (a search space), llm:SPEC (a model proposes edits), fewshot:K (K passing train "
        "trials as demonstrations in the prompt file), distill:SPEC (a model distills heuristics into the "
        "prompt file; kept ones are pruned when removing them does not hurt), python:module:function "
        "(default: space:evolve-space.yaml)",
    )
    evolve.add_argument(
        "--targets", nargs="+", default=["autoevolve.yaml"], help="the files edits may change (default autoevolve.yaml)"
    )
    evolve.add_argument(
        "--create", action="store_true", help="let edits create targets that do not exist yet (else refused)"
    )
    evolve.add_argument(
        "--split",
        choices=("train", "eval", "all"),
        default="train",
        help="scoring split (default train); eval or all also score on the final gate's scenarios, "
        "so that gate is no longer independent of the search (its report says so)",
    )
    evolve.add_argument("--tag", help="names the branch autoevolve/TAG and the log folder (default: a timestamp)")
    evolve.add_argument(
        "--max-seconds",
        type=_positive(float),
        help="total budget: no iteration starts after it; a running score or proposer call stops at it",
    )
    evolve.add_argument(
        "--iteration-seconds",
        type=_positive(float),
        help="stop an iteration (waiting for the proposer, or scoring) after this many seconds; its edit is reverted",
    )
    evolve.add_argument(
        "--max-proposer-errors",
        type=_positive(int),
        metavar="N",
        help="stop after N proposer failures in a row (HTTP errors, timeouts), gate what was kept, exit 2 (default 3)",
    )
    evolve.add_argument(
        "--max-edit-kb",
        type=_positive(float),
        metavar="KB",
        help="reject an edit that writes more than this into one file (default 256)",
    )
    evolve.add_argument(
        "--max-heuristics",
        type=_positive(int),
        default=3,
        metavar="N",
        help="distill proposer: at most N new heuristics a proposal (default 3)",
    )
    evolve.add_argument(
        "--proposer-max-tokens",
        type=int,
        metavar="N",
        help="llm, distill proposers: stop once their calls used N tokens",
    )
    evolve.add_argument(
        "--proposer-max-cost",
        type=float,
        metavar="USD",
        help="llm and distill proposers: stop once their calls have cost this much (model prices)",
    )
    evolve.set_defaults(handler=_evolve)

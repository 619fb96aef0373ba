"""The ``autoevolve init`` command: scaffold a config, example scenarios and the CI workflows."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

EXAMPLE = "autoevolve init my-project   (then: cd my-project && pytest --autoevolve)"

DESCRIPTION = """\
Write the starter files of a project into DIR (default: the current folder):
  autoevolve.yaml              incumbent and candidate (the embedded model tiny), repeats, the gate
  scenarios/example.yaml       eval and train scenarios that tiny partly solves
  evolve-space.yaml            a search space for autoevolve evolve
  .github/workflows/autoevolve-gate.yml, autoevolve-gate-comment.yml,
  autoevolve-improve.yml, autoevolve-evolve.yml   (unless --no-workflows)
An existing file is kept and reported as skipped unless --force."""

NEXT_STEPS = """\
next steps:
{cd}  autoevolve scenarios --list    validate the catalog
  pytest --autoevolve            run incumbent and candidate, print the gate's verdict
                                 (tiny against itself: no lift, so FAIL and exit status 1)
  then point `candidate` in autoevolve.yaml at your model or agent, and add scenarios.
  autoevolve improve --dry-run   what the fine-tune loop would train on: it needs 20 or more
                                 passing train answers, so add `split: train` scenarios
  autoevolve evolve              the edit-score-gate loop, once the project is a git commit
{ci}"""

CI_STEPS = """\
on GitHub: commit the files; make `autoevolve-gate-verdict` a required status check of the
  default branch, and let GitHub Actions create pull requests (Settings > Actions > General)
  for the improve and evolve workflows."""


def _init(args: argparse.Namespace, _extra: list[str]) -> int:
    from pytest_autoevolve.cli.scaffold import scaffold

    root = Path(args.dir)
    outcomes = scaffold(root, force=args.force, workflows=not args.no_workflows)
    for outcome in outcomes:
        note = "  (exists; --force overwrites it)" if outcome.action == "skipped" else ""
        print(f"{outcome.action:<11} {root / outcome.path}{note}")
    cd = f"  cd {args.dir}\n" if root.resolve() != Path.cwd().resolve() else ""
    print(NEXT_STEPS.format(cd=cd, ci="" if args.no_workflows else CI_STEPS).rstrip())
    return 0


def add_command(commands: Any) -> None:
    """Register ``init``."""
    init = commands.add_parser(
        "init",
        help="scaffold autoevolve.yaml, example scenarios, an evolve space and the CI workflows",
        description=DESCRIPTION,
        epilog=f"example: {EXAMPLE}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    init.add_argument("dir", nargs="?", default=".", metavar="DIR", help="the project folder (default: .)")
    init.add_argument("--force", action="store_true", help="overwrite files that exist")
    init.add_argument("--no-workflows", action="store_true", help="write no GitHub Actions workflows")
    init.set_defaults(handler=_init)

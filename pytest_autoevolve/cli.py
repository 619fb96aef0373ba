"""The ``autoevolve`` command line."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from pytest_autoevolve import __version__

EXAMPLES = {
    "run": "autoevolve run --autoevolve-candidate python:myagent.main:answer -k smoke",
    "scenarios": "autoevolve scenarios scenarios/ --list",
}


def _run(args: argparse.Namespace, extra: list[str]) -> int:
    """Run the catalog: ``pytest --autoevolve`` with the remaining arguments."""
    import pytest

    return int(pytest.main(["--autoevolve", *extra]))


def _scenarios(args: argparse.Namespace, extra: list[str]) -> int:
    """Validate the catalog and print its size by split and category."""
    from pytest_autoevolve.graders import default_registry
    from pytest_autoevolve.scenarios import ScenarioError, load_catalog

    roots = [Path(p) for p in args.paths] or [Path("scenarios")]
    missing = [str(p) for p in roots if not p.exists()]
    if missing:
        print(f"autoevolve: no such catalog path: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        catalog = load_catalog(roots, default_registry(), Path.cwd())
    except ScenarioError as exc:
        print(f"autoevolve: {exc}", file=sys.stderr)
        return 1
    if args.list:
        for scenario in catalog:
            print(f"{scenario.path}:{scenario.line}  {scenario.id}  [{scenario.split}]")
    counts = Counter((s.split, s.category or "-") for s in catalog)
    print(f"{len(catalog)} scenarios: " + ", ".join(f"{n} {split}" for split, n in
                                                     sorted(Counter(s.split for s in catalog).items())))  # fmt: skip
    for (split, category), number in sorted(counts.items()):
        print(f"  {split:<6} {category:<16} {number}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The parser with every subcommand and its example."""
    parser = argparse.ArgumentParser(
        prog="autoevolve",
        description="A pytest plugin and CI regression gate for LLM models and agents.",
        epilog="example: autoevolve run   (the same as: pytest --autoevolve)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run", help="run the catalog on the incumbent and candidate (pytest --autoevolve)",
        description="Run pytest --autoevolve; every other argument goes to pytest.",
        epilog=f"example: {EXAMPLES['run']}", add_help=False,
    )  # fmt: skip
    run.set_defaults(handler=_run)
    listing = commands.add_parser(
        "scenarios", help="validate the scenario catalog and count it by split and category",
        description="Load every scenario file, report the first error with file, scenario and key.",
        epilog=f"example: {EXAMPLES['scenarios']}",
    )  # fmt: skip
    listing.add_argument("paths", nargs="*", help="catalog folders or files (default: scenarios)")
    listing.add_argument("--list", action="store_true", help="print every scenario id with its file and line")
    listing.set_defaults(handler=_scenarios)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``autoevolve`` script."""
    args, extra = build_parser().parse_known_args(argv)
    if extra and args.command != "run":
        build_parser().error(f"unrecognized arguments: {' '.join(extra)}")
    return int(args.handler(args, extra))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The ``autoevolve`` command line: one parser, one error handler."""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence

from pytest_autoevolve import __version__
from pytest_autoevolve.cli.cache import add_commands as add_cache_commands
from pytest_autoevolve.cli.canary import add_commands as add_canary_commands
from pytest_autoevolve.cli.ci import add_commands as add_ci_commands
from pytest_autoevolve.cli.evolve import add_commands as add_evolve_commands
from pytest_autoevolve.cli.finetune import add_commands as add_finetune_commands
from pytest_autoevolve.cli.gate import GATE_SOURCES, _compare, _gate_options, _report, _scenarios
from pytest_autoevolve.cli.imports import add_commands as add_import_commands
from pytest_autoevolve.cli.init import add_command as add_init_command
from pytest_autoevolve.cli.plan import add_commands as add_plan_commands
from pytest_autoevolve.errors import AutoevolveError

EXAMPLES = {
    "run": "autoevolve run --autoevolve-candidate python:myagent.main:answer -k smoke",
    "scenarios": "autoevolve scenarios scenarios/ --list",
    "report": "pytest --autoevolve --junitxml=junit.xml; autoevolve report junit.xml --json",
    "compare": "autoevolve compare main.xml pr.xml   (main.xml and pr.xml from pytest --autoevolve --junitxml)",
}


INTERRUPTED = 130

"""The exit status after Ctrl-C, as a shell gives a command killed by SIGINT (128 + 2)."""


def _run(args: argparse.Namespace, extra: list[str]) -> int:
    """Run the catalog: ``pytest --autoevolve`` with the remaining arguments."""
    import pytest

    return int(pytest.main(["--autoevolve", *extra]))


def build_parser() -> argparse.ArgumentParser:
    """The parser with every subcommand and its example."""
    parser = argparse.ArgumentParser(
        prog="autoevolve",
        description="A pytest plugin and CI regression gate for LLM models and agents.",
        epilog="example: autoevolve run   (the same as: pytest --autoevolve)",
    )
    RAW = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="run the catalog on the incumbent and candidate (pytest --autoevolve)",
        description="Run pytest --autoevolve; every other argument goes to pytest.",
        epilog=f"example: {EXAMPLES['run']}",
        add_help=False,
    )
    run.set_defaults(handler=_run)
    listing = commands.add_parser(
        "scenarios",
        help="validate the scenario catalog and count it by split and category",
        description="Load every scenario file, report the first error with file, scenario and key.",
        epilog=f"example: {EXAMPLES['scenarios']}",
    )
    listing.add_argument("paths", nargs="*", help="catalog folders or files (default: scenarios)")
    listing.add_argument("--list", action="store_true", help="print every scenario id with its file and line")
    listing.set_defaults(handler=_scenarios)
    report = commands.add_parser(
        "report",
        help="recompute the gate from junit files of pytest --autoevolve --junitxml",
        description=textwrap.fill(
            "Read the per-scenario results from one or more junit files (several: e.g. CI shards, merged), decide "
            "the gate and print the same comparison as the pytest terminal summary.",
            94,
        ),
        epilog=f"{GATE_SOURCES}\n\nexample: {EXAMPLES['report']}",
        formatter_class=RAW,
    )
    report.add_argument(
        "junit",
        nargs="+",
        metavar="JUNIT.xml",
        help="junit file(s) from pytest --autoevolve, or a results file (below)",
    )
    _gate_options(report)
    report.set_defaults(handler=_report)
    compare = commands.add_parser(
        "compare",
        help="gate one run against another: the candidate of A.xml before, of B.xml after",
        description=textwrap.fill(
            "Compare two runs. The candidate-role items of A.xml stand for the incumbent (before) and the "
            "candidate-role items of B.xml for the candidate (after); a file with no candidate items is "
            "represented by its incumbent items. Scenarios are paired by id (eval split), then the gate "
            "decides as in pytest --autoevolve.",
            94,
        ),
        epilog=f"{GATE_SOURCES}\n\nexample: {EXAMPLES['compare']}",
        formatter_class=RAW,
    )
    compare.add_argument("before", metavar="A.xml", help="junit file of the earlier run (the baseline)")
    compare.add_argument("after", metavar="B.xml", help="junit file of the later run")
    _gate_options(compare)
    compare.set_defaults(handler=_compare)
    add_plan_commands(commands)
    add_finetune_commands(commands)
    add_canary_commands(commands)
    add_evolve_commands(commands)
    add_ci_commands(commands)
    add_cache_commands(commands)
    add_import_commands(commands)
    add_init_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``autoevolve`` script."""
    args, extra = build_parser().parse_known_args(argv)
    if extra and args.command != "run":
        build_parser().error(f"unrecognized arguments: {' '.join(extra)}")
    name = " ".join(part for part in (args.command, getattr(args, "job", None), getattr(args, "step", None)) if part)
    try:
        return int(args.handler(args, extra))
    except AutoevolveError as exc:  # every expected failure, said once, on one line
        print(f"autoevolve {name}: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:  # Ctrl-C: the command cleaned up on its way out
        print(f"autoevolve {name}: interrupted", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

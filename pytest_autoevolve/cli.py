"""The ``autoevolve`` command line."""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_autoevolve import __version__
from pytest_autoevolve.cli_ci import add_commands as add_ci_commands
from pytest_autoevolve.cli_evolve import add_commands as add_evolve_commands
from pytest_autoevolve.cli_finetune import add_commands as add_finetune_commands
from pytest_autoevolve.cli_init import add_command as add_init_command

if TYPE_CHECKING:
    from pytest_autoevolve.gate import GateConfig, GateResult
    from pytest_autoevolve.junit import JunitRun

EXAMPLES = {
    "run": "autoevolve run --autoevolve-candidate python:myagent.main:answer -k smoke",
    "scenarios": "autoevolve scenarios scenarios/ --list",
    "report": "pytest --autoevolve --junitxml=junit.xml; autoevolve report junit.xml --json",
    "compare": "autoevolve compare main.xml pr.xml   (main.xml and pr.xml from pytest --autoevolve --junitxml)",
}

GATE_SOURCES = """\
gate settings: the `gate` table of [tool.autoevolve] in ./pyproject.toml and `gate:` in
./autoevolve.yaml (the latter wins), as for pytest --autoevolve; --gate-config FILE reads them
from FILE instead (a pyproject.toml, an autoevolve.yaml, or a YAML/TOML/JSON file holding just
the gate mapping). The resampling seed is --seed, else the seed the junit file(s) record (when
they agree), else `seed` of the config, else 0.

exit status: 0 only when the verdict is pass; 1 for fail and for inconclusive; 2 when a file
or a setting cannot be used."""


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


class _CliError(Exception):
    """A problem with the command's input, printed without a traceback (exit status 2)."""


def _read(paths: Sequence[str]) -> list[JunitRun]:
    """Parse junit files; an unusable one is a `_CliError` naming it."""
    from pytest_autoevolve.junit import JunitError, read_junit

    try:
        return [read_junit(path) for path in paths]
    except JunitError as exc:
        raise _CliError(str(exc)) from None


def _gate_mapping(path: Path | None) -> dict[str, Any]:
    """The settings (``gate``, ``seed``) of the current directory's config, or of ``path``."""
    import pytest

    from pytest_autoevolve.config import read_file_settings

    if path is None:
        try:
            return read_file_settings(Path.cwd())
        except pytest.UsageError as exc:
            raise _CliError(str(exc)) from None
    if not path.is_file():
        raise _CliError(f"no such gate config file: {path}")
    import tomllib

    import yaml  # YAML is a superset of JSON

    try:
        text = path.read_text(encoding="utf-8")
        data: Any = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text) or {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise _CliError(f"{path}: {exc}") from None
    if path.suffix == ".toml" and isinstance(data, dict) and isinstance(data.get("tool"), dict):
        data = data["tool"].get("autoevolve", {})  # a pyproject.toml: its [tool.autoevolve]
    if not isinstance(data, dict):
        raise _CliError(f"{path}: expected a mapping of settings")
    if "gate" in data or path.name in ("pyproject.toml", "autoevolve.yaml"):
        return data
    return {"gate": data}


def _gate_config(args: argparse.Namespace, recorded_seed: int | None) -> GateConfig:
    """The gate's rule: file settings, then the seed (``--seed``, the junit's, the config's)."""
    from pytest_autoevolve.gate import GateConfig, GateConfigError

    settings = _gate_mapping(Path(args.gate_config) if args.gate_config else None)
    seed = args.seed if args.seed is not None else recorded_seed
    seed = settings.get("seed", 0) if seed is None else seed
    gate = settings.get("gate") or {}
    if not isinstance(gate, dict) or isinstance(seed, bool) or not isinstance(seed, int):
        raise _CliError("the autoevolve setting 'gate' is a mapping and 'seed' a whole number")
    try:
        return GateConfig.from_mapping(gate, seed)
    except (GateConfigError, TypeError) as exc:
        raise _CliError(f"autoevolve setting 'gate': {exc}") from None


def _recorded_seed(runs: Sequence[JunitRun]) -> int | None:
    """The seed the junit files record, when they all record the same one."""
    seeds = {run.seed for run in runs}
    return seeds.pop() if len(seeds) == 1 else None


def _show(result: GateResult, args: argparse.Namespace, header: list[str], extra: dict[str, Any]) -> int:
    """Print the gate result (text or ``--json``); the exit status from the verdict."""
    if args.json:
        import json

        print(json.dumps({**result.to_summary(), **extra}, indent=2, ensure_ascii=False, default=str))
    else:
        from pytest_autoevolve.session import summary_lines

        print(f"autoevolve gate: {result.verdict.upper()}")
        for line in [*header, *summary_lines(result)]:
            print(line)
    return 0 if result.verdict == "pass" else 1


def _report(args: argparse.Namespace, extra: list[str]) -> int:
    """Recompute the gate from the items of one or more junit files."""
    from pytest_autoevolve.gate import decide
    from pytest_autoevolve.junit import JunitError, merge

    runs = _read(args.junit)
    try:
        items = merge(runs)
    except JunitError as exc:
        raise _CliError(str(exc)) from None
    result = decide(items, _gate_config(args, _recorded_seed(runs)))
    header = []
    recorded: dict[str, Any] = runs[0].recorded() if len(runs) == 1 else {}
    if len(runs) > 1:
        header.append(f"from {len(runs)} junit files, {len(items)} scenario items")
    elif recorded.get("verdict") and recorded["verdict"] != result.verdict:
        header.append(f"note: the run recorded {recorded['verdict']!r}; with these gate settings it is "
                      f"{result.verdict!r} (the settings or the seed differ from the run's)")  # fmt: skip
    return _show(result, args, header, {"junit": [str(run.path) for run in runs], "recorded": recorded})


def _compare(args: argparse.Namespace, extra: list[str]) -> int:
    """Gate run B (after) against run A (before), pairing scenarios by id."""
    from pytest_autoevolve.gate import decide
    from pytest_autoevolve.junit import JunitError, before_after

    before, after = _read([args.before, args.after])
    try:
        items, before_role, after_role = before_after(before, after)
    except JunitError as exc:
        raise _CliError(str(exc)) from None
    result = decide(items, _gate_config(args, _recorded_seed([before, after])))
    header = [
        f"before: {before.path}  ({before_role} items, shown as incumbent)",
        f"after:  {after.path}  ({after_role} items, shown as candidate)",
    ]
    extra_fields = {"before": {"junit": str(before.path), "role": before_role},
                    "after": {"junit": str(after.path), "role": after_role}}  # fmt: skip
    return _show(result, args, header, extra_fields)


def _gate_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gate-config", metavar="FILE", help="read the gate settings from FILE (see below)")
    parser.add_argument("--seed", type=int, metavar="N", help="seed of the resampling tests and intervals")
    parser.add_argument("--json", action="store_true", help="print the gate summary (summary.json's fields) as JSON")


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
    report = commands.add_parser(
        "report", help="recompute the gate from junit files of pytest --autoevolve --junitxml",
        description=textwrap.fill(
            "Read the per-scenario results from one or more junit files (several: e.g. CI shards, merged), decide "
            "the gate and print the same comparison as the pytest terminal summary.", 94),
        epilog=f"{GATE_SOURCES}\n\nexample: {EXAMPLES['report']}", formatter_class=RAW,
    )  # fmt: skip
    report.add_argument("junit", nargs="+", metavar="JUNIT.xml", help="junit file(s) from pytest --autoevolve")
    _gate_options(report)
    report.set_defaults(handler=_report)
    compare = commands.add_parser(
        "compare", help="gate one run against another: the candidate of A.xml before, of B.xml after",
        description=textwrap.fill(
            "Compare two runs. The candidate-role items of A.xml stand for the incumbent (before) and the "
            "candidate-role items of B.xml for the candidate (after); a file with no candidate items is "
            "represented by its incumbent items. Scenarios are paired by id (eval split), then the gate "
            "decides as in pytest --autoevolve.", 94),
        epilog=f"{GATE_SOURCES}\n\nexample: {EXAMPLES['compare']}", formatter_class=RAW,
    )  # fmt: skip
    compare.add_argument("before", metavar="A.xml", help="junit file of the earlier run (the baseline)")
    compare.add_argument("after", metavar="B.xml", help="junit file of the later run")
    _gate_options(compare)
    compare.set_defaults(handler=_compare)
    add_finetune_commands(commands)
    add_evolve_commands(commands)
    add_ci_commands(commands)
    add_init_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``autoevolve`` script."""
    args, extra = build_parser().parse_known_args(argv)
    if extra and args.command != "run":
        build_parser().error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.handler(args, extra))
    except _CliError as exc:
        print(f"autoevolve {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

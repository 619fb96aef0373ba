"""``autoevolve scenarios``, ``report`` and ``compare``: the catalog and the gate from the command line."""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_autoevolve.cli.results import HARNESS_FILES, add_result_options, read_pair, read_runs, write_reports
from pytest_autoevolve.errors import AutoevolveError, CommandError

if TYPE_CHECKING:
    from pytest_autoevolve.gate.decide import GateResult
    from pytest_autoevolve.gate.junit import JunitRun
    from pytest_autoevolve.settings import GateConfig


GATE_SOURCES = """\
gate settings: the `gate` table of [tool.autoevolve] in ./pyproject.toml and `gate:` in
./autoevolve.yaml (the latter wins), as for pytest --autoevolve; --gate-config FILE reads them
from FILE instead (a pyproject.toml, an autoevolve.yaml, or a YAML/TOML/JSON file holding just
the gate mapping). The resampling seed is --seed, else the seed the junit file(s) record (when
they agree), else `seed` of the config, else 0.

exit status: 0 only when the verdict is pass; 1 for fail and for inconclusive; 2 when a file
or a setting cannot be used."""
GATE_SOURCES += "\n\n" + HARNESS_FILES


def _scenarios(args: argparse.Namespace, extra: list[str]) -> int:
    """Validate the catalog and print its size by split and category."""
    from pytest_autoevolve.catalog.loader import load_catalog
    from pytest_autoevolve.errors import ScenarioError
    from pytest_autoevolve.run.registries import project_registries
    from pytest_autoevolve.settings import load_settings

    root = Path.cwd()
    settings = load_settings(root)
    roots = [Path(p) for p in args.paths] or [root / folder for folder in settings.catalog]
    missing = [str(p) for p in roots if not p.exists()]
    if missing:
        raise CommandError(f"no such catalog path: {', '.join(missing)}")
    graders = project_registries(root, settings).graders  # the graders pytest --autoevolve knows, plugins' too
    try:
        catalog = load_catalog(roots, graders, root, settings.limits)
    except ScenarioError as exc:
        raise InvalidCatalog(str(exc)) from None
    if args.list:
        for scenario in catalog:
            print(f"{scenario.path}:{scenario.line}  {scenario.id}  [{scenario.split}]")
    counts = Counter((s.split, s.category or "-") for s in catalog)
    print(
        f"{len(catalog)} scenarios: "
        + ", ".join(f"{n} {split}" for split, n in sorted(Counter(s.split for s in catalog).items()))
    )
    for (split, category), number in sorted(counts.items()):
        print(f"  {split:<6} {category:<16} {number}")
    return 0


class InvalidCatalog(AutoevolveError):
    """The catalog ``autoevolve scenarios`` checked is not valid: its answer, so exit status 1."""

    exit_status = 1


def _gate_config(args: argparse.Namespace, recorded_seed: int | None) -> GateConfig:
    """The gate's rule: the project's settings (or ``--gate-config FILE``), then ``--seed`` or the junit's seed."""
    import dataclasses

    from pytest_autoevolve.settings import load_settings, read_settings_file, settings_from

    if args.gate_config:
        path = Path(args.gate_config)
        if not path.is_file():
            raise CommandError(f"no such gate config file: {path}")
        values = read_settings_file(path)
        if "gate" not in values and path.name not in ("pyproject.toml", "autoevolve.yaml"):
            values = {"gate": values}  # a file holding just the gate mapping
        settings = settings_from(values)
    else:
        settings = load_settings(Path.cwd())
    seed = args.seed if args.seed is not None else recorded_seed
    return settings.gate if seed is None else dataclasses.replace(settings.gate, seed=seed)


def _recorded_seed(runs: Sequence[JunitRun]) -> int | None:
    """The seed the junit files record, when they all record the same one."""
    seeds = {run.seed for run in runs}
    return seeds.pop() if len(seeds) == 1 else None


def _show(
    result: GateResult, args: argparse.Namespace, header: list[str], extra: dict[str, Any], runs: Sequence[JunitRun]
) -> int:
    """Print the gate result (text or ``--json``), write the reports if asked; the exit status from the verdict."""
    from pytest_autoevolve.gate.summary import GateSummary

    gate = GateSummary.from_result(result)
    header += [f"report: {path}" for path in write_reports(args, result, runs)]
    if args.json:
        import json

        print(json.dumps({**gate.to_json(), **extra}, indent=2, ensure_ascii=False, default=str))
    else:
        from pytest_autoevolve.report.terminal import summary_lines

        print(f"autoevolve gate: {gate.verdict.upper()}")
        for line in [*header, *summary_lines(gate)]:
            print(line)
    return 0 if gate.verdict == "pass" else 1


def _report(args: argparse.Namespace, extra: list[str]) -> int:
    """Recompute the gate from the items of one or more junit files."""
    from pytest_autoevolve.gate.decide import decide
    from pytest_autoevolve.gate.junit import JunitError, merge

    runs = read_runs(args.junit, args, ("incumbent", "candidate"))
    try:
        items = merge(runs)
    except JunitError as exc:
        raise CommandError(str(exc)) from None
    result = decide(items, _gate_config(args, _recorded_seed(runs)))
    header = []
    recorded: dict[str, Any] = runs[0].recorded() if len(runs) == 1 else {}
    if len(runs) > 1:
        header.append(f"from {len(runs)} junit files, {len(items)} scenario items")
    elif recorded.get("verdict") and recorded["verdict"] != result.verdict:
        header.append(
            f"note: the run recorded {recorded['verdict']!r}; with these gate settings it is "
            f"{result.verdict!r} (the settings or the seed differ from the run's)"
        )
    return _show(result, args, header, {"junit": [str(run.path) for run in runs], "recorded": recorded}, runs)


def _compare(args: argparse.Namespace, extra: list[str]) -> int:
    """Gate run B (after) against run A (before), pairing scenarios by id."""
    from pytest_autoevolve.gate.decide import decide
    from pytest_autoevolve.gate.junit import JunitError, before_after

    before, after = read_pair(args)
    try:
        items, before_role, after_role = before_after(before, after)
    except JunitError as exc:
        raise CommandError(str(exc)) from None
    result = decide(items, _gate_config(args, _recorded_seed([before, after])))
    header = [
        f"before: {before.path}  ({before_role} items, shown as incumbent)",
        f"after:  {after.path}  ({after_role} items, shown as candidate)",
    ]
    extra_fields = {
        "before": {"junit": str(before.path), "role": before_role},
        "after": {"junit": str(after.path), "role": after_role},
    }
    return _show(result, args, header, extra_fields, [before, after])


def _gate_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gate-config", metavar="FILE", help="read the gate settings from FILE (see below)")
    parser.add_argument("--seed", type=int, metavar="N", help="seed of the resampling tests and intervals")
    parser.add_argument("--json", action="store_true", help="print the gate summary (summary.json's fields) as JSON")
    add_result_options(parser)

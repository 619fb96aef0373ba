"""The result files ``autoevolve report`` and ``compare`` read (junit and other harnesses'), and their reports."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_autoevolve.errors import CommandError

if TYPE_CHECKING:
    from pytest_autoevolve.gate.decide import GateResult
    from pytest_autoevolve.gate.junit import JunitRun

HARNESS_FILES = """\
result files: junit .xml of pytest --autoevolve; Inspect AI logs (.eval, .json: samples paired by
id, epochs as trials, a score passes at 1 (C) unless --pass-value says otherwise); promptfoo
results (promptfoo eval -o results.json: tests paired by description, else vars; a file with
several providers takes --incumbent LABEL / --candidate LABEL); lm-evaluation-harness
--log_samples JSONL (paired by doc_id); DeepEval test runs (.deepeval/.latest_test_run.json)."""


def add_result_options(parser: argparse.ArgumentParser) -> None:
    """The options that read other harnesses' files and write the reports."""
    parser.add_argument("--incumbent", metavar="LABEL", help="promptfoo: the provider whose results are the incumbent")
    parser.add_argument("--candidate", metavar="LABEL", help="promptfoo: the provider whose results are the candidate")
    parser.add_argument(
        "--scorer",
        metavar="NAME",
        help="Inspect scorer, lm-eval metric (acc, exact_match,strict-match), DeepEval metric",
    )
    parser.add_argument(
        "--pass-value",
        metavar="VALUE",
        action="append",
        default=[],
        help="a score value that passes (C, repeatable), or a number: the score a trial must reach (default 1)",
    )
    parser.add_argument(
        "--report-dir", metavar="DIR", help="write summary.json, report.md and report.html of the verdict into DIR"
    )


def read_runs(paths: Sequence[str], args: argparse.Namespace, roles: Sequence[str]) -> list[JunitRun]:
    """Each file's items (one role per side for a comparison, both for a report); `CommandError` when unusable."""
    from pytest_autoevolve.gate.harnesses import ReadOptions, read_results
    from pytest_autoevolve.gate.junit import JunitError

    options = ReadOptions(
        incumbent=args.incumbent,
        candidate=args.candidate,
        scorer=args.scorer,
        pass_values=tuple(v for text in args.pass_value for v in text.split(",") if v),
    )
    try:
        return [read_results(path, options, roles) for path in paths]
    except JunitError as exc:
        raise CommandError(str(exc)) from None


def read_pair(args: argparse.Namespace) -> tuple[JunitRun, JunitRun]:
    """The two runs of a comparison, refused when they are of different tasks."""
    from pytest_autoevolve.gate.harnesses import HarnessError, check_comparable

    (before,) = read_runs([args.before], args, ("incumbent",))
    (after,) = read_runs([args.after], args, ("candidate",))
    try:
        check_comparable(before, after)
    except HarnessError as exc:
        raise CommandError(str(exc)) from None
    return before, after


def write_reports(args: argparse.Namespace, result: GateResult, runs: Sequence[JunitRun]) -> list[Path]:
    """``summary.json``, ``report.md`` and ``report.html`` of the verdict in ``--report-dir``, when given."""
    if not args.report_dir:
        return []
    from datetime import UTC, datetime

    from pytest_autoevolve.files import files_sha256, write_json_atomic
    from pytest_autoevolve.gate.summary import CacheStats, GateSummary, RunSummary
    from pytest_autoevolve.report.write import write_reports as write

    now = datetime.now(UTC)
    summary = RunSummary(
        run_id=f"{args.command}-{now:%Y%m%dT%H%M%SZ}",
        created_at=now.isoformat(timespec="seconds"),
        gate=GateSummary.from_result(result),
        split="eval",
        seed=result.config.seed,
        repeats=max((item.trials for run in runs for item in run.items), default=1),
        judge=None,
        cache=CacheStats(mode="off", hits=0, model_calls=0),
        catalog_sha256=files_sha256(Path.cwd(), [str(run.path.resolve()) for run in runs]),
        git_commit=None,
        versions={},
    )
    try:
        folder = Path(args.report_dir)
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(folder / "summary.json", summary.to_json())
        return [folder / "summary.json", *write(folder, summary)]
    except OSError as exc:
        raise CommandError(f"cannot write the reports into {args.report_dir}: {exc.strerror or exc}") from None

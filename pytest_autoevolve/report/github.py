"""GitHub output: the job summary and ``::error`` annotations, one per regression."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_autoevolve.report.format import _finite, _ordered_regressions, _p, _pct

ANNOTATION_CAP = 50

"""Regressions annotated under GitHub Actions (GitHub shows at most 50 annotations per job)."""


def github_outputs(summary: dict[str, Any], report_md: Path, environ: Mapping[str, str]) -> list[str]:
    """Append the report to ``$GITHUB_STEP_SUMMARY``; under GitHub Actions return annotation lines.

    The lines are workflow commands for stdout: ``::error`` at the file and line of each
    regressed scenario (critical ones first, at most `ANNOTATION_CAP`), and a ``::notice``
    (pass) or ``::error`` (fail, inconclusive) for the verdict. A step summary that cannot
    be written is reported as a line too, rather than failing the run.
    """
    lines: list[str] = []
    actions = environ.get("GITHUB_ACTIONS") == "true"
    step_summary = environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        try:
            with open(step_summary, "a", encoding="utf-8") as handle:
                handle.write(report_md.read_text(encoding="utf-8").rstrip("\n") + "\n\n")
        except OSError as exc:
            message = f"autoevolve: could not append {report_md.name} to GITHUB_STEP_SUMMARY ({exc})"
            lines.append(f"::warning title=autoevolve::{_command_data(message)}" if actions else message)
    if not actions:
        return lines
    regressed = _ordered_regressions(summary.get("scenarios") or [])
    for row in regressed[:ANNOTATION_CAP]:
        props = []
        if row.get("file"):
            props.append(f"file={_command_property(str(row['file']))}")
            if row.get("line"):
                props.append(f"line={int(row['line'])}")
        critical = "critical " if row.get("critical") else ""
        title = f"autoevolve: {critical}regression in {row['id']}"
        props.append(f"title={_command_property(title)}")
        inc, cand = row.get("incumbent") or {}, row.get("candidate") or {}
        message = (
            f"{critical}scenario {row['id']} regressed: the incumbent passed {inc.get('passes')} of "
            f"{inc.get('trials')} trials, the candidate {cand.get('passes')} of {cand.get('trials')}"
        )
        lines.append(f"::error {','.join(props)}::{_command_data(message)}")
    if len(regressed) > ANNOTATION_CAP:
        more = f"{len(regressed) - ANNOTATION_CAP} more regressions are not annotated; see {report_md.name}"
        lines.append(f"::warning title=autoevolve::{_command_data(more)}")
    verdict = str(summary.get("verdict", "inconclusive"))
    title = _command_property(f"autoevolve gate: {verdict.upper()}")
    message = "; ".join(str(r) for r in summary.get("reasons") or []) or verdict
    if _finite(summary.get("lift")):
        message = f"lift {_pct(summary['lift'], signed=True)}, p = {_p(summary.get('p_value'))}: {message}"
    kind = "notice" if verdict == "pass" else "error"
    lines.append(f"::{kind} title={title}::{_command_data(message)}")
    return lines


def _command_data(text: str) -> str:
    """Escape a workflow command's message."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _command_property(text: str) -> str:
    """Escape a workflow command's property value."""
    return _command_data(text).replace(":", "%3A").replace(",", "%2C")

"""GitHub output: the job summary and ``::error`` annotations, one per regression."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_autoevolve.gate.summary import GateSummary
from pytest_autoevolve.report.format import finite, ordered_regressions, p, pct

ANNOTATION_CAP = 50

"""Regressions annotated under GitHub Actions (GitHub shows at most 50 annotations per job)."""


def github_outputs(summary: GateSummary | Mapping[str, Any], report_md: Path, environ: Mapping[str, str]) -> list[str]:
    """Append the report to ``$GITHUB_STEP_SUMMARY``; under GitHub Actions return annotation lines.

    The lines are workflow commands for stdout: ``::error`` at the file and line of each
    regressed scenario (critical ones first, at most `ANNOTATION_CAP`), and a ``::notice``
    (pass) or ``::error`` (fail, inconclusive) for the verdict. A step summary that cannot
    be written is reported as a line too, rather than failing the run. A mapping is read as a
    partial summary (`GateSummary.from_json` with ``partial=True``).
    """
    gate = summary if isinstance(summary, GateSummary) else GateSummary.from_json(summary, partial=True)
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
    regressed = ordered_regressions(gate.scenarios)
    for row in regressed[:ANNOTATION_CAP]:
        props = []
        if row.file:
            props.append(f"file={_command_property(row.file)}")
            if row.line:
                props.append(f"line={row.line}")
        critical = "critical " if row.critical else ""
        title = f"autoevolve: {critical}regression in {row.id}"
        props.append(f"title={_command_property(title)}")
        inc, cand = row.incumbent, row.candidate
        message = (
            f"{critical}scenario {row.id} regressed: the incumbent passed {inc.passes} of "
            f"{inc.trials} trials, the candidate {cand.passes} of {cand.trials}"
        )
        lines.append(f"::error {','.join(props)}::{_command_data(message)}")
    if len(regressed) > ANNOTATION_CAP:
        more = f"{len(regressed) - ANNOTATION_CAP} more regressions are not annotated; see {report_md.name}"
        lines.append(f"::warning title=autoevolve::{_command_data(more)}")
    title = _command_property(f"autoevolve gate: {gate.verdict.upper()}")
    message = "; ".join(gate.reasons) or gate.verdict
    if finite(gate.lift):
        message = f"lift {pct(gate.lift, signed=True)}, p = {p(gate.p_value)}: {message}"
    kind = "notice" if gate.verdict == "pass" else "error"
    lines.append(f"::{kind} title={title}::{_command_data(message)}")
    return lines


def _command_data(text: str) -> str:
    """Escape a workflow command's message."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _command_property(text: str) -> str:
    """Escape a workflow command's property value."""
    return _command_data(text).replace(":", "%3A").replace(",", "%2C")

"""Writing a run's reports: ``report.md`` and ``report.html`` beside its ``summary.json``."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pytest_autoevolve.errors import FormatError
from pytest_autoevolve.gate.summary import RunSummary
from pytest_autoevolve.records import Trajectory
from pytest_autoevolve.report.format import DETAIL_CAP, ROLES, TRIAL_CAP, detail_order
from pytest_autoevolve.report.html import render_html
from pytest_autoevolve.report.markdown import render_markdown


def write_reports(run_dir: Path, summary: RunSummary) -> list[Path]:
    """Write ``report.md`` and ``report.html`` into ``run_dir``; return their paths."""
    shown = [row.id for row in detail_order(summary.gate.scenarios)[:DETAIL_CAP]]
    trajectories, unreadable = load_trajectories(run_dir / "trajectories.jsonl", set(shown))
    markdown = run_dir / "report.md"
    page = run_dir / "report.html"
    _write_atomic(markdown, render_markdown(summary))
    _write_atomic(page, render_html(summary, trajectories, unreadable))
    return [markdown, page]


def load_trajectories(
    path: Path, scenario_ids: set[str], cap: int = TRIAL_CAP
) -> tuple[dict[tuple[str, str], list[Trajectory]], int]:
    """The incumbent's and candidate's trajectories of the given scenarios, at most ``cap`` per role.

    Returns them keyed by (scenario id, role), sorted by repeat, and the number of lines
    that could not be read (a report is still worth writing around them).
    """
    found: dict[tuple[str, str], list[Trajectory]] = {}
    unreadable = 0
    if not path.is_file():
        return found, 0
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if record.get("role") not in ROLES or record.get("scenario_id") not in scenario_ids:
                    continue
                trajectory = Trajectory.from_record(record)
            except (json.JSONDecodeError, FormatError, AttributeError, TypeError):
                unreadable += 1
                continue
            trials = found.setdefault((trajectory.scenario_id, trajectory.role), [])
            if len(trials) < cap:
                trials.append(trajectory)
    for trials in found.values():
        trials.sort(key=lambda t: t.repeat)
    return found, unreadable


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)

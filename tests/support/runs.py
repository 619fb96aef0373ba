"""Running a catalog with two models, and reading what a run wrote under its artifacts folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ECHO = "python:toyagents:echo"


def run_models(
    pytester: pytest.Pytester, *args: str, model: str = ECHO, candidate: str | None = None
) -> pytest.RunResult:
    """``pytest --autoevolve`` with ``model`` in both roles (or ``candidate`` as the candidate), then ``args``."""
    return pytester.runpytest(
        "--autoevolve", "--autoevolve-incumbent", model, "--autoevolve-candidate", candidate or model, *args
    )


def run_dirs(root: Path, artifacts: str = ".autoevolve") -> list[Path]:
    """The run folders under ``root``'s artifacts folder, in name order (oldest first)."""
    return sorted((root / artifacts / "runs").iterdir())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSON-lines file (``trajectories.jsonl``, a dataset, a log), parsed."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def fixture_trials(root: Path, artifacts: str = ".autoevolve") -> list[dict[str, Any]]:
    """The trials users' own tests ran through the fixtures, in the single run under ``root``."""
    (run,) = run_dirs(root, artifacts)
    path = run / "fixture-trajectories.jsonl"
    return read_jsonl(path) if path.exists() else []


def read_run(root: Path, artifacts: str = ".autoevolve") -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The trajectories and summary of the single run under ``root``."""
    runs = run_dirs(root, artifacts)
    assert len(runs) == 1, runs
    trajectories = read_jsonl(runs[0] / "trajectories.jsonl")
    summary_path = runs[0] / "summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.exists() else {}
    return trajectories, summary

"""Shared helpers for the project's tests."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

AGENTS = """
import time

def echo(messages):
    return messages[-1]["content"]

def answer(messages, scenario, seed, repeat):
    return {"output": scenario.expected or "", "usage": {"prompt_tokens": 3, "completion_tokens": 1}}

def boom(messages):
    raise RuntimeError("model exploded")

def slow(messages):
    time.sleep(5)
    return "late"
"""


@pytest.fixture(autouse=True)
def _no_github_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep runs under test from writing into a real GitHub job summary or annotations."""
    for name in ("GITHUB_STEP_SUMMARY", "GITHUB_ACTIONS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def write_scenarios(pytester: pytest.Pytester) -> Callable[..., Path]:
    """Write ``scenarios/<name>.yaml`` (dedented) in the pytester dir; return its path."""

    def write(text: str, name: str = "demo") -> Path:
        folder = pytester.path / "scenarios"
        folder.mkdir(exist_ok=True)
        path = folder / f"{name}.yaml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def agents(pytester: pytest.Pytester) -> str:
    """A module ``agents`` of python: models (echo, answer, boom, slow) importable in runs."""
    pytester.makepyfile(agents=AGENTS)
    pytester.syspathinsert()
    return "agents"


def read_run(root: Path, artifacts: str = ".autoevolve") -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The trajectories and summary of the single run under ``root``."""
    runs = sorted((root / artifacts / "runs").iterdir())
    assert len(runs) == 1, runs
    lines = (runs[0] / "trajectories.jsonl").read_text(encoding="utf-8").splitlines()
    summary_path = runs[0] / "summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.exists() else {}
    return [json.loads(line) for line in lines], summary

"""Fixtures and hooks for the project's tests; the helpers they import live in `tests.support`."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.agents import AGENTS


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
    """A module ``toyagents`` of python: models (echo, answer, boom, slow) importable in runs."""
    pytester.makepyfile(toyagents=AGENTS)
    pytester.syspathinsert()
    return "toyagents"

"""The grader registry: grader factories by the name used under ``expect:``.

A factory takes the value written in the YAML (``contains: "4"``) and the scenario file's
folder and returns a `Check`; it raises `ValueError` with what is allowed when the value is
wrong, so bad input is a collection error. Plugins add graders through the
``pytest_autoevolve_add_graders`` hook.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_autoevolve.records import Check

if TYPE_CHECKING:
    from pytest_autoevolve.graders.judge import Judge


GraderFactory = Callable[[Any, Path], Check]

"""Builds a check from the YAML value and the scenario file's folder (for imports)."""


class GraderRegistry:
    """Grader factories by the name used under `expect:`."""

    def __init__(self, judge: Judge | None = None) -> None:
        self._factories: dict[str, GraderFactory] = {}
        self.judge = judge
        """The run's judge, which the built-in `llm_judge` grader asks."""

    def register(self, name: str, factory: GraderFactory) -> None:
        """Add or replace the grader called ``name``."""
        self._factories[name] = factory

    def names(self) -> list[str]:
        """Every registered grader name, sorted."""
        return sorted(self._factories)

    def build(self, name: str, value: Any, folder: Path) -> Check:
        """A check for one `expect` entry; `ValueError` for an unknown name or bad value."""
        if name not in self._factories:
            raise ValueError(f"unknown grader {name!r}; known graders: {', '.join(self.names())}")
        return self._factories[name](value, folder)

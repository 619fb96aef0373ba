"""Graders: the registry, the built-in graders and the LLM judge.

``Grade``, ``Check`` and the registry are re-exported here, where they always lived.
"""

from __future__ import annotations

from pytest_autoevolve.graders.builtin import BUILTIN_GRADERS, default_registry
from pytest_autoevolve.graders.registry import GraderFactory, GraderRegistry
from pytest_autoevolve.records import Check, Grade

__all__ = ["BUILTIN_GRADERS", "Check", "Grade", "GraderFactory", "GraderRegistry", "default_registry"]

"""Hooks other plugins and ``conftest.py`` files implement to extend autoevolve."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_autoevolve.graders.registry import GraderRegistry
    from pytest_autoevolve.providers.registry import ProviderRegistry
    from pytest_autoevolve.records import Trajectory


def pytest_autoevolve_add_graders(registry: GraderRegistry) -> None:
    """Register graders usable under ``expect:``.

    ``registry.register("starts_with", factory)``, where ``factory(value, folder)``
    returns a check ``(output, trajectory, scenario) -> Grade`` and raises
    `ValueError` for a bad ``value``.
    """


def pytest_autoevolve_add_providers(registry: ProviderRegistry) -> None:
    """Register model providers: ``registry.register("myapi", factory)`` serves ``myapi:...`` specs.

    ``factory(spec, root)`` returns an object with ``spec`` and ``generate(messages, *,
    scenario, seed, repeat) -> Reply``.
    """


def pytest_autoevolve_trajectory(trajectory: Trajectory, config: pytest.Config) -> None:
    """Observe every trajectory as soon as it is recorded (on the process that ran it)."""

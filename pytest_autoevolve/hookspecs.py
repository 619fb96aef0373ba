"""Hooks other plugins and ``conftest.py`` files implement to extend autoevolve.

The built-in graders and providers are registered through these same hooks (first), so a
plugin may add new ones or replace a built-in; ``pytest --autoevolve``, the ``autoevolve``
command line and the loops all see the same set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_autoevolve.graders.registry import GraderRegistry
    from pytest_autoevolve.providers.registry import ProviderRegistry
    from pytest_autoevolve.records import Trajectory


def pytest_autoevolve_add_graders(registry: GraderRegistry) -> None:
    """Register graders usable under ``expect:``.

    ``factory(value, folder)`` returns a check ``(output, trajectory, scenario) -> Grade`` and
    raises `ValueError` for a bad ``value`` (a collection error naming file, scenario and key)::

        from pytest_autoevolve.graders import Grade

        def pytest_autoevolve_add_graders(registry):
            def starts_with(value, folder):
                def check(output, trajectory, scenario):
                    return Grade("starts_with", output.startswith(value), 1.0, f"starts with {value!r}?")
                return check
            registry.register("starts_with", starts_with)
    """


def pytest_autoevolve_add_providers(registry: ProviderRegistry) -> None:
    """Register model providers: ``registry.register("myapi", factory)`` serves ``myapi:...`` specs.

    ``factory(spec, root)`` returns an object with ``spec`` (a display name) and
    ``generate(request) -> Reply``, where ``request`` is a `ModelRequest` (messages, seed,
    repeat, tools, ...); raising is that trial's error::

        from pytest_autoevolve.providers import ModelRequest, Reply

        class Echo:
            spec = "echo"
            def generate(self, request: ModelRequest) -> Reply:
                return Reply(output=request.messages[-1]["content"])

        def pytest_autoevolve_add_providers(registry):
            registry.register("echo", lambda spec, root: Echo())

    A model written for the first protocol, ``generate(messages, *, scenario, seed, repeat)``,
    still works.
    """


def pytest_autoevolve_trajectory(trajectory: Trajectory, config: pytest.Config) -> None:
    """Observe every trajectory as soon as it is recorded (on the process that ran it).

    ``def pytest_autoevolve_trajectory(trajectory, config): print(trajectory.scenario_id, trajectory.passed)``
    """

"""The run's context in pytest's stash: a key light enough to look up in any pytest session."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_autoevolve.run.context import RunContext

CONTEXT_KEY: pytest.StashKey[RunContext] = pytest.StashKey()
"""The `RunContext` of an ``--autoevolve`` session (absent in any other)."""

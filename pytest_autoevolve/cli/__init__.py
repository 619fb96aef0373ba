"""The ``autoevolve`` command line."""

from __future__ import annotations

from pytest_autoevolve.cli.app import main

__all__ = ["main"]

"""Where `Trajectory` was imported from before `records`; kept for users' code."""

from __future__ import annotations

from pytest_autoevolve.files import read_trajectories
from pytest_autoevolve.records import FORMAT_VERSION, Trajectory

__all__ = ["FORMAT_VERSION", "Trajectory", "read_trajectories"]

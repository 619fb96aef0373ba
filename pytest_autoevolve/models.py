"""Where `Reply`, `Model` and model specs were imported from before `providers/`; kept for users' code."""

from __future__ import annotations

from pytest_autoevolve.providers.base import (
    Model,
    ModelRequest,
    ModelSpec,
    ModelSpecError,
    Reply,
    TrialError,
    parse_spec,
)

__all__ = ["Model", "ModelRequest", "ModelSpec", "ModelSpecError", "Reply", "TrialError", "parse_spec"]

"""Model providers: the `Model` protocol, one module per provider, and a lazy registry.

`Model`, `ModelRequest`, `Reply` and `TrialError` are what a provider needs; they are
re-exported here.
"""

from __future__ import annotations

from pytest_autoevolve.providers.base import Model, ModelRequest, ModelSpec, ModelSpecError, Reply, TrialError

__all__ = ["Model", "ModelRequest", "ModelSpec", "ModelSpecError", "Reply", "TrialError"]

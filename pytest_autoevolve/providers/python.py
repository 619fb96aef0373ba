"""The ``python:`` provider: a user callable, the user's own agent, as the model."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_autoevolve.aio import resolve
from pytest_autoevolve.imports import import_object
from pytest_autoevolve.providers.base import ModelRequest, ModelSpec, ModelSpecError, Reply, reply_from

if TYPE_CHECKING:
    pass


class PythonModel:
    """A user callable as the model: the user's own agent (``python:pkg.module:function``), sync or async."""

    ACCEPTED = ("scenario", "seed", "repeat")

    def __init__(self, spec: ModelSpec, root: Path) -> None:
        if spec.target.count(":") < 1 and "." not in spec.target:
            raise ModelSpecError(f"python model spec needs 'python:package.module:function', got {spec.display!r}")
        try:
            self.function = import_object(spec.target, [root])
        except ImportError as exc:
            raise ModelSpecError(f"python model {spec.target!r} cannot be imported: {exc}") from None
        except Exception as exc:  # the module itself is broken: a SyntaxError, or it raised on import
            raise ModelSpecError(
                f"python model {spec.target!r} cannot be imported: {type(exc).__name__}: {exc}"
            ) from None
        if not callable(self.function):
            raise ModelSpecError(f"python model {spec.target!r} is not callable")
        self.spec = spec.display
        self.keywords = self._keywords(self.function)
        self.fingerprint = _source_fingerprint(spec.display, self.function)

    @classmethod
    def _keywords(cls, function: Callable[..., Any]) -> tuple[str, ...]:
        try:
            parameters = inspect.signature(function).parameters
        except (TypeError, ValueError):
            return ()
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            return cls.ACCEPTED
        return tuple(name for name in cls.ACCEPTED if name in parameters)

    def generate(self, request: ModelRequest) -> Reply:
        """Call the user's function with the messages (and the scenario, seed and repeat it asks for)."""
        offered = {"scenario": request.scenario, "seed": request.seed, "repeat": request.repeat}
        result = resolve(self.function(request.messages, **{k: offered[k] for k in self.keywords}), request.timeout_s)
        return reply_from(result, self.spec)


def _source_fingerprint(spec: str, function: Callable[..., Any]) -> str | None:
    """The spec and a digest of the function's module source: editing the module misses the cache."""
    import hashlib

    try:
        source = Path(inspect.getfile(function)).read_bytes()
    except (TypeError, OSError):
        return None
    return f"{spec}#{hashlib.sha256(source).hexdigest()[:16]}"

"""The ``python:`` provider: a user callable, the user's own agent, as the model."""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_autoevolve.aio import resolve
from pytest_autoevolve.imports import import_object
from pytest_autoevolve.providers.base import ModelRequest, ModelSpec, ModelSpecError, Reply, reply_from

PLUGIN_FOLDER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "")
"""This package's folder: its modules are never an agent's inputs."""
INSTALLED = ("site-packages", "dist-packages")


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
        self.code_folder = _package_folder(self.function)
        """The folder of the agent's top-level package: what its cache key covers outside a git repository."""
        self.local_modules = local_modules(root)
        """The project's own modules loaded once the agent is imported (root-relative): its cache key covers them."""

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


def _package_folder(function: Callable[..., Any]) -> Path | None:
    """The folder of the top-level package (or the folder of the top-level module) that defines ``function``."""
    module = inspect.getmodule(function)
    top = sys.modules.get(module.__name__.partition(".")[0]) if module else None
    paths = list(getattr(top, "__path__", None) or [])
    if paths:
        return Path(paths[0])
    file = getattr(top, "__file__", None)
    return Path(file).parent if isinstance(file, str) else None


def local_modules(root: Path) -> tuple[str, ...]:
    """The root-relative files of the modules loaded now from under ``root``.

    Left out: this plugin, a virtualenv's packages, conftest and test modules (an agent imports none of them).
    """
    prefixes = {os.path.join(os.path.abspath(root), ""), os.path.join(os.path.realpath(root), "")}
    skipped = (PLUGIN_FOLDER, os.path.join(os.path.realpath(sys.prefix), ""), os.path.join(sys.prefix, ""))
    found = set()
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if not isinstance(file, str) or file.startswith(skipped):
            continue
        prefix = next((p for p in prefixes if file.startswith(p)), None)
        if prefix is None or any(part in file for part in INSTALLED) or _is_test(os.path.basename(file)):
            continue
        found.add(Path(file[len(prefix) :]).as_posix())
    return tuple(sorted(found))


def _is_test(name: str) -> bool:
    return name == "conftest.py" or name.startswith("test_") or name.endswith("_test.py")

"""The one place where graders, providers and the judge are put together.

The pytest run, the command line and the loops all call `assemble`, so each knows the same
graders and providers: the built-ins, and those that installed plugins and the project's
``conftest.py`` register through the ``pytest_autoevolve_add_graders`` /
``pytest_autoevolve_add_providers`` hooks. The built-ins come through those same hooks (a
``tryfirst`` implementation, so a plugin can replace one), as pytest-xdist does for its
schedulers. Outside pytest, `project_plugins` builds the plugin manager the way pytest-benchmark's
command line does: the installed ``pytest11`` plugins and the rootdir ``conftest.py``.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from pytest_autoevolve import hookspecs
from pytest_autoevolve.errors import ConfigError
from pytest_autoevolve.graders import builtin as builtin_graders
from pytest_autoevolve.graders.registry import GraderRegistry
from pytest_autoevolve.providers import registry as builtin_providers
from pytest_autoevolve.providers.base import Model, ModelRequest, ModelSpecError, parse_spec
from pytest_autoevolve.providers.registry import ProviderRegistry
from pytest_autoevolve.run.cache import ResponseCache
from pytest_autoevolve.settings import Settings

BUILTINS = "autoevolve-builtins"


class Builtins:
    """The built-in graders and providers, registered through the plugin's own hooks."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_autoevolve_add_graders(self, registry: GraderRegistry) -> None:
        """Register the built-in graders first, so plugins may replace them."""
        builtin_graders.register_builtins(registry)

    @pytest.hookimpl(tryfirst=True)
    def pytest_autoevolve_add_providers(self, registry: ProviderRegistry) -> None:
        """Register the built-in providers first, so plugins may replace them."""
        builtin_providers.register_builtins(registry)


@dataclass
class ModelJudge:
    """The `llm_judge` graders' judge: a model from the registry, asked through the judge's own cache."""

    providers: ProviderRegistry
    settings: Settings
    root: Path
    cache: ResponseCache | None = None
    _models: dict[str, Model] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def default(self) -> Any:
        """The configured ``judge`` spec."""
        return self.settings.judge

    def describe(self, spec: Any) -> str:
        """The spec as grades name it, secrets removed."""
        try:
            return parse_spec(spec, self.settings.models).display
        except ModelSpecError as exc:
            raise ValueError(str(exc)) from None

    def ask(self, spec: Any, messages: list[dict[str, Any]], seed: int) -> str:
        """The judge model's reply to ``messages``, from the cache when it has it."""
        with self._lock:
            key = repr(spec)
            if key not in self._models:
                self._models[key] = self.providers.create(parse_spec(spec, self.settings.models), self.root)
            model = self._models[key]
        fingerprint = getattr(model, "fingerprint", None)
        cache_key = self.cache.key(fingerprint, messages, [], seed, 0) if self.cache is not None and fingerprint else ""
        if cache_key and self.cache is not None and (hit := self.cache.get(cache_key)) is not None:
            return hit[0].output
        started = time.perf_counter()
        reply = model.generate(ModelRequest(messages, seed, 0, "judge"))
        if cache_key and self.cache is not None:
            self.cache.put(cache_key, reply, time.perf_counter() - started)
        return reply.output


@dataclass(frozen=True)
class Registries:
    """The graders, providers and judge of one run or command."""

    graders: GraderRegistry
    providers: ProviderRegistry
    judge: ModelJudge


def assemble(
    pluginmanager: pytest.PytestPluginManager, settings: Settings, root: Path, judge_cache: ResponseCache | None = None
) -> Registries:
    """Every grader and provider the plugins registered (built-ins first), with the run's judge."""
    if not pluginmanager.has_plugin(BUILTINS):
        pluginmanager.register(Builtins(), BUILTINS)
    providers = ProviderRegistry()
    pluginmanager.hook.pytest_autoevolve_add_providers(registry=providers)
    judge = ModelJudge(providers, settings, root, judge_cache)
    graders = GraderRegistry(judge)
    pluginmanager.hook.pytest_autoevolve_add_graders(registry=graders)
    return Registries(graders, providers, judge)


def project_plugins(root: Path) -> pytest.PytestPluginManager:
    """A plugin manager as pytest would have it in ``root``: installed plugins and the rootdir ``conftest.py``."""
    manager = pytest.PytestPluginManager()
    manager.add_hookspecs(hookspecs)
    for entry in metadata.entry_points(group="pytest11"):
        if entry.value.startswith("pytest_autoevolve") or manager.has_plugin(entry.name):
            continue
        try:
            manager.register(entry.load(), entry.name)
        except Exception:
            continue
    conftest = root / "conftest.py"
    if conftest.is_file():
        manager.register(_import_conftest(conftest), str(conftest))
    return manager


def _import_conftest(path: Path) -> Any:
    """Import the rootdir ``conftest.py`` as pytest does (its folder on ``sys.path``)."""
    folder = str(path.parent.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location("conftest", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ConfigError(f"{path}: importing it failed: {type(exc).__name__}: {exc}") from None
    sys.modules.setdefault("conftest", module)
    return module


def project_registries(root: Path, settings: Settings) -> Registries:
    """The registries a pytest run in ``root`` would have, for the command line and the loops."""
    return assemble(project_plugins(root), settings, root)

"""The provider registry: factories by spec prefix, built-ins loaded lazily.

Plugins add providers through ``pytest_autoevolve_add_providers``.
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_autoevolve.providers.base import Model, ModelRequest, ModelSpec, ModelSpecError, Reply
from pytest_autoevolve.providers.python import PythonModel
from pytest_autoevolve.records import Scenario

ProviderFactory = Callable[[ModelSpec, Path], Model]

"""Builds a model from its spec and the project root (for relative paths and imports)."""


class ProviderRegistry:
    """Provider factories by spec prefix."""

    def __init__(self) -> None:
        self._factories: dict[str, ProviderFactory] = {}

    def register(self, name: str, factory: ProviderFactory) -> None:
        """Add or replace the provider for specs starting with ``name:``."""
        self._factories[name] = factory

    def names(self) -> list[str]:
        """Every registered provider, sorted."""
        return sorted(self._factories)

    def create(self, spec: ModelSpec, root: Path) -> Model:
        """A model for ``spec``; `ModelSpecError` when no provider serves it."""
        factory = self._factories.get(spec.provider)
        if factory is None:
            raise ModelSpecError(f"unknown model provider {spec.provider!r}; known: {', '.join(self.names())}")
        model = factory(spec, root)
        return LegacyModel(model) if _takes_scenario(model) else model


class LegacyModel:
    """A plugin's model written for the first protocol, ``generate(messages, *, scenario, seed, repeat)``."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.spec: str = model.spec
        self.fingerprint: str | None = getattr(model, "fingerprint", None)

    def generate(self, request: ModelRequest) -> Reply:
        """Ask the wrapped model in its own terms."""
        scenario = request.scenario or Scenario(request.scenario_id, tuple(request.messages), (), "<request>")
        reply: Reply = self.model.generate(
            request.messages, scenario=scenario, seed=request.seed, repeat=request.repeat
        )
        return reply


def _takes_scenario(model: Any) -> bool:
    """Whether ``model.generate`` has the first protocol's ``scenario`` keyword."""
    try:
        return "scenario" in inspect.signature(model.generate).parameters
    except (TypeError, ValueError):
        return False


def requires(provider: str, *modules: str, extra: str) -> None:
    """Fail with the install command when a provider's optional libraries are missing."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise ModelSpecError(
            f"the {provider!r} provider needs {', '.join(missing)}: pip install 'pytest-autoevolve[{extra}]'"
        )


def hf_model(spec: ModelSpec, root: Path) -> Model:
    """A local transformers model (``hf:PATH[+adapter=DIR]``); imports torch lazily."""
    requires("hf", "torch", "transformers", extra="train")
    from pytest_autoevolve.providers.hf import HFModel

    if not spec.target:
        raise ModelSpecError("hf model spec needs a path or id: 'hf:PATH[+adapter=DIR]'")
    return HFModel.load(spec, root)


def tiny_model(spec: ModelSpec, root: Path) -> Model:
    """The embedded default model shipped in the package."""
    requires("tiny", "torch", "transformers", extra="train")
    from pytest_autoevolve.providers.hf import HFModel
    from pytest_autoevolve.tiny import TINY_DIR

    if spec.target:
        raise ModelSpecError(f"'tiny' takes no target, got {spec.target!r}")
    return HFModel.load(ModelSpec("hf", str(TINY_DIR), spec.params), root, display=spec.display)


def openai_model(spec: ModelSpec, root: Path) -> Model:
    """An OpenAI-compatible chat endpoint (``openai:MODEL``); imports the client lazily."""
    from pytest_autoevolve.providers.openai import OpenAIModel

    return OpenAIModel(spec)


def replay_model(spec: ModelSpec, root: Path) -> Model:
    """A recorded run answering again (``replay:PATH/trajectories.jsonl``)."""
    from pytest_autoevolve.providers.replay import ReplayModel

    return ReplayModel(spec, root)


BUILTIN_PROVIDERS: dict[str, ProviderFactory] = {
    "python": PythonModel,
    "hf": hf_model,
    "tiny": tiny_model,
    "openai": openai_model,
    "replay": replay_model,
}


def register_builtins(registry: ProviderRegistry) -> None:
    """Add the built-in providers; each imports its heavy libraries only when it builds a model."""
    for name, factory in BUILTIN_PROVIDERS.items():
        registry.register(name, factory)


def default_registry() -> ProviderRegistry:
    """A registry with the built-in providers (no plugins: see `run.registries` for those)."""
    registry = ProviderRegistry()
    register_builtins(registry)
    return registry

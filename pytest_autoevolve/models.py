"""Models under test: the `Model` protocol, spec strings, and the provider registry (DESIGN §3).

A spec string is ``PROVIDER:TARGET`` with optional ``+key=value`` parameters
(``hf:./out+adapter=./lora``, ``tiny+temperature=0.7``); a name defined under
``models:`` in the config maps to a spec string or a mapping with ``spec`` and
generation parameters. Plugins add providers through ``pytest_autoevolve_add_providers``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import yaml

from pytest_autoevolve.imports import import_object

if TYPE_CHECKING:
    from pytest_autoevolve.scenarios import Scenario

GENERATION_KEYS = ("temperature", "top_p", "max_new_tokens", "system_prompt")
SECRET_MARKERS = ("key", "token", "secret", "password", "authorization")


class ModelSpecError(ValueError):
    """A model spec that names no known provider or has bad parameters."""


@dataclass
class Reply:
    """What a model returned for one trial."""

    output: str
    messages: list[dict[str, Any]] | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = None
    turns: int = 1
    latency_s: float | None = None
    """The latency to record instead of the measured one (a replayed trial keeps its original latency)."""


class TrialError(Exception):
    """A failed trial that still has a partial reply (messages, tool calls, usage) worth recording."""

    def __init__(self, message: str, reply: Reply | None = None) -> None:
        super().__init__(message)
        self.reply = reply


class Model(Protocol):
    """A model or agent the catalog runs against."""

    spec: str
    """The spec shown in reports, secrets removed."""

    def generate(self, messages: list[dict[str, Any]], *, scenario: Scenario, seed: int, repeat: int) -> Reply:
        """Answer the conversation ``messages`` for one trial."""
        ...


@dataclass(frozen=True)
class ModelSpec:
    """A parsed spec: provider, target and parameters."""

    provider: str
    target: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def display(self) -> str:
        """The spec as a string, with secret-looking parameters removed."""
        text = f"{self.provider}:{self.target}" if self.target else self.provider
        for key, value in self.params.items():
            if not is_secret(key):
                text += f"+{key}={value}"
        return text


def is_secret(key: str) -> bool:
    """Whether a parameter name looks like a credential (``api_key``, ``access_token``, not ``max_new_tokens``)."""
    parts = re.split(r"[^a-z0-9]+", key.lower())
    return any(part.endswith(marker) for part in parts for marker in SECRET_MARKERS)


def parse_spec(spec: str | Mapping[str, Any], named: Mapping[str, Any] | None = None) -> ModelSpec:
    """A `ModelSpec` from a spec string, a config mapping, or a name under ``models:``."""
    named = named or {}
    if isinstance(spec, Mapping):
        mapping = dict(spec)
        if "spec" not in mapping:
            raise ModelSpecError(f"a model mapping needs a 'spec' key, got keys {sorted(mapping)}")
        base = parse_spec(mapping.pop("spec"), named)
        return ModelSpec(base.provider, base.target, {**base.params, **mapping})
    if not isinstance(spec, str) or not spec.strip():
        raise ModelSpecError(f"a model spec is a non-empty string, got {spec!r}")
    if spec in named:
        return parse_spec(named[spec], {k: v for k, v in named.items() if k != spec})
    head, *options = spec.split("+")
    provider, _, target = head.partition(":")
    if not provider.strip():
        raise ModelSpecError(f"model spec {spec!r} names no provider; expected PROVIDER[:TARGET][+key=value...]")
    params: dict[str, Any] = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key:
            raise ModelSpecError(f"model spec option {option!r} in {spec!r} is not key=value")
        params[key] = _option_value(value)
    return ModelSpec(provider.strip(), target.strip(), params)


def _option_value(value: str) -> Any:
    """A ``+key=value`` value typed as a YAML scalar; text that is no YAML scalar stays text."""
    if not value:
        return ""
    try:
        typed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    return value if isinstance(typed, dict) else typed


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
        return factory(spec, root)


class PythonModel:
    """A user callable as the model: the user's own agent (``python:pkg.module:function``)."""

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

    def generate(self, messages: list[dict[str, Any]], *, scenario: Scenario, seed: int, repeat: int) -> Reply:
        """Call the user's function and read its reply."""
        offered = {"scenario": scenario, "seed": seed, "repeat": repeat}
        result = self.function(messages, **{k: offered[k] for k in self.keywords})
        return reply_from(result, self.spec)


def _source_fingerprint(spec: str, function: Callable[..., Any]) -> str | None:
    """The spec and a digest of the function's module source: editing the module misses the cache."""
    import hashlib

    try:
        source = Path(inspect.getfile(function)).read_bytes()
    except (TypeError, OSError):
        return None
    return f"{spec}#{hashlib.sha256(source).hexdigest()[:16]}"


def reply_from(result: Any, source: str) -> Reply:
    """A `Reply` from a string or a mapping with ``output`` (and optional extras)."""
    if isinstance(result, str):
        return Reply(output=result)
    if isinstance(result, Mapping) and isinstance(result.get("output"), str):
        usage = result.get("usage") or {}
        return Reply(
            output=result["output"],
            messages=list(result["messages"]) if result.get("messages") is not None else None,
            tool_calls=list(result.get("tool_calls") or []),
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            cost=result.get("cost"),
            turns=int(result.get("turns") or 1),
        )
    raise TypeError(f"{source} returned {type(result).__name__}; expected a string or a mapping with 'output'")


def hf_model(spec: ModelSpec, root: Path) -> Model:
    """A local transformers model (``hf:PATH[+adapter=DIR]``); imports torch lazily."""
    from pytest_autoevolve.hf import HFModel

    if not spec.target:
        raise ModelSpecError("hf model spec needs a path or id: 'hf:PATH[+adapter=DIR]'")
    return HFModel.load(spec, root)


def tiny_model(spec: ModelSpec, root: Path) -> Model:
    """The embedded default model shipped in the package."""
    from pytest_autoevolve.hf import HFModel
    from pytest_autoevolve.tiny import TINY_DIR

    if spec.target:
        raise ModelSpecError(f"'tiny' takes no target, got {spec.target!r}")
    return HFModel.load(ModelSpec("hf", str(TINY_DIR), spec.params), root, display=spec.display)


def openai_model(spec: ModelSpec, root: Path) -> Model:
    """An OpenAI-compatible chat endpoint (``openai:MODEL``); imports the client lazily."""
    from pytest_autoevolve.openai_chat import OpenAIModel

    return OpenAIModel(spec)


def replay_model(spec: ModelSpec, root: Path) -> Model:
    """A recorded run answering again (``replay:PATH/trajectories.jsonl``)."""
    from pytest_autoevolve.replay import ReplayModel

    return ReplayModel(spec, root)


BUILTIN_PROVIDERS: dict[str, ProviderFactory] = {
    "python": PythonModel,
    "hf": hf_model,
    "tiny": tiny_model,
    "openai": openai_model,
    "replay": replay_model,
}


def default_registry() -> ProviderRegistry:
    """A registry with the built-in providers."""
    registry = ProviderRegistry()
    for name, factory in BUILTIN_PROVIDERS.items():
        registry.register(name, factory)
    return registry

"""What every provider shares: the `Model` protocol, `Reply`, and model specs (DESIGN §3).

A spec string is ``PROVIDER:TARGET`` with optional ``+key=value`` parameters
(``hf:./out+adapter=./lora``, ``tiny+temperature=0.7``); a name defined under
``models:`` in the config maps to a spec string or a mapping with ``spec`` and
generation parameters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import yaml

from pytest_autoevolve.errors import AutoevolveError, ModelError

if TYPE_CHECKING:
    from pytest_autoevolve.records import Scenario, Tool


GENERATION_KEYS = ("temperature", "top_p", "max_new_tokens", "system_prompt")

SECRET_MARKERS = ("key", "token", "secret", "password", "authorization", "sig")

CACHE_KEYS = ("cache_inputs", "cache_env", "cache_expiry")
"""Model-entry keys that shape the response cache, not the model: kept apart from its parameters."""

DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ModelSpecError(ModelError):
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
    total_tokens: int | None = None
    """The total the model reported, when it gave no prompt/completion split."""
    spans: list[dict[str, Any]] = field(default_factory=list)
    """The OpenTelemetry spans the model emitted while it answered (`run.spans`)."""


class TrialError(AutoevolveError):
    """A failed trial that still has a partial reply (messages, tool calls, usage) worth recording."""

    def __init__(self, message: str, reply: Reply | None = None) -> None:
        super().__init__(message)
        self.reply = reply


@dataclass(frozen=True)
class ModelRequest:
    """One question to a model: the conversation and everything else that shapes the answer."""

    messages: list[dict[str, Any]]
    seed: int = 0
    repeat: int = 0
    scenario_id: str = ""
    tools: tuple[Tool, ...] = ()
    """Function tools the model may call (an agent loop runs them)."""
    max_turns: int | None = None
    scenario: Scenario | None = None
    """The whole scenario, for a `python:` agent that asks for it; providers read the fields above."""
    timeout_s: float | None = None
    """How long the answer may take (the scenario's ``timeout_s``)."""

    @classmethod
    def for_trial(cls, messages: list[dict[str, Any]], scenario: Scenario, seed: int, repeat: int) -> ModelRequest:
        """The request of one trial of ``scenario``."""
        return cls(
            messages, seed, repeat, scenario.id, scenario.tools, scenario.max_turns, scenario, scenario.timeout_s
        )


class Model(Protocol):
    """A model or agent the catalog runs against."""

    spec: str
    """The spec shown in reports, secrets removed."""

    def generate(self, request: ModelRequest) -> Reply:
        """Answer ``request.messages`` for one trial."""
        ...


class CallCache(Protocol):
    """The trial's per-call cache (`run.calls`): model calls keyed by exactly what is sent, and their answers."""

    def key(self, url: str, body: Mapping[str, Any], query: Sequence[tuple[str, str]] = ()) -> str:
        """The key of one call to ``url`` (credentials left out) with this JSON ``body``; each repeat its own."""
        ...

    def lookup(self, key: str) -> tuple[str, str] | None:
        """The stored answer's content type and body text, when there is a sound one."""
        ...

    def store(self, key: str, url: str, content_type: str, body: str) -> None:
        """Keep a successful answer."""
        ...


TRIAL_CALLS: ContextVar[CallCache | None] = ContextVar("autoevolve_trial_calls", default=None)
"""The per-call cache of the trial under way in this context; None: calls are not cached."""


def duration_seconds(text: str) -> float:
    """The seconds of a duration written ``90s``, ``15m``, ``12h`` or ``7d``; `ValueError` otherwise."""
    match = DURATION.fullmatch(text.strip())
    if not match:
        raise ValueError(f"a duration is a number and s, m, h or d (e.g. 30d), got {text!r}")
    return float(match[1]) * DURATION_UNITS[match[2]]


@dataclass(frozen=True)
class CachePolicy:
    """What a model entry adds to its response-cache key (``cache_inputs``, ``cache_env``) and how long entries last."""

    inputs: tuple[str, ...] | None = None
    """Globs, from the project root, of the files a ``python:`` agent reads; None: every file git keeps."""
    env: tuple[str, ...] = ()
    """Environment variables whose values join the key."""
    expiry_s: float | None = None
    """Entries written longer ago than this (``cache_expiry``) are misses."""

    @classmethod
    def of(cls, values: Mapping[str, Any], provider: str, shown: str) -> CachePolicy:
        """The policy of a model entry's ``cache_*`` keys; `ModelSpecError` names the bad key of ``shown``."""
        inputs = values.get("cache_inputs")
        if inputs is not None and provider != "python":
            raise ModelSpecError(f"model {shown!r}: cache_inputs applies to python: agents only")
        return cls(
            None if inputs is None else _names(inputs, "cache_inputs", shown, "a list of file globs", _relative_glob),
            _names(values.get("cache_env", ()), "cache_env", shown, "a list of environment variable names", _env_name),
            None if values.get("cache_expiry") is None else _expiry(values["cache_expiry"], shown),
        )


def _names(value: Any, key: str, shown: str, kind: str, valid: Callable[[str], bool]) -> tuple[str, ...]:
    """A ``cache_*`` list (or one string) whose items all pass ``valid``."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) and valid(i) for i in items):
        raise ModelSpecError(f"model {shown!r}: {key} is {kind}, got {value!r}")
    return tuple(items)


def _relative_glob(pattern: str) -> bool:
    return bool(pattern) and not pattern.startswith(("/", "\\")) and ".." not in re.split(r"[/\\]", pattern)


def _env_name(name: str) -> bool:
    return ENV_NAME.fullmatch(name) is not None


def _expiry(value: Any, shown: str) -> float:
    try:
        seconds = duration_seconds(value) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        seconds = 0.0
    if isinstance(value, bool) or not 0 < seconds < float("inf"):
        raise ModelSpecError(f"model {shown!r}: cache_expiry is a duration like 7d, 12h or 30m, got {value!r}")
    return seconds


@dataclass(frozen=True)
class ModelSpec:
    """A parsed spec: provider, target, parameters, and the entry's cache policy."""

    provider: str
    target: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    cache: CachePolicy = field(default_factory=CachePolicy)

    @property
    def display(self) -> str:
        """The spec as a string, with secret-looking parameters removed."""
        text = f"{self.provider}:{self.target}" if self.target else self.provider
        for key, value in self.params.items():
            if not is_secret(key):
                text += f"+{key}={without_userinfo(str(value))}"
        return text


USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@")


def without_userinfo(text: str) -> str:
    """``text`` with the ``user:password@`` of every URL in it replaced by ``***@``."""
    return USERINFO.sub(r"\g<scheme>***@", text)


def shown_spec(spec: str) -> str:
    """A spec string fit for an error message: secret parameters' values and URL passwords masked."""
    head, *options = spec.split("+")
    shown = [without_userinfo(head)]
    for option in options:
        key, sep, _ = option.partition("=")
        shown.append(f"{key}{sep}***" if sep and is_secret(key) else without_userinfo(option))
    return "+".join(shown)


def is_secret(key: str) -> bool:
    """Whether a parameter name looks like a credential (``api_key``, ``access_token``, not ``max_new_tokens``)."""
    parts = re.split(r"[^a-z0-9]+", key.lower())
    return any(part.endswith(marker) for part in parts for marker in SECRET_MARKERS)


def parse_spec(spec: str | Mapping[str, Any], named: Mapping[str, Any] | None = None) -> ModelSpec:
    """A `ModelSpec` from a spec string, a config mapping, or a name under ``models:``.

    The ``cache_*`` keys (`CACHE_KEYS`) become its `CachePolicy`, not parameters.
    """
    parsed = _parse(spec, named or {})
    if not any(key in parsed.params for key in CACHE_KEYS):
        return parsed
    plain = ModelSpec(parsed.provider, parsed.target, {k: v for k, v in parsed.params.items() if k not in CACHE_KEYS})
    return replace(plain, cache=CachePolicy.of(parsed.params, plain.provider, plain.display))


def _parse(spec: str | Mapping[str, Any], named: Mapping[str, Any]) -> ModelSpec:
    if isinstance(spec, Mapping):
        mapping = dict(spec)
        if "spec" not in mapping:
            raise ModelSpecError(f"a model mapping needs a 'spec' key, got keys {sorted(mapping)}")
        base = _parse(mapping.pop("spec"), named)
        return ModelSpec(base.provider, base.target, {**base.params, **mapping})
    if not isinstance(spec, str) or not spec.strip():
        shown = shown_spec(spec) if isinstance(spec, str) else type(spec).__name__
        raise ModelSpecError(f"a model spec is a non-empty string, got {shown!r}")
    if spec in named:
        return _parse(named[spec], {k: v for k, v in named.items() if k != spec})
    head, *options = spec.split("+")
    params: dict[str, Any] = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key:
            raise ModelSpecError(f"model spec option {shown_spec(option)!r} in {shown_spec(spec)!r} is not key=value")
        params[key] = _option_value(value)
    if head in named:  # a named model with parameters of its own on top: ``mine+temperature=1``
        base = _parse(named[head], {k: v for k, v in named.items() if k != head})
        return ModelSpec(base.provider, base.target, {**base.params, **params})
    provider, _, target = head.partition(":")
    if not provider.strip():
        raise ModelSpecError(
            f"model spec {shown_spec(spec)!r} names no provider; expected PROVIDER[:TARGET][+key=value...]"
        )
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


def reply_from(result: Any, source: str) -> Reply:
    """A `Reply` from a string or a mapping with ``output`` (and optional extras)."""
    if isinstance(result, str):
        return Reply(output=result)
    if isinstance(result, Mapping) and isinstance(result.get("output"), str):
        usage = result.get("usage") or {}
        if not isinstance(usage, Mapping):
            raise TypeError(f"{source} returned usage {usage!r}; expected a mapping of token counts")
        counts = {key: _count(usage.get(key), f"usage {key}", source) for key in USAGE_KEYS}
        return _checked_reply(result, counts, source, turns=_count(result.get("turns"), "turns", source) or 1)
    raise TypeError(f"{source} returned {type(result).__name__}; expected a string or a mapping with 'output'")


USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


def stored_reply(data: Any, source: str) -> Reply:
    """A reply stored as `dataclasses.asdict` (a cache entry) read back, every field checked (`TypeError`)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("output"), str):
        raise TypeError(f"{source} has no text output")
    counts = {key: _count(data.get(key), key, source) for key in USAGE_KEYS}
    turns = _count(data.get("turns"), "turns", source)
    reply = _checked_reply(data, counts, source, turns=1 if turns is None else turns)
    reply.latency_s = _amount(data.get("latency_s"), "latency_s", source)
    return reply


def _checked_reply(data: Mapping[str, Any], counts: Mapping[str, int | None], source: str, *, turns: int) -> Reply:
    """The `Reply` of a mapping whose ``output`` is text: messages, tool calls and cost checked."""
    messages, calls, spans = data.get("messages"), data.get("tool_calls") or [], data.get("spans") or []
    if not _objects(spans, "name"):
        raise TypeError(f"{source} returned spans {_short(spans)}; expected a list of {{name, attributes}} objects")
    if messages is not None and not _objects(messages, "role"):
        raise TypeError(f"{source} returned messages {_short(messages)}; expected a list of {{role, content}} objects")
    if not _objects(calls, "name"):
        raise TypeError(f"{source} returned tool_calls {_short(calls)}; expected a list of {{name, arguments}} objects")
    return Reply(
        output=data["output"],
        messages=[dict(m) for m in messages] if messages is not None else None,
        tool_calls=[dict(c) for c in calls],
        prompt_tokens=counts["prompt_tokens"],
        completion_tokens=counts["completion_tokens"],
        total_tokens=counts["total_tokens"],
        cost=_amount(data.get("cost"), "cost", source),
        turns=turns,
        spans=[dict(span) for span in spans],
    )


def _count(value: Any, what: str, source: str) -> int | None:
    """A whole number of at least 0 from an agent's reply, or `TypeError` naming what it returned."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError(f"{source} returned {what} {value!r}; expected a whole number of at least 0")
    return value


def _amount(value: Any, what: str, source: str) -> float | None:
    """A finite number of at least 0 (a cost in USD, a latency in seconds), or `TypeError`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < float("inf"):
        raise TypeError(f"{source} returned {what} {value!r}; expected a finite number of at least 0")
    return float(value)


def _objects(value: Any, key: str) -> bool:
    """Whether ``value`` is a list of mappings that each have ``key``."""
    return isinstance(value, list) and all(isinstance(item, Mapping) and key in item for item in value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "..."

"""Settings: one typed loader for pytest, every subcommand and every loop.

Values come from the defaults, then ``[tool.autoevolve]`` in pyproject.toml, then
``autoevolve.yaml``, then the command line (later wins). `load_settings` validates them all
at once and builds the gate's rule, `GateConfig`, exactly once; a bad value is a
`ConfigError` that names the setting and what it takes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from pytest_autoevolve.errors import ConfigError

SPLIT_CHOICES = ("eval", "train", "all")
CACHE_MODES = ("off", "read", "write", "readwrite")
ROLES = ("incumbent", "candidate")
MODES = ("superiority", "non_inferiority")
CONFIG_FILE = "autoevolve.yaml"


OPTIONAL_LIMITS = ("max_error_rate_increase", "max_latency_increase", "max_cost_increase")
"""Guardrails that ``null`` turns off."""


def _number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


class GateConfigError(ConfigError):
    """A gate setting of the wrong kind or out of range."""


@dataclass(frozen=True)
class Budget:
    """What one gate run may spend, under ``gate: {budget: ...}``; a run that spends it stops starting items."""

    calls: int | None = None
    """Model calls (cache hits are free)."""
    tokens: int | None = None
    cost: float | None = None
    """Money, in the providers' price unit (USD)."""

    @classmethod
    def from_mapping(cls, values: Any) -> Budget | None:
        """Validate a ``budget:`` mapping (None or empty: no budget)."""
        if values is None or isinstance(values, Budget):
            return values or None
        if not isinstance(values, Mapping):
            raise GateConfigError(f"gate budget is a mapping of calls, tokens and cost, got {values!r}")
        unknown = sorted(set(values) - {"calls", "tokens", "cost"})
        if unknown:
            raise GateConfigError(f"unknown gate budget key(s) {', '.join(unknown)}; known: calls, tokens, cost")
        for key, value in values.items():
            whole = key != "cost"
            if not _number(value) or value <= 0 or (whole and not isinstance(value, int)):
                kind = "a whole number" if whole else "a number"
                raise GateConfigError(f"gate budget {key} is {kind} above 0, got {value!r}")
        return cls(**values) if values else None

    def spent(self, calls: int, tokens: int, cost: float) -> str | None:
        """What ran out, in words, once any limit is reached; None while all hold."""
        for name, used, limit in (
            ("calls", calls, self.calls),
            ("tokens", tokens, self.tokens),
            ("cost", cost, self.cost),
        ):
            if limit is not None and used >= limit:
                return f"the budget of {limit:g} {name} is spent ({used:g} used)"
        return None


@dataclass(frozen=True)
class GateConfig:
    """The gate's rule and guardrails, from ``gate:`` in the config."""

    mode: str = "superiority"
    alpha: float = 0.05
    min_lift: float = 0.0
    margin: float = 0.02
    min_paired: int = 10
    max_error_rate_increase: float | None = 0.05
    max_latency_increase: float | None = 0.5
    latency_slack_s: float = 0.5
    max_cost_increase: float | None = 0.1
    k: int = 2
    seed: int = 0
    sequential: bool = False
    """Run scenarios in a seeded order and stop at the first look that decides (`gate.sequential`)."""
    looks: int = 10
    """How many looks a sequential gate takes, in equal batches of scenarios."""
    budget: Budget | None = None

    @property
    def threshold(self) -> float:
        """The lift the candidate must beat: ``min_lift`` for superiority, ``-margin`` for non-inferiority."""
        return self.min_lift if self.mode == "superiority" else -self.margin

    BASE_OWNED: ClassVar[tuple[str, ...]] = ("gate", "catalog", "split", "repeats", "seed")
    """The settings ``autoevolve ci gate`` takes from the base commit's config, never the pull request's."""

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], seed: int = 0) -> GateConfig:
        """Validate a ``gate:`` mapping; unknown keys and bad values raise `GateConfigError`.

        ``head_may_change`` is read by ``autoevolve ci gate`` alone (`head_may_change`), so it is
        validated here but is not part of the rule.
        """
        if not isinstance(values, Mapping):
            raise GateConfigError(f"the gate settings are a mapping, got {type(values).__name__}")
        known = {*(f.name for f in fields(cls)), "head_may_change"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise GateConfigError(f"unknown gate setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        cls.head_may_change(values)
        given = {k: v for k, v in values.items() if k != "head_may_change"}
        config = cls(**{"seed": seed, **given, "budget": Budget.from_mapping(given.get("budget"))})
        if config.mode not in MODES:
            raise GateConfigError(f"gate mode is one of {', '.join(MODES)}, got {config.mode!r}")
        if not _number(config.alpha) or not 0 < config.alpha < 1:
            raise GateConfigError(f"gate alpha is between 0 and 1, got {config.alpha!r}")
        if not isinstance(config.sequential, bool):
            raise GateConfigError(f"gate sequential is true or false, got {config.sequential!r}")
        for name in ("min_paired", "k", "looks"):
            value = getattr(config, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise GateConfigError(f"gate {name} is a whole number of at least 1, got {value!r}")
        for name in ("min_lift", "margin", "latency_slack_s", *OPTIONAL_LIMITS):
            value = getattr(config, name)
            if not (value is None and name in OPTIONAL_LIMITS) and (not _number(value) or value < 0):
                raise GateConfigError(f"gate {name} is a number of at least 0, got {value!r}")
        if config.margin >= 1:
            raise GateConfigError(f"gate margin is a share of the pass rate below 1, got {config.margin!r}")
        return config

    @classmethod
    def head_may_change(cls, values: Mapping[str, Any]) -> tuple[str, ...]:
        """The base-owned settings a base's ``gate: {head_may_change: [...]}`` lets a pull request change."""
        names = values.get("head_may_change") or []
        if not isinstance(names, list | tuple) or not all(isinstance(n, str) and n in cls.BASE_OWNED for n in names):
            raise GateConfigError(
                f"gate head_may_change is a list of settings among {', '.join(cls.BASE_OWNED)}, got {names!r}"
            )
        return tuple(names)


@dataclass(frozen=True)
class Limits:
    """Bounds on the work a catalog or a model can ask of a run, under ``limits:`` in the config."""

    max_file_bytes: int = 5_000_000
    """A scenario file larger than this is refused."""
    max_yaml_nodes: int = 200_000
    """A scenario file whose YAML, aliases expanded, holds more values than this is refused (alias bombs)."""
    max_scenarios_per_entry: int = 10_000
    """One entry's ``vars`` may expand into at most this many scenarios."""
    max_output_chars: int = 1_000_000
    """A model's reply is kept in the trajectory up to this many characters, the rest cut with a mark."""

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Limits:
        """Validate a ``limits:`` mapping: known keys, whole numbers of at least 1."""
        if not isinstance(values, Mapping):
            raise ConfigError(f"autoevolve setting 'limits' is a mapping, got {type(values).__name__}")
        known = [f.name for f in fields(cls)]
        for key, value in values.items():
            if key not in known:
                raise ConfigError(f"unknown autoevolve limit {key!r}; known: {', '.join(known)}")
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"autoevolve limit {key!r} is a whole number of at least 1, got {value!r}")
        return cls(**values)


@dataclass(frozen=True)
class Settings:
    """Everything a run needs to know; plain data, so xdist can ship it to workers."""

    incumbent: Any = "tiny"
    candidate: Any = "tiny"
    repeats: int = 1
    artifacts: str = ".autoevolve"
    seed: int = 0
    catalog: tuple[str, ...] = ("scenarios",)
    split: str = "eval"
    models: dict[str, Any] = field(default_factory=dict)
    gate: GateConfig = field(default_factory=GateConfig)
    """The gate's rule, built once from the ``gate:`` mapping and the seed."""
    limits: Limits = field(default_factory=Limits)
    cache: str = "readwrite"
    concurrency: int = 1
    judge: Any = None
    only: str | None = None
    """Run only this role's items (a scoring or sampling run: nothing pairs, so its gate is inconclusive)."""
    canary: Any = None
    """The canary slot's model spec (``autoevolve canary start``): the candidate of a ``--autoevolve-canary`` run."""

    @property
    def roles(self) -> dict[str, Any]:
        """The model spec of each role, in run order."""
        return {"incumbent": self.incumbent, "candidate": self.candidate}

    @property
    def run_roles(self) -> list[str]:
        """The roles whose items this run collects."""
        return [role for role in self.roles if self.only in (None, role)]


def new_run_id() -> str:
    """A sortable run id (to the millisecond, so runs of one second keep their order), a safe folder name."""
    import secrets

    now = datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S}{now.microsecond // 1000:03d}Z-{secrets.token_hex(3)}"


def read_settings_file(path: Path) -> dict[str, Any]:
    """The settings one file holds: a pyproject.toml's ``[tool.autoevolve]``, or a YAML (or JSON) mapping."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None
    if path.suffix == ".toml":
        import tomllib

        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        if path.name == "pyproject.toml" or isinstance(data.get("tool"), dict):
            data = data.get("tool", {}).get("autoevolve", {})
    else:
        import yaml  # YAML is a superset of JSON

        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config file is a mapping of settings")
    return data


def read_file_settings(root: Path) -> dict[str, Any]:
    """Settings from ``pyproject.toml`` and ``autoevolve.yaml`` in ``root`` (the latter wins)."""
    values: dict[str, Any] = {}
    for name in ("pyproject.toml", CONFIG_FILE):
        if (root / name).is_file():
            values.update(read_settings_file(root / name))
    return values


def load_settings(root: Path, overrides: Mapping[str, Any] | None = None) -> Settings:
    """The settings of the project at ``root``, with ``overrides`` (``None`` or ``[]`` means not given) on top."""
    values = read_file_settings(root)
    given = {k: v for k, v in (overrides or {}).items() if v is not None and v != []}
    if isinstance(given.get("gate"), Mapping) and isinstance(values.get("gate"), Mapping):
        given["gate"] = {**values["gate"], **given["gate"]}  # gate options on the command line refine the file's
    values.update(given)
    return settings_from(values)


def settings_from(values: Mapping[str, Any]) -> Settings:
    """Validate a mapping of settings into `Settings`; `ConfigError` names the first bad one."""
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown autoevolve setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    plain = {k: v for k, v in values.items() if k not in ("gate", "limits")}
    settings = replace(Settings(), **plain)
    catalog = (settings.catalog,) if isinstance(settings.catalog, str) else settings.catalog
    if not isinstance(catalog, list | tuple) or not all(isinstance(c, str) for c in catalog):
        raise ConfigError(f"autoevolve setting 'catalog' is a folder or a list of folders, got {settings.catalog!r}")
    for name in ("repeats", "concurrency"):
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"autoevolve setting '{name}' is a whole number of at least 1, got {value!r}")
    if isinstance(settings.seed, bool) or not isinstance(settings.seed, int):
        raise ConfigError(f"autoevolve setting 'seed' is a whole number, got {settings.seed!r}")
    _check_choice("cache", settings.cache, CACHE_MODES)
    _check_choice("split", settings.split, SPLIT_CHOICES)
    if settings.only is not None:
        _check_choice("only", settings.only, ROLES)
    if not isinstance(settings.models, dict):
        raise ConfigError(f"autoevolve setting 'models' is a mapping of names to specs, got {settings.models!r}")
    try:
        gate = GateConfig.from_mapping(values.get("gate") or {}, settings.seed)
    except (GateConfigError, TypeError) as exc:
        raise ConfigError(f"autoevolve setting 'gate': {exc}") from None
    limits = Limits.from_mapping(values.get("limits") or {})
    return replace(settings, catalog=tuple(catalog), gate=gate, limits=limits)


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"autoevolve setting '{name}' is one of {', '.join(allowed)}, got {value!r}")

"""Settings: defaults, then ``[tool.autoevolve]`` in pyproject.toml, then ``autoevolve.yaml``, then the CLI."""

from __future__ import annotations

import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pytest_autoevolve.errors import ConfigError

SPLIT_CHOICES = ("eval", "train", "all")

CACHE_MODES = ("off", "read", "write", "readwrite")

ROLES = ("incumbent", "candidate")


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
    gate: dict[str, Any] = field(default_factory=dict)
    cache: str = "readwrite"
    concurrency: int = 1
    judge: Any = None
    only: str | None = None
    """Run only this role's items (a scoring or sampling run: nothing pairs, so its gate is inconclusive)."""

    @property
    def roles(self) -> dict[str, Any]:
        """The model spec of each role, in run order."""
        return {"incumbent": self.incumbent, "candidate": self.candidate}

    @property
    def run_roles(self) -> list[str]:
        """The roles whose items this run collects."""
        return [role for role in self.roles if self.only in (None, role)]


def new_run_id() -> str:
    """A sortable run id that is a safe folder name everywhere."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def positive_int(text: str) -> int:
    """An option value that must be a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise pytest.UsageError(f"expected a whole number of at least 1, got {text!r}") from None
    if value < 1:
        raise pytest.UsageError(f"expected a whole number of at least 1, got {value}")
    return value


def cache_choice(text: str) -> str:
    """An option value naming a response cache mode."""
    if text not in CACHE_MODES:
        raise pytest.UsageError(f"--autoevolve-cache takes off, read, write or readwrite, got {text!r}")
    return text


def role_choice(text: str) -> str:
    """An option value naming one model role."""
    if text not in ROLES:
        raise pytest.UsageError(f"--autoevolve-only takes {' or '.join(ROLES)}, got {text!r}")
    return text


def split_choice(text: str) -> str:
    """An option value naming a split to collect."""
    if text not in SPLIT_CHOICES:
        raise pytest.UsageError(f"--autoevolve-split takes one of {', '.join(SPLIT_CHOICES)}, got {text!r}")
    return text


def read_file_settings(root: Path) -> dict[str, Any]:
    """Settings from ``pyproject.toml`` and ``autoevolve.yaml`` in ``root`` (the latter wins)."""
    values: dict[str, Any] = {}
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise pytest.UsageError(f"{pyproject}: {exc}") from None
        values.update(data.get("tool", {}).get("autoevolve", {}))
    config_file = root / "autoevolve.yaml"
    if config_file.is_file():
        import yaml

        try:
            data = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise pytest.UsageError(f"{config_file}: {exc}") from None
        if not isinstance(data, dict):
            raise pytest.UsageError(f"{config_file}: the config file is a mapping of settings")
        values.update(data)
    return values


def build_settings(root: Path, cli: dict[str, Any]) -> Settings:
    """Merge file settings and CLI values (``None`` means not given) into `Settings`."""
    known = {f.name for f in fields(Settings)}
    values = read_file_settings(root)
    unknown = sorted(set(values) - known)
    if unknown:
        raise pytest.UsageError(
            f"unknown autoevolve setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    values.update({k: v for k, v in cli.items() if v is not None and v != []})
    settings = replace(Settings(), **values)
    if isinstance(settings.catalog, str):
        settings = replace(settings, catalog=(settings.catalog,))
    if isinstance(settings.repeats, bool) or not isinstance(settings.repeats, int) or settings.repeats < 1:
        raise pytest.UsageError(
            f"autoevolve setting 'repeats' is a whole number of at least 1, got {settings.repeats!r}"
        )
    if isinstance(settings.concurrency, bool) or not isinstance(settings.concurrency, int) or settings.concurrency < 1:
        raise pytest.UsageError(
            f"autoevolve setting 'concurrency' is a whole number of at least 1, got {settings.concurrency!r}"
        )
    if settings.cache not in CACHE_MODES:
        raise pytest.UsageError(f"autoevolve setting 'cache' is off, read, write or readwrite, got {settings.cache!r}")
    if settings.only not in (None, *ROLES):
        raise pytest.UsageError(f"autoevolve setting 'only' is {' or '.join(ROLES)}, got {settings.only!r}")
    if settings.split not in SPLIT_CHOICES:
        raise pytest.UsageError(f"autoevolve setting 'split' is one of {', '.join(SPLIT_CHOICES)}")
    from pytest_autoevolve.settings import GateConfig, GateConfigError

    try:
        GateConfig.from_mapping(settings.gate, settings.seed)
    except (GateConfigError, TypeError) as exc:
        raise pytest.UsageError(f"autoevolve setting 'gate': {exc}") from None
    return replace(settings, catalog=tuple(settings.catalog))


MODES = ("superiority", "non_inferiority")


class GateConfigError(ConfigError):
    """A gate setting of the wrong kind or out of range."""


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
    resamples: int = 10_000
    seed: int = 0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], seed: int = 0) -> GateConfig:
        """Validate a ``gate:`` mapping; unknown keys and bad values raise `GateConfigError`."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise GateConfigError(f"unknown gate setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        config = cls(**{"seed": seed, **values})
        if config.mode not in MODES:
            raise GateConfigError(f"gate mode is one of {', '.join(MODES)}, got {config.mode!r}")
        if not 0 < config.alpha < 1:
            raise GateConfigError(f"gate alpha is between 0 and 1, got {config.alpha!r}")
        if config.min_paired < 1 or config.k < 1:
            raise GateConfigError("gate min_paired and k are whole numbers of at least 1")
        return config

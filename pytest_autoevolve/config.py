"""Settings: defaults, then ``[tool.autoevolve]`` in pyproject.toml, then ``autoevolve.yaml``, then the CLI."""

from __future__ import annotations

import secrets
import tomllib
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

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
        raise pytest.UsageError(f"autoevolve setting 'concurrency' is a whole number of at least 1, got "
                                f"{settings.concurrency!r}")  # fmt: skip
    if settings.cache not in CACHE_MODES:
        raise pytest.UsageError(f"autoevolve setting 'cache' is off, read, write or readwrite, got {settings.cache!r}")
    if settings.only not in (None, *ROLES):
        raise pytest.UsageError(f"autoevolve setting 'only' is {' or '.join(ROLES)}, got {settings.only!r}")
    if settings.split not in SPLIT_CHOICES:
        raise pytest.UsageError(f"autoevolve setting 'split' is one of {', '.join(SPLIT_CHOICES)}")
    from pytest_autoevolve.gate import GateConfig, GateConfigError

    try:
        GateConfig.from_mapping(settings.gate, settings.seed)
    except (GateConfigError, TypeError) as exc:
        raise pytest.UsageError(f"autoevolve setting 'gate': {exc}") from None
    return replace(settings, catalog=tuple(settings.catalog))

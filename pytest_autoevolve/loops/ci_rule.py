"""The base owns the rule: which settings a pull request changed, and the plugin that gates its run by the base's.

``autoevolve ci gate`` runs the head with ``-p pytest_autoevolve.loops.ci_rule --autoevolve-ci-rule FILE``:
the hooks here replace the run's gate rule by the base commit's (a JSON gate mapping in FILE).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from pytest_autoevolve.settings import Settings


@dataclass
class BaseConfig:
    """The base commit's settings and the base-owned settings it lets a pull request change."""

    settings: Settings
    head_may_change: tuple[str, ...]


def rule_changes(base: Settings, head: Settings) -> dict[str, str]:
    """The base-owned settings the head changes, each with what changed in words (``gate.mode a -> b``)."""
    from pytest_autoevolve.settings import GateConfig

    changes: dict[str, str] = {}
    for name in GateConfig.BASE_OWNED:
        if name == "gate":  # its seed is the `seed` setting's
            was, now = asdict(replace(base.gate, seed=0)), asdict(replace(head.gate, seed=0))
            shown = [f"gate.{key} {was[key]!r} -> {now[key]!r}" for key in was if was[key] != now[key]]
        else:
            before, after = getattr(base, name), getattr(head, name)
            shown = [f"{name} {before!r} -> {after!r}"] if before != after else []
        if shown:
            changes[name] = ", ".join(shown)
    return changes


def ruled_settings(base: BaseConfig, head: Settings, allowed: list[str]) -> Settings:
    """The base's settings, with the ``allowed`` changes of the head; the rule's seed is the seed."""
    chosen = replace(base.settings, **{name: getattr(head, name) for name in allowed})
    return replace(chosen, gate=replace(chosen.gate, seed=chosen.seed))


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--autoevolve-ci-rule FILE``: the gate's rule for this run, set by ``autoevolve ci gate``."""
    parser.getgroup("autoevolve").addoption(
        "--autoevolve-ci-rule",
        dest="autoevolve_ci_rule",
        metavar="FILE",
        help="a JSON gate mapping that replaces the config's 'gate:' (autoevolve ci gate passes the base's)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """With ``--autoevolve-ci-rule``: the run set up, gate it by that rule instead of the config's."""
    from pytest_autoevolve.errors import ConfigError
    from pytest_autoevolve.run.stash import CONTEXT_KEY
    from pytest_autoevolve.settings import GateConfig

    config = session.config
    path = config.getoption("autoevolve_ci_rule")
    if path and CONTEXT_KEY in config.stash:
        context = config.stash[CONTEXT_KEY]
        try:
            rule: Any = json.loads(Path(path).read_text(encoding="utf-8"))
            gate = GateConfig.from_mapping(rule, context.settings.seed)
        except (OSError, ValueError, ConfigError, TypeError) as exc:
            raise pytest.UsageError(f"--autoevolve-ci-rule {path}: {exc}") from None
        context.settings = replace(context.settings, gate=gate)

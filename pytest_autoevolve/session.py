"""State of one autoevolve run: the per-process context and the controller's result log."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_autoevolve.config import Settings
from pytest_autoevolve.graders import GraderRegistry
from pytest_autoevolve.graders import default_registry as default_graders
from pytest_autoevolve.models import Model, ModelSpecError, ProviderRegistry, Reply, parse_spec
from pytest_autoevolve.models import default_registry as default_providers
from pytest_autoevolve.runner import ModelHandle
from pytest_autoevolve.scenarios import Catalog, Scenario, load_catalog
from pytest_autoevolve.trajectory import FORMAT_VERSION, Trajectory, TrajectoryWriter, write_json_atomic

SUMMARY_FORMAT_VERSION = 1


def prepare_artifacts(root: Path) -> Path:
    """Create the artifacts folder with a ``.gitignore`` that keeps it out of git."""
    root.mkdir(parents=True, exist_ok=True)
    ignore = root / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# created by pytest-autoevolve\n*\n", encoding="utf-8")
    return root


class BrokenModel:
    """Stands in for a model that could not be loaded: every trial records why."""

    def __init__(self, spec: str, error: Exception) -> None:
        self.spec, self.error = spec, error

    def generate(self, messages: list[dict[str, Any]], *, scenario: Scenario, seed: int, repeat: int) -> Reply:
        """Raise the load error, so it lands in the trajectory."""
        raise ModelSpecError(f"model {self.spec!r} could not be loaded: {self.error}")


class RunContext:
    """What every process of a run shares: settings, registries, models and the trajectory file."""

    def __init__(self, config: pytest.Config, settings: Settings, run_id: str) -> None:
        self.config, self.settings, self.run_id = config, settings, run_id
        self.root = config.rootpath
        self.run_dir = self.root / settings.artifacts / "runs" / run_id
        self.writer = TrajectoryWriter(self.run_dir / "trajectories.jsonl")
        self.graders: GraderRegistry = default_graders()
        config.hook.pytest_autoevolve_add_graders(registry=self.graders)
        self.providers: ProviderRegistry = default_providers()
        config.hook.pytest_autoevolve_add_providers(registry=self.providers)
        self.collected = Catalog()
        self._catalog: Catalog | None = None
        self._handles: dict[str, ModelHandle] = {}
        self._lock = threading.Lock()

    def check_specs(self) -> None:
        """Fail fast, as a usage error, on a role whose spec names no known provider."""
        for role, spec in self.settings.roles.items():
            try:
                parsed = parse_spec(spec, self.settings.models)
            except ModelSpecError as exc:
                raise pytest.UsageError(f"--autoevolve-{role}: {exc}") from None
            if parsed.provider not in self.providers.names():
                known = ", ".join(self.providers.names())
                raise pytest.UsageError(
                    f"--autoevolve-{role}: unknown model provider {parsed.provider!r}; known: {known}"
                )

    def record(self, trajectory: Trajectory) -> None:
        """Append a trajectory to the run's file and tell observers."""
        self.writer.append(trajectory)
        self.config.hook.pytest_autoevolve_trajectory(trajectory=trajectory, config=self.config)

    def handle(self, role_or_spec: Any) -> ModelHandle:
        """The model for a role (``incumbent``, ``candidate``) or any spec, loaded once."""
        roles = self.settings.roles
        role = role_or_spec if isinstance(role_or_spec, str) and role_or_spec in roles else None
        spec = roles[role] if role else role_or_spec
        key = role or repr(spec)
        with self._lock:
            if key not in self._handles:
                self._handles[key] = self._make_handle(role, spec)
            return self._handles[key]

    def _make_handle(self, role: str | None, spec: Any) -> ModelHandle:
        parsed = parse_spec(spec, self.settings.models)
        if role is None:  # a spec, not a role: name it by the config name or the spec without secrets
            role = spec if isinstance(spec, str) and spec in self.settings.models else parsed.display
        model: Model
        try:
            model = self.providers.create(parsed, self.root)
        except (ModelSpecError, ImportError, OSError) as exc:
            model = BrokenModel(parsed.display, exc)
        return ModelHandle(
            role=role, model=model, base_seed=self.settings.seed, system_prompt=parsed.params.get("system_prompt"),
            run_id=self.run_id, observe=self.record,
        )  # fmt: skip

    @property
    def catalog(self) -> Catalog:
        """The whole catalog from the configured folders, for fixtures."""
        if self._catalog is None:
            roots = [self.root / entry for entry in self.settings.catalog]
            self._catalog = load_catalog(roots, self.graders, self.root)
        return self._catalog


@dataclass
class RoleTally:
    """Counts for one role across the run."""

    spec: str = ""
    items: int = 0
    items_passed: int = 0
    trials: int = 0
    passes: int = 0
    errors: int = 0
    latency_s: float = 0.0
    tokens: int = 0
    scenarios: dict[str, float] = field(default_factory=dict)

    def add(self, props: dict[str, Any]) -> None:
        """Fold in one item's properties."""
        self.spec = str(props.get("model", self.spec))
        self.items += 1
        self.items_passed += int(props["passed"] == "true")
        self.trials += int(props["trials"])
        self.passes += int(props["passes"])
        self.errors += int(props["errors"])
        self.latency_s += float(props["latency_s"])
        self.tokens += int(props.get("tokens") or 0)
        self.scenarios[str(props["scenario"])] = float(props["pass_rate"])

    @property
    def pass_rate(self) -> float | None:
        """Passed trials over all trials, or None when nothing ran."""
        return self.passes / self.trials if self.trials else None

    def to_summary(self) -> dict[str, Any]:
        """The role's object in ``summary.json``."""
        return {
            "spec": self.spec, "pass_rate": self.pass_rate, "n": self.trials, "passed": self.passes,
            "errors": self.errors, "scenarios": self.items, "scenarios_passed": self.items_passed,
            "mean_latency_s": self.latency_s / self.trials if self.trials else None, "tokens": self.tokens,
        }  # fmt: skip


class ResultLog:
    """Controller-only plugin: gathers item results (also from xdist workers) and writes the summary."""

    def __init__(self, context: RunContext) -> None:
        self.context = context
        self.roles: dict[str, RoleTally] = {role: RoleTally() for role in context.settings.roles}

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Take the autoevolve properties of each finished scenario item."""
        if report.when != "call":
            return
        props = dict(report.user_properties)
        if props.get("autoevolve") != "scenario" or props.get("role") not in self.roles:
            return
        self.roles[str(props["role"])].add(props)

    def summary(self) -> dict[str, Any]:
        """The run's ``summary.json`` content."""
        settings = self.context.settings
        return {
            "format_version": SUMMARY_FORMAT_VERSION,
            "trajectory_format_version": FORMAT_VERSION,
            "run_id": self.context.run_id,
            "split": settings.split,
            "seed": settings.seed,
            "repeats": settings.repeats,
            **{role: tally.to_summary() for role, tally in self.roles.items()},
        }

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Write ``summary.json`` when any scenario ran."""
        if any(t.items for t in self.roles.values()):
            write_json_atomic(self.context.run_dir / "summary.json", self.summary())

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """Per-role pass rates and where the artifacts are."""
        if not any(t.items for t in self.roles.values()):
            return
        write = terminalreporter.write_line
        terminalreporter.write_sep("=", "autoevolve")
        for role, tally in self.roles.items():
            rate = f"{tally.pass_rate:.1%}" if tally.pass_rate is not None else "n/a"
            write(
                f"{role:<10} {tally.spec:<24} pass rate {rate:>6} ({tally.passes}/{tally.trials} trials, "
                f"{tally.items_passed}/{tally.items} scenarios, {tally.errors} errors)"
            )
        run_dir = self.context.run_dir
        shown = run_dir.relative_to(self.context.root) if run_dir.is_relative_to(self.context.root) else run_dir
        write(f"trajectories: {shown / 'trajectories.jsonl'}")
        write(f"summary:      {shown / 'summary.json'}")

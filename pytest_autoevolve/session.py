"""State of one autoevolve run: the per-process context and the controller's result log."""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from _pytest.junitxml import xml_key

from pytest_autoevolve.cache import ResponseCache
from pytest_autoevolve.config import Settings
from pytest_autoevolve.gate import GateConfig, GateResult, ItemResult, decide
from pytest_autoevolve.graders import GraderRegistry
from pytest_autoevolve.graders import default_registry as default_graders
from pytest_autoevolve.judge import llm_judge
from pytest_autoevolve.models import Model, ModelSpecError, ProviderRegistry, Reply, parse_spec
from pytest_autoevolve.models import default_registry as default_providers
from pytest_autoevolve.report import github_outputs, write_reports
from pytest_autoevolve.runner import ModelHandle
from pytest_autoevolve.scenarios import Catalog, Scenario, files_sha256, load_catalog
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
        self.artifacts = self.root / settings.artifacts
        self.model_cache = ResponseCache(self.artifacts, "models", settings.cache) if settings.cache != "off" else None
        self.judge_cache = ResponseCache(self.artifacts, "judge", settings.cache) if settings.cache != "off" else None
        self.graders: GraderRegistry = default_graders()
        self.graders.register("llm_judge", functools.partial(llm_judge, self))
        config.hook.pytest_autoevolve_add_graders(registry=self.graders)
        self.providers: ProviderRegistry = default_providers()
        config.hook.pytest_autoevolve_add_providers(registry=self.providers)
        self.collected = Catalog()
        self._catalog: Catalog | None = None
        self._handles: dict[str, ModelHandle] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._judges: dict[str, Model] = {}
        self._prefetched: dict[tuple[str, str], list[Future[Trajectory]]] = {}

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
            run_id=self.run_id, observe=self.record, cache=self.model_cache,
        )  # fmt: skip

    def ask_judge(self, spec: Any, messages: list[dict[str, Any]], scenario: Scenario, seed: int) -> str:
        """The judge model's reply to ``messages``, through the judge's own cache."""
        key = repr(spec)
        with self._lock:
            if key not in self._judges:
                self._judges[key] = self.providers.create(parse_spec(spec, self.settings.models), self.root)
            model = self._judges[key]
        fingerprint = getattr(model, "fingerprint", None)
        cache_key = self.judge_cache.key(fingerprint, messages, [], seed, 0) if self.judge_cache and fingerprint else ""
        if cache_key and self.judge_cache is not None and (hit := self.judge_cache.get(cache_key)) is not None:
            return hit[0].output
        started = time.perf_counter()
        reply = model.generate(messages, scenario=dataclasses.replace(scenario, tools=()), seed=seed, repeat=0)
        if cache_key and self.judge_cache is not None:
            self.judge_cache.put(cache_key, reply, time.perf_counter() - started)
        return reply.output

    def repeats(self, scenario: Scenario) -> int:
        """Trials per model for ``scenario``: its own `repeats`, else the run's."""
        return scenario.repeats or self.settings.repeats

    def _submit(self, role: str, scenario: Scenario) -> list[Future[Trajectory]]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.settings.concurrency, thread_name_prefix="autoevolve")
        handle = self.handle(role)
        return [self._pool.submit(handle.run, scenario, r) for r in range(self.repeats(scenario))]

    def prefetch(self, work: Iterable[tuple[str, Scenario]]) -> None:
        """Start every trial of these (role, scenario) pairs on the pool, ``concurrency`` at a time."""
        for role, scenario in work:
            self._prefetched[(role, scenario.id)] = self._submit(role, scenario)

    def trials(self, role: str, scenario: Scenario) -> list[Trajectory]:
        """Every trial of one scenario on one role, in repeat order: prefetched, pooled or serial."""
        futures = self._prefetched.pop((role, scenario.id), None)
        if futures is None and self.settings.concurrency > 1:
            futures = self._submit(role, scenario)
        if futures is None:
            return self.handle(role).run_all(scenario, self.repeats(scenario))
        return [future.result() for future in futures]

    def close(self) -> None:
        """Stop the pool; trials not yet started are dropped (an interrupted run)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    @property
    def catalog(self) -> Catalog:
        """The whole catalog from the configured folders, for fixtures."""
        if self._catalog is None:
            roots = [self.root / entry for entry in self.settings.catalog]
            self._catalog = load_catalog(roots, self.graders, self.root)
        return self._catalog


class ResultLog:
    """Controller-only plugin: gathers item results (also from xdist workers), gates, writes the summary."""

    def __init__(self, context: RunContext) -> None:
        self.context = context
        self.items: list[ItemResult] = []
        self.result: GateResult | None = None
        self.reports: list[Path] = []
        self.annotations: list[str] = []

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Take the autoevolve properties of each finished scenario item."""
        if report.when == "call":
            item = ItemResult.from_properties(dict(report.user_properties))
            if item is not None:
                self.items.append(item)

    def summary(self, result: GateResult) -> dict[str, Any]:
        """The run's ``summary.json`` content."""
        settings = self.context.settings
        return {
            "format_version": SUMMARY_FORMAT_VERSION,
            "trajectory_format_version": FORMAT_VERSION,
            "run_id": self.context.run_id,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            **result.to_summary(),
            "split": settings.split,
            "seed": settings.seed,
            "repeats": settings.repeats,
            "judge": parse_spec(settings.judge, settings.models).display if settings.judge else None,
            "cache": {
                "mode": settings.cache,
                "hits": sum(i.cached for i in self.items),
                "model_calls": sum(i.trials - i.cached for i in self.items),
            },
            "catalog_sha256": catalog_sha256(self.context),
            "git_commit": git_commit(self.context.root),
            "versions": versions(),
        }

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Decide, set the exit status from the verdict, write summary.json and the junit verdict."""
        if not self.items:
            return
        settings = self.context.settings
        recorded = {item.role: item.model for item in self.items if item.model}  # what the models call themselves
        specs = {role: recorded.get(role) or parse_spec(spec, settings.models).display
                 for role, spec in settings.roles.items()}  # fmt: skip
        self.result = decide(self.items, GateConfig.from_mapping(settings.gate, settings.seed), specs)
        summary = self.summary(self.result)
        write_json_atomic(self.context.run_dir / "summary.json", summary)
        self.reports = write_reports(self.context.run_dir, summary)
        self.annotations = github_outputs(summary, self.reports[0], os.environ)
        xml = session.config.stash.get(xml_key, None)
        if xml is not None:
            for name in ("verdict", "lift", "ci_low", "ci_high", "p_value", "test", "n_paired", "run_id", "seed"):
                xml.add_global_property(f"autoevolve_{name}", "" if summary[name] is None else str(summary[name]))
        if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            verdict_ok = self.result.verdict == "pass"
            session.exitstatus = pytest.ExitCode.OK if verdict_ok else pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """The verdict with the numbers behind it, and where the artifacts are."""
        if self.result is None:
            return
        terminalreporter.write_sep("=", f"autoevolve gate: {self.result.verdict.upper()}")
        for line in summary_lines(self.result):
            terminalreporter.write_line(line)
        run_dir = self.context.run_dir
        shown = run_dir.relative_to(self.context.root) if run_dir.is_relative_to(self.context.root) else run_dir
        hits = sum(i.cached for i in self.items)
        if self.context.settings.cache != "off":
            trials = sum(i.trials for i in self.items)
            terminalreporter.write_line(f"cache: {hits} of {trials} trials answered from the cache, "
                                        f"{trials - hits} model calls")  # fmt: skip
        terminalreporter.write_line(f"trajectories: {shown / 'trajectories.jsonl'}")
        terminalreporter.write_line(f"summary:      {shown / 'summary.json'}")
        for label, path in zip(("report:", "html report:"), self.reports, strict=False):
            terminalreporter.write_line(f"{label:<14}{shown / path.name}")
        for line in self.annotations:  # GitHub workflow commands, read from stdout
            terminalreporter.write_line(line)


def summary_lines(result: GateResult) -> list[str]:
    """The terminal summary of a gate result (also printed by ``autoevolve report``)."""
    lines = []
    for role in ("incumbent", "candidate"):
        stat = getattr(result, role)
        rate = f"{stat.pass_rate:.1%}" if stat.pass_rate is not None else "n/a"
        lines.append(f"{role:<10} {stat.spec:<28} pass rate {rate:>6}  ({stat.passed}/{stat.n} trials, "
                     f"{stat.errors} errors)")  # fmt: skip
    test = result.test
    if test is not None:
        lines.append(f"lift {test.lift:+.1%}  {100 - 200 * result.config.alpha:.0f}% CI [{test.ci_low:+.1%}, "
                     f"{test.ci_high:+.1%}]  p = {test.p_value:.4g}  ({test.test}, {result.config.mode}, "
                     f"alpha {result.config.alpha:g}, {result.n_paired} paired scenarios)")  # fmt: skip
    if result.minimum_detectable_lift is not None:
        lines.append(f"smallest lift this catalog can detect (80% power): {result.minimum_detectable_lift:.1%}")
    for label, ids in (("regressions", result.regressions), ("improvements", result.improvements)):
        shown = ", ".join(ids[:10]) + (f", ... ({len(ids) - 10} more)" if len(ids) > 10 else "")
        lines.append(f"{label} ({len(ids)}): {shown or '-'}")
    lines += [f"{result.verdict}: {reason}" for reason in result.reasons]
    return lines


def catalog_sha256(context: RunContext) -> str:
    """A digest of every collected scenario file (path and content)."""
    return files_sha256(context.root, {s.path for s in context.collected})


def git_commit(root: Path) -> str | None:
    """The commit checked out at ``root``, when it is a git repository."""
    try:
        import git

        return str(git.Repo(root, search_parent_directories=True).head.commit.hexsha)
    except Exception:
        return None


def versions() -> dict[str, str]:
    """Versions of the packages that shaped this run (heavy ones only when already imported)."""
    import platform
    from importlib import metadata

    found = {"python": platform.python_version()}
    for name in ("pytest-autoevolve", "pytest", "pluggy", "pytest-xdist", "torch", "transformers", "peft", "openai"):
        module = name.replace("pytest-autoevolve", "pytest_autoevolve").replace("pytest-xdist", "xdist")
        if name in ("torch", "transformers", "peft", "openai") and module not in sys.modules:
            continue
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found

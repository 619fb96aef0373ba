"""The per-process state of one run: settings, registries, models, the trial pool and the trajectory file."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pytest_autoevolve.catalog.loader import Catalog, load_catalog
from pytest_autoevolve.errors import ConfigError
from pytest_autoevolve.files import TrajectoryWriter, read_trajectories, write_json_atomic
from pytest_autoevolve.graders.registry import GraderRegistry
from pytest_autoevolve.providers._http import AdaptiveLimit
from pytest_autoevolve.providers.base import Model, ModelRequest, ModelSpecError, Reply, parse_spec
from pytest_autoevolve.providers.registry import ProviderRegistry
from pytest_autoevolve.records import Scenario, Trajectory
from pytest_autoevolve.run.cache import ResponseCache
from pytest_autoevolve.run.calls import NAMESPACE
from pytest_autoevolve.run.fingerprint import ProjectKeys
from pytest_autoevolve.run.registries import assemble
from pytest_autoevolve.run.runner import ModelHandle
from pytest_autoevolve.settings import Settings

AHEAD = 4
"""Prefetched trials run at most this many times the concurrency ahead of the items that take them."""


class BrokenModel:
    """Stands in for a model that could not be loaded: every trial records why."""

    def __init__(self, spec: str, error: Exception) -> None:
        self.spec, self.error = spec, error

    def generate(self, request: ModelRequest) -> Reply:
        """Raise the load error, so it lands in the trajectory."""
        raise ModelSpecError(f"model {self.spec!r} could not be loaded: {self.error}")


class RunContext:
    """What every process of a run shares: settings, registries, models and the trajectory file."""

    def __init__(self, config: pytest.Config, settings: Settings, run_id: str) -> None:
        self.config, self.settings, self.run_id = config, settings, run_id
        self.root = config.rootpath
        self._worker = hasattr(config, "workerinput")
        self.run_dir = self.root / settings.artifacts / "runs" / run_id
        self.writer = TrajectoryWriter(self.run_dir / "trajectories.jsonl")
        self.fixture_writer = TrajectoryWriter(self.run_dir / "fixture-trajectories.jsonl")
        """Trials that users' own tests ran through the fixtures: kept apart from the gated run's records."""
        self.artifacts = self.root / settings.artifacts
        self.model_cache = ResponseCache(self.artifacts, "models", settings.cache) if settings.cache != "off" else None
        judge_cache = ResponseCache(self.artifacts, "judge", settings.cache) if settings.cache != "off" else None
        self.call_cache = ResponseCache(self.artifacts, NAMESPACE, settings.cache) if settings.cache != "off" else None
        self.keys = ProjectKeys.of(self.root, settings)
        AdaptiveLimit.concurrency = settings.concurrency  # each model endpoint's ceiling of calls in flight
        registries = assemble(config.pluginmanager, settings, self.root, judge_cache)
        self.graders: GraderRegistry = registries.graders
        self.providers: ProviderRegistry = registries.providers
        self.collected = Catalog()
        self._catalog: Catalog | None = None
        self._handles: dict[tuple[str, bool], ModelHandle] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._prefetched: dict[tuple[str, str], list[Future[Trajectory]]] = {}
        self._stopped: str | None = None
        self._ahead: list[tuple[str, Scenario]] = []
        self._resumed: dict[tuple[str, str], dict[int, Trajectory]] = {}

    @property
    def stop_file(self) -> Path:
        """Written by the controller when the run should start no more scenarios (every process reads it)."""
        return self.run_dir / "stop.json"

    def stop(self, reason: str) -> None:
        """Start no more scenarios, here and in every worker; trials prefetched but not started are dropped."""
        self._stopped = reason
        self._ahead.clear()
        write_json_atomic(self.stop_file, {"reason": reason})
        for futures in self._prefetched.values():
            for future in futures:
                future.cancel()

    def stopped(self) -> str | None:
        """Why the run starts no more scenarios (a sequential gate decided, the budget is spent); None if it goes on.

        Only an xdist worker reads the stop file: elsewhere this process is the one that stops.
        """
        if self._stopped is None and self._worker and self.stop_file.is_file():
            self._stopped = str(json.loads(self.stop_file.read_text(encoding="utf-8"))["reason"])
        return self._stopped

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

    def record_fixture_trial(self, trajectory: Trajectory) -> None:
        """Append a trial a user's test ran (through a fixture) to its own file, and tell observers."""
        self.fixture_writer.append(trajectory)
        self.config.hook.pytest_autoevolve_trajectory(trajectory=trajectory, config=self.config)

    def handle(self, role_or_spec: Any, *, for_fixture: bool = False) -> ModelHandle:
        """The model for a role (``incumbent``, ``candidate``) or any spec, loaded once.

        Handles ``for_fixture`` record into ``fixture-trajectories.jsonl``: a user's own tests
        never add trials to the gated run's ``trajectories.jsonl``.
        """
        roles = self.settings.roles
        role = role_or_spec if isinstance(role_or_spec, str) and role_or_spec in roles else None
        spec = roles[role] if role else role_or_spec
        key = (role or repr(spec), for_fixture)
        with self._lock:
            if key not in self._handles:
                observe = self.record_fixture_trial if for_fixture else self.record
                self._handles[key] = self._make_handle(role, spec, observe)
            return self._handles[key]

    def fixture_handle(self, role_or_spec: Any) -> ModelHandle:
        """The handle the fixtures hand to users' tests (see `handle`)."""
        return self.handle(role_or_spec, for_fixture=True)

    def _make_handle(self, role: str | None, spec: Any, observe: Callable[[Trajectory], None]) -> ModelHandle:
        parsed = parse_spec(spec, self.settings.models)
        if role is None:  # a spec, not a role: name it by the config name or the spec without secrets
            role = spec if isinstance(spec, str) and spec in self.settings.models else parsed.display
        model: Model
        try:
            model = self.providers.create(parsed, self.root)
        except (ModelSpecError, ImportError, OSError) as exc:
            model = BrokenModel(parsed.display, exc)
        return ModelHandle(
            role=role,
            model=model,
            base_seed=self.settings.seed,
            system_prompt=parsed.params.get("system_prompt"),
            run_id=self.run_id,
            observe=observe,
            cache=self.model_cache,
            max_output_chars=self.settings.limits.max_output_chars,
            cache_policy=parsed.cache,
            keys=self.keys,
            call_cache=self.call_cache,
        )

    def cache_notes(self) -> list[str]:
        """The run header's lines on the cache: for each role's ``python:`` agent, why its cached answers miss."""
        if self.model_cache is None:
            return []
        roles = self.settings.roles
        agents = [r for r in self.settings.run_roles if parse_spec(roles[r], self.settings.models).provider == "python"]
        return list(dict.fromkeys(note for role in agents for note in self.handle(role).cache_notes()))

    def repeats(self, scenario: Scenario) -> int:
        """Trials per model for ``scenario``: its own `repeats`, else the run's."""
        return scenario.repeats or self.settings.repeats

    def _submit(self, role: str, scenario: Scenario) -> list[Future[Trajectory]]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.settings.concurrency, thread_name_prefix="autoevolve")
        handle = self.handle(role)
        return [self._pool.submit(handle.trial, scenario, r) for r in range(self.repeats(scenario))]

    def prefetch(self, work: Iterable[tuple[str, Scenario]]) -> None:
        """Run the trials of these (role, scenario) pairs ahead on the pool, ``concurrency`` at a time.

        Submission stays a little ahead of the items that take the results (`AHEAD` times the
        concurrency in trials), so a stop (a decided sequential gate, a spent budget) leaves
        little started that is not needed.
        """
        taken = self._resumed.keys() | self._prefetched.keys()
        self._ahead = [(role, scenario) for role, scenario in work if (role, scenario.id) not in taken][::-1]
        self._top_up()

    def _top_up(self) -> None:
        queued = sum(len(f) for f in self._prefetched.values())
        while self._ahead and queued < AHEAD * self.settings.concurrency and self._stopped is None:
            role, scenario = self._ahead.pop()
            self._prefetched[(role, scenario.id)] = self._submit(role, scenario)
            queued += self.repeats(scenario)

    def resume(self, run: str, retry_errors: bool) -> None:
        """Take the finished trials of an earlier run (its folder, or its id): they are not run again.

        With ``retry_errors``, trials that ended in an error run again. The earlier run must have
        run the same models in the same roles.
        """
        folder = Path(run) if Path(run).is_dir() else self.artifacts / "runs" / run
        path = folder / "trajectories.jsonl"
        if not path.is_file():
            raise ConfigError(f"--autoevolve-resume: no run at {run} ({path} does not exist)")
        found: dict[tuple[str, str], dict[int, Trajectory]] = {}
        for trial in read_trajectories(path):
            if not (retry_errors and trial.error is not None):
                found.setdefault((trial.role, trial.scenario_id), {})[trial.repeat] = trial
        for role, spec in self.settings.roles.items():
            display = parse_spec(spec, self.settings.models).display
            ran = {t.model for (r, _), trials in found.items() if r == role for t in trials.values()}
            if ran - {display}:
                raise ConfigError(
                    f"--autoevolve-resume: run {folder.name} ran {', '.join(sorted(ran))} as the {role}, not {display}"
                )
        self._resumed = found

    def _finished(self, role: str, scenario: Scenario) -> dict[int, Trajectory]:
        """The trials of this item the resumed run finished, recorded into this run."""
        done = {r: replace(t, run_id=self.run_id) for r, t in self._resumed.get((role, scenario.id), {}).items()}
        for trial in done.values():
            self.record(trial)
        return done

    def trials(self, role: str, scenario: Scenario) -> list[Trajectory]:
        """Every trial of one scenario on one role, in repeat order: resumed, prefetched, pooled or serial.

        Pooled trials are recorded here, by the item that takes them: one thread writes, in item order.
        """
        done = self._finished(role, scenario) if self._resumed else {}
        if done:
            handle = self.handle(role)
            return [done[r] if r in done else handle.run(scenario, r) for r in range(self.repeats(scenario))]
        futures = self._prefetched.pop((role, scenario.id), None)
        self._top_up()
        if futures is None and self.settings.concurrency > 1:
            futures = self._submit(role, scenario)
        if futures is None:
            return self.handle(role).run_all(scenario, self.repeats(scenario))
        trajectories = [future.result() for future in futures]
        for trajectory in trajectories:
            self.record(trajectory)
        return trajectories

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
            self._catalog = load_catalog(roots, self.graders, self.root, self.settings.limits)
        return self._catalog

"""Collection: a scenario file becomes one test item per scenario and model role."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_autoevolve.catalog.loader import load_file
from pytest_autoevolve.errors import ArtifactWriteError, ScenarioError
from pytest_autoevolve.gate.results import ItemResult
from pytest_autoevolve.records import Scenario, Trajectory
from pytest_autoevolve.run.stash import CONTEXT_KEY


class ScenarioFailure(Exception):
    """Raised by an item whose trials did not all pass."""

    def __init__(self, trajectories: list[Trajectory]) -> None:
        super().__init__(f"{sum(t.passed for t in trajectories)} of {len(trajectories)} trials passed")
        self.trajectories = trajectories


class ScenarioFile(pytest.File):
    """A YAML file of scenarios."""

    def collect(self) -> Iterator[pytest.Item]:
        """One item per selected scenario and role: ``file.yaml::id[role]``."""
        context = self.config.stash[CONTEXT_KEY]
        shown = (
            self.path.relative_to(self.config.rootpath).as_posix()
            if self.path.is_relative_to(self.config.rootpath)
            else str(self.path)
        )
        scenarios = load_file(self.path, context.graders, shown, context.settings.limits)
        context.collected.add(scenarios)
        split = context.settings.split
        for scenario in scenarios:
            if split != "all" and scenario.split != split:
                continue
            for role in context.settings.run_roles:
                yield ScenarioItem.from_parent(self, name=f"{scenario.id}[{role}]", scenario=scenario, role=role)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        """A malformed file reads as its message: file, scenario, key, what is allowed."""
        if isinstance(excinfo.value, ScenarioError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


class ScenarioItem(pytest.Item):
    """One scenario run on one model role, with every repeat recorded."""

    def __init__(self, *, scenario: Scenario, role: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario, self.role = scenario, role
        for tag in scenario.tags:
            self.config.addinivalue_line("markers", f"{tag}: scenario tag")
            self.add_marker(tag)
        self.extra_keyword_matches.update({role, *(c for c in [scenario.category] if c)})

    def runtest(self) -> None:
        """Run the trials, attach the results as properties, fail unless every trial passed."""
        context = self.config.stash[CONTEXT_KEY]
        reason = context.stopped()
        if reason is not None:
            pytest.skip(reason)
        try:
            trajectories = context.trials(self.role, self.scenario)
        except ArtifactWriteError as exc:  # nothing more can be recorded: stop, keep what is on disk whole
            pytest.exit(f"autoevolve: {exc}", returncode=pytest.ExitCode.INTERRUPTED)
        spec = context.handle(self.role).spec
        self.user_properties.extend(_properties(self.scenario, self.role, spec, trajectories))
        if not all(t.passed for t in trajectories):
            raise ScenarioFailure(trajectories)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        """One line (expected, got, which grader said no), or with ``-v``/``--tb`` input and file too."""
        if isinstance(excinfo.value, ScenarioFailure):
            if brief_failures(self.config):
                return describe_briefly(self.scenario, excinfo.value.trajectories)
            return describe_failure(self.scenario, self.role, excinfo.value.trajectories)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        """Point at the scenario's line in its file."""
        return self.path, max(self.scenario.line - 1, 0), f"scenario {self.scenario.id} [{self.role}]"


def _properties(scenario: Scenario, role: str, spec: str, trajectories: list[Trajectory]) -> list[tuple[str, Any]]:
    """The per-item properties junit carries and the controller's gate reads."""
    return ItemResult.from_trials(trajectories, scenario=scenario, role=role, model=spec).to_properties()


def brief_failures(config: pytest.Config) -> bool:
    """Whether a failed scenario item reads as one line of evidence (not asked for more by ``-v`` or ``--tb``)."""
    return bool(config.option.verbose <= 0 and config.option.tbstyle == "auto")


def describe_briefly(scenario: Scenario, trajectories: list[Trajectory]) -> str:
    """A failed item in one line: how many trials passed, what was expected and what came back."""
    first = next(t for t in trajectories if not t.passed)
    passed = f"{sum(t.passed for t in trajectories)}/{len(trajectories)} passed"
    expected = f"expected {shorten(scenario.expected, 40)!r}, " if scenario.expected is not None else ""
    got = f"error {shorten(first.error, 160)}" if first.error is not None else f"got {shorten(first.output, 40)!r}"
    grades = first.failed_grades() if first.error is None else []
    reason = grades[0].reason if grades and not grades[0].reason.startswith("expected") else ""
    said = f" [{grades[0].grader}{': ' + shorten(reason, 100) if reason else ''}]" if grades else ""
    return f"{passed}: {expected}{got}{said}"


def describe_failure(scenario: Scenario, role: str, trajectories: list[Trajectory]) -> str:
    """A failure report that reads like a good assertion."""
    failed = [t for t in trajectories if not t.passed]
    first = failed[0]
    lines = [
        f"scenario {scenario.id!r} failed for the {role} ({first.model}): "
        f"{len(trajectories) - len(failed)} of {len(trajectories)} trials passed",
        f"  file:     {scenario.path}:{scenario.line}",
        f"  input:    {shorten(scenario.input)!r}",
    ]
    if scenario.expected is not None:
        lines.append(f"  expected: {shorten(scenario.expected)!r}")
    shown = f"trial {first.repeat}" if len(trajectories) > 1 else "trial"
    if first.error is not None:
        lines.append(f"  error:    {shorten(first.error)}  ({shown}, seed {first.seed})")
    else:
        lines.append(f"  got:      {shorten(first.output)!r}  ({shown}, seed {first.seed})")
        for grade in first.failed_grades():
            lines.append(f"  grader {grade.grader} said no: {shorten(grade.reason)}")
    return "\n".join(lines)


SHOWN_CHARS = 300
"""How much of an input, output or reason a failure shows in the terminal and junit (the trajectory has it all)."""


def shorten(text: str, limit: int = SHOWN_CHARS) -> str:
    """``text`` cut to ``limit`` characters for the terminal and junit, saying how much is left out."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more characters in the trajectory)"


def run_order(items: list[pytest.Item], seed: int) -> list[pytest.Item]:
    """Scenario items in the sequential gate's seeded order, both roles of a scenario together.

    Other items keep their places before them; scenarios not on the eval split (which never
    gate) run first, so a stop never cuts them.
    """
    from pytest_autoevolve.gate.sequential import order

    scenario_items = [i for i in items if isinstance(i, ScenarioItem)]
    rank = {s: n for n, s in enumerate(order((i.scenario.id for i in scenario_items), seed))}
    roles = {"incumbent": 0, "candidate": 1}
    ranked = sorted(
        scenario_items, key=lambda i: (i.scenario.split == "eval", rank[i.scenario.id], roles.get(i.role, 2))
    )
    return [i for i in items if not isinstance(i, ScenarioItem)] + ranked


def shard(items: list[pytest.Item], index: int, total: int) -> list[pytest.Item]:
    """The items of shard ``index`` of ``total``: its scenarios' items, and other tests in shard 1 only.

    The selected scenarios, ordered by a hash of their ids, are dealt round-robin: a stable split
    whose shards differ by at most one scenario, the same in every process, with both roles of a
    scenario in one shard.
    """
    ids = sorted({i.scenario.id for i in items if isinstance(i, ScenarioItem)}, key=_digest)
    mine = set(ids[index - 1 :: total])
    return [i for i in items if (i.scenario.id in mine if isinstance(i, ScenarioItem) else index == 1)]


def _digest(scenario: str) -> str:
    return hashlib.sha256(scenario.encode()).hexdigest()


ROUTING_KEY = pytest.StashKey[tuple[int, int]]()
"""A canary run's routing in this process: (scenarios routed to the canary, scenarios selected)."""

ROUTING_OUTPUT = "autoevolve_canary"
"""The key of an xdist worker's routing in its ``workeroutput``: the controller collects nothing."""


def route_canary(items: list[pytest.Item], share: float, seed: int) -> tuple[list[pytest.Item], int, int]:
    """The items a canary run keeps: a seeded ``share`` of the selected scenarios, both roles, and other tests.

    The scenarios, ordered by a hash of the seed and their ids, give their first ``share`` (rounded,
    at least one): the same in every process and xdist worker, another set for another seed.
    Returns the kept items, the scenarios routed and the scenarios selected.
    """
    ids = sorted({i.scenario.id for i in items if isinstance(i, ScenarioItem)}, key=lambda s: _digest(f"{seed}\0{s}"))
    routed = set(ids[: max(1, int(share * len(ids) + 0.5))])
    kept = [i for i in items if not isinstance(i, ScenarioItem) or i.scenario.id in routed]
    return kept, len(routed), len(ids)


def queued(session: pytest.Session) -> list[ScenarioItem]:
    """The scenario items xdist has queued for this worker, next first; none when its queue cannot be read.

    xdist hands a worker its items a batch at a time and keeps no public view of them: this reads
    the worker's queue (``WorkerInteractor.torun``) under its lock.
    """
    interactor = next(
        (p for p in session.config.pluginmanager.get_plugins() if type(p).__name__ == "WorkerInteractor"), None
    )
    queue = getattr(interactor, "torun", None)
    if queue is None or not hasattr(queue, "lock"):
        return []
    with queue.lock() as indices:
        upcoming = [getattr(interactor, "nextitem_index", None), *indices]
    items = session.items
    found = [items[i] for i in upcoming if isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(items)]
    return [item for item in found if isinstance(item, ScenarioItem)]

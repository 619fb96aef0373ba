"""The controller's result log: gathers item results (also from xdist workers), gates, writes the summary."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from _pytest.junitxml import xml_key

from pytest_autoevolve.files import files_sha256, write_json_atomic
from pytest_autoevolve.gate import sequential
from pytest_autoevolve.gate.decide import GateResult, cut_by_budget, decide, decide_sequential, require_complete
from pytest_autoevolve.gate.results import ItemResult
from pytest_autoevolve.gate.summary import CacheStats, CanaryRun, GateSummary, RunSummary
from pytest_autoevolve.providers.base import parse_spec
from pytest_autoevolve.records import FORMAT_VERSION
from pytest_autoevolve.report.github import github_outputs
from pytest_autoevolve.report.terminal import canary_lines, number_lines, verdict_lines
from pytest_autoevolve.report.write import write_reports
from pytest_autoevolve.run.context import RunContext
from pytest_autoevolve.run.items import ROUTING_KEY, ROUTING_OUTPUT

SCENARIO_NODE = re.compile(
    r"^(?P<file>.+\.ya?ml)::(?P<id>[A-Za-z0-9][A-Za-z0-9_.\-]*)\[(?P<role>incumbent|candidate)\]$"
)
"""The node id of a scenario item: ``scenarios/x.yaml::add-2-digit[candidate]``."""


COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
"""A commit id (SHA-1 or SHA-256)."""
SHARD_NOTE = (
    "shard {0} of {1}: one slice of the catalog decides nothing; merge the shards' junit files "
    "(autoevolve report shard-*.xml) for the verdict"
)

FAILURES_SHOWN = 5
"""Failed scenario items the gate's block shows (all are in junit, the reports and with -v)."""


WORKER_HEADER = re.compile(r"^\[gw\d+\] ")
"""The line xdist puts before a worker's failure text (``[gw1] linux -- Python 3.12.3 ...``)."""


def first_line(text: str) -> str:
    """A failure's first line of evidence: xdist's worker header skipped."""
    return next((line for line in text.splitlines() if not WORKER_HEADER.match(line)), "")


class ResultLog:
    """Controller-only plugin: gathers item results (also from xdist workers), gates, writes the summary.

    It knows every selected scenario item from collection (on the controller, or from the xdist
    workers' collections), so an item that never reports its trials (a crash, a lost worker,
    ``-x``, Ctrl-C) is missing from the verdict, which then cannot pass.
    """

    def __init__(self, context: RunContext) -> None:
        self.context = context
        self.items: list[ItemResult] = []
        self.selected: dict[str, tuple[str, str, str]] = {}
        """Every selected scenario item: node id -> (scenario id, role, file)."""
        self.other_failures: list[str] = []
        """Ordinary tests of the run that failed: they make the exit status non-zero whatever the gate says."""
        self.result: GateResult | None = None
        self.reports: list[Path] = []
        self.annotations: list[str] = []
        self.failed_items: list[tuple[str, str]] = []
        """(node id, the failure in one line) of each scenario item that failed."""
        self.finished: set[tuple[str, str]] = set()
        """(scenario, role) of every item that reported its trials."""
        self.spent: tuple[int, int, float] = (0, 0, 0.0)
        """Model calls, tokens and cost of the finished items, kept as they arrive (for the budget)."""
        self.budget_spent: str | None = None
        """What ran out, once the run's budget is spent."""
        self._order: list[str] | None = None
        self.shard: tuple[int, int] | None = None
        """(K, N) when the run is shard K of N: it decides nothing, and exits 0 when complete."""
        self.exit_status = 0
        self._looks_taken = 0

    def _select(self, node_ids: Iterable[str]) -> None:
        for node_id in node_ids:
            match = SCENARIO_NODE.match(node_id)
            if match:
                self.selected[node_id] = (match["id"], match["role"], match["file"])

    @pytest.hookimpl
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """The selected scenario items of a run in this process."""
        self._select(item.nodeid for item in session.items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """The selected scenario items, as an xdist worker collected them (the controller collects nothing)."""
        self._select(ids)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """A canary run's routing, as an xdist worker made it (every worker makes the same)."""
        routing = getattr(node, "workeroutput", {}).get(ROUTING_OUTPUT)
        if routing is not None:
            self.context.config.stash[ROUTING_KEY] = (int(routing[0]), int(routing[1]))

    def canary(self, spec: str) -> CanaryRun | None:
        """A canary run's routing (None for an ordinary run); ``spec`` is the canary's, as the candidate shows it."""
        config = self.context.config
        share = config.getoption("autoevolve_canary")
        if share is None:
            return None
        routed = len({scenario for scenario, _, _ in self.selected.values()})
        routed, total = config.stash.get(ROUTING_KEY, (routed, routed))
        return CanaryRun(spec=spec, share=share, seed=self.context.settings.seed, routed=routed, total=total)

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Take the autoevolve properties of each finished scenario item; count ordinary tests that failed."""
        if report.when == "call":
            item = ItemResult.from_properties(dict(report.user_properties))
            if item is not None:
                self.items.append(item)
                self.finished.add((item.scenario, item.role))
                calls, tokens, cost = self.spent
                self.spent = (calls + item.trials - item.cached, tokens + item.tokens, cost + (item.cost or 0.0))
                self._watch()
        if report.failed and report.when == "call" and SCENARIO_NODE.match(report.nodeid):
            self.failed_items.append((report.nodeid, first_line(report.longreprtext)))
        if report.failed and not SCENARIO_NODE.match(report.nodeid) and report.nodeid not in self.other_failures:
            self.other_failures.append(report.nodeid)

    def _watch(self) -> None:
        """After each finished item: stop the run once its budget is spent or its sequential gate decided."""
        gate = self.context.settings.gate
        if self.context.stopped() is not None:
            return
        if gate.budget is not None:
            self.budget_spent = gate.budget.spent(*self.spent)
            if self.budget_spent is not None:
                self.context.stop(f"not run: {self.budget_spent}")
                return
        if gate.sequential:
            ordered = self.planned_order()
            sizes = sequential.look_sizes(len(ordered), gate.looks)
            if self._looks_taken < len(sizes) and sequential.complete(
                self.finished, ordered[: sizes[self._looks_taken]]
            ):
                design = sequential.walk(self.items, ordered, gate)
                self._looks_taken = len(design.taken)
                if design.decided:
                    self.context.stop(f"not needed: {design.describe()}")

    def planned_order(self) -> list[str]:
        """The eval scenarios selected on both roles, in the sequential gate's seeded order."""
        if self._order is None:
            roles: dict[str, set[str]] = {}
            for scenario, role, _ in self.selected.values():
                roles.setdefault(scenario, set()).add(role)
            splits = self._scenario_field("split")
            paired = [s for s, r in roles.items() if len(r) == 2 and splits.get(s, "eval") == "eval"]
            self._order = sequential.order(paired, self.context.settings.seed)
        return self._order

    def _scenario_field(self, name: str) -> dict[str, Any]:
        """One field of every catalog scenario by id (nothing when the catalog cannot be read here)."""
        if self.context.settings.split == "eval" and name == "split":
            return {}
        try:
            return {s.id: getattr(s, name) for s in self.context.catalog}
        except Exception:  # the catalog cannot be read again here: results will tell
            return {}

    def _sequential(self, specs: dict[str, str], missing: list[ItemResult]) -> tuple[GateResult, list[ItemResult]]:
        """The sequential gate's verdict, with the trials made against the full run's.

        Items past the deciding look were not needed: they are not missing.
        """
        ordered = self.planned_order()
        result = decide_sequential(self.items, ordered, self.context.settings.gate, specs)
        assert result.design is not None
        repeats = self._scenario_field("repeats")
        result.design = replace(
            result.design,
            planned_trials=sum(2 * (repeats.get(s) or self.context.settings.repeats) for s in ordered),
            trials=sum(i.trials for i in self.items),
        )
        if result.design.decided:
            used = set(ordered[: result.design.used])
            missing = [m for m in missing if m.scenario in used]
        return result, missing

    def missing(self) -> list[ItemResult]:
        """The selected scenario items that reported no trials, as empty results (critical ones marked)."""
        finished = {(item.scenario, item.role) for item in self.items}
        lost = [entry for entry in self.selected.values() if (entry[0], entry[1]) not in finished]
        if not lost:
            return []
        critical = self._critical({scenario for scenario, _, _ in lost})
        return [
            ItemResult(scenario, role, 0, 0, critical=scenario in critical, file=file) for scenario, role, file in lost
        ]

    def _critical(self, scenarios: set[str]) -> set[str]:
        """Which of ``scenarios`` are critical, from the catalog (unknown ones count as critical: fail closed)."""
        try:
            catalog = {s.id: s for s in self.context.catalog}
        except Exception:  # the catalog cannot be read again here: assume the worst
            return scenarios
        return {s for s in scenarios if s not in catalog or catalog[s].critical}

    def summary(self, result: GateResult) -> RunSummary:
        """The run's summary: the gate's result and the run's metadata."""
        settings = self.context.settings
        return RunSummary(
            run_id=self.context.run_id,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            gate=GateSummary.from_result(result),
            split=settings.split,
            seed=settings.seed,
            repeats=settings.repeats,
            canary=self.canary(result.candidate.spec),
            judge=parse_spec(settings.judge, settings.models).display if settings.judge else None,
            cache=CacheStats(
                mode=settings.cache,
                hits=sum(i.cached for i in self.items),
                model_calls=sum(i.trials - i.cached for i in self.items),
            ),
            catalog_sha256=files_sha256(self.context.root, {file for _, _, file in self.selected.values()}),
            git_commit=git_commit(self.context.root),
            versions=versions(),
            trajectory_format_version=FORMAT_VERSION,
        )

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Decide (completeness included), set the exit status, write summary.json and the junit verdict."""
        if (not self.items and not self.selected) or session.config.option.collectonly:
            return
        settings = self.context.settings
        recorded = {item.role: item.model for item in self.items if item.model}  # what the models call themselves
        specs = {
            role: recorded.get(role) or parse_spec(spec, settings.models).display
            for role, spec in settings.roles.items()
        }
        missing = self.missing()
        self.shard = session.config.getoption("autoevolve_shard")
        if settings.gate.sequential:
            result, missing = self._sequential(specs, missing)
        else:
            result = decide(self.items, settings.gate, specs)
        if self.budget_spent is not None and missing and not (result.design and result.design.decided):
            self.result = cut_by_budget(result, missing, self.budget_spent)
        else:
            self.result = require_complete(result, missing, _why(session))
        if self.shard is not None:
            self.result.verdict = "inconclusive"
            self.result.reasons.insert(0, SHARD_NOTE.format(*self.shard))
        summary = self.summary(self.result)
        written = summary.to_json()
        write_json_atomic(self.context.run_dir / "summary.json", written)
        self.reports = write_reports(self.context.run_dir, summary)
        self.annotations = github_outputs(summary.gate, self.reports[0], os.environ)
        xml = session.config.stash.get(xml_key, None)
        if xml is not None:
            for name in ("verdict", "lift", "ci_low", "ci_high", "p_value", "test", "n_paired", "run_id", "seed"):
                xml.add_global_property(f"autoevolve_{name}", "" if written[name] is None else str(written[name]))
        if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            done = self.result.complete if self.shard else self.result.verdict == "pass"
            session.exitstatus = (
                pytest.ExitCode.OK if done and not self.other_failures else pytest.ExitCode.TESTS_FAILED
            )
        self.exit_status = int(session.exitstatus)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """The gate's block, last of all the run prints: numbers, evidence, artifacts, then the verdict."""
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if self.result is None or reporter is None:
            return
        gate = GateSummary.from_result(self.result)
        reporter.write_sep("=", f"autoevolve gate: {self.result.verdict.upper()}")
        canary = self.canary(gate.candidate.spec)
        for line in [*canary_lines(canary), *number_lines(gate), *self._failure_lines(), *self._artifact_lines()]:
            reporter.write_line(line)
        if self.other_failures:
            reporter.write_line(
                f"{len(self.other_failures)} ordinary test(s) failed ({', '.join(self.other_failures[:3])}"
                f"{', ...' if len(self.other_failures) > 3 else ''}): the exit status is 1 whatever the gate says"
            )
        for line in [*self.annotations, *verdict_lines(gate)]:  # GitHub workflow commands, read from stdout
            reporter.write_line(line)
        status = self.exit_status
        reporter.write_line(f"autoevolve gate: {self.result.verdict.upper()} (exit status {status})", bold=True)

    def _failure_lines(self) -> list[str]:
        """The failed scenario items in brief: evidence the gate weighed, a few shown."""
        if not self.failed_items:
            return []
        roles = [node.rsplit("[", 1)[-1].rstrip("]") for node, _ in self.failed_items]
        counts = ", ".join(f"{roles.count(role)} {role}" for role in ("incumbent", "candidate") if role in roles)
        lines = [f"failed scenario items: {len(self.failed_items)} ({counts}); -v shows each in full"]
        shown = self.failed_items[:FAILURES_SHOWN]
        lines += [f"  {node.split('::')[-1]}: {text}" for node, text in shown]
        if len(self.failed_items) > len(shown):
            lines.append(f"  ... and {len(self.failed_items) - len(shown)} more (in junit and report.html)")
        return lines

    def _artifact_lines(self) -> list[str]:
        """Cache use, and where the trajectories, summary and reports are."""
        run_dir = self.context.run_dir
        shown = run_dir.relative_to(self.context.root) if run_dir.is_relative_to(self.context.root) else run_dir
        lines = []
        if self.context.settings.cache != "off":
            hits, trials = sum(i.cached for i in self.items), sum(i.trials for i in self.items)
            lines.append(f"cache: {hits} of {trials} trials answered from the cache, {trials - hits} model calls")
        lines += [f"trajectories: {shown / 'trajectories.jsonl'}", f"summary:      {shown / 'summary.json'}"]
        labels = ("report:", "html report:")
        return lines + [f"{label:<14}{shown / path.name}" for label, path in zip(labels, self.reports, strict=False)]


def _why(session: pytest.Session) -> str:
    """How a run with unfinished items ended, in a few words."""
    if session.shouldfail:
        return str(session.shouldfail)
    if session.shouldstop:
        return str(session.shouldstop)
    if session.exitstatus == pytest.ExitCode.INTERRUPTED:
        return "the run was interrupted"
    return "they crashed, or their worker was lost"


def git_commit(root: Path) -> str | None:
    """The commit checked out at ``root``, when it is in a git repository: read from ``.git``, no git process.

    Follows a worktree's or submodule's ``gitdir:`` file, a symbolic ``HEAD``, and refs loose or packed.
    """
    dot = next((folder / ".git" for folder in (root, *root.parents) if (folder / ".git").exists()), None)
    try:
        if dot is None:
            return None
        gitdir = dot
        if dot.is_file():
            gitdir = (dot.parent / dot.read_text(encoding="utf-8").strip().removeprefix("gitdir:").strip()).resolve()
        common = gitdir / "commondir"
        shared = (gitdir / common.read_text(encoding="utf-8").strip()).resolve() if common.is_file() else gitdir
        head = (gitdir / "HEAD").read_text(encoding="utf-8").strip()
        if not head.startswith("ref:"):
            return head if COMMIT.fullmatch(head) else None
        ref = head.removeprefix("ref:").strip()
        for folder in (gitdir, shared):
            if (folder / ref).is_file():
                return (folder / ref).read_text(encoding="utf-8").strip()
        packed = shared / "packed-refs"
        lines = packed.read_text(encoding="utf-8").splitlines() if packed.is_file() else []
        return next((line.split()[0] for line in lines if line.endswith(f" {ref}")), None)
    except (OSError, UnicodeDecodeError):
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

"""Proposers for the edit-score-gate loop: a search space, an LLM, or a user callable, each proposing one edit."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pytest_autoevolve.errors import AutoevolveError, LoopError
from pytest_autoevolve.loops.project import CONFIG_FILE, edit_yaml
from pytest_autoevolve.report.format import pct, shorten

if TYPE_CHECKING:
    from pytest_autoevolve.records import Scenario, Trajectory


class EvolveError(LoopError):
    """The loop cannot start or go on: the message says why and what to do."""


class ProposalError(LoopError):
    """A proposer's reply that is no usable edit (malformed, or a SEARCH text not in the file)."""


class ProposerError(LoopError):
    """The proposer could not answer: its model failed (an HTTP error, a timeout after its retries)."""


class BudgetSpent(LoopError):
    """The proposer has spent its token or cost budget: the loop stops."""


@dataclass
class Edit:
    """One proposed change: the new full text of each file it touches, and why."""

    hypothesis: str
    files: dict[str, str]
    point: Any = None
    """The search-space point, for proposers that have one."""
    removal: bool = False
    """An edit that only takes something out (a pruned heuristic): kept when it scores no worse than the best."""


@dataclass
class Context:
    """What a proposer sees: the targets and their text, the metric, and every past iteration."""

    root: Path
    targets: list[str]
    split: str
    best_score: float | None
    history: list[dict[str, Any]]
    run: Path | None = None
    """The best kept state's scoring run (``trajectories.jsonl``): the evidence of what fails."""
    tag: str = ""
    """The loop's tag (its branch is ``autoevolve/<tag>``)."""

    def text(self, path: str) -> str:
        """The current text of a file inside the root ('' when it does not exist yet, or is outside the root)."""
        file = (self.root / path).resolve()
        inside = file.is_relative_to(self.root.resolve())
        return file.read_text(encoding="utf-8") if inside and file.is_file() else ""


class Proposer(Protocol):
    """Proposes the next edit, or None when it has nothing left to try."""

    def propose(self, context: Context) -> Edit | None:
        """The next edit to try, or None when there is none."""
        ...


@runtime_checkable
class Learner(Protocol):
    """A proposer told what became of each of its edits (the iteration's logged record)."""

    def outcome(self, edit: Edit, record: dict[str, Any]) -> None:
        """Take note of the decision (kept, reverted, rejected, ...) and the scores of ``edit``."""
        ...


class CatalogView:
    """The project's catalog by id, loaded once: the proposers' view of the splits and expected answers."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._scenarios: dict[str, Scenario] | None = None

    def scenarios(self) -> dict[str, Scenario]:
        """Every scenario by id."""
        from pytest_autoevolve.loops.project import project_catalog

        if self._scenarios is None:
            self._scenarios = {scenario.id: scenario for scenario in project_catalog(self.root)}
        return self._scenarios

    def train_trials(self, run: Path | None) -> list[Trajectory]:
        """The run's trials of train-split scenarios, by the catalog and the record both: never an eval one."""
        from pytest_autoevolve.files import read_trajectories

        if run is None or not run.is_file():
            return []
        scenarios = self.scenarios()
        train = {sid for sid, scenario in scenarios.items() if scenario.split == "train"}
        return [t for t in read_trajectories(run) if t.split == "train" and t.scenario_id in train]


@dataclass
class SpacePoint:
    """One declared point: a value for ``key`` in ``target``."""

    target: str
    key: str
    value: Any


class SpaceProposer:
    """Walks a declared search space over config values, in order, never repeating a tried point.

    The YAML file holds ``target`` (default ``autoevolve.yaml``), ``key`` and ``values``, or a list
    ``dimensions`` of such mappings; points are tried in declaration order.
    """

    def __init__(self, path: Path) -> None:
        import yaml

        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        dimensions = data.get("dimensions", [data]) if isinstance(data, dict) else []
        self.points: list[SpacePoint] = []
        for dimension in dimensions:
            if not isinstance(dimension, dict) or "key" not in dimension or not dimension.get("values"):
                raise EvolveError(f"{path}: each dimension of the space needs 'key' and a list 'values'")
            for value in dimension["values"]:
                self.points.append(SpacePoint(str(dimension.get("target", CONFIG_FILE)), str(dimension["key"]), value))
        if not self.points:
            raise EvolveError(f"{path}: the search space declares no points")
        self.tried: set[str] = set()

    def propose(self, context: Context) -> Edit | None:
        """The first untried point that differs from the current state, or None; the file keeps its comments."""
        for point in self.points:
            name = json.dumps([point.target, point.key, point.value], sort_keys=True, default=str)
            if name in self.tried:
                continue
            self.tried.add(name)
            text, changed = edit_yaml(context.text(point.target), {point.key: point.value})
            if not changed:
                continue  # the current state already is this point
            return Edit(f"set {point.key} to {point.value!r} in {point.target}", {point.target: text}, asdict(point))
        return None


SYSTEM_PROMPT = """You improve a project by editing files. Propose exactly ONE focused edit.
Answer with one line `HYPOTHESIS: <why this edit should raise the metric>` and then one or more
SEARCH/REPLACE blocks, each in a fenced block:
```
PATH
<<<<<<< SEARCH
exact text now in the file
=======
the new text
>>>>>>> REPLACE
```
Edit only the target files listed, by the paths shown. Never edit scenarios, graders, tests, or the
gate, catalog, split, limits, repeats or seed settings: such an edit is rejected. The failing
trials shown are evidence of what goes wrong: fix the cause, do not special-case those inputs."""

HYPOTHESIS = re.compile(r"^[\s>#*_-]*hypothesis[\s*_]*(?:[:\u2013\u2014-][\s*_]*(?P<text>.*?))?[\s*_]*$", re.I)
"""A hypothesis line: ``HYPOTHESIS: ...``, ``**HYPOTHESIS:** ...``, ``## Hypothesis`` (the text on the next line)."""

SEARCH = re.compile(r"^\s*<{5,9} ?SEARCH\s*$")
DIVIDER = re.compile(r"^\s*={5,9}\s*$")
REPLACE = re.compile(r"^\s*>{5,9} ?REPLACE\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
PATH_PREFIX = re.compile(r"^(?:file(?:name)?|path)\s*:\s*", re.I)


def parse_reply(reply: str, context: Context) -> Edit:
    """The edit in a model's reply: a hypothesis and SEARCH/REPLACE blocks; `ProposalError` saying what is wrong.

    Common variants are accepted: a bold or heading ``HYPOTHESIS``, a path in backticks or bold, a
    path on the line above the block's ``` fence, CRLF line ends.
    """
    lines = reply.replace("\r\n", "\n").split("\n")
    hypothesis = _hypothesis(lines)
    blocks = list(_blocks(lines))
    if not blocks:
        raise ProposalError(
            "the reply has no SEARCH/REPLACE block (a PATH line, then '<<<<<<< SEARCH', the old text, "
            "'=======', the new text, '>>>>>>> REPLACE')"
        )
    files: dict[str, str] = {}
    for number, (path, search, replace) in enumerate(blocks, start=1):
        text = files.get(path, context.text(path))
        if search and search not in text:
            first = next((line for line in search.splitlines() if line.strip()), "")
            where = f"the file {path}" if text else f"the file {path} (it is empty or does not exist)"
            raise ProposalError(
                f"the SEARCH text of block {number} is not in {where}: it starts {shorten(first.strip(), 80)!r}; "
                "SEARCH must copy the current text exactly, whitespace included"
            )
        files[path] = text.replace(search, replace, 1) if search else text + replace
    if not hypothesis:
        raise ProposalError("the reply has no hypothesis: start it with a line 'HYPOTHESIS: <why this edit helps>'")
    return Edit(hypothesis, files)


def _hypothesis(lines: Sequence[str]) -> str:
    """The hypothesis: the text after the first hypothesis line's colon, or the next line after a bare heading."""
    for number, line in enumerate(lines):
        found = HYPOTHESIS.match(line)
        if found is None:
            continue
        if found["text"]:
            return found["text"].strip()
        return next((rest.strip(" *_#") for rest in lines[number + 1 :] if rest.strip()), "")
    return ""


def _blocks(lines: Sequence[str]) -> Iterator[tuple[str, str, str]]:
    """Each SEARCH/REPLACE block as (path, search text, replace text); `ProposalError` for a broken one."""
    number, start = 0, 0
    while (opening := _find(lines, SEARCH, start)) is not None:
        number += 1
        path = _path_above(lines, opening, number)
        divider = _find(lines, DIVIDER, opening + 1)
        if divider is None:
            raise ProposalError(f"block {number} ({path}) has no '=======' line after '<<<<<<< SEARCH'")
        closing = _find(lines, REPLACE, divider + 1)
        if closing is None:
            raise ProposalError(f"block {number} ({path}) does not end with a '>>>>>>> REPLACE' line")
        yield path, _joined(lines[opening + 1 : divider]), _joined(lines[divider + 1 : closing])
        start = closing + 1


def _find(lines: Sequence[str], pattern: re.Pattern[str], start: int) -> int | None:
    return next((n for n in range(start, len(lines)) if pattern.match(lines[n])), None)


def _joined(lines: Sequence[str]) -> str:
    return "".join(f"{line}\n" for line in lines)


def _path_above(lines: Sequence[str], opening: int, number: int) -> str:
    """The file path a block names: the nearest line above it that is no fence and not blank, cleaned."""
    above = [line for line in lines[max(0, opening - 4) : opening] if line.strip() and not FENCE.match(line)]
    raw = above[-1] if above else ""
    path = PATH_PREFIX.sub("", raw.strip().strip("#").strip().strip("*`").strip()).strip("`*: ")
    if not path or any(c.isspace() for c in path):
        shown = f"the line above it is {shorten(raw.strip(), 80)!r}" if raw.strip() else "nothing is above it"
        raise ProposalError(
            f"block {number} names no file: put its path on the line before '<<<<<<< SEARCH' "
            f"(or before its ``` fence); {shown}"
        )
    return path


EVIDENCE_TRIALS = 6
"""Failing train trials shown to the model per proposal."""

EVIDENCE_CHARS = 300
"""Characters of each input, expected answer, output and grader reason shown."""


def failing_trials(trajectories: Iterable[Trajectory], train_ids: set[str]) -> list[Trajectory]:
    """One failing trial per train scenario (eval-split ones never: they are the gate's), by scenario id."""
    failing: dict[str, Trajectory] = {}
    for trajectory in trajectories:
        in_train = trajectory.split == "train" and trajectory.scenario_id in train_ids
        if in_train and not trajectory.passed and trajectory.scenario_id not in failing:
            failing[trajectory.scenario_id] = trajectory
    return [failing[key] for key in sorted(failing)]


def passing_trials(trajectories: Iterable[Trajectory], train_ids: set[str]) -> list[Trajectory]:
    """One passing trial per train scenario (its best score first), by scenario id; eval-split ones never."""
    passing: dict[str, Trajectory] = {}
    for trajectory in trajectories:
        in_train = trajectory.split == "train" and trajectory.scenario_id in train_ids
        best = passing.get(trajectory.scenario_id)
        if in_train and trajectory.passed and (best is None or trajectory.score > best.score):
            passing[trajectory.scenario_id] = trajectory
    return [passing[key] for key in sorted(passing)]


def evidence(context: Context, scenarios: dict[str, Scenario], trials: list[Trajectory]) -> list[str]:
    """A budgeted sample of the failing ``trials``, rotating with the iteration: the prompt's lines.

    ``trials`` are the best state's train trials (`CatalogView.train_trials`), read once by the proposer.
    """
    if context.run is None or not context.run.is_file():
        return []
    failing = failing_trials(trials, {t.scenario_id for t in trials})
    scored = len(trials)
    if not failing:
        return [f"Every one of the {scored} train trials passed." if scored else "No train trial was scored."]
    start = len(context.history) * EVIDENCE_TRIALS % len(failing)
    shown = (failing[start:] + failing[:start])[:EVIDENCE_TRIALS]
    lines = [f"Failing train trials ({len(shown)} of the {len(failing)} failing scenarios; {scored} train trials):"]
    for trial in shown:
        lines += trial_lines(trial, scenarios[trial.scenario_id])
    return lines


def trial_lines(trial: Trajectory, scenario: Scenario) -> list[str]:
    """One trial for a proposer's prompt: its scenario, input, expected answer, output and failed graders."""

    def cut(text: str) -> str:
        return shorten(" ".join(text.split()), EVIDENCE_CHARS)

    lines = [f"- scenario {trial.scenario_id}", f"  input: {cut(scenario.input)}"]
    if scenario.expected is not None:
        lines.append(f"  expected: {cut(scenario.expected)}")
    lines.append(f"  output: {cut(trial.output)}" + (f" (error: {cut(trial.error)})" if trial.error else ""))
    lines += [f"  grader {g.grader}: {cut(g.reason)}" for g in trial.failed_grades()]
    return lines


class LLMProposer:
    """Asks a model (any provider spec) for one edit as SEARCH/REPLACE blocks with a hypothesis."""

    def __init__(self, spec: str, root: Path, *, max_tokens: int | None = None, max_cost: float | None = None) -> None:
        from pytest_autoevolve.providers.base import parse_spec
        from pytest_autoevolve.run.registries import project_registries
        from pytest_autoevolve.settings import load_settings

        settings = load_settings(root)
        providers = project_registries(root, settings).providers
        self.model = providers.create(parse_spec(spec, settings.models), root)
        self.root, self.catalog = root, CatalogView(root)
        self.max_tokens, self.max_cost = max_tokens, max_cost
        self.tokens, self.cost = 0, 0.0

    def prompt(self, context: Context) -> str:
        """The user message: targets with their text, the metric, the failing train trials, and the history."""
        parts = [
            f"Metric: candidate pass rate on the {context.split} split (higher is better); "
            f"best so far: {pct(context.best_score)}.",
            "",
            "Target files:",
        ]
        for path in context.targets:
            parts += [f"--- {path}", context.text(path).rstrip(), ""]
        parts += [*evidence(context, self.catalog.scenarios(), self.catalog.train_trials(context.run)), ""]
        parts.append("History (iteration, decision, score, hypothesis):")
        for entry in context.history[-20:]:
            note = f" ({shorten(entry['error'], 300)})" if entry.get("error") else ""
            parts.append(
                f"- {entry['iteration']} {entry['decision']} {pct(entry.get('score'))} "
                f"{entry.get('hypothesis', '')}{note}"
            )
        if not context.history:
            parts.append("- none yet")
        return "\n".join(parts)

    def ask(self, system: str, user: str, repeat: int) -> str:
        """The model's reply: `BudgetSpent` before a call over budget, `ProposerError` when the call fails."""
        from pytest_autoevolve.providers.base import ModelRequest

        if self.max_tokens is not None and self.tokens >= self.max_tokens:
            raise BudgetSpent(f"the proposer's token budget of {self.max_tokens} is spent ({self.tokens} used)")
        if self.max_cost is not None and self.cost >= self.max_cost:
            raise BudgetSpent(f"the proposer's cost budget of {self.max_cost:g} is spent ({self.cost:.3g} used)")
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        request = ModelRequest(messages, seed=0, repeat=repeat, scenario_id="autoevolve-evolve-proposal")
        try:
            reply = self.model.generate(request)
        except AutoevolveError as exc:  # a failed call, after the model's own retries
            raise ProposerError(f"the proposer's model failed: {exc}") from None
        self.tokens += (reply.prompt_tokens or 0) + (reply.completion_tokens or 0)
        self.cost += reply.cost or 0.0
        return reply.output

    def propose(self, context: Context) -> Edit | None:
        """Ask the model: `ProposerError` when it fails, `ProposalError` for a malformed reply, `BudgetSpent`."""
        return parse_reply(self.ask(SYSTEM_PROMPT, self.prompt(context), len(context.history)), context)


class CallableProposer:
    """``python:module:function``: the function gets the `Context` and returns an `Edit` or None."""

    def __init__(self, target: str, root: Path) -> None:
        from pytest_autoevolve.imports import import_object

        self.function: Callable[[Context], Edit | None] = import_object(target, [root])

    def propose(self, context: Context) -> Edit | None:
        """Whatever the user's function returns."""
        return self.function(context)

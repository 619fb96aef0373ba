"""Proposers for the edit-score-gate loop: a search space, an LLM, or a user callable, each proposing one edit."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from pytest_autoevolve.errors import LoopError
from pytest_autoevolve.loops.project import CONFIG_FILE


class EvolveError(LoopError):
    """The loop cannot start or go on: the message says why and what to do."""


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


class ProposalError(LoopError):
    """A proposer's reply that is no usable edit (malformed, or a SEARCH text not in the file)."""


class BudgetSpent(LoopError):
    """The proposer has spent its token or cost budget: the loop stops."""


@dataclass
class Edit:
    """One proposed change: the new full text of each file it touches, and why."""

    hypothesis: str
    files: dict[str, str]
    point: Any = None
    """The search-space point, for proposers that have one."""


@dataclass
class Context:
    """What a proposer sees: the targets and their text, the metric, and every past iteration."""

    root: Path
    targets: list[str]
    split: str
    best_score: float | None
    history: list[dict[str, Any]]

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
        """The first untried point that differs from the current state, or None."""
        import yaml

        for point in self.points:
            name = json.dumps([point.target, point.key, point.value], sort_keys=True, default=str)
            if name in self.tried:
                continue
            self.tried.add(name)
            text = context.text(point.target)
            data = yaml.safe_load(text) if text else {}
            data = data if isinstance(data, dict) else {}
            if data.get(point.key) == point.value:
                continue  # the current state already is this point
            data[point.key] = point.value
            return Edit(
                f"set {point.key} to {point.value!r} in {point.target}",
                {point.target: yaml.safe_dump(data, sort_keys=False)},
                asdict(point),
            )
        return None


BLOCK = re.compile(
    r"^(?P<path>[^\n`]+?)\s*\n<<<<<<< SEARCH\n(?P<search>.*?)^=======\n(?P<replace>.*?)^>>>>>>> REPLACE\s*$",
    re.DOTALL | re.MULTILINE,
)

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
gate, catalog, split, limits, repeats or seed settings: such an edit is rejected."""


def parse_reply(reply: str, context: Context) -> Edit:
    """The edit in a model's reply: a ``HYPOTHESIS:`` line and SEARCH/REPLACE blocks; ProposalError if malformed."""
    hypothesis = next(
        (
            line.split(":", 1)[1].strip()
            for line in reply.splitlines()
            if line.strip().upper().startswith("HYPOTHESIS:")
        ),
        "",
    )
    if not hypothesis:
        raise ProposalError("the reply has no 'HYPOTHESIS:' line")
    blocks = list(BLOCK.finditer(reply.replace("\r\n", "\n")))
    if not blocks:
        raise ProposalError("the reply has no SEARCH/REPLACE block")
    files: dict[str, str] = {}
    for block in blocks:
        path = block["path"].strip().strip("`").strip()
        text = files.get(path, context.text(path))
        search, replace = block["search"], block["replace"]
        if search and search not in text:
            raise ProposalError(f"the SEARCH text of the block for {path} is not in the file")
        files[path] = text.replace(search, replace, 1) if search else text + replace
    return Edit(hypothesis, files)


class LLMProposer:
    """Asks a model (any provider spec) for one edit as SEARCH/REPLACE blocks with a hypothesis."""

    def __init__(self, spec: str, root: Path, *, max_tokens: int | None = None, max_cost: float | None = None) -> None:
        from pytest_autoevolve.providers.base import parse_spec
        from pytest_autoevolve.run.registries import project_registries
        from pytest_autoevolve.settings import load_settings

        settings = load_settings(root)
        providers = project_registries(root, settings).providers
        self.model = providers.create(parse_spec(spec, settings.models), root)
        self.max_tokens, self.max_cost = max_tokens, max_cost
        self.tokens, self.cost = 0, 0.0

    def prompt(self, context: Context) -> str:
        """The user message: targets with their text, the metric, and the history."""
        parts = [
            f"Metric: candidate pass rate on the {context.split} split (higher is better); "
            f"best so far: {_fmt(context.best_score)}.",
            "",
            "Target files:",
        ]
        for path in context.targets:
            parts += [f"--- {path}", context.text(path).rstrip(), ""]
        parts.append("History (iteration, decision, score, hypothesis):")
        for entry in context.history[-20:]:
            parts.append(
                f"- {entry['iteration']} {entry['decision']} {_fmt(entry.get('score'))} "
                f"{entry.get('hypothesis', '')}" + (f" ({entry['error']})" if entry.get("error") else "")
            )
        if not context.history:
            parts.append("- none yet")
        return "\n".join(parts)

    def propose(self, context: Context) -> Edit | None:
        """Ask the model; a malformed reply is a ProposalError, a spent budget BudgetSpent."""
        from pytest_autoevolve.providers.base import ModelRequest

        if self.max_tokens is not None and self.tokens >= self.max_tokens:
            raise BudgetSpent(f"the proposer's token budget of {self.max_tokens} is spent ({self.tokens} used)")
        if self.max_cost is not None and self.cost >= self.max_cost:
            raise BudgetSpent(f"the proposer's cost budget of {self.max_cost:g} is spent ({self.cost:.4f} used)")

        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": self.prompt(context)}]
        request = ModelRequest(messages, seed=0, repeat=len(context.history), scenario_id="autoevolve-evolve-proposal")
        reply = self.model.generate(request)
        self.tokens += (reply.prompt_tokens or 0) + (reply.completion_tokens or 0)
        self.cost += reply.cost or 0.0
        return parse_reply(reply.output, context)


class CallableProposer:
    """``python:module:function``: the function gets the `Context` and returns an `Edit` or None."""

    def __init__(self, target: str, root: Path) -> None:
        from pytest_autoevolve.imports import import_object

        self.function: Callable[[Context], Edit | None] = import_object(target, [root])

    def propose(self, context: Context) -> Edit | None:
        """Whatever the user's function returns."""
        return self.function(context)


def make_proposer(text: str, root: Path, *, max_tokens: int | None = None, max_cost: float | None = None) -> Proposer:
    """A proposer from ``space:FILE``, ``llm:SPEC`` (with its token and cost budgets) or ``python:module:function``."""
    kind, _, rest = text.partition(":")
    if kind == "space" and rest:
        path = Path(rest) if Path(rest).is_absolute() else root / rest
        if not path.is_file():
            raise EvolveError(f"no search space file {path}")
        return SpaceProposer(path)
    if kind == "llm" and rest:
        return LLMProposer(rest, root, max_tokens=max_tokens, max_cost=max_cost)
    if kind == "python" and rest:
        return CallableProposer(rest, root)
    raise EvolveError(f"unknown proposer {text!r}; use space:FILE, llm:SPEC or python:module:function")

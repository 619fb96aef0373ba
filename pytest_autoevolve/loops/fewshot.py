"""The ``fewshot:K`` proposer: K passing train trials as a block of demonstrations in the prompt file.

The first proposal takes the passing train trials most like the failing ones (word overlap of
their inputs); later ones a seeded search over other sets, never one tried before. Only train
trials of train-split scenarios are read: the eval split is the gate's. The block sits between
``<examples source="autoevolve">`` and ``</examples>`` lines, replaced by each proposal and
appended to the file when it has none.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_autoevolve.loops.proposers import CatalogView, Context, Edit, EvolveError, failing_trials, passing_trials
from pytest_autoevolve.report.format import shorten

if TYPE_CHECKING:
    from pytest_autoevolve.records import Scenario, Trajectory

EXAMPLE_CHARS = 400
"""Characters of each demonstration's input and output put in the prompt."""

SEARCHES = 50
"""Seeded draws tried for a set not proposed before, before the proposer says it has nothing left."""

WORD = re.compile(r"[a-z0-9]+")


def managed_block(text: str, tag: str, body: Sequence[str]) -> str:
    """``text`` with the block ``<tag source="autoevolve">`` ... ``</tag>`` holding ``body``; none when empty."""
    found = re.compile(rf'^<{tag} source="autoevolve">\n.*?^</{tag}>\n?', re.DOTALL | re.MULTILINE)
    block = "".join([f'<{tag} source="autoevolve">\n', *(f"{line}\n" for line in body), f"</{tag}>\n"])
    if found.search(text):
        return found.sub(lambda _: block if body else "", text, count=1)
    if not body:
        return text
    return f"{text.rstrip()}\n\n{block}" if text.strip() else block


def block_lines(text: str, tag: str) -> list[str]:
    """The lines inside the managed block ``tag`` of ``text`` (none when it has no such block)."""
    found = re.search(rf'^<{tag} source="autoevolve">\n(.*?)^</{tag}>', text, re.DOTALL | re.MULTILINE)
    return found.group(1).splitlines() if found else []


PROMPT_SUFFIXES = ("", ".txt", ".md", ".prompt", ".jinja", ".j2", ".tmpl")
"""What a prompt file is named: text, markdown or a template."""


def prompt_file(targets: Sequence[str]) -> str:
    """The prompt file among the targets: the first text, markdown or template file; `EvolveError` when none is."""
    for target in targets:
        if Path(target).suffix.lower() in PROMPT_SUFFIXES:
            return target
    raise EvolveError(
        "this proposer writes into a prompt file: name one in --targets (a text, markdown or template file "
        f"the agent reads, e.g. prompts/system.txt: {', '.join(s or 'no suffix' for s in PROMPT_SUFFIXES)})"
    )


def _id(trial: Trajectory) -> str:
    return trial.scenario_id


def _words(text: str) -> set[str]:
    return set(WORD.findall(text.lower()))


def similarity(a: str, b: str) -> float:
    """Word overlap of two texts (Jaccard), 0 to 1."""
    left, right = _words(a), _words(b)
    return len(left & right) / len(left | right) if left | right else 0.0


class FewShotProposer:
    """Proposes K demonstrations from passing train trials: the nearest to the failures first, then a seeded search."""

    def __init__(self, k: int, root: Path, seed: int = 0) -> None:
        if k < 1:
            raise EvolveError(f"fewshot:K takes a number of demonstrations K >= 1, got {k}")
        self.k, self.seed, self.catalog = k, seed, CatalogView(root)
        self.tried: set[tuple[str, ...]] = set()

    def propose(self, context: Context) -> Edit | None:
        """The next untried set of demonstrations written into the prompt file, or None when none is left."""
        path = prompt_file(context.targets)
        scenarios = self.catalog.scenarios()
        trials = self.catalog.train_trials(context.run)
        train = {t.scenario_id for t in trials}
        passing = passing_trials(trials, train)
        if not passing:
            raise EvolveError("no train trial passed in the best run: there is no demonstration to show")
        failing = failing_trials(trials, train)
        found = self._choose(passing, failing, scenarios, len(context.history))
        if found is None:
            return None
        chosen, how = found
        body = [line for trial in chosen for line in self._shown(trial, scenarios[trial.scenario_id])][:-1]
        text = managed_block(context.text(path), "examples", body)
        ids = ", ".join(t.scenario_id for t in chosen)
        return Edit(f"show {len(chosen)} passing train demonstrations ({how}): {ids}", {path: text})

    def _choose(
        self, passing: list[Trajectory], failing: list[Trajectory], scenarios: dict[str, Scenario], turn: int
    ) -> tuple[list[Trajectory], str] | None:
        """The first set not tried, and how it was found: the nearest to the failures, else seeded draws."""
        k, draws = min(self.k, len(passing)), random.Random(f"{self.seed}:{turn}")
        nearest = [(self._nearest(passing, failing, scenarios, k), "nearest to the failing ones")] if failing else []
        searched = ((sorted(draws.sample(passing, k), key=_id), "a seeded search") for _ in range(SEARCHES))
        for chosen, how in itertools.chain(nearest, searched):  # draws only while the nearest set was tried
            name = tuple(t.scenario_id for t in chosen)
            if name not in self.tried:
                self.tried.add(name)
                return chosen, how
        return None

    @staticmethod
    def _nearest(
        passing: list[Trajectory], failing: list[Trajectory], scenarios: dict[str, Scenario], k: int
    ) -> list[Trajectory]:
        """The k passing trials with the highest mean similarity of their input to the failing trials' inputs."""
        wrong = [scenarios[t.scenario_id].input for t in failing]

        def closeness(trial: Trajectory) -> float:
            shown = scenarios[trial.scenario_id].input
            return sum(similarity(shown, other) for other in wrong) / len(wrong)

        return sorted(sorted(passing, key=lambda t: (-closeness(t), t.scenario_id))[:k], key=_id)

    @staticmethod
    def _shown(trial: Trajectory, scenario: Scenario) -> list[str]:
        def one_line(text: str) -> str:
            return shorten(" ".join(text.split()), EXAMPLE_CHARS)

        return [f"Input: {one_line(scenario.input)}", f"Output: {one_line(trial.output)}", ""]

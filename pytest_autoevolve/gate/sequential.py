"""The sequential gate: scenarios in a seeded order, looked at in batches, stopped once decided.

The design is group-sequential with O'Brien-Fleming-type Lan-DeMets alpha spending
(`spending`): look k comes after the first ``ceil(k * M / looks)`` of the M paired scenarios
in the seeded order, and the gate's own score test (`stats.score_p`) decides there at the
look's nominal level. Efficacy: the candidate clears the rule at that level (pass). Futility:
the test of the opposite direction shows the lift below the rule's threshold at the same level,
the repeated interval's upper end below it (fail). A critical scenario that regressed fails at
once, as in the fixed gate. Stopping for futility only removes passes, so it never adds false
promotions; the looks' sizes are fixed before any result is seen, so peeking is built in.
"""

from __future__ import annotations

import math
import random
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, replace

from pytest_autoevolve.gate import spending, stats
from pytest_autoevolve.gate.results import ItemResult
from pytest_autoevolve.settings import GateConfig

BOUNDARIES = ("efficacy", "futility", "critical", "final")
"""Why a sequential gate stopped: it cleared the rule, could no longer clear it, a critical
scenario regressed, or the last look came without crossing (then the fixed rule at the last
look's nominal level decides)."""


@dataclass(frozen=True)
class Look:
    """One look: how many scenarios it saw and what the test said at its nominal level."""

    index: int
    scenarios: int
    lift: float
    p_value: float
    futility_p: float
    nominal: float


@dataclass(frozen=True)
class Design:
    """A sequential gate's plan and how far it ran: looks taken, where it stopped and why."""

    planned: int
    """The paired scenarios the full run would take."""
    looks: int
    alpha: float
    taken: tuple[Look, ...] = ()
    boundary: str | None = None
    """One of `BOUNDARIES` once decided; None while undecided."""
    planned_trials: int = 0
    """The trials (both roles, every repeat) the full run would make."""
    trials: int = 0
    """The trials the run made (those in flight when it stopped included)."""

    @property
    def sizes(self) -> list[int]:
        """Scenarios seen at each look (cumulative)."""
        return look_sizes(self.planned, self.looks)

    @property
    def nominal_levels(self) -> list[float]:
        """Each look's one-sided nominal level, from the spending function."""
        fractions = [size / self.planned for size in self.sizes]
        return spending.nominal_levels(fractions, self.alpha) if self.planned else []

    @property
    def used(self) -> int:
        """Scenarios behind the decision: those of the last look taken."""
        return self.taken[-1].scenarios if self.taken else 0

    @property
    def decided(self) -> bool:
        """Whether a boundary was crossed (or the last look taken)."""
        return self.boundary is not None

    def spent(self) -> str:
        """Trials made against the full run's, in words."""
        if not self.planned_trials:
            return f"{self.trials} trials"
        saved = 1 - self.trials / self.planned_trials
        return f"{self.trials} of {self.planned_trials} planned trials ({saved:.0%} saved)"

    def describe(self) -> str:
        """One line: the design, how far it ran and why it stopped."""
        head = f"sequential gate ({self.looks} looks, O'Brien-Fleming spending of alpha {self.alpha:g})"
        if not self.taken:
            return f"{head}: no look completed"
        look = self.taken[-1]
        where = f"look {look.index} of {self.looks}, {look.scenarios} of {self.planned} scenarios"
        why = {
            "efficacy": f"efficacy boundary crossed, p = {look.p_value:.3g} < {look.nominal:.3g}",
            "futility": f"futility boundary crossed, lift below the rule with p = {look.futility_p:.3g}",
            "critical": "a critical scenario regressed",
            "final": f"last look, fixed rule at level {look.nominal:.3g}",
        }.get(self.boundary or "", "no boundary crossed yet")
        return f"{head}: decided at {where} ({why})" if self.decided else f"{head}: {where}, {why}"


def look_sizes(planned: int, looks: int) -> list[int]:
    """Scenarios seen at each look: equal batches, the last look all ``planned``, never an empty look."""
    return sorted({max(1, math.ceil(planned * k / looks)) for k in range(1, looks + 1)}) if planned else []


def order(scenarios: Iterable[str], seed: int) -> list[str]:
    """The seeded random order the scenarios run and are looked at in (the same in every process)."""
    shuffled = sorted(set(scenarios))
    random.Random(f"autoevolve-sequential-{seed}").shuffle(shuffled)
    return shuffled


def walk(items: Iterable[ItemResult], ordered: Sequence[str], config: GateConfig) -> Design:
    """Take every look whose scenarios have both roles' results, in order, until one decides.

    ``ordered`` are the planned eval scenarios in run order. A look with fewer scenarios than
    ``min_paired`` (but not the last) only continues.
    """
    by_key = {(i.scenario, i.role): i for i in items if i.trials}
    design = Design(len(ordered), config.looks, config.alpha)
    for index, (size, nominal) in enumerate(zip(design.sizes, design.nominal_levels, strict=True), 1):
        if not complete(by_key, ordered[:size]):
            return design
        pairs = [(by_key[(s, "incumbent")], by_key[(s, "candidate")]) for s in ordered[:size]]
        look, boundary = _look(index, pairs, config, nominal)
        last = index == len(design.sizes)
        if size < config.min_paired and not last:
            boundary = None
        design = replace(design, taken=(*design.taken, look), boundary=boundary or ("final" if last else None))
        if design.decided:
            return design
    return design


def complete(finished: Container[tuple[str, str]], scenarios: Iterable[str]) -> bool:
    """Whether both roles of every one of ``scenarios`` finished (``finished`` holds (scenario, role))."""
    return all((s, role) in finished for s in scenarios for role in ("incumbent", "candidate"))


def _look(
    index: int, pairs: Sequence[tuple[ItemResult, ItemResult]], config: GateConfig, nominal: float
) -> tuple[Look, str | None]:
    diffs = stats.Differences.of((i.passes, i.trials, c.passes, c.trials) for i, c in pairs)
    p_value = stats.score_p(diffs, config.threshold)
    futility_p = stats.upper_p(diffs, config.threshold)
    look = Look(index, len(pairs), diffs.mean, p_value, futility_p, nominal)
    if any(i.critical and c.pass_rate < i.pass_rate for i, c in pairs):
        return look, "critical"
    if p_value < nominal:
        return look, "efficacy"
    if futility_p < nominal:
        return look, "futility"
    return look, None


def at_look(config: GateConfig, design: Design) -> GateConfig:
    """The gate's rule at the look that decided: the same rule at that look's nominal level."""
    return replace(config, alpha=design.taken[-1].nominal) if design.taken else config

"""Validity of the gate's decisions on simulated catalogs, through the real decision code.

The simulator is the audit's (STATISTICS.md): per-scenario difficulty p ~ Beta(b, b), b in {.5, 2};
the candidate's probability q = expit(logit(p) + s), with s found once per (b, lift) by bisection on
10^6 Monte Carlo difficulties so that E[q - p] is the target lift; the two models' trials on one
scenario coupled by a Gaussian copula with correlation rho (a trial passes when Phi(z) < p).

Settings, each a table of n, repeats r, rho, b, the rate and its Clopper-Pearson 95% interval:

1. A/A, superiority with min_lift 0: false promotion (verdict pass) at lift 0.
2. Superiority with min_lift .05 at its boundary (lift .05): false promotion.
3. Non-inferiority with margin .05 at lift -.05: false promotion.
4. Power at lifts .05 and .10 (superiority, min_lift 0).
5. Coverage of the lift interval at lift .05: the share of catalogs whose [ci_low, ci_high] holds
   that catalog's true lift, mean(q_i - p_i); nominal 1 - 2·alpha = 90%.
6. Power at the printed minimum detectable lift: the median MDL that `decide` prints on a pilot of
   A/A catalogs is the true lift of a superiority cell (the claim is 80%).
7. The sequential gate (10 looks, O'Brien-Fleming spending) on the catalogs of 1 and 4: false
   promotion, power, agreement with the fixed gate on the same catalogs, and its share of the fixed
   gate's model calls; the last line sums up the cells where the fixed gate has >= 90% power.

Bulk catalogs go through `paired_test` (what `decide` calls), without its interval where only the
verdict counts; the first `DECIDE_SAMPLE` catalogs of every cell also go through `decide`, and any
verdict or test that differs from the bulk path is counted in the last lines.

The default grid, 1,000 catalogs a cell, is cut to about 10-17 minutes on 2 cores (measured: 10 min
with the score test, about 17 estimated with the former sign-flip test): settings 1-3 run every n in
{20, 50, 200, 1000}, r in {1, 3, 5}, rho in {0, .5, .9} and both b; 4-5 only rho .5 and no n = 1000
with r 3 or 5 (power ~100% there, and the costliest cells); 6 only b = 2, rho 0 and .9, and no
n = 1000 with r 3 or 5. ``--quick`` runs n in {20, 200}, r in {1, 3}, b .5, rho 0 and .9 (.5 for 4-6;
b = 2 for 6) and 200 catalogs a cell, in about a minute.

    python benchmarks/bench_gate_validity.py [--quick] [--catalogs N] [--seed S] [--jobs J]
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import statistics
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import cache, partial
from statistics import NormalDist
from typing import Literal

import numpy as np
import numpy.typing as npt

from pytest_autoevolve.gate import sequential
from pytest_autoevolve.gate.decide import decide, decide_sequential, paired_test
from pytest_autoevolve.gate.results import ItemResult
from pytest_autoevolve.settings import GateConfig

Pairs = list[tuple[ItemResult, ItemResult]]
Floats = npt.NDArray[np.float64]

EDGE = 1e-15
"""Difficulties are kept this far from 0 and 1, where the normal quantile is infinite."""
SHIFT_SAMPLE = 1_000_000
"""Difficulties drawn to find the logit shift of a target lift."""
CHUNK_TRIALS = 2_000_000
"""Trials per role drawn at once (bounds memory)."""
DECIDE_SAMPLE = 20
"""Catalogs per cell that also go through `decide`, to check the bulk path against it."""
LATENCY = 0.01
"""Every trial's latency, so that the latency guardrail never fires."""

_ppf = np.frompyfunc(NormalDist().inv_cdf, 1, 1)

_verdict_test = partial(paired_test, interval=False)
"""The test without its interval, where only the verdict is counted."""


@dataclass(frozen=True)
class Cell:
    """One point of the grid: scenarios, repeats per scenario and role, copula correlation, Beta shape."""

    n: int
    repeats: int
    rho: float
    beta: float


@dataclass(frozen=True)
class Setting:
    """One table: what is counted (promotion, coverage or power at the MDL), under which rule and true lift."""

    title: str
    measure: Literal["promotion", "coverage", "mdl", "sequential"]
    config: GateConfig
    lift: float
    cells: tuple[Cell, ...]
    false_promotion: bool = False


@dataclass(frozen=True)
class Outcome:
    """A cell's count of events over catalogs, with the cross-check of the bulk path against `decide`."""

    hits: int
    total: int
    checked: int
    mismatched: int
    note: str = ""
    fixed: int = 0
    """Sequential cells: catalogs the fixed gate passed."""
    agreed: int = 0
    """Sequential cells: catalogs where the sequential and the fixed gate gave the same verdict."""
    used: float = 0.0
    """Sequential cells: the mean share of the fixed gate's model calls the sequential gate made."""


def grid(
    ns: Sequence[int],
    repeats: Sequence[int],
    rhos: Sequence[float],
    betas: Sequence[float],
    skip: frozenset[tuple[int, int]] = frozenset(),
) -> tuple[Cell, ...]:
    """The cells of a product grid, less the (n, repeats) pairs in ``skip``."""
    return tuple(
        Cell(n, r, rho, b) for b, rho, n, r in itertools.product(betas, rhos, ns, repeats) if (n, r) not in skip
    )


def settings(quick: bool) -> list[Setting]:
    """The tables to compute: the quick grid or the default one (see the module docstring)."""
    if quick:
        validity = grid((20, 200), (1, 3), (0.0, 0.9), (0.5,))
        power = grid((20, 200), (1, 3), (0.5,), (0.5,))
        mdl = grid((20, 200), (1, 3), (0.5,), (2.0,))
    else:
        big = frozenset({(1000, 3), (1000, 5)})
        validity = grid((20, 50, 200, 1000), (1, 3, 5), (0.0, 0.5, 0.9), (0.5, 2.0))
        power = grid((20, 50, 200, 1000), (1, 3, 5), (0.5,), (0.5, 2.0), big)
        mdl = grid((20, 50, 200, 1000), (1, 3, 5), (0.0, 0.9), (2.0,), big)
    sup = GateConfig(min_paired=1)
    seq = replace(sup, sequential=True)
    return [
        Setting("1. A/A, superiority min_lift 0: false promotion at lift 0", "promotion", sup, 0.0, validity, True),
        Setting(
            "2. superiority min_lift .05 at its boundary: false promotion at lift .05",
            "promotion",
            replace(sup, min_lift=0.05),
            0.05,
            validity,
            True,
        ),
        Setting(
            "3. non-inferiority margin .05: false promotion at lift -.05",
            "promotion",
            replace(sup, mode="non_inferiority", margin=0.05),
            -0.05,
            validity,
            True,
        ),
        Setting("4a. power at lift .05 (superiority, min_lift 0)", "promotion", sup, 0.05, power),
        Setting("4b. power at lift .10 (superiority, min_lift 0)", "promotion", sup, 0.10, power),
        Setting(
            f"5. coverage of [ci_low, ci_high] at lift .05 (nominal 1 - 2·alpha = {1 - 2 * sup.alpha:.0%})",
            "coverage",
            sup,
            0.05,
            power,
        ),
        Setting("6. power at the median printed MDL of an A/A pilot (claim: 80%)", "mdl", sup, 0.0, mdl),
        Setting("7a. sequential gate, A/A: false promotion at lift 0", "sequential", seq, 0.0, validity, True),
        Setting("7b. sequential gate at lift .05", "sequential", seq, 0.05, power),
        Setting("7c. sequential gate at lift .10", "sequential", seq, 0.10, power),
    ]


@cache
def logit_shift(beta: float, lift: float) -> float | None:
    """The logit shift s with E[expit(logit(p) + s) - p] = ``lift`` for p ~ Beta(beta, beta); None if out of reach."""
    if lift == 0:
        return 0.0
    p = np.clip(np.random.default_rng(0).beta(beta, beta, SHIFT_SAMPLE), EDGE, 1 - EDGE)
    logit = np.log(p / (1 - p))

    def expected(s: float) -> float:
        return float(np.mean(1 / (1 + np.exp(-(logit + s))) - p))

    low, high = -30.0, 30.0
    if not expected(low) < lift < expected(high):
        return None
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if expected(middle) < lift else (low, middle)
    return (low + high) / 2


def simulate(cell: Cell, shift: float, catalogs: int, rng: np.random.Generator) -> Iterator[tuple[Pairs, float]]:
    """Simulated catalogs: the paired (incumbent, candidate) results and the catalog's true lift mean(q - p)."""
    n, r = cell.n, cell.repeats
    chunk = max(1, CHUNK_TRIALS // (n * r))
    for start in range(0, catalogs, chunk):
        size = min(chunk, catalogs - start)
        p = np.clip(rng.beta(cell.beta, cell.beta, (size, n)), EDGE, 1 - EDGE)
        q = np.clip(1 / (1 + np.exp(-(np.log(p / (1 - p)) + shift))), EDGE, 1 - EDGE)
        z_incumbent = rng.standard_normal((size, n, r))
        z_candidate = cell.rho * z_incumbent + math.sqrt(1 - cell.rho**2) * rng.standard_normal((size, n, r))
        incumbent = (z_incumbent < _quantile(p)[..., None]).sum(axis=2).tolist()
        candidate = (z_candidate < _quantile(q)[..., None]).sum(axis=2).tolist()
        truth = (q - p).mean(axis=1).tolist()
        for index in range(size):
            yield _pairs(incumbent[index], candidate[index], r), truth[index]


def _quantile(p: Floats) -> Floats:
    """The standard normal quantile, elementwise (Phi(z) < p exactly when z < quantile(p))."""
    return np.asarray(_ppf(p), dtype=np.float64)


def _pairs(incumbent: Sequence[int], candidate: Sequence[int], repeats: int) -> Pairs:
    def item(index: int, role: str, passes: int) -> ItemResult:
        latencies = [LATENCY] * repeats
        return ItemResult(f"s{index:05d}", role, repeats, passes, category="sim", latencies=latencies)

    return [
        (item(index, "incumbent", a), item(index, "candidate", b))
        for index, (a, b) in enumerate(zip(incumbent, candidate, strict=True))
    ]


def promotes(test_p: float, lift: float, config: GateConfig) -> bool:
    """The gate's statistical rule (`decide` adds guardrails and critical scenarios, which never fire here)."""
    rejected = test_p < config.alpha
    if config.mode == "superiority":
        rejected = rejected and lift >= config.min_lift and lift > 0
    return rejected


def run_cell(setting: Setting, cell: Cell, catalogs: int, seed: int, key: int) -> Outcome:
    """Simulate one cell's catalogs and count promotions, interval hits, or power at the printed MDL."""
    rng = np.random.default_rng([seed, key, cell.n, cell.repeats, round(cell.rho * 10), round(cell.beta * 10)])
    lift, note = setting.lift, ""
    if setting.measure == "mdl":
        pilot = max(20, catalogs // 10)
        printed = [
            decide(_items(pairs), setting.config).minimum_detectable_lift
            for pairs, _ in simulate(cell, 0.0, pilot, rng)
        ]
        lift = statistics.median(x for x in printed if x is not None)
        note = f"MDL {lift:.3f}"
    shift = logit_shift(cell.beta, lift)
    if shift is None:
        return Outcome(0, 0, 0, 0, f"{note} out of reach")
    if setting.measure == "sequential":
        return sequential_cell(setting.config, simulate(cell, shift, catalogs, rng), catalogs)
    hits = mismatched = low_misses = 0
    for index, (pairs, truth) in enumerate(simulate(cell, shift, catalogs, rng)):
        full = setting.measure == "coverage" or index < DECIDE_SAMPLE
        test = paired_test(pairs, setting.config) if full else _verdict_test(pairs, setting.config)
        promoted = promotes(test.p_value, test.lift, setting.config)
        if index < DECIDE_SAMPLE:
            result = decide(_items(pairs), setting.config)
            mismatched += repr(result.test) != repr(test) or result.verdict != ("pass" if promoted else "fail")
        if setting.measure == "coverage":
            hits += test.ci_low <= truth <= test.ci_high
            low_misses += truth < test.ci_low
        else:
            hits += promoted
    if setting.measure == "coverage":
        note = f"truth below {low_misses / catalogs:.1%}, above {(catalogs - hits - low_misses) / catalogs:.1%}"
    return Outcome(hits, catalogs, min(catalogs, DECIDE_SAMPLE), mismatched, note)


def _items(pairs: Pairs) -> list[ItemResult]:
    return [item for pair in pairs for item in pair]


@cache
def clopper_pearson(hits: int, total: int, level: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) interval of a binomial rate, from Beta quantiles."""
    tail = (1 - level) / 2
    low = 0.0 if hits == 0 else _beta_quantile(tail, hits, total - hits + 1)
    high = 1.0 if hits == total else _beta_quantile(1 - tail, hits + 1, total - hits)
    return low, high


def _beta_quantile(prob: float, a: int, b: int) -> float:
    """The ``prob`` quantile of Beta(a, b) for whole a, b, by bisection on the regularized incomplete beta."""
    low, high = 0.0, 1.0
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if _incomplete_beta(middle, a, b) < prob else (low, middle)
    return (low + high) / 2


def _incomplete_beta(x: float, a: int, b: int) -> float:
    """I_x(a, b) for whole a, b: P(Binomial(a + b - 1, x) >= a), summed over the shorter tail."""
    if x <= 0 or x >= 1:
        return float(x >= 1)
    m = a + b - 1
    log_x, log_1x = math.log(x), math.log1p(-x)

    def mass(j: int) -> float:
        return math.exp(math.lgamma(m + 1) - math.lgamma(j + 1) - math.lgamma(m - j + 1) + j * log_x + (m - j) * log_1x)

    if a > m / 2:
        return sum(mass(j) for j in range(a, m + 1))
    return 1 - sum(mass(j) for j in range(a))


def chance_exceedance(total: int, alpha: float) -> float:
    """The chance that a cell of ``total`` catalogs at a true rate of exactly ``alpha`` has a CP lower bound above."""
    hits = math.ceil(total * alpha)
    while hits <= total and clopper_pearson(hits, total)[0] <= alpha:
        hits += 1
    return _incomplete_beta(alpha, hits, total - hits + 1) if hits <= total else 0.0


def sequential_cell(config: GateConfig, catalogs: Iterator[tuple[Pairs, float]], total: int) -> Outcome:
    """The sequential gate on each catalog beside the fixed one: its passes, agreement, and share of calls.

    The scenarios run in `sequential.order`; the bulk verdict is `sequential.walk`'s (pass exactly
    when an efficacy boundary is crossed) and the first `DECIDE_SAMPLE` also go through `decide_sequential`.
    """
    fixed_rule = replace(config, sequential=False)
    hits = fixed = agreed = mismatched = 0
    used = 0.0
    for index, (pairs, _) in enumerate(catalogs):
        items = _items(pairs)
        ordered = sequential.order((i.scenario for i, _ in pairs), index)
        design = sequential.walk(items, ordered, config)
        passed = design.boundary == "efficacy"
        test = _verdict_test(pairs, fixed_rule)
        fixed_pass = promotes(test.p_value, test.lift, fixed_rule)
        if index < DECIDE_SAMPLE:
            mismatched += (decide_sequential(items, ordered, config).verdict == "pass") != passed
        hits, fixed, agreed = hits + passed, fixed + fixed_pass, agreed + (passed == fixed_pass)
        used += design.used / len(pairs)
    note = f"fixed {fixed / total:.1%}, same verdict {agreed / total:.1%}, calls {used / total:.0%} of fixed"
    return Outcome(hits, total, min(total, DECIDE_SAMPLE), mismatched, note, fixed, agreed, used / total)


def sequential_lines(tables: Sequence[Setting], outcomes: Sequence[Sequence[Outcome]]) -> list[str]:
    """Agreement and calls of the sequential gate where the fixed gate has at least 90% power."""
    strong = [
        outcome
        for table, rows in zip(tables, outcomes, strict=True)
        if table.measure == "sequential" and not table.false_promotion
        for outcome in rows
        if outcome.total and outcome.fixed >= 0.9 * outcome.total
    ]
    if not strong:
        return ["sequential gate: no cell where the fixed gate has >= 90% power"]
    agreement = sum(o.agreed for o in strong) / sum(o.total for o in strong)
    worst = min(o.agreed / o.total for o in strong)
    saved = 1 - sum(o.used for o in strong) / len(strong)
    return [
        f"sequential gate where the fixed gate has >= 90% power ({len(strong)} cells): same verdict on "
        f"{agreement:.1%} of catalogs (worst cell {worst:.1%}), {saved:.0%} fewer model calls on average"
    ]


def report(table: Setting, outcomes: Sequence[Outcome]) -> list[str]:
    """The table of one setting: grid point, rate, Clopper-Pearson interval, note."""
    lines = [table.title, f"{'n':>6} {'r':>2} {'rho':>4} {'beta':>4} {'rate':>7}  {'95% CP interval':<17} note"]
    for cell, outcome in zip(table.cells, outcomes, strict=True):
        rate, interval = "-", ""
        if outcome.total:
            low, high = clopper_pearson(outcome.hits, outcome.total)
            rate, interval = f"{outcome.hits / outcome.total:.1%}", f"[{low:.1%}, {high:.1%}]"
        point = f"{cell.n:>6} {cell.repeats:>2} {cell.rho:>4.1f} {cell.beta:>4.1f}"
        lines.append(f"{point} {rate:>7}  {interval:<17} {outcome.note}".rstrip())
    return lines


def validity_lines(
    tables: Sequence[Setting], outcomes: Sequence[Sequence[Outcome]], alpha: float, prefix: str = ""
) -> list[str]:
    """The worst false-promotion CP lower bound, and how many cells exceed ``alpha`` against chance."""
    bounds = [
        (clopper_pearson(outcome.hits, outcome.total)[0], table.title.split(".")[0], cell, outcome.total)
        for table, rows in zip(tables, outcomes, strict=True)
        if table.false_promotion
        for cell, outcome in zip(table.cells, rows, strict=True)
        if outcome.total
    ]
    low, label, cell, _ = max(bounds, key=lambda bound: bound[0])
    where = f"setting {label}, n {cell.n}, r {cell.repeats}, rho {cell.rho}, beta {cell.beta}"
    above = sum(bound[0] > alpha for bound in bounds)
    expected = sum(chance_exceedance(total, alpha) for *_, total in bounds)
    return [
        f"{prefix}worst false-promotion CP lower bound: {low:.2%} ({where}): {'<=' if low <= alpha else '>'} {alpha:g}",
        f"cells whose CP lower bound exceeds {alpha:g}: {above} of {len(bounds)} "
        f"({expected:.1f} expected by chance were every true rate exactly {alpha:g})",
    ]


def confirm(
    tables: Sequence[Setting], outcomes: Sequence[Sequence[Outcome]], catalogs: int, seed: int, jobs: int
) -> list[list[Outcome]] | None:
    """Run each false-promotion cell whose CP lower bound exceeds alpha again: a fresh seed, 4x the catalogs.

    With a test of exact size alpha, about 2.5% of cells exceed it by chance (the line above says how
    many to expect); a cell whose size is really above alpha exceeds it again. None when none exceeded.
    """
    alpha = GateConfig().alpha
    flagged = [
        (key, index)
        for key, (table, rows) in enumerate(zip(tables, outcomes, strict=True))
        if table.false_promotion
        for index, outcome in enumerate(rows)
        if outcome.total and clopper_pearson(outcome.hits, outcome.total)[0] > alpha
    ]
    if not flagged:
        return None
    fresh = seed + 1_000_003
    with ProcessPoolExecutor(jobs) as pool:
        futures = {
            (key, index): pool.submit(run_cell, tables[key], tables[key].cells[index], 4 * catalogs, fresh, key)
            for key, index in flagged
        }
        again = {place: future.result() for place, future in futures.items()}
    print(f"confirmation of {len(flagged)} flagged cell(s), seed {fresh}, {4 * catalogs} catalogs each:")
    for (key, index), outcome in again.items():
        print("\n".join(report(replace(tables[key], cells=(tables[key].cells[index],)), [outcome])[2:]))
    return [[again.get((key, index), row) for index, row in enumerate(rows)] for key, rows in enumerate(outcomes)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small grid and 200 catalogs a cell")
    parser.add_argument("--catalogs", type=int, help="catalogs a cell (default 1000, 200 with --quick)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    args = parser.parse_args()
    catalogs = args.catalogs or (200 if args.quick else 1000)
    started = time.perf_counter()
    tables = settings(args.quick)
    tasks = sorted(
        ((key, cell) for key, table in enumerate(tables) for cell in table.cells),
        key=lambda task: -task[1].n * task[1].repeats,
    )
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = {
            task: pool.submit(run_cell, tables[task[0]], task[1], catalogs, args.seed, task[0]) for task in tasks
        }
        outcomes = [[futures[key, cell].result() for cell in table.cells] for key, table in enumerate(tables)]
    print(f"{catalogs} catalogs a cell, seed {args.seed}\n")
    for table, rows in zip(tables, outcomes, strict=True):
        print("\n".join(report(table, rows)), end="\n\n")
    checked = sum(outcome.checked for rows in outcomes for outcome in rows)
    mismatched = sum(outcome.mismatched for rows in outcomes for outcome in rows)
    print(f"decide cross-check: {checked} catalogs also through decide, {mismatched} differ from the bulk path")
    print("\n".join(validity_lines(tables, outcomes, GateConfig().alpha)))
    confirmed = confirm(tables, outcomes, catalogs, args.seed, args.jobs)
    if confirmed is not None:
        print("\n".join(validity_lines(tables, confirmed, GateConfig().alpha, "after confirmation: ")))
    print("\n".join(sequential_lines(tables, outcomes)))
    print(f"ran {time.perf_counter() - started:.0f} s with {args.jobs} jobs")


if __name__ == "__main__":
    main()

"""Paired statistics for the gate: the lattice score test, its interval, power, Holm, pass^k.

Pure Python (no numpy), deterministic. "Lift" is always candidate minus incumbent, so
positive means the candidate is better. Each scenario contributes one paired difference,
its candidate pass rate minus its incumbent pass rate; with r trials per role these lie
on the lattice {k/r : -r <= k <= r}. The test of "lift > delta" is a score test whose
variance comes from the restricted maximum-likelihood distribution on that lattice with
mean delta: with one trial it is exactly Tango's (1998) test, and the interval is its
inversion, so the interval's low end clears a threshold exactly when the test does.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from statistics import NormalDist

NORMAL = NormalDist()

EXACT_POWER_SCENARIOS = 300
"""Up to this many single-trial scenarios, the detectable lift comes from the test's exact power."""

CONTINUITY = 0.25
"""The continuity correction, in lattice steps of the sum of the scenarios' differences."""


@dataclass(frozen=True)
class Differences:
    """Per-scenario paired differences: how many scenarios took each value, and every value one could take."""

    counts: dict[Fraction, int]
    lattice: tuple[Fraction, ...]

    @classmethod
    def of(cls, pairs: Iterable[tuple[int, int, int, int]]) -> Differences:
        """From ``(incumbent passes, incumbent trials, candidate passes, candidate trials)`` per scenario."""
        counts: Counter[Fraction] = Counter()
        shapes = set()
        for inc_passes, inc_trials, cand_passes, cand_trials in pairs:
            counts[Fraction(cand_passes, cand_trials) - Fraction(inc_passes, inc_trials)] += 1
            shapes.add((inc_trials, cand_trials))
        lattice = {Fraction(a, c) - Fraction(b, i) for i, c in shapes for a in range(c + 1) for b in range(i + 1)}
        return cls(dict(counts), tuple(sorted(lattice)))

    @property
    def n(self) -> int:
        """The number of scenarios."""
        return sum(self.counts.values())

    @property
    def mean(self) -> float:
        """The lift: the mean difference."""
        return float(sum(v * c for v, c in self.counts.items()) / self.n)

    @property
    def step(self) -> float:
        """The lattice's spacing: the smallest change of one scenario's difference."""
        return float(min(b - a for a, b in zip(self.lattice, self.lattice[1:], strict=False)))

    @property
    def second_moment(self) -> float:
        """The mean squared difference (with one trial, the share of scenarios where the models disagree)."""
        return float(sum(v * v * c for v, c in self.counts.items()) / self.n)


def restricted_variance(diffs: Differences, delta: float) -> float | None:
    """The variance of one difference under the most likely lattice distribution whose mean is ``delta``.

    The maximiser of the multinomial likelihood subject to the mean puts weight
    ``share / (1 + lam * (v - delta))`` on each observed value; when no such weights reach the
    mean, the rest goes to the lattice's extreme value on the needed side (as in Tango's test,
    where ten tied scenarios still leave room for a regression). None when ``delta`` is not
    strictly inside the lattice's range.
    """
    n = diffs.n
    observed = [(float(v) - delta, c / n) for v, c in diffs.counts.items()]
    ends = [float(v) - delta for v in (diffs.lattice[0], diffs.lattice[-1])]
    if not ends[0] < 0 < ends[1]:
        return None
    low, high = -1 / ends[1], -1 / ends[0]
    seen = {w for w, _ in observed}

    def slope(lam: float) -> float:
        return sum(share * w / (1 + lam * w) for w, share in observed)

    extreme = 0.0
    if ends[1] not in seen and slope(low) <= 0:
        lam, extreme = low, ends[1]
    elif ends[0] not in seen and slope(high) >= 0:
        lam, extreme = high, ends[0]
    else:
        lam = _root(observed, low, high)
    weights = [(w, share / (1 + lam * w)) for w, share in observed]
    rest = max(0.0, 1 - sum(p for _, p in weights))
    return sum(p * w * w for w, p in weights) + rest * extreme * extreme


def _root(observed: Sequence[tuple[float, float]], low: float, high: float) -> float:
    """The zero in (low, high) of the decreasing ``sum(share * w / (1 + lam * w))``, to a float's last bits.

    Newton's steps, kept inside the shrinking bracket by bisection.
    """
    lam = 0.0  # low < 0 < high
    for _ in range(200):
        terms = [(share * w / (1 + lam * w), w / (1 + lam * w)) for w, share in observed]
        value = sum(t for t, _ in terms)
        if value == 0:
            return lam
        low, high = (lam, high) if value > 0 else (low, lam)
        newton = lam + value / sum(t * u for t, u in terms)
        following = newton if low < newton < high else (low + high) / 2
        if following in (low, high) or abs(following - lam) <= 4 * math.ulp(lam or 1.0):
            return following
        lam = following
    return lam


def score_p(diffs: Differences, delta: float) -> float:
    """One-sided p-value of "the lift exceeds ``delta``" by the lattice score test.

    The mean is moved towards ``delta`` by a quarter of the lattice's step per scenario sum (a
    continuity correction): with one trial, the exact size at n = 20..100 is then at most 4.7%
    where the uncorrected test reaches 5.5% (`CONTINUITY`).
    """
    if diffs.n == 0:
        return 1.0
    variance = restricted_variance(diffs, delta)
    if variance is None:  # delta at or beyond an end of the lattice
        return 0.0 if delta <= float(diffs.lattice[0]) and diffs.mean > delta else 1.0
    if variance <= 0:
        return 1.0
    excess = diffs.mean - delta - CONTINUITY * diffs.step / diffs.n
    return 1.0 - NORMAL.cdf(excess * math.sqrt(diffs.n / variance))


def score_interval(diffs: Differences, alpha: float) -> tuple[float, float]:
    """The two-sided (1 - 2·alpha) interval of the lift: every delta the one-sided score test keeps.

    Its low end is the delta where the p-value of "lift > delta" crosses ``alpha``, so the
    test at any threshold rejects exactly when the threshold lies below it.
    """
    if diffs.n == 0:
        return math.nan, math.nan
    lowest, highest, mean = float(diffs.lattice[0]), float(diffs.lattice[-1]), diffs.mean
    low = _crossing(lambda d: score_p(diffs, d) - alpha, lowest, mean)
    high = _crossing(lambda d: alpha - upper_p(diffs, d), mean, highest)
    return low, high


def upper_p(diffs: Differences, delta: float) -> float:
    """The p-value of "the lift is below ``delta``"."""
    mirrored = Differences({-v: c for v, c in diffs.counts.items()}, tuple(sorted(-v for v in diffs.lattice)))
    return score_p(mirrored, -delta)


def _crossing(increasing: Callable[[float], float], low: float, high: float, steps: int = 60) -> float:
    """Where an increasing function crosses zero on [low, high] (an end when it does not), to 2^-steps."""
    if increasing(low) >= 0:
        return low
    if increasing(high) < 0:
        return high
    for _ in range(steps):
        middle = (low + high) / 2
        if increasing(middle) < 0:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def power(n: int, second_moment: float, lift: float, threshold: float = 0.0, alpha: float = 0.05) -> float:
    """The score test's power to find "lift > threshold" in ``n`` scenarios when the true lift is ``lift``.

    ``second_moment`` is the mean squared per-scenario difference (with one trial, the share of
    scenarios where the models disagree); it fixes the spread under the alternative and, with
    the threshold's square taken off, under the null (Connor 1987; Nam 1997).
    """
    if n == 0:
        return 0.0
    spread = max(second_moment - lift * lift, 1e-12)
    null_spread = max(second_moment - threshold * threshold, 1e-12)
    z = (math.sqrt(n) * (lift - threshold) - NORMAL.inv_cdf(1 - alpha) * math.sqrt(null_spread)) / math.sqrt(spread)
    return NORMAL.cdf(z)


def binary_power(n: int, discordance: float, lift: float, threshold: float = 0.0, alpha: float = 0.05) -> float:
    """The score test's exact power with one trial per role, when the true lift is ``lift``.

    Of ``n`` scenarios, D ~ Bin(n, discordance) have outcomes that differ; of those, improvements
    b ~ Bin(D, (discordance + lift) / (2 discordance)); the test rejects from b's critical value
    for D up (found once per n, threshold and alpha by the test itself).
    """
    psi = max(discordance, abs(lift))
    if n == 0 or psi <= 0:
        return 0.0
    share_up = min(1.0, (psi + lift) / (2 * psi))
    return sum(
        weight * _binomial_tail(d, share_up, _critical(n, d, threshold, alpha))
        for d, weight in _binomial_window(n, min(psi, 1.0))
    )


@lru_cache(maxsize=100_000)
def _critical(n: int, discordant: int, threshold: float, alpha: float) -> int:
    """The fewest improvements among ``discordant`` of ``n`` single-trial scenarios the test rejects at."""
    lattice = (Fraction(-1), Fraction(0), Fraction(1))

    def rejects(improved: int) -> bool:
        counts = {Fraction(1): improved, Fraction(-1): discordant - improved, Fraction(0): n - discordant}
        return score_p(Differences({v: c for v, c in counts.items() if c}, lattice), threshold) < alpha

    low, high = 0, discordant + 1  # rejects(high) is taken as true: no b rejects when it stays there
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if rejects(middle) else (middle + 1, high)
    return low


def _binomial_window(n: int, p: float) -> list[tuple[int, float]]:
    """(k, P(K = k)) for K ~ Bin(n, p), over k within ten standard deviations of the mean."""
    reach = 10 * math.sqrt(n * p * (1 - p)) + 2
    ks = range(max(0, math.floor(n * p - reach)), min(n, math.ceil(n * p + reach)) + 1)
    return [(k, _binomial_pmf(k, n, p)) for k in ks]


def _binomial_tail(n: int, p: float, k: int) -> float:
    """P(K >= k) for K ~ Bin(n, p), up to ten standard deviations past the mean, by the pmf's recurrence.

    The terms are summed outwards from the mean (where none underflows), down to ``k`` while they
    still count.
    """
    stop = min(n, math.ceil(max(k, n * p) + 10 * math.sqrt(n * p * (1 - p)) + 2))
    start = max(k, 0)
    if start > stop or p <= 0 or p >= 1:
        return sum(_binomial_pmf(j, n, p) for j in range(start, stop + 1))
    odds = p / (1 - p)
    middle = min(max(round(n * p), start), stop)
    total, term = 0.0, _binomial_pmf(middle, n, p)
    for j in range(middle, stop + 1):  # P(K = j + 1) = P(K = j) (n - j) / (j + 1) · p / (1 - p)
        total += term
        term *= (n - j) / (j + 1) * odds
    term = _binomial_pmf(middle, n, p)
    for j in range(middle, start, -1):  # P(K = j - 1) = P(K = j) j / (n - j + 1) · (1 - p) / p
        term *= j / (n - j + 1) / odds
        if term < total * 1e-18:  # below the mode the terms only shrink
            break
        total += term
    return total


def _binomial_pmf(k: int, n: int, p: float) -> float:
    if p <= 0 or p >= 1:
        return float(k == (n if p >= 1 else 0))
    log = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * math.log(p)
    return math.exp(log + (n - k) * math.log1p(-p))


def detectable_lift(
    n: int,
    second_moment: float,
    threshold: float = 0.0,
    alpha: float = 0.05,
    target: float = 0.8,
    single_trials: bool = False,
) -> float | None:
    """The smallest true lift the score test finds with power ``target`` (prospective, not post hoc).

    With ``single_trials`` (one trial per scenario and role) and up to `EXACT_POWER_SCENARIOS`
    scenarios the power is the test's exact power (`binary_power`); otherwise its normal
    approximation (`power`), within half a point of the exact one from 200 scenarios. With no disagreement
    observed, one disagreeing scenario is assumed, so the answer is never the threshold itself;
    None when no lift up to 1 reaches the power.
    """
    if n == 0:
        return None
    moment = max(second_moment, 1 / n)

    def shortfall(lift: float) -> float:
        if single_trials and n <= EXACT_POWER_SCENARIOS:
            return binary_power(n, moment, lift, threshold, alpha) - target
        return power(n, max(moment, lift * lift), lift, threshold, alpha) - target

    if shortfall(1.0) < 0:
        return None
    return _crossing(shortfall, threshold, 1.0, steps=30)


def clustered_interval(values: Sequence[float], alpha: float = 0.05) -> tuple[float, float]:
    """Two-sided (1 - 2·alpha) interval of a mean over scenarios, with scenario-clustered errors.

    ``values`` are per-scenario means (a pass rate over its trials): trials of one scenario are
    correlated, so the scenario is the unit (Miller 2024). Where the spread is unknown (one
    scenario) or zero, the Wilson interval over scenarios stands in, which never has zero width.
    """
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    spread = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    if spread <= 0:
        return wilson(sum(values), n, 2 * alpha)
    half = NORMAL.inv_cdf(1 - alpha) * math.sqrt(spread / n)
    return max(0.0, mean - half), min(1.0, mean + half)


def wilson(passes: float, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Two-sided (1 - alpha) Wilson interval of a pass rate."""
    if n == 0:
        return math.nan, math.nan
    z = NORMAL.inv_cdf(1 - alpha / 2)
    p = passes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def pass_hat_k(successes: int, trials: int, k: int) -> float | None:
    """Unbiased pass^k: the chance that k trials drawn without replacement all pass."""
    if k > trials or k < 1:
        return None
    return math.comb(successes, k) / math.comb(trials, k)


def pass_at_k(successes: int, trials: int, k: int) -> float | None:
    """Unbiased pass@k: the chance that at least one of k trials drawn without replacement passes."""
    if k > trials or k < 1:
        return None
    return 1.0 - math.comb(trials - successes, k) / math.comb(trials, k)


@dataclass(frozen=True)
class PairedTest:
    """The outcome of one paired comparison."""

    test: str
    lift: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int

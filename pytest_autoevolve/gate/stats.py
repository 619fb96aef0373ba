"""Paired statistics for the gate: exact McNemar, sign-flip permutation, bootstrap, Holm, pass^k.

Pure Python (no numpy), deterministic under a seed. "Lift" is always candidate minus
incumbent, so positive means the candidate is better.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

EXACT_STATES = 200_000
"""The sign-flip test is exact when the grouped sign patterns number at most this many."""


def binomial_tail(successes: int, trials: int) -> float:
    """P(X >= successes) for X ~ Binomial(trials, 1/2)."""
    if successes <= 0:
        return 1.0
    if successes > trials:
        return 0.0
    total: int = sum(math.comb(trials, k) for k in range(successes, trials + 1))
    return float(total / 2**trials)


def mcnemar_exact(improvements: int, regressions: int) -> tuple[float, float]:
    """Exact McNemar on discordant pairs: (one-sided p for "candidate better", two-sided p).

    ``improvements`` are pairs only the candidate passed, ``regressions`` pairs only the
    incumbent passed.
    """
    n = improvements + regressions
    if n == 0:
        return 1.0, 1.0
    one_sided = binomial_tail(improvements, n)
    two_sided = min(1.0, 2 * binomial_tail(max(improvements, regressions), n))
    return one_sided, two_sided


def sign_flip_p(differences: Sequence[float], shift: float = 0.0, resamples: int = 10_000, seed: int = 0) -> float:
    """One-sided p that the mean of ``differences`` exceeds ``shift`` (paired sign-flip permutation test).

    Under the null each centred difference ``d - shift`` is as likely negative as positive.
    Differences are grouped by size (pass-rate differences take few values), so the null
    distribution is computed exactly when the groups allow (`EXACT_STATES`), otherwise
    drawn ``resamples`` times, counting the observed arrangement.
    """
    centred = [d - shift for d in differences]
    groups = sorted(Counter(round(abs(d), 9) for d in centred if abs(d) > 1e-12).items())
    if not groups:
        return 1.0
    observed = round(sum(centred), 9) - 1e-7
    if math.prod(m + 1 for _, m in groups) <= EXACT_STATES:
        distribution = {0.0: 1.0}
        for value, m in groups:
            weights = [math.comb(m, j) / 2**m for j in range(m + 1)]
            spread: dict[float, float] = defaultdict(float)
            for total, chance in distribution.items():
                for j, weight in enumerate(weights):
                    spread[round(total + value * (2 * j - m), 9)] += chance * weight
            distribution = spread
        return min(1.0, sum(chance for total, chance in distribution.items() if total >= observed))
    rng = random.Random(seed)
    hits = 0
    for _ in range(resamples):
        total = sum(value * (2 * rng.getrandbits(m).bit_count() - m) for value, m in groups)
        hits += total >= observed
    return (hits + 1) / (resamples + 1)


def bootstrap_ci(
    differences: Sequence[float], alpha: float = 0.05, resamples: int = 2_000, seed: int = 0
) -> tuple[float, float]:
    """Two-sided (1 - 2·alpha) percentile interval of the mean difference, by paired bootstrap.

    The one-sided test at ``alpha`` rejects exactly when the interval's low end clears the
    threshold, so the interval and the verdict tell the same story.
    """
    n = len(differences)
    if n == 0:
        return math.nan, math.nan
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(differences, k=n)) / n for _ in range(resamples))
    low = means[max(0, math.floor(alpha * resamples))]
    high = means[min(resamples - 1, math.ceil((1 - alpha) * resamples) - 1)]
    return low, high


def paired_difference_ci(improvements: int, regressions: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wald interval (two-sided, level 1 - 2·alpha) of a paired difference of proportions."""
    if n == 0:
        return math.nan, math.nan
    lift = (improvements - regressions) / n
    variance = max(improvements + regressions - (improvements - regressions) ** 2 / n, 0.0) / n**2
    z = NormalDist().inv_cdf(1 - alpha)
    half = z * math.sqrt(variance)
    return max(-1.0, lift - half), min(1.0, lift + half)


def minimum_detectable_lift(n: int, discordance: float, alpha: float = 0.05, power: float = 0.8) -> float | None:
    """The smallest lift a one-sided paired test at ``alpha`` detects with ``power``.

    ``discordance`` is the share of scenarios where the two models disagree (for graded
    scores, the mean absolute difference). With none observed, a floor of one disagreeing
    scenario is assumed, so the answer is never zero.
    """
    if n == 0:
        return None
    share = max(discordance, 1 / n)
    z = NormalDist().inv_cdf(1 - alpha) + NormalDist().inv_cdf(power)
    return min(1.0, z * math.sqrt(share / n))


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

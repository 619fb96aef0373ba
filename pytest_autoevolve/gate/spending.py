"""Lan-DeMets alpha spending: one-sided group-sequential boundaries for a Brownian-motion statistic.

The score S(t) is a standard Brownian motion on information time under H0 and the look statistic
is Z_k = S(t_k) / sqrt(t_k). Crossing probabilities follow the Armitage-McPherson-Rowe recursion:
the sub-density of S on the continuation region is carried from look to look on a Simpson grid
(Jennison & Turnbull, *Group Sequential Methods*, ch. 19), and each boundary is found by bisection.
Pure Python and deterministic.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from functools import lru_cache
from itertools import pairwise
from statistics import NormalDist

TAIL = 8.0
"""The grid of S(t_k) starts this many standard deviations below zero."""
STEP = 0.2
"""Grid spacing as a fraction of the narrowest increment's standard deviation it must resolve."""
MAX_INTERVALS = 4000
"""A cap on Simpson intervals per look (reached only by near-equal fractions)."""
KERNEL_REACH = 8.5
"""Grid points farther than this many increment standard deviations contribute nothing."""
Z_MAX = 38.0
"""Boundaries are searched in [-TAIL, Z_MAX]; the normal tail underflows beyond Z_MAX."""
TOLERANCE = 1e-10
"""Bisection stops when the bracket on the z scale is this narrow."""

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

Grid = tuple[list[float], list[float]]
"""Points of S and Simpson weight times sub-density there: the continuing mass at each point."""


def obrien_fleming_spending(t: float, alpha: float) -> float:
    """Lan-DeMets O'Brien-Fleming-type one-sided spending: alpha(t) = 2 - 2*Phi(z_{1-alpha/2} / sqrt(t))."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"the information fraction must lie in [0, 1], got {t!r}")
    if t == 0.0:
        return 0.0
    if t == 1.0:
        return alpha
    z = NormalDist().inv_cdf(1.0 - alpha / 2.0)
    return math.erfc(z / math.sqrt(2.0 * t))


def boundaries(fractions: Sequence[float], alpha: float) -> list[float]:
    """Upper z boundaries c_1..c_K at information fractions 0 < t_1 < ... < t_K = 1.

    Under H0 the first crossing happens at look k with probability alpha(t_k) - alpha(t_{k-1})
    for the O'Brien-Fleming-type spending function. A look that may spend nothing gets +inf.
    """
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"one-sided alpha must lie in (0, 0.5), got {alpha!r}")
    return list(_boundaries(_checked(fractions), alpha))


def nominal_levels(fractions: Sequence[float], alpha: float) -> list[float]:
    """The one-sided nominal p-value threshold at each look: 1 - Phi(c_k)."""
    return [_upper_tail(c) for c in boundaries(fractions, alpha)]


def _checked(fractions: Sequence[float]) -> tuple[float, ...]:
    """The fractions as a tuple, or ValueError unless strictly increasing in (0, 1] and ending at 1."""
    values = tuple(float(t) for t in fractions)
    if not values:
        raise ValueError("at least one information fraction is needed")
    if not all(0.0 < t <= 1.0 for t in values):
        raise ValueError(f"information fractions must lie in (0, 1], got {list(values)}")
    if any(later <= earlier for earlier, later in pairwise(values)):
        raise ValueError(f"information fractions must be strictly increasing, got {list(values)}")
    if not math.isclose(values[-1], 1.0, rel_tol=0.0, abs_tol=1e-9):
        raise ValueError(f"the last information fraction must be 1, got {values[-1]!r}")
    return (*values[:-1], 1.0)


@lru_cache(maxsize=256)
def _boundaries(fractions: tuple[float, ...], alpha: float) -> tuple[float, ...]:
    """The boundaries for validated fractions, look by look."""
    grid: Grid = ([0.0], [1.0])
    previous_t = previous_spent = 0.0
    result: list[float] = []
    for k, t in enumerate(fractions):
        spent = obrien_fleming_spending(t, alpha)
        increment_sd = math.sqrt(t - previous_t)
        c = _solve(grid, increment_sd, math.sqrt(t), spent - previous_spent)
        result.append(c)
        if k + 1 < len(fractions):
            step = STEP * min(increment_sd, math.sqrt(fractions[k + 1] - t))
            grid = _advance(grid, increment_sd, _simpson_points(c, math.sqrt(t), step))
        previous_t, previous_spent = t, spent
    return tuple(result)


def _upper_tail(x: float) -> float:
    """P(N(0,1) >= x), accurate far in the tail."""
    return 0.5 * math.erfc(x / math.sqrt(2.0))


def _exceedance(grid: Grid, increment_sd: float, b: float) -> float:
    """P(continued to the previous look, then S >= b at this one)."""
    points, masses = grid
    scale = 1.0 / (increment_sd * math.sqrt(2.0))
    return 0.5 * sum(m * math.erfc((b - s) * scale) for s, m in zip(points, masses, strict=True))


def _solve(grid: Grid, increment_sd: float, sd: float, target: float) -> float:
    """The z boundary whose exceedance probability equals target, by bisection."""
    if target <= 0.0:
        return math.inf
    low, high = -TAIL, Z_MAX
    while high - low > TOLERANCE:
        middle = 0.5 * (low + high)
        if _exceedance(grid, increment_sd, middle * sd) > target:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


def _simpson_points(c: float, sd: float, step: float) -> tuple[list[float], list[float]]:
    """Simpson nodes and weights on the continuation region S < c*sd, truncated to +-TAIL*sd."""
    low, high = -TAIL * sd, min(c, TAIL) * sd
    intervals = min(MAX_INTERVALS, 2 * max(1, math.ceil((high - low) / (2.0 * step))))
    h = (high - low) / intervals
    points = [low + i * h for i in range(intervals + 1)]
    weights = [h / 3.0 * (2.0 if i % 2 == 0 else 4.0) for i in range(intervals + 1)]
    weights[0] = weights[-1] = h / 3.0
    return points, weights


def _advance(grid: Grid, increment_sd: float, nodes: tuple[list[float], list[float]]) -> Grid:
    """The continuing mass at the new nodes: the old mass convolved with the increment's density."""
    points, masses = grid
    exponent = -0.5 / increment_sd**2
    reach = KERNEL_REACH * increment_sd
    new_points, weights = nodes
    new_masses: list[float] = []
    for y, w in zip(new_points, weights, strict=True):
        lo, hi = bisect_left(points, y - reach), bisect_right(points, y + reach)
        near = zip(points[lo:hi], masses[lo:hi], strict=True)
        density = sum([m * math.exp(exponent * (y - s) ** 2) for s, m in near])
        new_masses.append(w * density * _INV_SQRT_2PI / increment_sd)
    return new_points, new_masses

"""Lan-DeMets O'Brien-Fleming boundaries against published values and a seeded Brownian motion."""

from __future__ import annotations

import math
import random
from itertools import pairwise
from statistics import NormalDist

import pytest

from pytest_autoevolve.gate import spending

FIVE_LOOKS = [0.2, 0.4, 0.6, 0.8, 1.0]


def crossing_rates(fractions: list[float], cutoffs: list[float], paths: int, seed: int) -> list[float]:
    """Share of standard Brownian paths whose first crossing of Z_k >= c_k is at look k."""
    rng = random.Random(seed)
    first = [0] * len(fractions)
    for _ in range(paths):
        s = previous = 0.0
        for k, (t, c) in enumerate(zip(fractions, cutoffs, strict=True)):
            s += rng.gauss(0.0, math.sqrt(t - previous))
            previous = t
            if s / math.sqrt(t) >= c:
                first[k] += 1
                break
    return [n / paths for n in first]


def test_five_equal_looks_match_the_published_obrien_fleming_boundaries():
    # Jennison & Turnbull / gsDesign sfLDOF, one-sided alpha 0.025
    published = [4.877, 3.357, 2.680, 2.290, 2.031]
    assert spending.boundaries(FIVE_LOOKS, 0.025) == pytest.approx(published, abs=0.01)


def test_boundaries_decrease_and_the_last_sits_above_the_fixed_sample_value():
    cutoffs = spending.boundaries(FIVE_LOOKS, 0.05)
    assert all(later < earlier for earlier, later in pairwise(cutoffs))
    assert NormalDist().inv_cdf(0.95) < cutoffs[-1] < NormalDist().inv_cdf(0.975)


def test_a_single_look_is_the_fixed_sample_test():
    for alpha in (0.01, 0.025, 0.05):
        assert spending.boundaries([1.0], alpha) == pytest.approx([NormalDist().inv_cdf(1 - alpha)], abs=1e-9)
        assert spending.nominal_levels([1.0], alpha) == pytest.approx([alpha], rel=1e-8)


def test_monte_carlo_crossing_rate_under_h0_is_alpha():
    alpha = 0.05
    rates = crossing_rates(FIVE_LOOKS, spending.boundaries(FIVE_LOOKS, alpha), paths=20_000, seed=7)
    assert sum(rates) == pytest.approx(alpha, abs=0.006)


def test_unequal_fractions_spend_what_the_function_allows():
    fractions, alpha = [0.3, 0.55, 1.0], 0.05
    cutoffs = spending.boundaries(fractions, alpha)
    assert len(cutoffs) == 3
    assert cutoffs[0] > cutoffs[1] > cutoffs[2] > NormalDist().inv_cdf(1 - alpha)
    rates = crossing_rates(fractions, cutoffs, paths=20_000, seed=11)
    spent = [spending.obrien_fleming_spending(t, alpha) for t in fractions]
    increments = [later - earlier for earlier, later in pairwise([0.0, *spent])]
    assert rates == pytest.approx(increments, abs=0.005)
    assert sum(rates) == pytest.approx(alpha, abs=0.006)


def test_nominal_levels_are_the_upper_tail_of_the_boundaries():
    cutoffs = spending.boundaries(FIVE_LOOKS, 0.025)
    levels = spending.nominal_levels(FIVE_LOOKS, 0.025)
    assert levels == pytest.approx([1 - NormalDist().cdf(c) for c in cutoffs], rel=1e-6)
    assert levels[0] < 1e-5 < levels[-1] < 0.025


def test_spending_function_endpoints_and_growth():
    alpha = 0.025
    assert spending.obrien_fleming_spending(0.0, alpha) == 0.0
    assert spending.obrien_fleming_spending(1.0, alpha) == alpha
    z = NormalDist().inv_cdf(1 - alpha / 2)
    assert spending.obrien_fleming_spending(0.5, alpha) == pytest.approx(2 - 2 * NormalDist().cdf(z / math.sqrt(0.5)))
    values = [spending.obrien_fleming_spending(t / 20, alpha) for t in range(21)]
    assert values == sorted(values)
    assert values[-2] < alpha


def test_a_look_too_early_to_spend_anything_never_rejects():
    cutoffs = spending.boundaries([1e-4, 1.0], 0.025)
    assert cutoffs[0] == math.inf
    assert cutoffs[1] == pytest.approx(NormalDist().inv_cdf(0.975), abs=1e-6)
    assert spending.nominal_levels([1e-4, 1.0], 0.025)[0] == 0.0


def test_results_are_deterministic_and_the_cache_hands_out_copies():
    first = spending.boundaries((0.25, 0.5, 0.75, 1.0), 0.025)
    first[0] = 0.0
    assert spending.boundaries([0.25, 0.5, 0.75, 1.0], 0.025) != first
    assert spending.boundaries([0.25, 0.5, 0.75, 1.0], 0.025) == spending.boundaries([0.25, 0.5, 0.75, 1.0], 0.025)


@pytest.mark.parametrize(
    "fractions",
    [[], [0.5], [0.5, 0.5, 1.0], [0.6, 0.3, 1.0], [0.0, 1.0], [-0.2, 1.0], [0.5, 1.2], [math.nan, 1.0], [1.0, 1.0]],
)
def test_bad_fractions_raise(fractions):
    with pytest.raises(ValueError):
        spending.boundaries(fractions, 0.025)
    with pytest.raises(ValueError):
        spending.nominal_levels(fractions, 0.025)


@pytest.mark.parametrize("alpha", [0.0, -0.1, 0.5, 1.0, math.nan])
def test_bad_alpha_raises(alpha):
    with pytest.raises(ValueError):
        spending.boundaries(FIVE_LOOKS, alpha)


@pytest.mark.parametrize(("t", "alpha"), [(-0.1, 0.025), (1.1, 0.025), (0.5, 0.0), (0.5, 1.0)])
def test_spending_function_rejects_values_out_of_range(t, alpha):
    with pytest.raises(ValueError):
        spending.obrien_fleming_spending(t, alpha)

"""The gate's statistics against hand-computed numbers."""

from __future__ import annotations

import itertools
import math

import pytest

from pytest_autoevolve.gate import stats


def test_exact_mcnemar_matches_the_binomial_by_hand():
    # b=15 improvements, c=5 regressions: P(X >= 15 | n=20, 1/2) = (C(20,15)+...+C(20,20)) / 2^20
    tail = sum(math.comb(20, k) for k in range(15, 21)) / 2**20
    one_sided, two_sided = stats.mcnemar_exact(15, 5)
    assert one_sided == pytest.approx(tail)
    assert round(one_sided, 4) == 0.0207
    assert round(two_sided, 4) == 0.0414


def test_mcnemar_edge_cases():
    assert stats.mcnemar_exact(0, 0) == (1.0, 1.0)
    assert stats.mcnemar_exact(0, 7)[0] == 1.0
    assert stats.mcnemar_exact(7, 0)[0] == pytest.approx(1 / 128)
    assert stats.mcnemar_exact(5, 5)[1] == 1.0


def test_sign_flip_on_binary_differences_is_mcnemar():
    differences = [1.0] * 15 + [-1.0] * 5 + [0.0] * 40
    assert stats.sign_flip_p(differences) == pytest.approx(stats.mcnemar_exact(15, 5)[0])


def test_sign_flip_exact_by_enumeration():
    differences = [0.5, 1.0, -0.5, 1.0, 0.25]
    observed = sum(differences)
    flips = list(itertools.product([1, -1], repeat=len(differences)))
    expected = sum(sum(s * abs(d) for s, d in zip(signs, differences, strict=True)) >= observed for signs in flips)
    assert stats.sign_flip_p(differences) == pytest.approx(expected / len(flips))


def test_sign_flip_with_a_shift_tests_against_the_margin():
    differences = [0.0] * 50
    assert stats.sign_flip_p(differences) == 1.0
    # no change at all clears a non-inferiority margin of 5 points
    assert stats.sign_flip_p(differences, shift=-0.05) < 0.001


def test_sign_flip_monte_carlo_is_seeded_and_close_to_exact():
    differences = [d + 0.001 * i for i, d in enumerate([1, -1, 0.5, 1, 1, -0.5] * 10)]
    first = stats.sign_flip_p(differences, resamples=4000, seed=3)
    assert first == stats.sign_flip_p(differences, resamples=4000, seed=3)
    assert 0 < first < 0.05


def test_bootstrap_interval_covers_the_mean_and_is_seeded():
    differences = [1.0] * 15 + [-1.0] * 5 + [0.0] * 30
    low, high = stats.bootstrap_ci(differences, seed=1)
    assert low < 0.2 < high
    assert (low, high) == stats.bootstrap_ci(differences, seed=1)
    assert stats.bootstrap_ci([0.0] * 10) == (0.0, 0.0)


def test_paired_difference_interval_by_hand():
    # lift 10/50 = 0.2, variance (20 - 100/50) / 50^2, z(0.95) = 1.6449
    low, high = stats.paired_difference_ci(15, 5, 50, alpha=0.05)
    half = 1.6448536 * math.sqrt((20 - 100 / 50) / 50**2)
    assert low == pytest.approx(0.2 - half, abs=1e-6)
    assert high == pytest.approx(0.2 + half, abs=1e-6)


def test_minimum_detectable_lift_by_hand():
    # (z 0.95 + z 0.80) * sqrt(0.1 / 240) = (1.6449 + 0.8416) * 0.020412
    assert stats.minimum_detectable_lift(240, 0.1) == pytest.approx(2.4865 * math.sqrt(0.1 / 240), rel=1e-3)
    assert stats.minimum_detectable_lift(0, 0.1) is None
    assert stats.minimum_detectable_lift(100, 0.0) > 0


def test_holm_by_hand():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])


def test_pass_hat_k_and_pass_at_k_are_unbiased_estimators():
    # 2 of 3 trials passed: pass^2 = C(2,2)/C(3,2) = 1/3; pass@2 = 1 - C(1,2)/C(3,2) = 1
    assert stats.pass_hat_k(2, 3, 2) == pytest.approx(1 / 3)
    assert stats.pass_at_k(2, 3, 2) == 1.0
    assert stats.pass_at_k(1, 3, 2) == pytest.approx(2 / 3)
    assert stats.pass_hat_k(5, 5, 3) == 1.0
    assert stats.pass_hat_k(1, 1, 2) is None

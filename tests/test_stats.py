"""The gate's statistics against hand-computed numbers."""

from __future__ import annotations

import math
import random
from fractions import Fraction
from statistics import NormalDist

import pytest

from pytest_autoevolve.gate import stats


def _differences(improved: int, regressed: int, n: int) -> stats.Differences:
    """Single-trial scenarios: ``improved`` only the candidate passed, ``regressed`` only the incumbent."""
    ties = n - improved - regressed
    return stats.Differences.of([(0, 1, 1, 1)] * improved + [(1, 1, 0, 1)] * regressed + [(1, 1, 1, 1)] * ties)


def _tango_p(improved: int, regressed: int, n: int, delta: float) -> float:
    """Tango's (1998) test by direct maximisation: the restricted MLE of P(regressed) on a fine grid."""
    ties = n - improved - regressed

    def loglik(q: float) -> float:
        terms = ((improved, q + delta), (regressed, q), (ties, 1 - 2 * q - delta))
        return sum(k * math.log(p) for k, p in terms if k)

    low, high = max(0.0, -delta), (1 - delta) / 2
    grid = [low + (high - low) * (i + 0.5) / 200_000 for i in range(200_000)]
    q = max(grid, key=loglik)
    variance = 2 * q + delta - delta * delta
    z = ((improved - regressed - 0.25) / n - delta) * math.sqrt(n / variance)
    return 1 - NormalDist().cdf(z)


@pytest.mark.parametrize(
    ("improved", "regressed", "n", "delta"), [(5, 2, 20, -0.05), (12, 4, 50, 0.02), (30, 29, 100, -0.1)]
)
def test_one_trial_score_test_is_tangos(improved, regressed, n, delta):
    assert stats.score_p(_differences(improved, regressed, n), delta) == pytest.approx(
        _tango_p(improved, regressed, n, delta), abs=2e-4
    )


def test_at_zero_the_score_test_is_mcnemars_z():
    # (b - c - 1/4) / sqrt(b + c) with b = 15, c = 5: a quarter-step continuity correction
    assert stats.score_p(_differences(15, 5, 60), 0.0) == pytest.approx(1 - NormalDist().cdf(9.75 / math.sqrt(20)))
    assert stats.score_p(_differences(0, 0, 30), 0.0) == 1.0


def test_tied_scenarios_are_no_evidence_of_non_inferiority():
    # a sign-flip centred at -margin passed ten ties with p = 0.00098; the score test keeps room for a regression
    assert stats.score_p(_differences(0, 0, 10), -0.05) > 0.2


def test_repeats_use_the_lattice_of_their_pass_rates():
    diffs = stats.Differences.of([(1, 3, 2, 3)] * 600)
    assert diffs.lattice == tuple(Fraction(k, 3) for k in range(-3, 4))
    assert diffs.mean == pytest.approx(1 / 3)
    assert stats.score_p(diffs, 0.0) < 1e-12
    assert stats.score_p(diffs, 0.4) > 0.5


@pytest.mark.parametrize("seed", range(8))
def test_the_interval_is_the_inversion_of_the_test(seed):
    rng = random.Random(seed)
    repeats = rng.choice([1, 3, 5])
    pairs = [(rng.randint(0, repeats), repeats, rng.randint(0, repeats), repeats) for _ in range(rng.randint(5, 80))]
    diffs = stats.Differences.of(pairs)
    low, high = stats.score_interval(diffs, 0.05)
    assert low <= diffs.mean <= high
    for delta in (low - 1e-3, low + 1e-3, rng.uniform(-0.5, 0.5)):
        assert (stats.score_p(diffs, delta) < 0.05) == (delta < low)


def test_power_at_the_detectable_lift_is_the_target():
    lift = stats.detectable_lift(200, 0.3, alpha=0.05)
    assert lift is not None and 0 < lift < 0.3
    assert stats.power(200, 0.3, lift) == pytest.approx(0.8, abs=1e-6)
    assert stats.detectable_lift(800, 0.3) < lift
    assert stats.detectable_lift(0, 0.3) is None
    assert stats.detectable_lift(100, 0.0) > 0


def test_clustered_interval_by_hand():
    # four scenarios' rates: mean 0.55, sample variance 0.35 / 3, z(0.95) = 1.6449
    low, high = stats.clustered_interval([0.2, 0.4, 1.0, 0.6], alpha=0.05)
    half = NormalDist().inv_cdf(0.95) * math.sqrt(0.35 / 3 / 4)
    assert (low, high) == pytest.approx((0.55 - half, 0.55 + half))
    assert stats.clustered_interval([1.0] * 5) == stats.wilson(5, 5, 0.1)
    assert stats.clustered_interval([1.0] * 5)[0] < 1


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


@pytest.mark.parametrize("n", [20, 50])
def test_exact_size_with_one_trial_is_at_most_alpha(n):
    # every (improved, regressed) outcome weighed by its multinomial chance under a true lift of delta
    for delta in (0.0, -0.05):
        rejected = [
            (b, c) for b in range(n + 1) for c in range(n + 1 - b) if stats.score_p(_differences(b, c, n), delta) < 0.05
        ]
        for discordance in (0.1, 0.2, 0.3, 0.5, 0.7):
            up, down = (discordance + delta) / 2, (discordance - delta) / 2
            size = sum(
                math.factorial(n)
                / (math.factorial(b) * math.factorial(c) * math.factorial(n - b - c))
                * up**b
                * down**c
                * (1 - discordance) ** (n - b - c)
                for b, c in rejected
            )
            assert size <= 0.05, (delta, discordance, size)


@pytest.mark.parametrize(("n", "discordance"), [(20, 0.3), (60, 0.2)])
def test_exact_power_at_the_detectable_lift_is_what_a_simulation_finds(n, discordance):
    lift = stats.detectable_lift(n, discordance, single_trials=True)
    assert stats.binary_power(n, discordance, lift) == pytest.approx(0.8, abs=1e-3)
    rng, passes, catalogs = random.Random(7), 0, 2000
    for _ in range(catalogs):
        draws = [rng.random() for _ in range(n)]
        improved = sum(u < (discordance + lift) / 2 for u in draws)
        regressed = sum((discordance + lift) / 2 <= u < discordance for u in draws)
        passes += stats.score_p(_differences(improved, regressed, n), 0.0) < 0.05
    assert abs(passes / catalogs - 0.8) < 0.03  # three Monte Carlo standard errors

"""The gate's decisions on constructed results, and its error rates on simulated catalogs."""

from __future__ import annotations

import math
import random

import pytest

from pytest_autoevolve.gate.decide import decide
from pytest_autoevolve.gate.results import ItemResult
from pytest_autoevolve.settings import GateConfig, GateConfigError


def items(incumbent: list[int], candidate: list[int], trials: int = 1, **extra) -> list[ItemResult]:
    """Results for scenarios s0..sN: passes per scenario for each role."""
    made = []
    for role, passes in (("incumbent", incumbent), ("candidate", candidate)):
        for index, count in enumerate(passes):
            made.append(ItemResult(f"s{index}", role, trials, count, latencies=[0.01] * trials, **extra))
    return made


def test_clear_improvement_passes_with_the_score_test():
    result = decide(items([1] * 20 + [0] * 20 + [1] * 5, [1] * 20 + [1] * 20 + [0] * 5), GateConfig())
    assert result.verdict == "pass"
    assert result.test.test == "score"
    assert result.test.lift == pytest.approx(15 / 45)
    assert len(result.improvements) == 20 and len(result.regressions) == 5
    assert result.test.p_value < 0.01


def test_equal_models_do_not_pass():
    result = decide(items([1, 0] * 20, [1, 0] * 20), GateConfig())
    assert result.verdict == "fail"
    assert result.test.p_value == 1.0
    assert "does not clear superiority" in result.reasons[0]


def test_nothing_paired_is_inconclusive():
    only_incumbent = [i for i in items([1] * 20, [1] * 20) if i.role == "incumbent"]
    assert decide(only_incumbent, GateConfig()).verdict == "inconclusive"
    assert decide([], GateConfig()).verdict == "inconclusive"


def test_too_few_pairs_and_all_errors_are_inconclusive():
    assert decide(items([0] * 5, [1] * 5), GateConfig()).verdict == "inconclusive"
    erroring = items([1] * 30, [0] * 30)
    for item in erroring:
        if item.role == "candidate":
            item.errors = item.trials
    result = decide(erroring, GateConfig())
    assert result.verdict == "inconclusive"
    assert "every candidate trial errored" in result.reasons[0]


def test_critical_regression_fails_whatever_the_average():
    results = items([0] * 30 + [1], [1] * 30 + [0])
    for item in results:
        item.critical = item.scenario == "s30"
    result = decide(results, GateConfig())
    assert result.verdict == "fail"
    assert result.critical_regressions == ["s30"]
    assert result.test.p_value < 0.001


def test_error_rate_guardrail():
    results = items([0] * 30, [1] * 25 + [0] * 5)
    for item in results:
        if item.role == "candidate" and item.scenario in {"s25", "s26", "s27", "s28", "s29"}:
            item.errors = 1
    result = decide(results, GateConfig())
    assert result.verdict == "fail"
    assert any("error_rate" in reason for reason in result.reasons)


def test_latency_guardrail():
    results = items([0] * 30, [1] * 30)
    for item in results:
        if item.role == "candidate":
            item.latencies = [2.0]
    assert decide(results, GateConfig()).verdict == "fail"
    assert decide(results, GateConfig(max_latency_increase=None)).verdict == "pass"


def test_non_inferiority_passes_an_equal_candidate_and_fails_a_worse_one():
    config = GateConfig(mode="non_inferiority", margin=0.05)
    assert decide(items([1, 0] * 100, [1, 0] * 100), config).verdict == "pass"
    worse = decide(items([1] * 200, [1] * 170 + [0] * 30), config)
    assert worse.verdict == "fail"


def test_min_lift_is_required_beside_significance():
    results = items([0] * 200, [1] * 30 + [0] * 170)
    assert decide(results, GateConfig()).verdict == "pass"
    assert decide(results, GateConfig(min_lift=0.2)).verdict == "fail"


def test_repeats_use_the_lattice_score_test_and_stability():
    results = items([1] * 15 + [2] * 15, [3] * 30, trials=3)
    result = decide(results, GateConfig())
    assert result.test.test == "score"
    assert result.verdict == "pass"
    row = result.scenarios[0]
    assert row["incumbent"]["stability"] == "flaky" and row["candidate"]["stability"] == "stable-pass"
    assert row["incumbent"]["pass^2"] == 0.0 and row["incumbent"]["pass@2"] == pytest.approx(2 / 3)


def test_categories_get_holm_adjusted_p_values():
    results = items([0] * 40, [1] * 20 + [0] * 20)
    for item in results:
        item.category = "a" if int(item.scenario[1:]) < 20 else "b"
    categories = {row["category"]: row for row in decide(results, GateConfig()).categories}
    assert categories["a"]["p_holm"] == pytest.approx(min(1.0, 2 * categories["a"]["p_value"]))
    assert categories["b"]["lift"] == 0.0
    assert categories["a"]["candidate_ci"][0] > 0.8


def test_train_split_never_gates():
    results = items([0] * 30, [1] * 30, split="train")
    assert decide(results, GateConfig()).verdict == "inconclusive"


def test_bad_gate_settings_are_refused():
    with pytest.raises(GateConfigError, match="unknown gate setting"):
        GateConfig.from_mapping({"alfa": 0.1})
    with pytest.raises(GateConfigError, match="mode"):
        GateConfig.from_mapping({"mode": "better"})


def simulate(catalogs: int, scenarios: int, lift: float, seed: int) -> tuple[float, float]:
    """Share of catalogs where the gate passes, and where a naive mean comparison would."""
    rng = random.Random(seed)
    config = GateConfig(min_paired=10)
    gate_passes = naive_passes = 0
    for _ in range(catalogs):
        difficulty = [rng.uniform(0.2, 0.8) for _ in range(scenarios)]
        incumbent = [int(rng.random() < p) for p in difficulty]
        candidate = [int(rng.random() < min(1.0, p + lift)) for p in difficulty]
        gate_passes += decide(items(incumbent, candidate), config).verdict == "pass"
        naive_passes += sum(candidate) > sum(incumbent)
    return gate_passes / catalogs, naive_passes / catalogs


def test_equal_models_pass_at_most_alpha_of_the_time_where_a_naive_gate_passes_half():
    gate_rate, naive_rate = simulate(catalogs=1000, scenarios=200, lift=0.0, seed=11)
    assert gate_rate <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / 1000)  # alpha, within two Monte Carlo errors
    assert 0.4 <= naive_rate <= 0.6


def test_a_true_ten_point_lift_on_200_scenarios_passes_most_of_the_time():
    gate_rate, _ = simulate(catalogs=300, scenarios=200, lift=0.10, seed=12)
    assert gate_rate >= 0.6  # about 0.69 with these difficulties: "most of the time"

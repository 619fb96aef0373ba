"""Fuzzing with Hypothesis: whatever a scenario file or an agent throws at the plugin ends as a clear error."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_autoevolve.catalog.loader import SCENARIO_KEYS, load_file
from pytest_autoevolve.errors import ScenarioError
from pytest_autoevolve.gate.decide import decide, invalid
from pytest_autoevolve.gate.results import ItemResult
from pytest_autoevolve.graders.builtin import default_registry
from pytest_autoevolve.providers.base import ModelRequest, Reply, reply_from
from pytest_autoevolve.records import NamedCheck, Scenario
from pytest_autoevolve.run.runner import ModelHandle
from pytest_autoevolve.settings import GateConfig, GateConfigError

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["{{x}}", "q-{{n}}", "python:nowhere:fn", "^(a|a)+$", "eval", "train", "1.50", "0x1F"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(SCENARIO_KEYS), st.text(max_size=8)), inner, max_size=5),
    ),
    max_leaves=20,
)
entries = st.dictionaries(st.sampled_from(SCENARIO_KEYS), values, max_size=8)
documents = st.one_of(
    st.fixed_dictionaries({"scenarios": st.lists(entries, max_size=3)}, optional={"defaults": entries}),
    values,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=documents)
def test_any_scenario_file_loads_or_is_a_scenario_error(tmp_path: Path, document: Any) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    try:
        scenarios = load_file(path, default_registry(), "scenarios/fuzz.yaml")
    except ScenarioError as exc:
        assert str(exc).startswith("scenarios/fuzz.yaml")
    else:
        assert all(isinstance(s, Scenario) and s.messages for s in scenarios)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=300))
def test_any_text_as_a_scenario_file_loads_or_is_a_scenario_error(tmp_path_factory: Any, text: str) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    with contextlib.suppress(ScenarioError):
        load_file(path, default_registry(), "scenarios/fuzz.yaml")


class Returns:
    """A model whose reply is whatever the test hands it (an agent's return value, unchecked)."""

    spec = "python:fuzz:agent"

    def __init__(self, value: Any) -> None:
        self.value = value

    def generate(self, request: ModelRequest) -> Reply:
        return reply_from(self.value, self.spec)


returns = st.one_of(
    values,
    st.fixed_dictionaries(
        {"output": st.one_of(st.text(max_size=20), values)},
        optional={
            "usage": st.one_of(values, st.dictionaries(st.sampled_from(["prompt_tokens", "total_tokens"]), values)),
            "cost": values,
            "turns": values,
            "tool_calls": st.one_of(values, st.lists(st.dictionaries(st.sampled_from(["name", "arguments"]), values))),
            "messages": values,
        },
    ),
)
SCENARIO = Scenario(
    id="q",
    messages=({"role": "user", "content": "hi"},),
    graders=tuple(
        NamedCheck(name, value, default_registry().build(name, value, Path(".")))
        for name, value in (("contains", "a"), ("max_tokens", 10), ("max_cost", 1.0), ("tool_called", "x"))
    ),
    path="scenarios/fuzz.yaml",
)


@settings(max_examples=300, deadline=None)
@given(value=returns)
def test_any_agent_return_is_a_graded_trial_or_a_recorded_error(value: Any) -> None:
    trajectory = ModelHandle(role="candidate", model=Returns(value)).run(SCENARIO)
    if trajectory.error is None:
        assert isinstance(trajectory.output, str) and len(trajectory.grades) == 4
    else:
        assert trajectory.error.startswith("TypeError: python:fuzz:agent returned")
        assert trajectory.passed is False


counts = st.one_of(st.integers(-2, 12), st.floats(allow_nan=True), st.booleans(), st.none())
results = st.builds(
    ItemResult,
    scenario=st.sampled_from([f"s{n}" for n in range(14)]),
    role=st.sampled_from(["incumbent", "candidate"]),
    trials=counts,
    passes=counts,
    errors=st.one_of(st.just(0), counts),
    critical=st.booleans(),
    latencies=st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=2),
    cost=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
)


def valid(item: ItemResult) -> bool:
    return invalid(item) is None


@settings(max_examples=400, deadline=None)
@given(items=st.lists(results, max_size=30), mode=st.sampled_from(["superiority", "non_inferiority"]))
def test_no_nan_or_broken_count_reaches_a_pass(items: list[ItemResult], mode: str) -> None:
    result = decide(items, GateConfig(mode=mode, min_paired=1))
    assert result.verdict in ("pass", "fail", "inconclusive")
    if not all(valid(item) for item in items):
        assert result.verdict == "inconclusive" and result.reasons[0].startswith("results that are not counts")
    if result.verdict == "pass":
        assert result.test is not None and math.isfinite(result.test.p_value) and math.isfinite(result.test.lift)


@pytest.mark.parametrize(
    "gate",
    [{"margin": -0.5}, {"margin": float("nan")}, {"alpha": float("nan")}, {"min_lift": "a lot"}, {"k": 0}],
)
def test_gate_settings_that_would_loosen_the_rule_are_refused(gate: dict[str, Any]) -> None:
    with pytest.raises(GateConfigError):
        GateConfig.from_mapping(gate)

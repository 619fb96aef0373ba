"""Graders over what an agent did: `tool_called`, and the turn, latency, token and cost limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_autoevolve.graders.builtin import BUILTIN_GRADERS, default_registry
from pytest_autoevolve.records import Scenario, Trajectory
from tests.support.runs import read_run

SCENARIO = Scenario(id="s", messages=({"role": "user", "content": "hi"},), graders=(), path="s.yaml")
CALLS = [
    {
        "id": "c1",
        "name": "get_weather",
        "arguments": {"city": "Paris", "unit": "C", "where": {"lat": 48.9, "lon": 2.3}},
        "result": {"sky": "sunny"},
        "error": None,
        "turn": 1,
    },
    {"id": "c2", "name": "add", "arguments": {"a": 2, "b": 3}, "result": 5, "error": None, "turn": 2},
    {"id": "c3", "name": "add", "arguments": {"a": 1, "b": True}, "result": None, "error": "TypeError: x", "turn": 2},
    {"id": "c4", "name": "broken", "arguments": "{not json", "result": None, "error": "JSONDecodeError", "turn": 3},
]


def trajectory(**fields: Any) -> Trajectory:
    values: dict[str, Any] = {
        "scenario_id": "s",
        "role": "candidate",
        "model": "m",
        "messages": [],
        "seed": 0,
        "repeat": 0,
        **fields,
    }
    return Trajectory(**values)


def grade(name: str, value: Any, **fields: Any) -> tuple[bool, str, str]:
    check = default_registry().build(name, value, Path("."))
    result = check("output", trajectory(**fields), SCENARIO)
    return result.passed, result.grader, result.reason


def test_new_graders_are_builtin():
    assert {"tool_called", "max_turns", "max_latency_s", "max_tokens", "max_cost"} <= set(BUILTIN_GRADERS)


@pytest.mark.parametrize(
    ("value", "passed"),
    [
        ("get_weather", True),
        ("add", True),
        ("broken", True),  # called, even though its arguments were bad
        ("send_email", False),
        ({"name": "get_weather"}, True),
        ({"name": "get_weather", "arguments": {"city": "Paris"}}, True),
        ({"name": "get_weather", "arguments": {"city": "Paris", "unit": "C"}}, True),
        ({"name": "get_weather", "arguments": {"city": "paris"}}, False),
        ({"name": "get_weather", "arguments": {"country": "FR"}}, False),
        ({"name": "get_weather", "arguments": {"where": {"lat": 48.9}}}, True),  # nested subset
        ({"name": "get_weather", "arguments": {"where": {"lat": 40}}}, False),
        ({"name": "add", "arguments": {"a": 2}}, True),
        ({"name": "add", "arguments": {"a": 2.0, "b": 3}}, True),
        ({"name": "add", "arguments": {"a": 1, "b": 3}}, False),  # a=1 and b=3 never in one call
        ({"name": "add", "arguments": {"b": 1}}, False),  # True is not 1
        ({"name": "add", "arguments": {}}, True),
        ({"name": "broken", "arguments": {"x": 1}}, False),
    ],
)
def test_tool_called(value, passed):
    assert grade("tool_called", value, tool_calls=CALLS)[0] is passed


def test_tool_called_reasons():
    missing = "'send_email' was not called; calls made: add, broken, get_weather"
    assert grade("tool_called", "send_email", tool_calls=CALLS) == (False, "tool_called:send_email", missing)
    none = "'add' was not called; calls made: none"
    assert grade("tool_called", "add", tool_calls=[]) == (False, "tool_called:add", none)
    assert grade("tool_called", "add", tool_calls=CALLS)[2] == "'add' was called 2 time(s)"
    _, _, reason = grade("tool_called", {"name": "add", "arguments": {"a": 9}}, tool_calls=CALLS)
    assert reason == ('\'add\' was never called with {"a": 9}; calls had {"a": 2, "b": 3}; {"a": 1, "b": true}')


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (3, "'tool_called' takes a tool name"),
        ("", "'tool_called' takes a tool name"),
        ({"arguments": {"a": 1}}, "got keys arguments"),
        ({"name": "add", "args": {"a": 1}}, "got keys name, args"),
        ({"name": "add", "arguments": [1]}, "'arguments' is list"),
        ({"name": 5}, "got 5"),
    ],
)
def test_tool_called_bad_values(value, message):
    with pytest.raises(ValueError, match="takes a tool name") as caught:
        default_registry().build("tool_called", value, Path("."))
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value", "fields", "passed", "reason"),
    [
        ("max_turns", 3, {"turns": 3}, True, "turns 3 <= 3"),
        ("max_turns", 2, {"turns": 3}, False, "turns 3 > 2"),
        ("max_latency_s", 1.5, {"latency_s": 0.25}, True, "latency (s) 0.25 <= 1.5"),
        ("max_latency_s", 0.2, {"latency_s": 0.25}, False, "latency (s) 0.25 > 0.2"),
        ("max_tokens", 100, {"prompt_tokens": 60, "completion_tokens": 40}, True, "total tokens 100 <= 100"),
        ("max_tokens", 99, {"prompt_tokens": 60, "completion_tokens": 40}, False, "total tokens 100 > 99"),
        ("max_tokens", 99, {}, False, "no total tokens recorded: the model reported no token usage"),
        ("max_cost", 0.01, {"cost": 0.0075}, True, "cost (USD) 0.0075 <= 0.01"),
        ("max_cost", 0.005, {"cost": 0.0075}, False, "cost (USD) 0.0075 > 0.005"),
        ("max_cost", 1, {}, False, "no cost (USD) recorded: the model has no prices (set 'prices' on it)"),
    ],
)
def test_limits(name, value, fields, passed, reason):
    assert grade(name, value, **fields) == (passed, name, reason)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("max_turns", 2.5, "'max_turns' takes a whole number of at least 0, got float 2.5"),
        ("max_turns", True, "'max_turns' takes a whole number of at least 0, got bool True"),
        ("max_tokens", "100", "'max_tokens' takes a whole number of at least 0, got str '100'"),
        ("max_tokens", -1, "'max_tokens' takes a whole number of at least 0, got -1"),
        ("max_latency_s", "1s", "'max_latency_s' takes a number of at least 0, got str '1s'"),
        ("max_cost", -0.5, "'max_cost' takes a number of at least 0, got -0.5"),
        ("max_cost", None, "'max_cost' takes a number of at least 0, got NoneType None"),
    ],
)
def test_limit_bad_values(name, value, message):
    with pytest.raises(ValueError) as caught:
        default_registry().build(name, value, Path("."))
    assert str(caught.value) == message


def test_limits_in_a_catalog_decide(pytester, write_scenarios, agents):
    write_scenarios("""
        scenarios:
          - id: within
            input: "46"
            expected: "46"
            expect:
              - max_tokens: 4
              - max_turns: 1
              - max_latency_s: 30
          - id: over
            input: "46"
            expected: "46"
            expect:
              - max_tokens: 3
    """)
    write_scenarios("scenarios:\n  - id: bad\n    input: x\n    expect:\n      - max_turns: many\n", "broken")
    model = "python:toyagents:answer"
    options = ["--autoevolve-incumbent", model, "--autoevolve-candidate", model, "--continue-on-collection-errors"]
    result = pytester.runpytest("--autoevolve", *options)
    result.stdout.fnmatch_lines(["*scenario 'bad'*key 'expect[[]0[]].max_turns'*takes a whole number*"])
    trajectories, _ = read_run(pytester.path)
    verdicts = {(t["scenario_id"], t["role"]): t["passed"] for t in trajectories}
    assert verdicts == {
        ("within", "incumbent"): True,
        ("within", "candidate"): True,
        ("over", "incumbent"): False,
        ("over", "candidate"): False,
    }
    over = next(t for t in trajectories if t["scenario_id"] == "over")
    assert [(g["grader"], g["passed"]) for g in over["grades"]] == [("equals", True), ("max_tokens", False)]

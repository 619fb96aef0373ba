"""Trajectory matching: `tool_sequence` in its four modes with argument matchers, and `tool_not_called`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_autoevolve.catalog.loader import load_file
from pytest_autoevolve.errors import ScenarioError
from pytest_autoevolve.graders.builtin import default_registry
from pytest_autoevolve.records import Scenario, Trajectory

SEARCH = {"name": "search", "arguments": {"query": "capital of France", "limit": 3}}
WEATHER = {"name": "weather", "arguments": json.dumps({"city": "Paris"})}  # the OpenAI wire format
ANSWER = {"name": "answer", "arguments": {"text": "Paris"}}


def grade(spec: dict[str, Any], calls: list[dict[str, Any]]) -> bool:
    check = default_registry().build(*next(iter(spec.items())), Path("."))
    trajectory = Trajectory("q", "candidate", "m", [], 0, 0, tool_calls=calls)
    scenario = Scenario("q", ({"role": "user", "content": "q"},), (), "x.yaml")
    return check("Paris", trajectory, scenario).passed


EXPECTED = [
    {"name": "search", "arguments": {"query": {"regex": "(?i)france"}}},
    {"name": "weather", "arguments": {"city": {"contains": "Par"}}},
    "answer",
]


@pytest.mark.parametrize(
    ("mode", "calls", "passed"),
    [
        ("strict", [SEARCH, WEATHER, ANSWER], True),
        ("strict", [WEATHER, SEARCH, ANSWER], False),
        ("strict", [SEARCH, WEATHER], False),
        ("unordered", [WEATHER, ANSWER, SEARCH], True),
        ("unordered", [WEATHER, ANSWER, SEARCH, ANSWER], False),
        ("superset", [ANSWER, SEARCH, {"name": "log"}, WEATHER], True),
        ("superset", [SEARCH, ANSWER], False),
        ("subset", [SEARCH, ANSWER], True),
        ("subset", [SEARCH, {"name": "delete_all"}], False),
    ],
)
def test_tool_sequence_modes(mode, calls, passed):
    assert grade({"tool_sequence": {"calls": EXPECTED, "mode": mode}}, calls) is passed


def test_argument_matchers():
    calls = [SEARCH]
    assert grade({"tool_sequence": {"calls": [{"name": "search", "arguments": {"limit": {"any": True}}}]}}, calls)
    assert grade({"tool_sequence": {"calls": [{"name": "search", "arguments": {"limit": 3}}]}}, calls)
    assert not grade({"tool_sequence": {"calls": [{"name": "search", "arguments": {"limit": 4}}]}}, calls)
    assert not grade({"tool_sequence": {"calls": [{"name": "search", "arguments": {"page": {"any": True}}}]}}, calls)
    assert not grade(
        {"tool_sequence": {"calls": [{"name": "search", "arguments": {"query": {"regex": "^Berlin"}}}]}}, calls
    )


def test_tool_not_called():
    assert grade({"tool_not_called": "delete_all"}, [SEARCH, ANSWER])
    assert not grade({"tool_not_called": "search"}, [SEARCH, ANSWER])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{calls: [search], mode: loose}", "mode is one of strict, unordered, subset, superset, got 'loose'"),
        ("{calls: search}", "takes {calls: [{name, arguments}]"),
        ("{calls: [{name: s, arguments: {q: {regex: '('}}}]}", "is not a valid regular expression"),
        ("{calls: [{name: s, arguments: {q: {any: false}}}]}", "the matcher is written {any: true}"),
        ("{calls: [{tool: s}]}", "calls[0] is a tool name or {name, arguments}"),
    ],
)
def test_bad_tool_sequences_are_catalog_errors(tmp_path, value, message):
    path = tmp_path / "demo.yaml"
    path.write_text(f"scenarios:\n  - id: q\n    input: hi\n    expect:\n      - tool_sequence: {value}\n", "utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_file(path, default_registry(), "scenarios/demo.yaml")
    assert "scenario 'q'" in str(caught.value) and "tool_sequence" in str(caught.value)
    assert message in str(caught.value)

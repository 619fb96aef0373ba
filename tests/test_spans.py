"""OpenTelemetry capture: an instrumented agent's GenAI spans become its trajectory's tool calls, usage and turns."""

from __future__ import annotations

import pytest

from pytest_autoevolve.providers.base import Reply
from pytest_autoevolve.run.spans import merged, tool_call
from tests.support.runs import read_jsonl, read_run, run_dirs, run_models

pytest.importorskip("opentelemetry.sdk")

AGENT = r"""
import asyncio
import json

from opentelemetry import trace

tracer = trace.get_tracer("weather-agent")


def _chat(prompt, completion):
    with tracer.start_as_current_span("chat fake-model") as span:
        span.set_attribute("gen_ai.operation.name", "chat")
        span.set_attribute("gen_ai.request.model", "fake-model")
        span.set_attribute("gen_ai.usage.input_tokens", prompt)
        span.set_attribute("gen_ai.usage.output_tokens", completion)


def _weather(city):
    with tracer.start_as_current_span("execute_tool get_weather") as span:
        span.set_attribute("gen_ai.operation.name", "execute_tool")
        span.set_attribute("gen_ai.tool.name", "get_weather")
        span.set_attribute("gen_ai.tool.call.arguments", json.dumps({"city": city}))
        span.set_attribute("gen_ai.tool.call.result", "sunny")
        return "sunny"


def _city(messages):
    return messages[-1]["content"].split()[-1].rstrip("?")


async def agent(messages):
    city = _city(messages)
    with tracer.start_as_current_span("invoke_agent weather"):
        _chat(10, 2)
        await asyncio.sleep(0.01)  # other trials run meanwhile on the shared loop
        weather = _weather(city)
        _chat(20 + len(city), 5)
    return f"{weather} in {city}"


def guesser(messages):
    _chat(10, 2)
    return f"probably sunny in {_city(messages)}"


def explicit(messages):
    _weather(_city(messages))
    _chat(10, 2)
    usage = {"prompt_tokens": 1, "completion_tokens": 1}
    return {"output": "sunny", "tool_calls": [{"name": "lookup"}], "usage": usage}
"""

CITIES = ["Paris", "Rome", "Oslo", "Lima", "Quito", "Hanoi", "Cairo", "Delhi", "Tokyo", "Seoul", "Dakar", "Bern"]
CATALOG = """
defaults: {timeout_s: 30}
scenarios:
  - id: weather-{{city}}
    input: "weather in {{city}}?"
    expect:
      - tool_called: {name: get_weather, arguments: {city: "{{city}}"}}
      - max_tokens: 60
      - max_turns: 2
    vars: {city: [CITIES]}
""".replace("CITIES", ", ".join(CITIES))


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    (pytester.path / "scenarios").mkdir()
    (pytester.path / "scenarios" / "weather.yaml").write_text(CATALOG, encoding="utf-8")
    pytester.makepyfile(otel_agent=AGENT)
    pytester.syspathinsert()
    return pytester


def outcome(trajectories):
    """What graders saw of each trial, by scenario and role."""
    return sorted(
        (
            t["scenario_id"],
            t["role"],
            t["passed"],
            t["tool_calls"],
            t["prompt_tokens"],
            t["completion_tokens"],
            t["turns"],
        )
        for t in trajectories
    )


def test_spans_are_the_trajectory_and_the_gate_reads_them(project):
    result = run_models(project, model="python:otel_agent:guesser", candidate="python:otel_agent:agent")
    result.stdout.fnmatch_lines(["*autoevolve gate: PASS*"])
    trajectories, summary = read_run(project.path)
    assert summary["verdict"] == "pass"
    for trial in trajectories:
        city = trial["scenario_id"].removeprefix("weather-")
        if trial["role"] == "incumbent":
            assert not trial["passed"] and trial["tool_calls"] == [] and trial["turns"] == 1
            continue
        assert trial["passed"]
        assert trial["tool_calls"] == [
            {"id": None, "name": "get_weather", "arguments": {"city": city}, "result": "sunny", "error": None}
        ]
        assert (trial["prompt_tokens"], trial["completion_tokens"], trial["turns"]) == (30 + len(city), 7, 2)
        names = [span["name"] for span in trial["spans"]]
        assert names == ["invoke_agent weather", "chat fake-model", "execute_tool get_weather", "chat fake-model"]
        assert {span["parent"] for span in trial["spans"][1:]} == {trial["spans"][0]["id"]}


def test_concurrent_trials_never_mix_their_spans(project):
    serial = run_models(project, "--autoevolve-cache", "off", model="python:otel_agent:agent")
    concurrent = run_models(
        project, "--autoevolve-cache", "off", "--autoevolve-concurrency", "8", model="python:otel_agent:agent"
    )
    serial.assert_outcomes(passed=24)
    concurrent.assert_outcomes(passed=24)
    first, second = (read_run_at(run) for run in run_dirs(project.path))
    assert outcome(first) == outcome(second)


def test_cached_trials_keep_what_the_spans_said(project):
    run_models(project, model="python:otel_agent:agent").assert_outcomes(passed=24)
    run_models(project, model="python:otel_agent:agent").assert_outcomes(passed=24)
    fresh, cached = (read_run_at(run) for run in run_dirs(project.path))
    assert all(t["cached"] for t in cached) and outcome(fresh) == outcome(cached)
    assert all(len(t["spans"]) == 4 for t in cached)


def test_what_the_agent_returns_wins_over_the_spans(project):
    run_models(project, model="python:otel_agent:explicit")
    trajectories, _ = read_run(project.path)
    for trial in trajectories:
        assert trial["tool_calls"] == [{"name": "lookup"}]
        assert (trial["prompt_tokens"], trial["completion_tokens"], trial["turns"]) == (1, 1, 1)
        assert [span["name"] for span in trial["spans"]] == ["execute_tool get_weather", "chat fake-model"]


def read_run_at(run):
    return read_jsonl(run / "trajectories.jsonl")


def span(name, status="unset", error=None, **attributes):
    return {"name": name, "status": status, "error": error, "attributes": attributes}


def test_merging_fills_only_what_the_reply_leaves_out():
    spans = [
        span("chat m", **{"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 5}),
        span(
            "execute_tool add",
            "error",
            "ValueError: no",
            **{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.call.arguments": '{"a": 1}'},
        ),
        span("chat m", **{"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 7}),
    ]
    filled = merged(Reply("x"), spans)
    assert filled.tool_calls == [
        {"id": None, "name": "add", "arguments": {"a": 1}, "result": None, "error": "ValueError: no"}
    ]
    assert (filled.prompt_tokens, filled.completion_tokens, filled.turns, filled.spans) == (12, None, 2, spans)
    kept = merged(Reply("x", total_tokens=3, turns=4), spans)
    assert (kept.prompt_tokens, kept.total_tokens, kept.turns) == (None, 3, 4)
    assert merged(Reply("x"), []) == Reply("x")
    assert (
        tool_call(span("execute_tool", **{"gen_ai.tool.name": "t", "gen_ai.tool.call.result": "ok"}))["result"] == "ok"
    )

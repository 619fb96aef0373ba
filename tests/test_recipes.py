"""The README's recipes, run as written with the real frameworks: gated from their OpenTelemetry spans alone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.fake_openai import Request, completion, fake_openai, tool_call
from tests.support.runs import read_jsonl, run_dirs, run_models

pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("pydantic_ai")

README = Path(__file__).resolve().parents[1] / "README.md"

OFFLINE = r"""
from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import FunctionModel
from pydantic_ai.models.test import TestModel

from weather_agent import agent, answer


def calls_the_tool(messages, info):
    returned = [p for p in messages[-1].parts if p.part_kind == "tool-return"]
    if returned:
        return ModelResponse(parts=[TextPart(f"It is {returned[0].content}.")])
    asked = next(p.content for m in messages for p in m.parts if p.part_kind == "user-prompt")
    return ModelResponse(parts=[ToolCallPart("get_weather", {"city": asked.split()[-1].rstrip("?")})])


async def candidate(messages):
    with agent.override(model=FunctionModel(calls_the_tool)):
        return await answer(messages)


async def incumbent(messages):
    with agent.override(model=TestModel(call_tools=[], custom_output_text="It is probably sunny.")):
        return await answer(messages)
"""

CITIES = ["Paris", "Rome", "Oslo", "Lima", "Quito", "Hanoi", "Cairo", "Delhi", "Tokyo", "Seoul", "Dakar", "Bern"]
CATALOG = """
scenarios:
  - id: weather-{{city}}
    input: "What's the weather in {{city}}?"
    expect:
      - tool_called: {name: get_weather, arguments: {city: "{{city}}"}}
      - max_turns: 2
    vars: {city: [CITIES]}
""".replace("CITIES", ", ".join(CITIES))


SDK_OFFLINE = r"""
from agents import OpenAIChatCompletionsModel, Runner
from openai import AsyncOpenAI

from sdk_weather_agent import agent

guesser = agent.clone(model=OpenAIChatCompletionsModel("guesser", AsyncOpenAI()))


async def incumbent(messages):
    result = await Runner.run(guesser, messages[-1]["content"])
    return result.final_output
"""


def readme_block(first_line: str) -> str:
    """The README's code block that starts with ``first_line``."""
    blocks = re.findall(r"```(?:python|yaml)\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    return next(block for block in blocks if block.startswith(first_line))


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    (pytester.path / "scenarios").mkdir()
    (pytester.path / "scenarios" / "weather.yaml").write_text(readme_block("# scenarios/weather.yaml"))
    (pytester.path / "scenarios" / "cities.yaml").write_text(CATALOG, encoding="utf-8")
    pytester.makepyfile(weather_agent=readme_block("# weather_agent.py"), offline=OFFLINE)
    # the runs are in-process, in the test suite's large heap: a collection pause there is no agent's latency
    (pytester.path / "autoevolve.yaml").write_text("gate:\n  max_latency_increase: null\n", encoding="utf-8")
    pytester.syspathinsert()
    return pytester


def outcome(run: Path) -> list[tuple[object, ...]]:
    trials = read_jsonl(run / "trajectories.jsonl")
    calls = [[(c["name"], c["arguments"], c["result"]) for c in t["tool_calls"]] for t in trials]
    return sorted(
        (t["scenario_id"], t["role"], t["passed"], t["turns"], str(c)) for t, c in zip(trials, calls, strict=True)
    )


def test_the_pydantic_ai_recipe_is_gated_from_its_spans(project):
    args = ("--autoevolve-cache", "off")
    incumbent, candidate = "python:offline:incumbent", "python:offline:candidate"
    run_models(project, *args, model=incumbent, candidate=candidate).stdout.fnmatch_lines(["*autoevolve gate: PASS*"])
    run_models(project, *args, "--autoevolve-concurrency", "16", model=incumbent, candidate=candidate)
    serial, concurrent = run_dirs(project.path)
    assert outcome(serial) == outcome(concurrent)
    for trial in read_jsonl(serial / "trajectories.jsonl"):
        assert trial["error"] is None and trial["spans"]
        assert trial["total_tokens"] and trial["prompt_tokens"]  # usage from the chat spans
        if trial["role"] == "candidate":
            city = trial["messages"][0]["content"].split()[-1].rstrip("?")
            assert trial["passed"] and trial["turns"] == 2
            assert [(c["name"], c["arguments"]) for c in trial["tool_calls"]] == [("get_weather", {"city": city})]
            assert ("sunny" in trial["output"]) == (city == "Paris")
        else:
            assert not trial["passed"] and trial["tool_calls"] == [] and trial["turns"] == 1


def weather_server(request: Request, _seen: int) -> dict[str, object]:
    """An OpenAI-compatible endpoint: ``guesser`` answers at once; any other model calls the tool, then reads it."""
    if request.body.get("model") == "guesser":
        return completion("It is probably sunny.")
    if request.tool_messages:
        return completion(f"It is {request.tool_messages[-1]['content']}.", prompt_tokens=30, completion_tokens=6)
    city = request.user.split()[-1].rstrip("?")
    return completion(None, tool_calls=[tool_call("get_weather", {"city": city})], prompt_tokens=20)


def test_the_openai_agents_sdk_recipe_is_gated_from_its_spans(project, monkeypatch):
    tracing = pytest.importorskip("agents")
    pytest.importorskip("opentelemetry.instrumentation.openai_agents")
    tracing.set_trace_processors([])  # no export to the OpenAI dashboard: this machine is offline
    sequence = project.path / "scenarios" / "weather-sequence.yaml"
    sequence.write_text(readme_block("# scenarios/weather-sequence.yaml"), encoding="utf-8")
    project.makepyfile(sdk_weather_agent=readme_block("# sdk_weather_agent.py"), sdk_offline=SDK_OFFLINE)
    with fake_openai(weather_server) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("OPENAI_API_KEY", "unused")
        args = ("--autoevolve-cache", "off")
        incumbent, candidate = "python:sdk_offline:incumbent", "python:sdk_weather_agent:answer"
        result = run_models(project, *args, model=incumbent, candidate=candidate)
        result.stdout.fnmatch_lines(["*autoevolve gate: PASS*"])
        run_models(project, *args, "--autoevolve-concurrency", "16", model=incumbent, candidate=candidate)
    serial, concurrent = run_dirs(project.path)
    assert outcome(serial) == outcome(concurrent)
    trials = read_jsonl(serial / "trajectories.jsonl")
    assert len(trials) == 2 * (1 + len(CITIES) + 3)
    for trial in trials:
        city = next(m["content"] for m in trial["messages"] if m["role"] == "user").split()[-1].rstrip("?")
        assert trial["error"] is None and trial["spans"]
        if trial["role"] == "candidate":  # the agent returns its final text alone: the rest is from the spans
            assert trial["passed"] and trial["turns"] == 2, trial
            assert [(c["name"], c["arguments"], c["result"]) for c in trial["tool_calls"]] == [
                ("get_weather", {"city": city}, "sunny" if city == "Paris" else "rainy")
            ]
            assert (trial["prompt_tokens"], trial["completion_tokens"]) == (50, 11)
        else:
            assert not trial["passed"] and trial["tool_calls"] == [] and trial["turns"] == 1

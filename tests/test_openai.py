"""The ``openai:`` provider against a local OpenAI-compatible server that misbehaves on purpose.

Real HTTP on 127.0.0.1 (tests/support/fake_openai.py), the real clients (aiohttp; the ``openai``
library's for Azure), catalogs run through pytester: retries recover what can be recovered, the
rest are recorded errors, tools run in the agent loop, and the API key is never written anywhere.
"""

from __future__ import annotations

import email.utils
import itertools
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from pytest_autoevolve.catalog.loader import load_file
from pytest_autoevolve.graders.builtin import default_registry as default_graders
from pytest_autoevolve.providers._http import RateLimiter, cost_of, retry_after_seconds
from pytest_autoevolve.providers.base import ModelRequest, ModelSpecError, TrialError, parse_spec
from pytest_autoevolve.providers.openai import OPENAI_KEYS, OpenAIModel
from pytest_autoevolve.providers.registry import default_registry
from pytest_autoevolve.records import Scenario
from tests.support.fake_openai import Answer, Request, completion, error, fake_openai, scripted, tool_call
from tests.support.runs import read_run, run_dirs

FAST = {"backoff_s": 0.01, "timeout_s": 0.5, "max_retries": 3, "max_tokens": 16}
ONE_SCENARIO = "scenarios:\n  - id: one\n    input: hi\n    expected: ok\n"


def toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def write_config(pytester: pytest.Pytester, models: dict[str, dict[str, Any]], **settings: Any) -> None:
    """``[tool.autoevolve]`` with ``settings`` and one ``[tool.autoevolve.models.NAME]`` table per model."""
    lines = ["[tool.autoevolve]", *(f"{k} = {toml_value(v)}" for k, v in settings.items())]
    for name, mapping in models.items():
        lines += ["", f"[tool.autoevolve.models.{name}]", *(f"{k} = {toml_value(v)}" for k, v in mapping.items())]
    (pytester.path / "pyproject.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def by_id(trajectories: list[dict[str, Any]], role: str = "candidate") -> dict[str, dict[str, Any]]:
    return {t["scenario_id"]: t for t in trajectories if t["role"] == role}


def scenario(
    text: str = "hello", *, max_turns: int | None = None, folder: Path | None = None, tools: str = ""
) -> Scenario:
    """One scenario; with ``tools``, built by the real loader in ``folder`` (tools imported as a catalog would)."""
    if not tools:
        return Scenario(
            id="s", messages=({"role": "user", "content": text},), graders=(), path="s.yaml", max_turns=max_turns
        )
    assert folder is not None
    path = folder / f"s_{uuid.uuid4().hex[:8]}.yaml"
    extra = f"\n    max_turns: {max_turns}" if max_turns else ""
    entry = f"  - id: s\n    input: {json.dumps(text)}\n    expected: ok\n    tools: [{tools}]{extra}\n"
    path.write_text(f"scenarios:\n{entry}", "utf-8")
    return load_file(path, default_graders())[0]


def model(url: str | None = None, **params: Any) -> OpenAIModel:
    mapping: dict[str, Any] = {"spec": "openai:fake-model", **params}
    if url is not None:
        mapping["base_url"] = url
    created = default_registry().create(parse_spec(mapping), Path.cwd())
    assert isinstance(created, OpenAIModel)
    return created


def ask(agent: OpenAIModel, text: str = "x", sc: Scenario | None = None) -> Any:
    """One trial of ``agent`` on a one-message conversation."""
    return agent.generate(ModelRequest.for_trial([{"role": "user", "content": text}], sc or scenario(text), 1, 0))


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    key = f"sk-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return key


# --- a catalog against a failing server -------------------------------------------------------------

SLOW = Answer(body=completion("late"), delay_s=2.0)
NOT_JSON = Answer(body='{"id": "chatcmpl-1", "object": "chat.completion", "choices": [')
NO_CHOICES = {**completion("x"), "choices": []}
NO_MESSAGE = {**completion("x"), "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None}]}
E500 = error(500, "The server had an error while processing your request.")
OK = completion("ok")
FAILURE_PLAN: dict[str, list[Answer | dict[str, Any]]] = {
    "plain": [OK],
    "flaky-500": [E500, error(502, "Bad gateway"), OK],
    "rate-limited": [error(429, "Rate limit reached", {"Retry-After": "1"}, "requests"), OK],
    "rate-limited-ms": [error(429, "Rate limit reached", {"retry-after-ms": "300", "Retry-After": "30"}), OK],
    "slow-once": [SLOW, OK],
    "not-json-once": [NOT_JSON, OK],
    "no-choices-once": [NO_CHOICES, OK],
    "no-message-once": [NO_MESSAGE, OK],
    "always-500": [E500],
    "always-slow": [SLOW],
    "always-not-json": [NOT_JSON],
    "always-no-choices": [NO_CHOICES],
    "bad-request": [error(400, "Invalid value for 'messages'", kind="invalid_request_error")],
    "quota-exhausted": [error(429, "You exceeded your current quota", {"Retry-After": "3600"})],
}
RECOVERED = [
    "plain",
    "flaky-500",
    "rate-limited",
    "rate-limited-ms",
    "slow-once",
    "not-json-once",
    "no-choices-once",
    "no-message-once",
]
ATTEMPTS = {
    "plain": 1,
    "flaky-500": 3,
    "rate-limited": 2,
    "rate-limited-ms": 2,
    "slow-once": 2,
    "not-json-once": 2,
    "no-choices-once": 2,
    "no-message-once": 2,
    "always-500": 4,
    "always-slow": 4,
    "always-not-json": 4,
    "always-no-choices": 4,
    "bad-request": 1,
    "quota-exhausted": 1,
}
LAST_ERROR = {
    "always-500": "gave up after 4 attempt(s); last error: HTTP 500: The server had an error",
    "always-slow": "gave up after 4 attempt(s); last error: no answer within timeout_s=0.5",
    "always-not-json": "gave up after 4 attempt(s); last error: the response is not valid JSON",
    "always-no-choices": "gave up after 4 attempt(s); last error: the completion has no choices",
    "bad-request": "HTTP 400: Invalid value for 'messages' (not retried)",
    "quota-exhausted": "retry after 3600s, more than 120s, so gave up after 1 attempt(s)",
}


def test_failing_server_every_trial_recorded_recoverable_ones_recovered(
    pytester, write_scenarios, agents, api_key, monkeypatch
):
    entries = "".join(f"  - id: {name}\n    input: {name}\n    expected: ok\n" for name in FAILURE_PLAN)
    write_scenarios("scenarios:\n" + entries, "failures")
    write_config(pytester, {"fake": {"spec": "openai:fake-model", **FAST}}, incumbent="python:toyagents:answer")
    with fake_openai(scripted(FAILURE_PLAN)) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        started = time.monotonic()
        result = pytester.runpytest("--autoevolve", "--autoevolve-candidate", "fake", "-p", "no:cacheprovider")
        elapsed = time.monotonic() - started
    trajectories, summary = read_run(pytester.path)
    candidate = by_id(trajectories)
    assert sorted(candidate) == sorted(FAILURE_PLAN)  # every trial recorded
    for name, attempts in ATTEMPTS.items():
        assert len(server.for_user(name)) == attempts, name
    for name in RECOVERED:
        assert candidate[name]["error"] is None, (name, candidate[name]["error"])
        assert candidate[name]["passed"] is True, name
        assert candidate[name]["output"] == "ok"
        assert (candidate[name]["prompt_tokens"], candidate[name]["completion_tokens"]) == (10, 5)
    for name, message in LAST_ERROR.items():
        trial = candidate[name]
        assert trial["passed"] is False and trial["grades"] == [], name
        assert trial["error"].startswith("TrialError: openai:fake-model: "), trial["error"]
        assert message in trial["error"], (name, trial["error"])
    assert summary["candidate"]["n"] == len(FAILURE_PLAN)
    assert summary["candidate"]["passed"] == len(RECOVERED)
    assert summary["candidate"]["errors"] == len(LAST_ERROR)
    assert summary["incumbent"]["passed"] == len(FAILURE_PLAN)
    result.assert_outcomes(passed=len(FAILURE_PLAN) + len(RECOVERED), failed=len(LAST_ERROR))
    # Retry-After in seconds is honoured; retry-after-ms wins over Retry-After
    first, second = server.for_user("rate-limited")
    assert second.at - first.at >= 0.95
    first, second = server.for_user("rate-limited-ms")
    assert 0.28 <= second.at - first.at < 5
    assert elapsed < 30
    # every attempt is the same request: model, seed of the trial, greedy, max_tokens
    for request in server.requests:
        trial = candidate[request.user]
        assert request.body["model"] == "fake-model"
        assert request.body["seed"] == trial["seed"]
        assert request.body["temperature"] == 0
        assert request.body["max_tokens"] == 16
        assert "tools" not in request.body
        assert request.headers["authorization"] == f"Bearer {api_key}"


def test_spec_string_form_and_connection_refused(pytester, write_scenarios, agents, api_key, monkeypatch):
    write_scenarios(ONE_SCENARIO)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # discard port: nothing listens
    pytester.runpytest(
        "--autoevolve",
        "--autoevolve-incumbent",
        "python:toyagents:answer",
        "--autoevolve-candidate",
        "openai:fake-model+backoff_s=0.01+max_retries=2",
    )
    trajectories, summary = read_run(pytester.path)
    trial = by_id(trajectories)["one"]
    assert trial["model"] == "openai:fake-model+backoff_s=0.01+max_retries=2"
    assert "gave up after 3 attempt(s); last error: connection error" in trial["error"]
    assert summary["candidate"]["errors"] == 1 and summary["candidate"]["passed"] == 0


# --- tools and the agent loop ------------------------------------------------------------------------

AGENT_TOOLS = '''
def get_weather(city: str, unit: str = "C") -> dict:
    """Current weather in a city."""
    return {"city": city, "sky": "sunny", "temperature": 21, "unit": unit}


def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


def divide(a: float, b: float) -> float:
    """Divide a by b."""
    return a / b
'''

TOOL_SCENARIOS = """
defaults:
  tools: [agent_tools:get_weather, agent_tools:add]
scenarios:
  - id: weather-and-sum
    input: "weather in Paris plus 2+3"
    expect:
      - tool_called: get_weather
      - tool_called: {name: get_weather, arguments: {city: Paris}}
      - tool_called: {name: add, arguments: {a: 2}}
      - max_turns: 3
      - max_tokens: 45
      - max_cost: 0.001
      - contains: "sunny in Paris"
      - contains: "2+3=5"
  - id: weather-turn-budget
    input: "weather in Paris plus 2+3"
    expect:
      - tool_called: get_weather
      - max_turns: 2
  - id: weather-wrong-arguments
    input: "weather in Paris plus 2+3"
    expect:
      - tool_called: {name: add, arguments: {a: 7}}
  - id: weather-never-emails
    input: "weather in Paris plus 2+3"
    expect:
      - tool_called: send_email
  - id: divide-by-zero
    input: "divide 1 by 0"
    tools: [agent_tools:divide]
    expect:
      - tool_called: divide
      - contains: "ZeroDivisionError"
  - id: hallucinated-tool
    input: "launch"
    expect:
      - tool_called: launch_rockets
      - contains: "unknown tool"
  - id: endless-scenario-limit
    input: "loop forever"
    max_turns: 2
    expected: never
  - id: endless-model-limit
    input: "loop forever"
    expected: never
"""


def agent_server(request: Request, _seen: int) -> dict[str, Any]:
    """A scripted agent: calls tools turn by turn, then answers from the tool results it was sent."""
    results = [m["content"] for m in request.tool_messages]
    if request.user == "weather in Paris plus 2+3":
        if len(results) == 0:
            return completion(None, tool_calls=[tool_call("get_weather", {"city": "Paris"}, "call_w")])
        if len(results) == 1:
            return completion(None, tool_calls=[tool_call("add", {"a": 2, "b": 3}, "call_a")])
        weather, total = json.loads(results[0]), json.loads(results[1])
        return completion(
            f"{weather['sky']} in {weather['city']}, {weather['temperature']}{weather['unit']}; 2+3={total:g}"
        )
    if request.user == "divide 1 by 0":
        if not results:
            return completion(None, tool_calls=[tool_call("divide", {"a": 1, "b": 0}, "call_d")])
        return completion(f"I could not divide: {results[0]}")
    if request.user == "launch":
        if not results:
            return completion(None, tool_calls=[tool_call("launch_rockets", {"count": 3}, "call_l")])
        return completion(f"that failed: {results[0]}")
    return completion(None, tool_calls=[tool_call("add", {"a": 1, "b": len(results)}, f"call_{len(results)}")])


def test_tool_using_scenarios_end_to_end(pytester, write_scenarios, agents, api_key, monkeypatch):
    pytester.makepyfile(agent_tools=AGENT_TOOLS)
    write_scenarios(TOOL_SCENARIOS, "tools")
    prices = {"prompt": 2.5, "completion": 10.0}
    write_config(
        pytester,
        {"agent": {"spec": "openai:fake-model", "max_turns": 3, "prices": prices, **FAST}},
        incumbent="python:toyagents:echo",
    )
    with fake_openai(agent_server) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        pytester.runpytest("--autoevolve", "--autoevolve-candidate", "agent", "-p", "no:cacheprovider")
    trajectories, _ = read_run(pytester.path)
    trials = by_id(trajectories)

    weather = trials["weather-and-sum"]
    assert weather["error"] is None
    assert weather["passed"] is True, weather["grades"]
    assert weather["output"] == "sunny in Paris, 21C; 2+3=5"
    assert weather["turns"] == 3
    assert (weather["prompt_tokens"], weather["completion_tokens"]) == (30, 15)
    assert weather["cost"] == pytest.approx((30 * 2.5 + 15 * 10.0) / 1e6)
    assert weather["tool_calls"] == [
        {
            "id": "call_w",
            "name": "get_weather",
            "arguments": {"city": "Paris"},
            "result": {"city": "Paris", "sky": "sunny", "temperature": 21, "unit": "C"},
            "error": None,
            "turn": 1,
        },
        {"id": "call_a", "name": "add", "arguments": {"a": 2, "b": 3}, "result": 5, "error": None, "turn": 2},
    ]
    assert [m["role"] for m in weather["messages"]] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert weather["messages"][1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert weather["messages"][2] == {
        "role": "tool",
        "tool_call_id": "call_w",
        "content": json.dumps(weather["tool_calls"][0]["result"]),
    }
    assert weather["messages"][-1] == {"role": "assistant", "content": "sunny in Paris, 21C; 2+3=5"}

    # what the server was sent: the tools' schemas, and each result under its call id
    calls = [r for r in server.requests if r.user == "weather in Paris plus 2+3"]
    assert len(calls) == 4 * 3  # four scenarios ask this, three model calls each
    schemas = {t["function"]["name"]: t["function"] for t in calls[0].body["tools"]}
    assert set(schemas) == {"get_weather", "add"}
    properties = schemas["get_weather"]["parameters"]["properties"]
    assert properties == {"city": {"type": "string"}, "unit": {"type": "string"}}
    assert schemas["get_weather"]["parameters"]["required"] == ["city"]
    assert schemas["get_weather"]["description"] == "Current weather in a city."
    assert calls[2].body["messages"][2] == weather["messages"][2]

    # graders decide: the turn budget, arguments, a tool never called
    budget = trials["weather-turn-budget"]
    assert budget["error"] is None and budget["passed"] is False
    assert {g["grader"]: g["passed"] for g in budget["grades"]} == {"tool_called:get_weather": True, "max_turns": False}
    assert "turns 3 > 2" in budget["grades"][1]["reason"]
    wrong = trials["weather-wrong-arguments"]["grades"][0]
    assert wrong["passed"] is False and '{"a": 7}' in wrong["reason"] and '"a": 2' in wrong["reason"]
    never = trials["weather-never-emails"]["grades"][0]
    assert never["passed"] is False and "calls made: add, get_weather" in never["reason"]

    # a tool that raises, and a tool that does not exist: recorded, and shown to the model
    divide = trials["divide-by-zero"]
    assert divide["passed"] is True, divide["grades"]
    assert divide["tool_calls"][0]["error"] == "ZeroDivisionError: division by zero"
    assert divide["tool_calls"][0]["result"] is None
    assert divide["output"] == "I could not divide: error: ZeroDivisionError: division by zero"
    [tools_offered] = {json.dumps(r.body["tools"]) for r in server.requests if r.user == "divide 1 by 0"}
    assert [t["function"]["name"] for t in json.loads(tools_offered)] == ["divide"]
    rockets = trials["hallucinated-tool"]
    assert rockets["tool_calls"][0]["error"].startswith("unknown tool 'launch_rockets'; tools offered: get_weather")
    assert rockets["grades"][0]["passed"] is True and rockets["passed"] is True

    # the turn limit: the scenario's max_turns wins over the model's; the partial trajectory is kept
    for name, limit in (("endless-scenario-limit", 2), ("endless-model-limit", 3)):
        trial = trials[name]
        assert trial["passed"] is False and trial["grades"] == []
        assert trial["error"] == f"TrialError: openai:fake-model did not finish within {limit} turns (max_turns)"
        assert trial["turns"] == limit
        assert [c["turn"] for c in trial["tool_calls"]] == list(range(1, limit + 1))
        assert len(trial["messages"]) == 1 + 2 * limit
        assert trial["prompt_tokens"] == 10 * limit
    assert len(server.for_user("loop forever")) == 2 + 3


def test_failure_mid_loop_keeps_the_tool_calls_made(tmp_path, api_key, monkeypatch):
    (tmp_path / "loop_tools.py").write_text(AGENT_TOOLS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    sc = scenario("weather in Paris plus 2+3", folder=tmp_path, tools="loop_tools:get_weather, loop_tools:add")

    def respond(request: Request, seen: int) -> Answer | dict[str, Any]:
        return agent_server(request, seen) if not request.tool_messages else E500

    with fake_openai(respond) as server:
        agent = model(server.url, backoff_s=0, max_retries=1)
        with pytest.raises(TrialError) as caught:
            agent.generate(ModelRequest.for_trial(list(sc.messages), sc, 1, 0))
    assert "gave up after 2 attempt(s); last error: HTTP 500" in str(caught.value)
    partial = caught.value.reply
    assert partial is not None
    assert partial.turns == 1
    assert [c["name"] for c in partial.tool_calls] == ["get_weather"]
    assert partial.messages is not None and [m["role"] for m in partial.messages] == ["user", "assistant", "tool"]
    assert partial.prompt_tokens == 10
    assert len(server.requests) == 3


# --- Azure --------------------------------------------------------------------------------------------


def test_azure_openai_through_the_azure_client(pytester, write_scenarios, agents, monkeypatch):
    key = f"azure-{uuid.uuid4().hex}"
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", key)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_VERSION", raising=False)
    write_scenarios("scenarios:\n  - id: one\n    input: plain\n    expected: ok\n")
    with fake_openai(scripted({"plain": [E500, OK]})) as server:
        write_config(
            pytester,
            {
                "az": {
                    "spec": "openai:prod-gpt",
                    "azure": True,
                    "api_version": "2024-10-21",
                    "azure_endpoint": server.root,
                    **FAST,
                }
            },
            incumbent="python:toyagents:answer",
        )
        pytester.runpytest("--autoevolve", "--autoevolve-candidate", "az")
    trial = by_id(read_run(pytester.path)[0])["one"]
    assert trial["error"] is None and trial["passed"] is True
    assert len(server.requests) == 2
    for request in server.requests:
        assert request.path == "/openai/deployments/prod-gpt/chat/completions"
        assert request.query == {"api-version": ["2024-10-21"]}
        assert request.headers["api-key"] == key
        assert "authorization" not in request.headers
        assert request.body["model"] == "prod-gpt"


def test_azure_deployment_and_base_url(api_key, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-key-0123456789")
    with fake_openai() as server:
        deployed = model(
            None, azure=True, api_version="2024-10-21", azure_endpoint=server.root, azure_deployment="dep-1"
        )
        assert ask(deployed).output == "ok"
        based = model(f"{server.root}/openai", azure=True, api_version="2024-10-21", api_key_env="OPENAI_API_KEY")
        assert ask(based).output == "ok"
    assert [r.path for r in server.requests] == [
        "/openai/deployments/dep-1/chat/completions",
        "/openai/deployments/fake-model/chat/completions",
    ]
    assert server.requests[0].headers["api-key"] == "azure-key-0123456789"
    assert server.requests[1].headers["api-key"] == api_key
    assert json.loads(deployed.fingerprint)["provider"] == "azure-openai"
    assert json.loads(deployed.fingerprint)["api_version"] == "2024-10-21"


def test_azure_needs_an_api_version(api_key, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-key-0123456789")
    monkeypatch.delenv("OPENAI_API_VERSION", raising=False)
    with pytest.raises(ModelSpecError, match="api_version"):
        model(None, azure=True, azure_endpoint="http://127.0.0.1:9")
    with pytest.raises(ModelSpecError, match="need azure=true"):
        model(None, api_version="2024-10-21")


# --- secrets ------------------------------------------------------------------------------------------


def test_api_key_is_never_written_anywhere(pytester, write_scenarios, agents, monkeypatch):
    key = f"sk-proj-{uuid.uuid4().hex}{uuid.uuid4().hex}"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    write_scenarios(
        "scenarios:\n  - id: one\n    input: hi\n    expected: ok\n  - id: two\n    input: ho\n    expected: ok\n"
    )

    def reject(request: Request, _seen: int) -> Answer:
        sent = request.headers["authorization"].removeprefix("Bearer ")
        return error(
            401,
            f"Incorrect API key provided: {sent}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            kind="invalid_request_error",
        )

    with fake_openai(reject) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        result = pytester.runpytest(
            "--autoevolve",
            "--autoevolve-candidate",
            "openai:gpt-4o-mini+backoff_s=0",
            "--autoevolve-incumbent",
            "python:toyagents:answer",
            "--junitxml=junit.xml",
            "-rA",
            "-v",
        )
    assert len(server.requests) == 2  # a 401 is not retried; and the key was really sent
    assert all(r.headers["authorization"] == f"Bearer {key}" for r in server.requests)
    trajectories, _ = read_run(pytester.path)
    errors = [t["error"] for t in trajectories if t["role"] == "candidate"]
    assert all("HTTP 401: Incorrect API key provided: ***. " in e for e in errors), errors
    run_dir = run_dirs(pytester.path)[0]
    written = {path.name: path.read_text(encoding="utf-8") for path in run_dir.iterdir() if path.is_file()}
    assert {"trajectories.jsonl", "summary.json", "report.md", "report.html"} <= set(written)
    written["junit.xml"] = (pytester.path / "junit.xml").read_text(encoding="utf-8")
    written["stdout"], written["stderr"] = result.stdout.str(), result.stderr.str()
    assert "HTTP 401" in written["stdout"]
    for name, text in written.items():
        assert key not in text, name
        assert key[8:40] not in text, name


def test_secrets_redacted_from_retried_errors_and_replies(api_key):
    def echo_key(request: Request, seen: int) -> Answer | dict[str, Any]:
        if seen == 0:
            return error(503, f"overloaded for {api_key}", {"retry-after-ms": "10"})
        return completion(f"your key is {api_key}")

    with fake_openai(echo_key) as server:
        agent = model(server.url, backoff_s=0, max_retries=0)
        with pytest.raises(TrialError) as caught:
            ask(agent, "a")
        want = "openai:fake-model: gave up after 1 attempt(s); last error: HTTP 503: overloaded for ***"
        assert str(caught.value) == want
        reply = ask(model(server.url, backoff_s=0), "b")
    assert reply.output == "your key is ***"
    assert api_key not in json.dumps(reply.messages)
    assert api_key not in agent.fingerprint and api_key not in agent.spec


# --- retries, timeouts, limits: unit tests ------------------------------------------------------------

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "2"}, 2.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"Retry-After": "0"}, 0.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "20", "Retry-After": "30"}, 0.02),
        ({"Retry-After-Ms": "junk", "Retry-After": "3"}, 3.0),
        ({"Retry-After": email.utils.formatdate(NOW + 30, usegmt=True)}, 30.0),
        ({"Retry-After": email.utils.formatdate(NOW - 30, usegmt=True)}, 0.0),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00"}, None),  # no zone: not an HTTP date
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "nan"}, None),
        ({"Retry-After": "-4"}, 0.0),
        ({}, None),
    ],
)
def test_retry_after_parsing(headers, seconds):
    assert retry_after_seconds(headers, now=NOW) == seconds


def test_retry_after_http_date_against_the_server(api_key):
    def later(request: Request, seen: int) -> Answer | dict[str, Any]:
        if seen == 0:
            return error(503, "busy", {"Retry-After": email.utils.formatdate(time.time() + 2, usegmt=True)})
        return OK

    with fake_openai(later) as server:
        reply = ask(model(server.url, backoff_s=0))
    assert reply.output == "ok"
    first, second = server.requests
    assert second.at - first.at >= 0.9  # a date has whole seconds: at least one of the two is waited


def test_backoff_is_exponential_and_capped(api_key):
    with fake_openai(lambda request, seen: E500) as server, pytest.raises(TrialError, match="after 5 attempt"):
        ask(model(server.url, backoff_s=0.1, max_backoff_s=0.3, max_retries=4))
    gaps = [b.at - a.at for a, b in itertools.pairwise(server.requests)]
    for gap, want in zip(gaps, [0.1, 0.2, 0.3, 0.3], strict=True):
        assert want - 0.02 <= gap < want + 0.5, gaps


def test_per_call_timeout(api_key):
    with fake_openai(lambda request, seen: SLOW if seen == 0 else OK) as server:
        agent = model(server.url, timeout_s=0.3, backoff_s=0)
        started = time.monotonic()
        reply = ask(agent)
        elapsed = time.monotonic() - started
    assert reply.output == "ok" and len(server.requests) == 2
    assert 0.3 <= elapsed < 1.5


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried(api_key, status):
    not_retried = pytest.raises(TrialError, match=rf"HTTP {status}: nope \(not retried\)")
    with fake_openai(lambda request, seen: error(status, "nope")) as server, not_retried:
        ask(model(server.url, backoff_s=0))
    assert len(server.requests) == 1


def test_price_table_gives_cost():
    prices = {"prompt": 2.5, "completion": 10.0}
    assert cost_of(prices, 1_000, 500) == pytest.approx(0.0075)
    assert cost_of(prices, 1_000_000, 0) == pytest.approx(2.5)
    assert cost_of(prices, None, None) is None
    assert cost_of(None, 10, 10) is None


def test_cost_and_usage_summed_in_replies(api_key):
    with fake_openai(lambda r, s: completion("ok", prompt_tokens=1200, completion_tokens=300)) as server:
        reply = ask(model(server.url, prices={"prompt": 0.15, "completion": 0.6}))
        free = ask(model(server.url))
    assert (reply.prompt_tokens, reply.completion_tokens) == (1200, 300)
    assert reply.cost == pytest.approx((1200 * 0.15 + 300 * 0.6) / 1e6)
    assert free.cost is None


def test_rate_limiter_spaces_requests_on_a_fake_clock():
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(60, clock=lambda: now[0], sleep=sleep)
    assert [limiter.acquire() for _ in range(3)] == [0.0, 1.0, 1.0]
    now[0] += 5  # idle: no burst is saved up
    assert limiter.acquire() == 0.0
    assert limiter.acquire() == 1.0
    assert slept == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0)


def test_rate_limiter_is_shared_by_threads():
    limiter = RateLimiter(1200)  # one request every 50 ms
    times: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(5):
            limiter.acquire()
            with lock:
                times.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    times.sort()
    assert len(times) == 20
    assert times[-1] - times[0] >= 19 * 0.05 - 0.01
    assert min(b - a for a, b in itertools.pairwise(times)) >= 0.02  # unlimited: all 20 within a few ms


def test_rpm_applies_across_threads_and_models_of_one_endpoint(api_key):
    with fake_openai() as server:
        first, second = model(server.url, rpm=600), model(server.url, rpm=600)
        assert first.limiter is second.limiter is not None
        assert model(server.url, rpm=300).limiter is not first.limiter
        threads = [threading.Thread(target=ask, args=(m,)) for m in (first, second) * 3]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    arrivals = sorted(r.at for r in server.requests)
    assert len(arrivals) == 6
    # spaced 0.1 s apart when they leave, give or take scheduling jitter on arrival (unlimited: all within ms)
    assert arrivals[-1] - arrivals[0] >= 5 * 0.1 - 0.1
    assert min(b - a for a, b in itertools.pairwise(arrivals)) >= 0.03


# --- the spec and its parameters ----------------------------------------------------------------------


def test_generation_parameters_reach_the_api(api_key):
    with fake_openai() as server:
        model(server.url, temperature=0.7, top_p=0.9, max_new_tokens=12, system_prompt="ignored here").generate(
            ModelRequest.for_trial(
                [{"role": "system", "content": "be brief"}, {"role": "user", "content": "x"}], scenario(), 1234, 2
            )
        )
    body = server.requests[0].body
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "x"}]
    want = {"model": "fake-model", "seed": 1234, "temperature": 0.7, "top_p": 0.9, "max_tokens": 12}
    assert body == {**want, "messages": messages}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"api_key": "sk-abc"}, "unknown parameter(s) api_key for openai:fake-model; allowed: base_url, api_key_env"),
        ({"temprature": 0.5}, "unknown parameter(s) temprature"),
        ({"temperature": "hot"}, "'temperature' is a number at least 0"),
        ({"top_p": 1.5}, "'top_p' is a number at least 0 and at most 1"),
        ({"max_tokens": 0}, "'max_tokens' is a whole number of at least 1"),
        ({"max_tokens": 5, "max_new_tokens": 6}, "give one of max_tokens or max_new_tokens"),
        ({"timeout_s": 0}, "'timeout_s' is a number greater than 0"),
        ({"max_retries": -1}, "'max_retries' is a whole number of at least 0"),
        ({"rpm": 0}, "'rpm' is a number greater than 0"),
        ({"tpm": -5}, "'tpm' is a number greater than 0"),
        ({"max_turns": 0}, "'max_turns' is a whole number of at least 1"),
        ({"azure": "yes"}, "'azure' is true or false"),
        ({"prices": {"prompt": 1}}, "'prices' is a mapping {prompt: USD per 1M tokens, completion"),
        ({"prices": "1,2"}, "'prices' is a mapping"),
        ({"prices": {"prompt": 1, "completion": -2}}, "'prices.completion' is a number of at least 0"),
    ],
)
def test_bad_parameters_are_spec_errors(api_key, params, message):
    with pytest.raises(ModelSpecError) as caught:
        model("http://127.0.0.1:9/v1", **params)
    assert message in str(caught.value)
    assert "sk-abc" not in str(caught.value)


def test_every_documented_parameter_is_accepted(api_key, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-key-0123456789")
    plain = {
        "api_key_env": "OPENAI_API_KEY",
        "temperature": 0.2,
        "top_p": 1,
        "max_tokens": 8,
        "timeout_s": 5,
        "max_retries": 0,
        "backoff_s": 0,
        "max_backoff_s": 1,
        "rpm": 60,
        "tpm": 100_000,
        "max_turns": 2,
        "system_prompt": "s",
        "prices": {"prompt": 1, "completion": 2},
    }
    azure = {
        "azure": True,
        "api_version": "2024-10-21",
        "azure_endpoint": "http://127.0.0.1:9",
        "azure_deployment": "d",
    }
    assert set(plain) | set(azure) | {"base_url", "max_new_tokens"} == set(OPENAI_KEYS)
    model("http://127.0.0.1:9/v1", **plain)
    model(None, **azure)


def test_missing_key_is_a_spec_error_naming_the_variable(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("MY_KEY", raising=False)
    with pytest.raises(ModelSpecError, match=r"needs an API key in \$OPENAI_API_KEY"):
        model("http://127.0.0.1:9/v1")
    with pytest.raises(ModelSpecError, match=r"\$MY_KEY"):
        model("http://127.0.0.1:9/v1", api_key_env="MY_KEY")
    monkeypatch.setenv("MY_KEY", "local-key-123")
    assert model("http://127.0.0.1:9/v1", api_key_env="MY_KEY").settings.key_env == "MY_KEY"
    with pytest.raises(ModelSpecError, match="needs a model name"):
        default_registry().create(parse_spec("openai"), Path.cwd())


def test_missing_key_is_recorded_in_every_trial(pytester, write_scenarios, agents, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    write_scenarios(ONE_SCENARIO)
    pytester.runpytest(
        "--autoevolve",
        "--autoevolve-candidate",
        "openai:gpt-4o-mini",
        "--autoevolve-incumbent",
        "python:toyagents:answer",
    )
    trial = by_id(read_run(pytester.path)[0])["one"]
    assert "needs an API key in $OPENAI_API_KEY" in trial["error"]


def test_fingerprint_names_what_answers_and_no_secret(api_key, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/from-env/v1")
    fingerprint = json.loads(model(None, temperature=0.3, max_tokens=9, rpm=10, backoff_s=2).fingerprint)
    assert fingerprint == {
        "provider": "openai",
        "base_url": "http://127.0.0.1:9/from-env/v1/",
        "model": "fake-model",
        "api_version": None,
        "temperature": 0.3,
        "top_p": None,
        "max_tokens": 9,
        "max_turns": 8,
    }
    same = model(None, temperature=0.3, max_tokens=9, timeout_s=3)
    assert same.fingerprint == json.dumps(fingerprint, sort_keys=True)  # retries, limits, timeouts: same answers
    assert model(None, temperature=0.4, max_tokens=9).fingerprint != same.fingerprint
    userinfo = model("http://user:hunter2-password@127.0.0.1:9/v1?token=abc")
    assert "hunter2" not in userinfo.fingerprint
    assert "abc" not in userinfo.fingerprint
    assert json.loads(userinfo.fingerprint)["base_url"] == "http://127.0.0.1:9/v1/"
    assert api_key not in same.fingerprint


def test_display_spec_hides_secret_looking_parameters():
    spec = parse_spec({"spec": "openai:gpt-4o", "api_key_env": "TEAM_KEY", "temperature": 0.1})
    assert spec.display == "openai:gpt-4o+temperature=0.1"
    assert "openai" in default_registry().names()


def test_tool_catalog_rejects_bad_grader_values(write_scenarios, pytester):
    path = write_scenarios("scenarios:\n  - id: t\n    input: hi\n    expect:\n      - tool_called: {name: a, x: 1}\n")
    with pytest.raises(Exception, match=r"expect\[0\].tool_called.*'tool_called' takes a tool name"):
        load_file(path, default_graders())

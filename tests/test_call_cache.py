"""The per-call cache: an agent's own model calls are keyed by what is sent, so an edit misses only where it changed."""

from __future__ import annotations

import json

import pytest

from tests.support.fake_openai import Request, completion, fake_openai, tool_call
from tests.support.runs import read_jsonl, run_dirs, run_models

# An agent with a prompt file that makes two model calls per trial through the openai SDK: one that
# the prompt shapes, one that it does not. ``repeat`` picks the user's phrasing.
AGENT = """
from pathlib import Path

import openai

client = openai.{client}()
PROMPT = Path(__file__).with_name("prompts") / "system.txt"


{definition} answer(messages):
    ask, question = client.chat.completions.create, messages[-1]["content"]
    topic = {wait}ask(model="m", messages=[{{"role": "user", "content": "topic of " + question}}])
    again = {wait}ask(model="m", messages=[{{"role": "user", "content": "topic of " + question}}])
    system = {{"role": "system", "content": PROMPT.read_text(encoding="utf-8")}}
    reply = {wait}ask(model="m", messages=[system, {{"role": "user", "content": question}}])
    parts = (topic, again, reply)
    return " | ".join(part.choices[0].message.content for part in parts)
"""

CATALOG = """
scenarios:
  - id: q{{n}}
    input: "question {{n}}"
    expect: [{contains: polite}]
    vars: {n: [1, 2, 3]}
"""


def server_answer(request: Request, seen: int) -> dict[str, object]:
    """The topic calls answer with how often they were asked; the others echo the system prompt."""
    messages = request.body["messages"]
    if messages[0]["role"] == "system":
        return completion(f"{messages[0]['content'].strip()} answer to {request.user}")
    return completion(f"topic #{seen}")


@pytest.fixture(params=["sync", "async"])
def project(request, pytester: pytest.Pytester) -> pytest.Pytester:
    sync = request.param == "sync"
    source = AGENT.format(
        client="OpenAI" if sync else "AsyncOpenAI",
        definition="def" if sync else "async def",
        wait="" if sync else "await ",
    )
    pytester.makepyfile(promptagent=source)
    (pytester.path / "prompts").mkdir()
    (pytester.path / "prompts" / "system.txt").write_text("rude", encoding="utf-8")
    (pytester.path / "scenarios").mkdir()
    (pytester.path / "scenarios" / "q.yaml").write_text(CATALOG, encoding="utf-8")
    pytester.syspathinsert()
    return pytester


def newest_trials(root):
    (run,) = [d for d in run_dirs(root) if not (d / "seen").exists()]
    (run / "seen").touch()
    return read_jsonl(run / "trajectories.jsonl")


def test_an_edited_prompt_misses_only_the_calls_it_changed(project, monkeypatch):
    agent = "python:promptagent:answer"
    with fake_openai(server_answer) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("OPENAI_API_KEY", "unused")
        run_models(project, "--autoevolve-repeats", "2", model=agent)
        assert len(server.requests) == 3 * 2 * 3  # scenarios x repeats x calls (both roles share the cache)
        first = newest_trials(project.path)
        assert len(first) == 12 and not any(t["passed"] for t in first)
        assert {t["output"].split(" | ")[0] for t in first} == {"topic #0", "topic #2"}  # repeats differ

        (project.path / "prompts" / "system.txt").write_text("polite", encoding="utf-8")
        run_models(project, "--autoevolve-repeats", "2", model=agent)
        changed = server.requests[18:]
        assert len(changed) == 3 * 2 and all(r.body["messages"][0]["content"] == "polite" for r in changed)
        second = newest_trials(project.path)
        assert len(second) == 12 and all(t["passed"] for t in second)
        topics = {(t["scenario_id"], t["repeat"], t["role"]): t["output"].split(" | ")[:2] for t in second}
        assert topics == {(t["scenario_id"], t["repeat"], t["role"]): t["output"].split(" | ")[:2] for t in first}
        assert all(t["output"].endswith(f"polite answer to question {t['scenario_id'][1:]}") for t in second)

        run_models(project, "--autoevolve-repeats", "2", model=agent)
        assert len(server.requests) == 24  # unchanged: every trial from the cache
        assert all(t["passed"] and t["cached"] for t in newest_trials(project.path))


def test_a_tampered_call_entry_is_a_miss_and_the_cache_off_sends_every_call(project, monkeypatch):
    agent = "python:promptagent:answer"
    with fake_openai(server_answer) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("OPENAI_API_KEY", "unused")
        run_models(project, model=agent)
        entries = sorted((project.path / ".autoevolve" / "cache" / "calls").glob("*/*.json"))
        assert len(entries) == 3 * 3
        for entry in entries:
            stored = json.loads(entry.read_text(encoding="utf-8"))
            stored["call"]["body"] = stored["call"]["body"].replace("rude", "polite")
            stored["key"] = "0" * 64
            entry.write_text(json.dumps(stored), encoding="utf-8")
        (project.path / "prompts" / "system.txt").write_text("rude, still", encoding="utf-8")
        run_models(project, model=agent)
        assert len(server.requests) == 9 + 9  # no tampered answer served
        outputs = [t["output"] for run in run_dirs(project.path) for t in read_jsonl(run / "trajectories.jsonl")]
        assert len(outputs) == 12 and not any("polite" in output for output in outputs)
        run_models(project, "--autoevolve-cache", "off", model=agent)
        assert len(server.requests) == 9 + 9 + 2 * 9  # off: both roles call, nothing read or kept


def test_an_answer_that_echoes_the_key_is_stored_without_it(project, monkeypatch):
    def echo_key(request: Request, _seen: int) -> dict[str, object]:
        return completion(f"polite {request.headers['authorization']}")

    with fake_openai(echo_key) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value-123")
        run_models(project, model="python:promptagent:answer")
    stored = [p.read_text(encoding="utf-8") for p in (project.path / ".autoevolve" / "cache" / "calls").glob("*/*")]
    assert len(stored) == 3 * 3 and all("polite ***" in text for text in stored)
    assert not any("sk-secret-value-123" in text for text in stored)


TOOLS = """
def lookup(city: str) -> str:
    return {"Paris": "sunny"}.get(city, "rainy")
"""

TOOL_CATALOG = """
scenarios:
  - id: weather
    input: "weather in Paris?"
    tools: ["weather_tools:lookup"]
    expect: [{contains: "It is"}]
"""


def tool_server(request: Request, _seen: int) -> dict[str, object]:
    if request.tool_messages:
        return completion(f"It is {request.tool_messages[-1]['content']}.")
    return completion(None, tool_calls=[tool_call("lookup", {"city": "Paris"})])


def test_an_edited_tool_misses_the_trial_but_not_the_first_call(pytester, monkeypatch):
    pytester.makepyfile(weather_tools=TOOLS)
    (pytester.path / "scenarios").mkdir()
    (pytester.path / "scenarios" / "w.yaml").write_text(TOOL_CATALOG, encoding="utf-8")
    pytester.syspathinsert()
    with fake_openai(tool_server) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "unused")
        model = f"openai:m+base_url={server.url}"
        run_models(pytester, model=model)
        assert len(server.requests) == 2
        (pytester.path / "weather_tools.py").write_text(TOOLS.replace("sunny", "foggy"), encoding="utf-8")
        run_models(pytester, model=model)
        assert len(server.requests) == 3  # the first call is the same: only the one after the tool's answer is sent
        assert server.requests[-1].tool_messages[-1]["content"] == "foggy"

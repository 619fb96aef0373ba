"""Multi-turn scenarios: scripted ``turns:`` and a simulated ``user:``, gated, recorded whole and cached."""

from __future__ import annotations

import json
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from pytest_autoevolve.catalog.loader import load_file
from pytest_autoevolve.errors import ScenarioError
from pytest_autoevolve.graders.builtin import default_registry
from pytest_autoevolve.records import SimulatedUser
from pytest_autoevolve.run.conversation import user_side
from tests.support.runs import read_run, run_dirs, run_models

CONVO = r"""
import os
import re


def _log(who):
    with open(os.environ["CONVO_CALLS"], "a") as log:
        log.write(who + "\n")


def _answer(said):
    last = said[-1]
    if last.startswith("my code is"):
        return "Thanks. What is your name?"
    if last.startswith("my name is"):
        codes = [s.split()[-1] for s in said if s.startswith("my code is")]
        return f"Done: code {codes[-1] if codes else 'unknown'}, name {last.split()[-1]}"
    return "Hello! What is your code?"


def stateful(messages):
    _log("stateful")
    return _answer([m["content"] for m in messages if m["role"] == "user"])


def forgetful(messages):
    _log("forgetful")
    return _answer([messages[-1]["content"]])


def customer(messages):
    _log("customer")
    persona, last = messages[0]["content"], messages[-1]["content"]
    if "code?" in last:
        return "my code is " + re.search(r"code is (\d+)", persona).group(1)
    if "name?" in last:
        return "my name is ada"
    return "thanks, bye ###STOP###" if last.startswith("Done") else "hello"


def broken_customer(messages):
    raise ConnectionError("user model down")
"""

SCRIPTED = """
scenarios:
  - id: scripted-{{n}}
    turns: ["hello", "my code is {{n}}", "my name is ada"]
    expect: [{contains: "code {{n}},"}]
    vars: {n: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]}
"""

SIMULATED = """
scenarios:
  - id: simulated-{{n}}
    input: hello
    user: {model: "python:convo:customer", persona: "You are ada; your code is {{n}}.", max_turns: 5}
    expect: [{contains: "code {{n}},"}]
    vars: {n: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]}
"""


@pytest.fixture
def project(pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    (pytester.path / "scenarios").mkdir()
    pytester.makepyfile(convo=CONVO)
    pytester.syspathinsert()
    calls = tmp_path_factory.mktemp("calls") / "calls.txt"  # outside the project: project files are cache inputs
    monkeypatch.setenv("CONVO_CALLS", str(calls))
    return pytester, calls


def write(pytester: pytest.Pytester, catalog: str) -> None:
    (pytester.path / "scenarios" / "convo.yaml").write_text(catalog, encoding="utf-8")


def called(calls: Path) -> Counter[str]:
    return Counter(calls.read_text().split()) if calls.exists() else Counter()


@pytest.mark.parametrize(("catalog", "length"), [(SCRIPTED, 6), (SIMULATED, 7)], ids=["scripted", "simulated"])
def test_the_gate_tells_a_forgetful_agent_from_a_stateful_one(project, catalog, length):
    pytester, calls = project
    write(pytester, catalog)
    result = run_models(pytester, model="python:convo:forgetful", candidate="python:convo:stateful")
    result.stdout.fnmatch_lines(["*autoevolve gate: PASS*"])
    trajectories, summary = read_run(pytester.path)
    assert summary["verdict"] == "pass" and len(summary["improvements"]) == 12
    for trial in trajectories:
        assert len(trial["messages"]) == length  # the whole conversation
        assert trial["messages"][-1 if length == 6 else -2]["content"] == trial["output"]
        assert trial["passed"] == (trial["role"] == "candidate")
        assert trial["turns"] == 3
    assert called(calls)["stateful"] == called(calls)["forgetful"] == 36
    if catalog is SIMULATED:
        stateful = next(t for t in trajectories if t["role"] == "candidate")
        assert [m["role"] for m in stateful["messages"]] == ["user", "assistant"] * 3 + ["user"]
        assert stateful["messages"][-1]["content"] == "thanks, bye ###STOP###"


@pytest.mark.parametrize("catalog", [SCRIPTED, SIMULATED], ids=["scripted", "simulated"])
def test_a_rerun_with_the_cache_on_makes_no_model_call(project, catalog):
    pytester, calls = project
    write(pytester, catalog)
    run_models(pytester, model="python:convo:forgetful", candidate="python:convo:stateful")
    first = called(calls)
    calls.unlink()
    run_models(pytester, model="python:convo:forgetful", candidate="python:convo:stateful")
    assert first["stateful"] == 36 and not calls.exists()  # the simulated user's turns replayed too
    runs = [read_run_at(run) for run in run_dirs(pytester.path)]
    assert runs[0] == runs[1]


def read_run_at(run: Path) -> list[tuple[str, str, str, list[dict[str, str]]]]:
    """What each trial of a run said: scenario, role, output and conversation, in a stable order."""
    lines = (run / "trajectories.jsonl").read_text().splitlines()
    trials = [json.loads(line) for line in lines]
    return sorted((t["scenario_id"], t["role"], t["output"], t["messages"]) for t in trials)


def test_concurrent_conversations_match_serial_ones(project):
    pytester, _ = project
    write(pytester, SIMULATED)
    for concurrency in ("1", "8"):
        run_models(
            pytester,
            "--autoevolve-cache",
            "off",
            "--autoevolve-concurrency",
            concurrency,
            model="python:convo:stateful",
        )
    serial, concurrent = (read_run_at(run) for run in run_dirs(pytester.path))
    assert serial == concurrent and len(serial) == 24


def test_a_replayed_conversation_answers_whole(project):
    pytester, calls = project
    write(pytester, SIMULATED)
    run_models(pytester, "--autoevolve-cache", "off", model="python:convo:stateful")
    (recorded,) = run_dirs(pytester.path)
    calls.unlink()
    replay = f"replay:{recorded / 'trajectories.jsonl'}+role=candidate"
    run_models(pytester, "--autoevolve-cache", "off", model=replay)
    assert not calls.exists()  # neither the agent nor the simulated user is asked again
    assert read_run_at(run_dirs(pytester.path)[1]) == read_run_at(recorded)


def test_the_simulated_user_stops_after_max_turns(project):
    pytester, calls = project
    write(pytester, SIMULATED.replace("max_turns: 5", "max_turns: 2"))
    run_models(pytester, model="python:convo:stateful")
    trajectories, _ = read_run(pytester.path)
    assert all(len(t["messages"]) == 4 and t["turns"] == 2 for t in trajectories)
    assert called(calls)["customer"] == 12  # one user line per trial (the second reply ends it)


def test_a_user_model_that_fails_is_a_trial_error(project):
    pytester, _ = project
    write(pytester, SIMULATED.replace("convo:customer", "convo:broken_customer"))
    result = run_models(pytester, model="python:convo:stateful")
    result.assert_outcomes(failed=24)
    assert "INTERNALERROR" not in result.stdout.str()
    trajectories, _ = read_run(pytester.path)
    for trial in trajectories:
        assert trial["error"] == (
            "SimulatedUserError: the simulated user python:convo:broken_customer failed: "
            "ConnectionError: user model down"
        )
        assert len(trial["messages"]) == 2  # the opening and the agent's reply are kept


def test_an_unknown_user_provider_is_a_trial_error(project):
    pytester, _ = project
    write(pytester, SIMULATED.replace("python:convo:customer", "nosuch:model"))
    result = run_models(pytester, model="python:convo:stateful")
    result.assert_outcomes(failed=24)
    trajectories, _ = read_run(pytester.path)
    assert all("unknown model provider 'nosuch'" in t["error"] for t in trajectories)


def load(tmp_path: Path, text: str):
    path = tmp_path / "demo.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_file(path, default_registry(), "scenarios/demo.yaml")


@pytest.mark.parametrize(
    ("entry", "key", "message"),
    [
        ("{id: q, turns: [hi, {a: 1}], expected: x}", "turns[1]", "each turn is a user message (a string), got dict"),
        ("{id: q, turns: [hi, [a]], expected: x}", "turns[1]", "got list"),
        ("{id: q, turns: [hi, null], expected: x}", "turns[1]", "got NoneType"),
        ("{id: q, turns: [], expected: x}", "turns", "non-empty list"),
        ("{id: q, turns: hi, expected: x}", "turns", "non-empty list"),
        ("{id: q, input: hi, user: nobody, expected: x}", "user", "'user' is a mapping"),
        ("{id: q, input: hi, user: {persona: p}, expected: x}", "user.model", "'model' is required"),
        ("{id: q, input: hi, user: {model: 'python:a:b'}, expected: x}", "user.persona", "non-empty string"),
        (
            "{id: q, input: hi, user: {model: 'python:a:b', persona: p, max_turns: 0}, expected: x}",
            "user.max_turns",
            "positive whole number",
        ),
        (
            "{id: q, input: hi, user: {model: 'python:a:b', persona: p, stop: ''}, expected: x}",
            "user.stop",
            "non-empty string",
        ),
        (
            "{id: q, input: hi, user: {model: 'python:a:b', persona: p, mood: x}, expected: x}",
            "user.mood",
            "unknown key",
        ),
        ("{id: q, input: hi, user: {model: '', persona: p}, expected: x}", "user.model", "non-empty string"),
        ("{id: q, user: {model: 'python:a:b', persona: p}, expected: x}", "input", "open with 'turns'"),
    ],
)
def test_bad_conversation_keys_name_file_scenario_and_key(tmp_path, entry, key, message):
    with pytest.raises(ScenarioError) as caught:
        load(tmp_path, f"scenarios:\n  - {entry}\n")
    text = str(caught.value)
    assert "scenarios/demo.yaml" in text and "scenario 'q'" in text and f"key '{key}'" in text and message in text


def test_turns_alone_open_with_the_first_and_input_opens_before_them(tmp_path):
    alone, after = load(
        tmp_path,
        """
        scenarios:
          - {id: alone, turns: [a, 2.50], expected: x}
          - {id: after, input: a, turns: [b, c], expected: x}
        """,
    )
    assert alone.messages == ({"role": "user", "content": "a"},) and alone.turns == ("2.50",)
    assert after.messages == ({"role": "user", "content": "a"},) and after.turns == ("b", "c")


def test_the_user_sees_the_conversation_from_its_side():
    user = SimulatedUser("python:a:b", "python:a:b", "You are ada.", stop="DONE")
    seen = user_side(
        user,
        [
            {"role": "system", "content": "be kind"},
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
            {"role": "tool", "content": "42"},
            {"role": "assistant", "content": "your code?"},
        ],
    )
    assert (
        seen[0]["role"] == "system" and seen[0]["content"].startswith("You are ada.") and "DONE" in seen[0]["content"]
    )
    assert seen[1:] == [{"role": "assistant", "content": "hello"}, {"role": "user", "content": "your code?"}]

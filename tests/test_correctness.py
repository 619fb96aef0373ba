"""Verdicts right under real use: numbers as written, judges read strictly, agents' odd returns, replays by role."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from pytest_autoevolve.catalog.loader import load_file
from pytest_autoevolve.errors import GradingError, ScenarioError
from pytest_autoevolve.graders.builtin import default_registry
from pytest_autoevolve.graders.judge import parse_verdict
from pytest_autoevolve.providers.base import ModelSpec, ModelSpecError
from pytest_autoevolve.providers.replay import ReplayModel
from tests.support.runs import read_run, run_models

NUMBERS = """
scenarios:
  - {id: price, input: "price?", expected: 2.50}
  - {id: version, input: "version?", expected: 3.10}
  - {id: zip, input: "zip?", expected: 02134}
  - {id: time, input: "time?", expected: 12:30}
  - {id: hex, input: "hex?", expected: 0x1F}
  - id: graders
    input: "price?"
    expect: [{equals: 2.50}, {contains: 2.50}]
  - id: n-{{n}}
    input: "say {{n}}"
    expected: "{{n}}"
    vars: {n: [007, 1.50]}
"""

ANSWERS = """
ANSWERS = {"price?": "2.50", "version?": "3.10", "zip?": "02134", "time?": "12:30", "hex?": "0x1F"}

def answer(messages):
    text = messages[-1]["content"]
    return ANSWERS.get(text) or text.removeprefix("say ")
"""


def write(folder: Path, text: str, name: str = "demo.yaml") -> Path:
    (folder / "scenarios").mkdir(exist_ok=True)
    path = folder / "scenarios" / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_numbers_mean_the_text_written_in_the_file(pytester):
    path = write(pytester.path, NUMBERS)
    scenarios = {s.id: s for s in load_file(path, default_registry())}
    expected = {k: scenarios[k].expected for k in ("price", "version", "zip", "time", "hex", "n-007", "n-1.50")}
    assert expected == {
        "price": "2.50",
        "version": "3.10",
        "zip": "02134",
        "time": "12:30",
        "hex": "0x1F",
        "n-007": "007",
        "n-1.50": "1.50",
    }
    assert scenarios["n-007"].input == "say 007"
    pytester.makepyfile(written_answers=ANSWERS)
    pytester.syspathinsert()
    result = run_models(pytester, model="python:written_answers:answer")
    result.assert_outcomes(passed=16)
    trajectories, _ = read_run(pytester.path)
    assert all(t["passed"] for t in trajectories)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('scenarios: [{id: q, input: "say {{n}}", expected: "1"}]', "input"),
        ("defaults: {expected: '{{answer}}'}\nscenarios: [{id: q, input: hi}]", "expected"),
        ('scenarios: [{id: q, input: hi, expect: [{contains: "{{word}}"}]}]', "expect"),
    ],
    ids=["input", "defaults", "grader"],
)
def test_a_placeholder_without_vars_is_a_catalog_error(tmp_path, text, key):
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as caught:
        load_file(path, default_registry(), "scenarios/demo.yaml")
    message = str(caught.value)
    assert message.startswith("scenarios/demo.yaml:")
    assert "scenario 'q'" in message and f"key '{key}'" in message and "this entry has no 'vars'" in message


def test_metadata_may_hold_braces(tmp_path):
    path = write(tmp_path, 'scenarios: [{id: q, input: hi, expected: hi, metadata: {template: "{{x}}"}}]')
    assert load_file(path, default_registry())[0].metadata == {"template": "{{x}}"}


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("FAIL. The response names Lyon; it would need to name Paris to pass.", 0.0),
        ("PASS - it names Paris, so nothing would make it FAIL.", 1.0),
        ("**Verdict: FAIL** the reply is wrong; a PASS needs Paris.", 0.0),
        ('{"reasoning": "names Lyon, should be Paris; PASS would need Paris", "score": 0}', 0.0),
        ('Here is my grade: ```json\n{"reasoning": "ok", "score": 0.9}\n```', 0.9),
    ],
)
def test_the_judge_is_read_from_its_answer_not_from_stray_words(reply, score):
    assert parse_verdict(reply)[0] == score


@pytest.mark.parametrize("reply", ["The answer is wrong, but PASS would be kind.", "I cannot tell.", ""])
def test_a_judge_reply_without_a_verdict_is_an_error(reply):
    with pytest.raises(GradingError, match="no verdict"):
        parse_verdict(reply)


JUDGED = """
scenarios:
  - id: capital
    input: "capital of France?"
    expect:
      - llm_judge: "names Paris"
"""

JUDGES = """
def lyon(messages):
    return "Lyon"

def strict(messages):
    return "FAIL. The response names Lyon; it would need to name Paris to pass."

def vague(messages):
    return "Hard to say; a PASS is possible."
"""


@pytest.mark.parametrize(("judge", "passed", "error"), [("strict", False, None), ("vague", False, "GradingError")])
def test_judged_trials_are_fails_or_errors_never_stray_passes(pytester, judge, passed, error):
    write(pytester.path, JUDGED)
    pytester.makepyfile(judges=JUDGES)
    pytester.syspathinsert()
    (pytester.path / "autoevolve.yaml").write_text(f"judge: python:judges:{judge}\n", encoding="utf-8")
    run_models(pytester, "--autoevolve-cache", "off", model="python:judges:lyon")
    trajectories, _ = read_run(pytester.path)
    assert [t["passed"] for t in trajectories] == [passed, passed]
    assert all(
        (t["error"] or "").startswith(error or "") and (t["error"] is None) == (error is None) for t in trajectories
    )


NUMPY_GRADERS = """
import numpy

def np_true(output, trajectory, scenario):
    return numpy.bool_(True)

def np_score(output, trajectory, scenario):
    return numpy.float32(0.75)
"""

GRADERS = """
import json

def tool_agent(messages):
    call = {"name": "lookup", "arguments": json.dumps({"city": "Paris", "units": "metric"})}
    return {"output": "ok", "tool_calls": [call], "usage": {"total_tokens": 42}}

def bad_usage(messages):
    return {"output": "ok", "usage": {"prompt_tokens": "n/a"}}

def free(messages):
    return {"output": "ok", "cost": "free"}

def leaves(messages):
    raise SystemExit(3)
"""

TYPES = """
scenarios:
  - id: numpy
    input: hi
    expect:
      - python: numpy_graders:np_true
      - python: {function: numpy_graders:np_score, threshold: 0.5}
      - tool_called: {name: lookup, arguments: {city: Paris}}
      - max_tokens: 50
"""


def test_numpy_grades_json_arguments_and_total_tokens(pytester):
    write(pytester.path, TYPES)
    pytester.makepyfile(graders=GRADERS, numpy_graders=NUMPY_GRADERS)
    spec = "python:graders:tool_agent"
    result = pytester.runpytest_subprocess(
        "--autoevolve", "--autoevolve-incumbent", spec, "--autoevolve-candidate", spec, "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2)
    trajectories, _ = read_run(pytester.path)
    for trial in trajectories:
        assert trial["total_tokens"] == 42
        assert [g["passed"] for g in trial["grades"]] == [True, True, True, True]
        assert trial["grades"][1]["score"] == 0.75


@pytest.mark.parametrize(
    ("agent", "error"),
    [
        ("bad_usage", "TypeError: python:odd_bad_usage:bad_usage returned usage prompt_tokens 'n/a'"),
        ("free", "TypeError: python:odd_free:free returned cost 'free'"),
        ("leaves", "SystemExit: 3"),
    ],
)
def test_odd_agent_returns_and_exits_are_trial_errors(pytester, agent, error):
    write(pytester.path, "scenarios: [{id: q, input: hi, expected: ok}]")
    pytester.makepyfile(**{f"odd_{agent}": GRADERS})
    pytester.syspathinsert()
    result = run_models(pytester, model=f"python:odd_{agent}:{agent}")
    result.assert_outcomes(failed=2)
    trajectories, summary = read_run(pytester.path)
    assert [t["error"][: len(error)] for t in trajectories] == [error, error]
    assert summary["verdict"] == "inconclusive"


def test_replay_of_a_two_role_run_needs_a_role(tmp_path):
    run = tmp_path / "trajectories.jsonl"
    lines = [
        {"scenario_id": "q", "role": role, "model": role, "messages": [], "seed": 0, "repeat": 0, "output": role}
        for role in ("incumbent", "candidate")
    ]
    run.write_text("".join(json.dumps({"format_version": 1, **line}) + "\n" for line in lines), encoding="utf-8")
    with pytest.raises(ModelSpecError, match=r"records candidate and incumbent trials; name one with .*\+role=ROLE"):
        ReplayModel(ModelSpec("replay", str(run)), tmp_path)
    with pytest.raises(ModelSpecError, match="has no 'judge' trials"):
        ReplayModel(ModelSpec("replay", str(run), {"role": "judge"}), tmp_path)
    chosen = ReplayModel(ModelSpec("replay", str(run), {"role": "incumbent"}), tmp_path)
    assert chosen.trials[("q", 0)].output == "incumbent"


def test_role_and_category_rates_are_per_scenario_means_like_the_lift():
    from pytest_autoevolve.gate.decide import decide
    from pytest_autoevolve.gate.results import ItemResult
    from pytest_autoevolve.gate.summary import GateSummary
    from pytest_autoevolve.report.terminal import summary_lines
    from pytest_autoevolve.settings import GateConfig

    # one scenario with 5 repeats the candidate lost; two with 1 repeat it won: pooled trials say 71.4% -> 28.6%
    items = [
        ItemResult("a", "incumbent", 5, 5, category="c", line=1),
        ItemResult("a", "candidate", 5, 0, category="c", line=1),
        ItemResult("b", "incumbent", 1, 0, category="c", line=2),
        ItemResult("b", "candidate", 1, 1, category="c", line=2),
        ItemResult("d", "incumbent", 1, 0, category="c", line=3),
        ItemResult("d", "candidate", 1, 1, category="c", line=3),
    ]
    result = decide(items, GateConfig(min_paired=1))
    assert result.test is not None
    lift = result.test.lift
    assert lift == pytest.approx(1 / 3)
    assert (result.incumbent.pass_rate, result.candidate.pass_rate) == (pytest.approx(1 / 3), pytest.approx(2 / 3))
    assert result.candidate.pass_rate - result.incumbent.pass_rate == pytest.approx(lift)  # same sign, same size
    assert (result.incumbent.trial_pass_rate, result.candidate.trial_pass_rate) == (5 / 7, 2 / 7)  # labelled apart
    (category,) = result.categories
    assert category.candidate_pass_rate - category.incumbent_pass_rate == pytest.approx(lift)
    lines = summary_lines(GateSummary.from_result(result))
    assert "pass rate  33.3%  (mean of 3 scenarios; 5/7 trials, 0 errors)" in lines[0]


def test_a_grader_that_exits_is_a_failed_grade_and_the_run_goes_on(pytester):
    write(pytester.path, "scenarios: [{id: q, input: hi, expect: [{python: exiting:grade}]}]")
    pytester.makepyfile(
        exiting="import sys\n\ndef grade(output, trajectory, scenario):\n    sys.exit(4)\n",
        exiting_agent="def answer(messages):\n    return 'hi'\n",
    )
    pytester.syspathinsert()
    run_models(pytester, model="python:exiting_agent:answer").assert_outcomes(failed=2)
    trajectories, summary = read_run(pytester.path)
    assert [t["grades"][0]["reason"] for t in trajectories] == ["grader raised SystemExit: 4"] * 2
    assert summary["complete"] is True

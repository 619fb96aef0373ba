"""The core scenario keys and graders of DESIGN §4, each deciding exactly as written."""

from __future__ import annotations

import sys
import textwrap
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from pytest_autoevolve.catalog.loader import load_catalog, load_file
from pytest_autoevolve.errors import ScenarioError
from pytest_autoevolve.graders.builtin import default_registry
from pytest_autoevolve.records import Scenario
from tests.support.runs import read_run, run_models

GRADERS = """
def is_46(output, trajectory, scenario):
    return output.strip() == "46"

def score(output, trajectory, scenario):
    return float(output)

def why(output, trajectory, scenario):
    return output == "ok", f"wanted ok, got {output!r}"

def broken(output, trajectory, scenario):
    raise ValueError("grader bug")

def sees_context(output, trajectory, scenario):
    return trajectory.role in ("incumbent", "candidate") and scenario.id == "pass-context" and output == "ctx"

def not_a_verdict(output, trajectory, scenario):
    return "yes"
"""

MORE_AGENTS = """
def roles(messages):
    return "|".join(f"{m['role']}:{m['content']}" for m in messages)
"""


def by_scenario(root: Path) -> dict[str, list[dict[str, Any]]]:
    """The recorded trajectories of the single run, grouped by scenario id."""
    trajectories, _ = read_run(root)
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for trajectory in trajectories:
        grouped[trajectory["scenario_id"]].append(trajectory)
    return grouped


def assert_named_verdicts(root: Path, count: int) -> dict[str, list[dict[str, Any]]]:
    """Every scenario named ``pass-*`` passed on both roles and every ``fail-*`` failed."""
    grouped = by_scenario(root)
    assert len(grouped) == count
    for scenario_id, trajectories in grouped.items():
        assert sorted(t["role"] for t in trajectories) == ["candidate", "incumbent"]
        for trajectory in trajectories:
            want = scenario_id.startswith("pass-")
            assert trajectory["passed"] is want, (scenario_id, trajectory["output"], trajectory["grades"])
            assert trajectory["error"] is None
    return grouped


def load(tmp_path: Path, text: str, name: str = "demo.yaml") -> list[Scenario]:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_file(path, default_registry())


# --- ids, input and messages -------------------------------------------------------------


def test_node_ids_name_file_scenario_and_role(pytester, write_scenarios, agents):
    write_scenarios(
        """
        scenarios:
          - id: add-1
            input: "add 1+2="
            expected: "3"
          - id: add-2
            input: "add 2+2="
            expected: "4"
        """
    )
    result = run_models(pytester, "--collect-only", "-q")
    lines = result.stdout.lines
    for node_id in (
        "scenarios/demo.yaml::add-1[incumbent]",
        "scenarios/demo.yaml::add-1[candidate]",
        "scenarios/demo.yaml::add-2[incumbent]",
        "scenarios/demo.yaml::add-2[candidate]",
    ):
        assert node_id in lines
    assert lines.index("scenarios/demo.yaml::add-1[incumbent]") < lines.index("scenarios/demo.yaml::add-1[candidate]")
    assert not any("::" in line and "[" not in line for line in lines)


def test_input_is_a_single_user_message(tmp_path):
    (scenario,) = load(
        tmp_path,
        """
        scenarios:
          - id: q
            input: "add 12+34="
            expected: 46
        """,
    )
    assert scenario.id == "q"
    assert scenario.messages == ({"role": "user", "content": "add 12+34="},)
    assert scenario.input == "add 12+34="
    assert scenario.expected == "46"
    assert scenario.split == "eval"
    assert scenario.repeats is None
    assert scenario.critical is False


def test_integer_id_is_a_string(tmp_path):
    (scenario,) = load(tmp_path, "scenarios: [{id: 42, input: x, expected: x}]")
    assert scenario.id == "42"


def test_messages_reach_the_model_with_their_roles(pytester, write_scenarios, agents):
    pytester.makepyfile(more_agents=MORE_AGENTS)
    write_scenarios(
        """
        scenarios:
          - id: convo
            messages:
              - {role: system, content: be terse}
              - {role: user, content: hi}
              - {role: assistant, content: hello}
              - {role: user, content: "add 1+2="}
            expected: "system:be terse|user:hi|assistant:hello|user:add 1+2="
        """
    )
    result = run_models(pytester, model="python:more_agents:roles")
    result.assert_outcomes(passed=2)
    grouped = by_scenario(pytester.path)
    for trajectory in grouped["convo"]:
        assert [m["role"] for m in trajectory["messages"]] == ["system", "user", "assistant", "user", "assistant"]
        assert trajectory["messages"][-1]["content"] == trajectory["output"]


# --- graders ----------------------------------------------------------------------------


def test_expected_is_a_whitespace_trimmed_exact_match(pytester, write_scenarios, agents):
    write_scenarios(
        r"""
        scenarios:
          - {id: pass-trimmed, input: " 46 \n", expected: "46"}
          - {id: pass-exact, input: "46", expected: "46"}
          - {id: pass-int-expected, input: "46", expected: 46}
          - {id: pass-expected-trimmed, input: "46", expected: " 46\n"}
          - {id: fail-longer, input: "460", expected: "46"}
          - {id: fail-prefix, input: "4", expected: "46"}
          - {id: fail-inner-space, input: "4 6", expected: "46"}
          - {id: fail-case, input: "Yes", expected: "yes"}
        """
    )
    result = run_models(pytester, "--tb=short")
    result.assert_outcomes(passed=8, failed=8)
    assert_named_verdicts(pytester.path, 8)
    result.stdout.fnmatch_lines(["*expected: '46'*", "*got:      '460'*", "*grader equals said no: expected '46'*"])


def test_builtin_graders_decide(pytester, write_scenarios, agents):
    write_scenarios(
        r"""
        defaults:
          category: graders
        scenarios:
          - {id: pass-equals, input: " ok ", expect: [equals: ok]}
          - {id: fail-equals, input: "okay", expect: [equals: ok]}
          - {id: pass-contains, input: "the answer is 46", expect: [contains: "46"]}
          - {id: fail-contains-case, input: "The Answer", expect: [contains: answer]}
          - {id: pass-not-contains, input: "fine", expect: [not_contains: error]}
          - {id: fail-not-contains, input: "an error here", expect: [not_contains: error]}
          - {id: pass-regex-search, input: "abc 123 def", expect: [regex: "\\d+"]}
          - {id: fail-regex-anchored, input: "abc 123", expect: [regex: "^\\d+$"]}
          - {id: pass-regex-anchored, input: "123", expect: [regex: "^\\d+$"]}
          - id: pass-all-graders
            input: "46"
            expect: [contains: "4", not_contains: error, regex: "^\\d+$", equals: "46"]
          - id: fail-one-of-many
            input: "46 error"
            expect: [contains: "4", not_contains: error]
          - {id: pass-expected-and-expect, input: "46", expected: "46", expect: [contains: "6"]}
          - {id: fail-expected-and-expect, input: "46", expected: "46", expect: [contains: "7"]}
        """
    )
    result = run_models(pytester, "--tb=short")
    result.assert_outcomes(passed=14, failed=12)
    grouped = assert_named_verdicts(pytester.path, 13)
    grades = grouped["fail-one-of-many"][0]["grades"]
    assert [(g["grader"], g["passed"]) for g in grades] == [("contains", True), ("not_contains", False)]
    assert grouped["fail-one-of-many"][0]["score"] == 0.5
    assert [g["grader"] for g in grouped["pass-expected-and-expect"][0]["grades"]] == ["equals", "contains"]
    result.stdout.fnmatch_lines(["*grader regex said no: /^\\d+$/ did not match*"])


def test_json_schema_grader(pytester, write_scenarios, agents):
    write_scenarios(
        """
        defaults:
          expect:
            - json_schema:
                type: object
                required: [answer]
                properties: {answer: {type: integer}}
        scenarios:
          - {id: pass-valid, input: '{"answer": 46}'}
          - {id: pass-valid-extra-key, input: ' {"answer": 1, "why": "sum"} '}
          - {id: fail-wrong-type, input: '{"answer": "46"}'}
          - {id: fail-missing-key, input: '{"result": 46}'}
          - {id: fail-not-object, input: '[46]'}
          - {id: fail-not-json, input: 'answer: 46'}
        """
    )
    result = run_models(pytester)
    result.assert_outcomes(passed=4, failed=8)
    grouped = assert_named_verdicts(pytester.path, 6)

    def reason(scenario_id: str) -> str:
        return str(grouped[scenario_id][0]["grades"][0]["reason"])

    assert reason("fail-not-json").startswith("output is not JSON")
    assert "schema violation at answer" in reason("fail-wrong-type")
    assert "'answer' is a required property" in reason("fail-missing-key")
    assert reason("pass-valid") == "output matches the schema"


def test_python_graders(pytester, write_scenarios, agents):
    pytester.makepyfile(mygraders=GRADERS)
    pytester.syspathinsert()
    write_scenarios(
        """
        scenarios:
          - {id: pass-bool, input: " 46 ", expect: [python: "mygraders:is_46"]}
          - {id: fail-bool, input: "45", expect: [python: "mygraders:is_46"]}
          - {id: pass-dotted-ref, input: "46", expect: [python: mygraders.is_46]}
          - {id: pass-float-at-default-threshold, input: "0.5", expect: [python: "mygraders:score"]}
          - {id: fail-float-below-default-threshold, input: "0.49", expect: [python: "mygraders:score"]}
          - id: pass-float-at-threshold
            input: "0.8"
            expect: [python: {function: "mygraders:score", threshold: 0.8}]
          - id: fail-float-below-threshold
            input: "0.79"
            expect: [python: {function: "mygraders:score", threshold: 0.8}]
          - {id: pass-tuple, input: "ok", expect: [python: "mygraders:why"]}
          - {id: fail-tuple, input: "nope", expect: [python: "mygraders:why"]}
          - {id: fail-raises, input: "46", expect: [python: "mygraders:broken"]}
          - {id: fail-not-a-verdict, input: "46", expect: [python: "mygraders:not_a_verdict"]}
          - {id: pass-context, input: "ctx", expect: [python: "mygraders:sees_context"]}
          - {id: fail-after-raise, input: "nope", expect: [python: "mygraders:broken", contains: "x"]}
          - {id: pass-after-failures, input: "46", expected: "46"}
        """
    )
    result = run_models(pytester, "--tb=short")
    result.assert_outcomes(passed=14, failed=14)
    out = result.stdout.str()
    assert "INTERNALERROR" not in out
    assert "Traceback" not in out
    grouped = assert_named_verdicts(pytester.path, 14)
    result.stdout.fnmatch_lines(
        [
            "*grader python:mygraders:why said no: wanted ok, got 'nope'*",
            "*grader python:mygraders:broken said no: grader raised ValueError: grader bug*",
            "*grader python:mygraders:not_a_verdict said no: grader raised TypeError*",
        ]
    )
    below = grouped["fail-float-below-threshold"][0]["grades"][0]
    assert below["score"] == pytest.approx(0.79)
    assert below["reason"] == "score 0.79 < 0.8"
    assert grouped["pass-float-at-default-threshold"][0]["grades"][0]["score"] == 0.5
    assert grouped["pass-tuple"][0]["grades"][0]["reason"] == "wanted ok, got 'ok'"
    after = grouped["fail-after-raise"][0]["grades"]
    assert [g["grader"] for g in after] == ["python:mygraders:broken", "contains"]


def test_python_grader_is_imported_from_the_scenario_folder(tmp_path, monkeypatch):
    source = "def ok(output, t, s):\n    return output == 'x', 'from the folder'\n"
    (tmp_path / "folder_graders_xyz.py").write_text(source, encoding="utf-8")
    monkeypatch.setitem(sys.modules, "folder_graders_xyz", None)
    del sys.modules["folder_graders_xyz"]  # undone at teardown: the module does not leak into other tests
    (scenario,) = load(tmp_path, "scenarios: [{id: a, input: x, expect: [python: 'folder_graders_xyz:ok']}]")
    assert [g.name for g in scenario.graders] == ["python"]
    grade = scenario.graders[0].check("x", None, scenario)
    assert (grade.grader, grade.passed, grade.reason) == ("python:folder_graders_xyz:ok", True, "from the folder")
    assert str(tmp_path) not in sys.path


# --- defaults, category, tags, selection --------------------------------------------------


def test_defaults_are_merged_and_the_scenario_wins(tmp_path):
    first, second = load(
        tmp_path,
        """
        defaults:
          category: arithmetic
          tags: [smoke]
          repeats: 2
          timeout_s: 5
          expected: "4"
        scenarios:
          - id: a
            input: "2+2="
          - id: b
            input: "3+3="
            expected: "6"
            category: other
            repeats: 4
            tags: [slow]
        """,
    )
    assert (first.category, first.tags, first.repeats, first.timeout_s, first.expected) == (
        "arithmetic",
        ("smoke",),
        2,
        5.0,
        "4",
    )
    assert (second.category, second.tags, second.repeats, second.timeout_s, second.expected) == (
        "other",
        ("slow",),
        4,
        5.0,
        "6",
    )
    assert [g.value for g in second.graders] == ["6"]


TAGGED = """
scenarios:
  - {id: add-1, input: "1", expected: "1", tags: [smoke], category: arithmetic}
  - {id: add-2, input: "2", expected: "2", tags: [smoke, slow], category: arithmetic}
  - {id: greet, input: "hi", expected: "hi", tags: [slow], category: chat}
  - {id: plain, input: "x", expected: "x"}
"""


@pytest.mark.parametrize(
    ("args", "selected"),
    [
        (["-m", "smoke"], {"add-1", "add-2"}),
        (["-m", "smoke and not slow"], {"add-1"}),
        (["--strict-markers", "-m", "slow"], {"add-2", "greet"}),
        (["--strict-markers", "-m", "not smoke and not slow"], {"plain"}),
        (["-k", "add-1"], {"add-1"}),
        (["-k", "greet or plain"], {"greet", "plain"}),
        (["-k", "arithmetic"], {"add-1", "add-2"}),
        (["-k", "add-2 and candidate"], {"add-2"}),
    ],
)
def test_tags_ids_and_category_select(pytester, write_scenarios, agents, args, selected):
    write_scenarios(TAGGED)
    result = run_models(pytester, *args)
    items = 1 if "candidate" in " ".join(args) else 2
    result.assert_outcomes(passed=items * len(selected), deselected=8 - items * len(selected))
    assert set(by_scenario(pytester.path)) == selected


def test_tags_are_pytest_markers(pytester, write_scenarios, agents):
    write_scenarios(TAGGED)
    result = run_models(pytester, "--strict-markers", "--collect-only", "-q", "-m", "smoke")
    assert "scenarios/demo.yaml::add-1[incumbent]" in result.stdout.lines
    assert "scenarios/demo.yaml::greet[incumbent]" not in result.stdout.lines
    assert "not found in `markers`" not in result.stdout.str()
    assert "error" not in result.stdout.str().lower()


SPLITS = """
scenarios:
  - {id: ev-default, input: a, expected: a}
  - {id: ev-explicit, input: b, expected: b, split: eval}
  - {id: tr-1, input: c, expected: c, split: train}
"""


@pytest.mark.parametrize(
    ("args", "collected"),
    [
        ([], {"ev-default", "ev-explicit"}),
        (["--autoevolve-split", "eval"], {"ev-default", "ev-explicit"}),
        (["--autoevolve-split", "train"], {"tr-1"}),
        (["--autoevolve-split", "all"], {"ev-default", "ev-explicit", "tr-1"}),
    ],
)
def test_split_selects_what_is_collected(pytester, write_scenarios, agents, args, collected):
    write_scenarios(SPLITS)
    result = run_models(pytester, "--collect-only", "-q", *args)
    ids = {line.split("::")[1].split("[")[0] for line in result.stdout.lines if "::" in line}
    assert ids == collected
    assert "error" not in result.stdout.str().lower()


def test_train_split_runs_and_is_recorded_as_train(pytester, write_scenarios, agents):
    write_scenarios(SPLITS)
    result = run_models(pytester, "--autoevolve-split", "train")
    result.assert_outcomes(passed=2)
    grouped = by_scenario(pytester.path)
    assert set(grouped) == {"tr-1"}
    assert {t["split"] for t in grouped["tr-1"]} == {"train"}


# --- repeats, critical, timeout -----------------------------------------------------------


@pytest.mark.parametrize(("cli", "default_trials"), [([], 1), (["--autoevolve-repeats", "2"], 2)])
def test_repeats(pytester, write_scenarios, agents, cli, default_trials):
    write_scenarios(
        """
        scenarios:
          - {id: three, input: a, expected: a, repeats: 3}
          - {id: default, input: b, expected: b}
        """
    )
    result = run_models(pytester, *cli)
    result.assert_outcomes(passed=4)
    grouped = by_scenario(pytester.path)
    for scenario_id, trials in (("three", 3), ("default", default_trials)):
        for role in ("incumbent", "candidate"):
            repeats = [t["repeat"] for t in grouped[scenario_id] if t["role"] == role]
            assert repeats == list(range(trials)), (scenario_id, role)
    seeds = {(t["role"], t["repeat"]): t["seed"] for t in grouped["three"]}
    assert seeds[("incumbent", 1)] == seeds[("candidate", 1)]
    assert len({seeds[("incumbent", r)] for r in range(3)}) == 3


def test_one_failing_repeat_fails_the_item(pytester, write_scenarios, agents):
    pytester.makepyfile(
        flaky="def second_fails(messages, repeat):\n    return 'bad' if repeat == 1 else messages[-1]['content']\n"
    )
    write_scenarios("scenarios: [{id: flaky, input: a, expected: a, repeats: 3}]")
    result = run_models(pytester, "--tb=short", model="python:flaky:second_fails")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*2 of 3 trials passed*", "*got:      'bad'  (trial 1, seed*"])
    assert [t["passed"] for t in by_scenario(pytester.path)["flaky"]] == [True, False, True] * 2


def test_critical_is_stored(tmp_path):
    critical, plain = load(
        tmp_path,
        """
        scenarios:
          - {id: c, input: a, expected: a, critical: true}
          - {id: p, input: a, expected: a}
        """,
    )
    assert critical.critical is True
    assert plain.critical is False


def test_timeout_is_a_trial_error(pytester, write_scenarios, agents):
    write_scenarios(
        """
        scenarios:
          - {id: slow-one, input: a, expected: late, timeout_s: 0.2}
        """
    )
    result = run_models(pytester, "--tb=short", model="python:toyagents:slow")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*error:    TimeoutError: the model did not answer within timeout_s=0.2*"])
    trajectories = by_scenario(pytester.path)["slow-one"]
    assert len(trajectories) == 2
    for trajectory in trajectories:
        assert "did not answer within" in trajectory["error"]
        assert trajectory["passed"] is False
        assert trajectory["latency_s"] < 3


def test_timeout_that_is_met_passes(pytester, write_scenarios, agents):
    write_scenarios("scenarios: [{id: quick, input: a, expected: a, timeout_s: 5}]")
    run_models(pytester).assert_outcomes(passed=2)


# --- vars ---------------------------------------------------------------------------------


def test_vars_list_of_mappings(tmp_path):
    scenarios = load(
        tmp_path,
        """
        scenarios:
          - id: "add-{{a}}-{{b}}"
            input: "add {{a}}+{{b}}="
            expected: "{{sum}}"
            repeats: "{{n}}"
            vars:
              - {a: 1, b: 2, sum: 3, n: 2}
              - {a: 10, b: 20, sum: 30, n: 1}
        """,
    )
    assert [(s.id, s.input, s.expected, s.repeats) for s in scenarios] == [
        ("add-1-2", "add 1+2=", "3", 2),
        ("add-10-20", "add 10+20=", "30", 1),
    ]


def test_vars_mapping_of_lists_is_the_cartesian_product(tmp_path):
    scenarios = load(
        tmp_path,
        """
        defaults:
          category: greet
        scenarios:
          - id: "{{who}}-{{lang}}"
            input: "greet {{who}} in {{lang}}"
            expect: [contains: "{{who}}"]
            vars:
              who: [ann, bob]
              lang: [en, fr, de]
          - {id: other, input: x, expected: x}
        """,
    )
    assert [s.id for s in scenarios] == ["ann-en", "ann-fr", "ann-de", "bob-en", "bob-fr", "bob-de", "other"]
    assert scenarios[4].input == "greet bob in fr"
    assert scenarios[4].graders[0].value == "bob"
    assert {s.category for s in scenarios} == {"greet"}


def test_lone_placeholder_keeps_the_yaml_type(tmp_path):
    (scenario,) = load(
        tmp_path,
        """
        scenarios:
          - id: typed
            input: "x"
            expected: "x"
            repeats: "{{n}}"
            critical: "{{crit}}"
            timeout_s: "{{ t }}"
            tags: "{{tags}}"
            vars: [{n: 3, crit: true, t: 1.5, tags: [a, b]}]
        """,
    )
    assert scenario.repeats == 3
    assert scenario.critical is True
    assert scenario.timeout_s == 1.5
    assert scenario.tags == ("a", "b")


def test_vars_expand_into_items(pytester, write_scenarios, agents):
    write_scenarios(
        """
        scenarios:
          - id: "echo-{{w}}"
            input: "{{w}}"
            expected: "{{w}}"
            vars: {w: [one, two]}
        """
    )
    result = run_models(pytester, "--collect-only", "-q")
    assert "scenarios/demo.yaml::echo-one[candidate]" in result.stdout.lines
    assert "scenarios/demo.yaml::echo-two[incumbent]" in result.stdout.lines


# --- the catalog ---------------------------------------------------------------------------


def test_ids_are_unique_across_the_catalog(tmp_path):
    folder = tmp_path / "scenarios"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.yaml").write_text("scenarios: [{id: one, input: x, expected: x}]", encoding="utf-8")
    (folder / "sub" / "b.yml").write_text("scenarios: [{id: two, input: y, expected: y}]", encoding="utf-8")
    catalog = load_catalog([folder], default_registry(), tmp_path)
    assert [s.id for s in catalog] == ["one", "two"]
    assert catalog["two"].path == "scenarios/sub/b.yml"
    (folder / "sub" / "c.yaml").write_text("scenarios: [{id: one, input: z, expected: z}]", encoding="utf-8")
    with pytest.raises(ScenarioError) as excinfo:
        load_catalog([folder], default_registry(), tmp_path)
    message = str(excinfo.value)
    assert "scenarios/sub/c.yaml" in message
    assert "'one'" in message
    assert "already defined in scenarios/a.yaml" in message
    assert excinfo.value.key == "id"


# --- junit --------------------------------------------------------------------------------


def test_junit_properties(pytester, write_scenarios, agents):
    write_scenarios(
        """
        scenarios:
          - {id: add-1, input: "add 1+2=", expected: "3", critical: true, category: arithmetic}
          - {id: echo-1, input: "hi", expect: [contains: hi], repeats: 2}
        """
    )
    result = run_models(pytester, "--junitxml=out.xml", candidate="python:toyagents:answer")
    result.assert_outcomes(passed=2, failed=2)
    root = ET.parse(pytester.path / "out.xml").getroot()
    cases = {}
    for case in root.iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        cases[(props["scenario"], props["role"])] = props
    assert set(cases) == {
        ("add-1", "incumbent"),
        ("add-1", "candidate"),
        ("echo-1", "incumbent"),
        ("echo-1", "candidate"),
    }
    for props in cases.values():
        assert {"role", "scenario", "passed", "score", "latency_s", "tokens", "critical"} <= set(props)
        assert float(props["latency_s"]) >= 0
    assert cases[("add-1", "candidate")]["passed"] == "true"
    assert float(cases[("add-1", "candidate")]["score"]) == 1.0
    assert cases[("add-1", "candidate")]["tokens"] == "4"
    assert cases[("add-1", "candidate")]["critical"] == "true"
    assert cases[("add-1", "incumbent")]["passed"] == "false"
    assert float(cases[("add-1", "incumbent")]["score"]) == 0.0
    assert cases[("add-1", "incumbent")]["tokens"] == "0"
    assert cases[("echo-1", "incumbent")]["passed"] == "true"
    assert cases[("echo-1", "incumbent")]["critical"] == "false"
    assert cases[("echo-1", "candidate")]["tokens"] == "8"
    assert cases[("echo-1", "candidate")]["passed"] == "false"

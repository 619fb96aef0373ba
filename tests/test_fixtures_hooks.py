"""Fixtures for users' own tests, the plugin hooks, config files, and what plain pytest sees (DESIGN §5)."""

from __future__ import annotations

import json
import textwrap

from tests.support.runs import fixture_trials, read_jsonl, read_run, run_dirs

CATALOG = """
scenarios:
  - id: greet
    input: "hello"
    expect:
      - contains: hell
  - id: add-1
    input: "add 1+2="
    expected: "3"
  - id: train-only
    input: "train me"
    expected: "train me"
    split: train
"""

# An agent that shows what it was sent, so a test can see the system prompt arrive.
SHOW_AGENT = """
def show(messages):
    return " | ".join(f"{m['role']}:{m['content']}" for m in messages)
"""

# The echo agent in both roles.
MODELS = ("--autoevolve-incumbent", "python:toyagents:echo", "--autoevolve-candidate", "python:toyagents:echo")

USER_TESTS = """
from pytest_autoevolve.run.runner import trial_seed
from pytest_autoevolve.trajectory import Trajectory


def test_catalog(autoevolve_catalog):
    assert [s.id for s in autoevolve_catalog] == ["greet", "add-1", "train-only"]
    assert autoevolve_catalog["add-1"].expected == "3"
    assert [s.id for s in autoevolve_catalog.split("eval")] == ["greet", "add-1"]


def test_each_scenario(autoevolve_scenario, autoevolve_incumbent, autoevolve_candidate):
    assert autoevolve_scenario.split == "eval"
    assert autoevolve_incumbent.spec == "python:toyagents:echo"
    assert autoevolve_candidate.spec == "python:toyagents:answer"
    incumbent = autoevolve_incumbent.run(autoevolve_scenario)
    candidate = autoevolve_candidate.run(autoevolve_scenario)
    assert isinstance(incumbent, Trajectory) and isinstance(candidate, Trajectory)
    assert (incumbent.role, candidate.role) == ("incumbent", "candidate")
    assert incumbent.scenario_id == candidate.scenario_id == autoevolve_scenario.id
    assert incumbent.seed == candidate.seed == trial_seed(7, autoevolve_scenario.id, 0)
    assert incumbent.output == autoevolve_scenario.input
    assert candidate.passed is (autoevolve_scenario.expected is not None)


def test_model_by_spec(autoevolve_model, autoevolve_catalog):
    handle = autoevolve_model("python:toyagents:echo")
    assert handle is autoevolve_model("python:toyagents:echo")
    assert handle.spec == "python:toyagents:echo"
    trajectory = handle.run(autoevolve_catalog["greet"], repeat=1)
    assert trajectory.output == "hello"
    assert trajectory.passed
    assert trajectory.repeat == 1
    assert trajectory.grades[0].grader == "contains"


def test_model_by_role(autoevolve_model, autoevolve_candidate):
    assert autoevolve_model("candidate") is autoevolve_candidate


def test_settings(autoevolve_settings):
    assert autoevolve_settings.incumbent == "python:toyagents:echo"
    assert autoevolve_settings.candidate == "python:toyagents:answer"
    assert autoevolve_settings.seed == 7
    assert autoevolve_settings.repeats == 2
"""


def user_project(pytester, write_scenarios) -> None:
    """The catalog, a pyproject naming both models, and the user's own test module."""
    write_scenarios(CATALOG)
    pytester.makepyprojecttoml(
        """
        [tool.autoevolve]
        incumbent = "python:toyagents:echo"
        candidate = "python:toyagents:answer"
        seed = 7
        repeats = 2
        """
    )
    pytester.makepyfile(test_mine=USER_TESTS)


def test_fixtures_with_pyproject_settings(pytester, write_scenarios, agents):
    user_project(pytester, write_scenarios)
    result = pytester.runpytest("test_mine.py", "-v")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(
        ["*test_mine.py::test_each_scenario?greet? PASSED*", "*test_mine.py::test_each_scenario?add-1? PASSED*"]
    )
    result.stdout.no_fnmatch_line("*train-only*")
    assert not (run_dirs(pytester.path)[0] / "trajectories.jsonl").exists()  # no gated run: users' tests only
    trajectories = fixture_trials(pytester.path)
    # each_scenario: 2 scenarios x 2 roles; model_by_spec: 1 trial, recorded under its spec
    assert sorted((t["scenario_id"], t["role"]) for t in trajectories) == [
        ("add-1", "candidate"),
        ("add-1", "incumbent"),
        ("greet", "candidate"),
        ("greet", "incumbent"),
        ("greet", "python:toyagents:echo"),
    ]


def test_scenario_fixture_follows_the_split(pytester, write_scenarios, agents):
    write_scenarios(CATALOG)
    pytester.makepyfile(
        test_split="""
        def test_each(autoevolve_scenario):
            assert autoevolve_scenario.id
        """
    )
    result = pytester.runpytest("test_split.py", "--autoevolve-split", "train", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["test_split.py::test_each[[]train-only[]]", "1 test collected*"])
    result = pytester.runpytest("test_split.py", "--autoevolve-split", "all", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*test_each[[]greet[]]", "*test_each[[]add-1[]]", "*test_each[[]train-only[]]"])


def test_fixtures_also_run_under_autoevolve_with_explicit_path(pytester, write_scenarios, agents):
    user_project(pytester, write_scenarios)
    result = pytester.runpytest("--autoevolve", "test_mine.py")
    result.assert_outcomes(passed=6)


def test_autoevolve_yaml_named_model_with_system_prompt_and_cli_override(pytester, write_scenarios, agents):
    write_scenarios(
        """
        scenarios:
          - id: greet
            input: "hello"
            expect:
              - contains: "system:be brief"
        """
    )
    pytester.makepyfile(showagent=SHOW_AGENT)
    # pyproject says one thing, autoevolve.yaml wins over it, the CLI wins over both
    pytester.makepyprojecttoml(
        """
        [tool.autoevolve]
        incumbent = "python:toyagents:boom"
        seed = 1
        repeats = 3
        """
    )
    (pytester.path / "autoevolve.yaml").write_text(
        textwrap.dedent(
            """
            incumbent: brief
            candidate: python:toyagents:boom
            seed: 11
            models:
              brief:
                spec: python:showagent:show
                system_prompt: be brief
            """
        ),
        encoding="utf-8",
    )
    pytester.makepyfile(
        test_settings_seen="""
        def test_settings(autoevolve_settings, autoevolve_incumbent, autoevolve_model):
            assert autoevolve_settings.incumbent == "brief"
            assert autoevolve_settings.candidate == "python:toyagents:echo"
            assert autoevolve_settings.seed == 11
            assert autoevolve_settings.repeats == 3
            assert autoevolve_incumbent.spec == "python:showagent:show+system_prompt=be brief"
            assert autoevolve_model("brief").system_prompt == "be brief"
        """
    )
    result = pytester.runpytest("test_settings_seen.py", "--autoevolve-candidate", "python:toyagents:echo")
    result.assert_outcomes(passed=1)

    result = pytester.runpytest("--autoevolve", "--autoevolve-candidate", "python:toyagents:echo", "-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*greet?incumbent? PASSED*", "*greet?candidate? FAILED*"])
    runs = sorted((pytester.path / ".autoevolve" / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    trajectories = read_jsonl(runs[-1] / "trajectories.jsonl")
    assert len(trajectories) == 6  # repeats: 3 from pyproject, for both roles
    incumbent = [t for t in trajectories if t["role"] == "incumbent"]
    assert {t["output"] for t in incumbent} == {"system:be brief | user:hello"}
    assert incumbent[0]["messages"][0] == {"role": "system", "content": "be brief"}
    assert incumbent[0]["model"] == "python:showagent:show+system_prompt=be brief"
    candidate = [t for t in trajectories if t["role"] == "candidate"]
    assert {t["model"] for t in candidate} == {"python:toyagents:echo"}
    assert {t["output"] for t in candidate} == {"hello"}
    assert {t["error"] for t in trajectories} == {None}


def test_role_as_a_mapping_in_pyproject(pytester, write_scenarios, agents):
    write_scenarios(
        """
        scenarios:
          - id: greet
            input: "hello"
            expected: "system:be brief | user:hello"
        """
    )
    pytester.makepyfile(showagent=SHOW_AGENT)
    pytester.makepyprojecttoml(
        """
        [tool.autoevolve]
        incumbent = {spec = "python:showagent:show", system_prompt = "be brief", api_key = "SECRET"}
        candidate = "python:showagent:show"
        """
    )
    result = pytester.runpytest("--autoevolve", "-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*greet?incumbent? PASSED*", "*greet?candidate? FAILED*"])
    trajectories, summary = read_run(pytester.path)
    assert summary["incumbent"]["spec"] == "python:showagent:show+system_prompt=be brief"
    assert "SECRET" not in json.dumps([trajectories, summary])


def test_system_prompt_in_scenario_is_not_duplicated(pytester, write_scenarios, agents):
    write_scenarios(
        """
        scenarios:
          - id: own-system
            messages:
              - {role: system, content: "scenario says"}
              - {role: user, content: "hi"}
            expected: "system:scenario says | user:hi"
        """
    )
    pytester.makepyfile(showagent=SHOW_AGENT)
    (pytester.path / "autoevolve.yaml").write_text(
        "models:\n  brief: {spec: 'python:showagent:show', system_prompt: be brief}\n"
        "incumbent: brief\ncandidate: brief\n",
        encoding="utf-8",
    )
    result = pytester.runpytest("--autoevolve")
    result.assert_outcomes(passed=2)


GRADER_CONFTEST = """
from pytest_autoevolve.graders import Grade


def starts_with(value, folder):
    if not isinstance(value, str):
        raise ValueError("'starts_with' takes a string")

    def check(output, trajectory, scenario):
        ok = output.startswith(value)
        return Grade("starts_with", ok, 1.0 if ok else 0.0, f"{output!r} {'starts' if ok else 'does not start'} "
                     f"with {value!r}")

    return check


def pytest_autoevolve_add_graders(registry):
    registry.register("starts_with", starts_with)
"""


def test_hook_adds_grader(pytester, write_scenarios, agents):
    pytester.makeconftest(GRADER_CONFTEST)
    write_scenarios(
        """
        scenarios:
          - id: starts-ok
            input: "hello world"
            expect:
              - starts_with: "hello"
          - id: starts-bad
            input: "goodbye"
            expect:
              - starts_with: "hello"
        """
    )
    result = pytester.runpytest("--autoevolve", *MODELS)
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["*[[]starts_with: 'goodbye' does not start with 'hello'[]]"])
    trajectories, _ = read_run(pytester.path)
    assert {g["grader"] for t in trajectories for g in t["grades"]} == {"starts_with"}


def test_hook_grader_bad_value_is_a_collection_error(pytester, write_scenarios, agents):
    pytester.makeconftest(GRADER_CONFTEST)
    write_scenarios(
        """
        scenarios:
          - id: starts-bad-value
            input: "x"
            expect:
              - starts_with: [1, 2]
        """
    )
    result = pytester.runpytest("--autoevolve", *MODELS)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*scenarios/demo.yaml*starts-bad-value*expect[[]0[]].starts_with*takes a string*"])


def test_unknown_grader_lists_hook_grader(pytester, write_scenarios, agents):
    pytester.makeconftest(GRADER_CONFTEST)
    write_scenarios(
        """
        scenarios:
          - id: typo
            input: "x"
            expect:
              - start_with: "x"
        """
    )
    result = pytester.runpytest("--autoevolve", *MODELS)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*unknown grader 'start_with'*starts_with*"])


PROVIDER_CONFTEST = """
from pytest_autoevolve.models import Reply

CREATED = []


class Fake:
    def __init__(self, spec, root):
        self.spec = spec.display
        self.target = spec.target
        CREATED.append(spec)

    def generate(self, messages, *, scenario, seed, repeat):
        return Reply(output=f"fake-{self.target}", prompt_tokens=5, completion_tokens=2, cost=0.5)


def pytest_autoevolve_add_providers(registry):
    registry.register("fake", Fake)
"""


def test_hook_adds_provider(pytester, write_scenarios, agents):
    pytester.makeconftest(PROVIDER_CONFTEST)
    write_scenarios(
        """
        scenarios:
          - id: fake-x
            input: "anything"
            expected: "fake-x"
        """
    )
    result = pytester.runpytest(
        "--autoevolve",
        "--autoevolve-incumbent",
        "python:toyagents:echo",
        "--autoevolve-candidate",
        "fake:x+token=T0P",
        "-v",
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*fake-x?candidate? PASSED*"])
    assert "T0P" not in result.stdout.str()
    trajectories, summary = read_run(pytester.path)
    candidate = next(t for t in trajectories if t["role"] == "candidate")
    assert candidate["model"] == "fake:x"
    assert candidate["output"] == "fake-x"
    assert (candidate["prompt_tokens"], candidate["completion_tokens"], candidate["total_tokens"]) == (5, 2, 7)
    assert candidate["cost"] == 0.5
    assert summary["candidate"]["spec"] == "fake:x"
    assert summary["candidate"]["pass_rate"] == 1.0
    for path in (pytester.path / ".autoevolve").rglob("*"):
        assert path.is_dir() or "T0P" not in path.read_text(encoding="utf-8"), path


def test_unknown_provider_is_a_usage_error(pytester, write_scenarios, agents):
    pytester.makeconftest(PROVIDER_CONFTEST)
    write_scenarios(CATALOG)
    result = pytester.runpytest(
        "--autoevolve", "--autoevolve-incumbent", "python:toyagents:echo", "--autoevolve-candidate", "faek:x"
    )
    assert result.ret == 4  # pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--autoevolve-candidate: unknown model provider 'faek'; known: fake, *python*"])


TRAJECTORY_CONFTEST = """
SEEN = []


def pytest_autoevolve_trajectory(trajectory, config):
    assert config.getoption("autoevolve") is True
    SEEN.append((trajectory.scenario_id, trajectory.role, trajectory.repeat, trajectory.passed))


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(f"observed {len(SEEN)} trajectories: {sorted(SEEN)}")
"""


def test_hook_observes_every_trajectory(pytester, write_scenarios, agents):
    pytester.makeconftest(TRAJECTORY_CONFTEST)
    write_scenarios(CATALOG)
    result = pytester.runpytest(
        "--autoevolve",
        "--autoevolve-incumbent",
        "python:toyagents:echo",
        "--autoevolve-candidate",
        "python:toyagents:boom",
        "--autoevolve-repeats",
        "2",
    )
    result.assert_outcomes(passed=1, failed=3)
    # 2 eval scenarios x 2 roles x 2 repeats; the train scenario is not run
    result.stdout.fnmatch_lines(["observed 8 trajectories: *"])
    line = next(line for line in result.outlines if line.startswith("observed 8"))
    assert "('greet', 'incumbent', 1, True)" in line
    assert "('add-1', 'candidate', 0, False)" in line
    trajectories, _ = read_run(pytester.path)
    assert len(trajectories) == 8


def test_plain_pytest_does_not_collect_yaml(pytester, write_scenarios, agents):
    write_scenarios(CATALOG)
    (pytester.path / "other.yaml").write_text("not: [a, scenario, file\n", encoding="utf-8")
    pytester.makepyfile(test_plain="def test_one():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*.yaml*")
    assert not (pytester.path / ".autoevolve").exists()


def test_plain_pytest_does_not_collect_a_named_yaml(pytester, write_scenarios, agents):
    path = write_scenarios(CATALOG)
    result = pytester.runpytest(str(path))
    result.assert_outcomes()
    result.stderr.fnmatch_lines(["ERROR: not found: *scenarios/demo.yaml"])  # as for any non-test file
    assert not (pytester.path / ".autoevolve").exists()


def test_help_shows_the_option_group(pytester):
    result = pytester.runpytest("--help")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "LLM regression gate (pytest-autoevolve):",
            "*--autoevolve *",
            "*--autoevolve-incumbent=SPEC*",
            "*--autoevolve-candidate=SPEC*",
            "*--autoevolve-repeats=N*",
            "*--autoevolve-artifacts=DIR*",
            "*--autoevolve-seed=N*",
        ]
    )


def _catalog_and_python_tests(pytester, write_scenarios):
    write_scenarios(CATALOG)
    tests = pytester.mkdir("tests")
    (tests / "test_app.py").write_text("def test_app():\n    assert True\n", encoding="utf-8")
    extra = pytester.mkdir("extra")
    (extra / "more.yaml").write_text("scenarios:\n  - id: more-1\n    input: hi\n    expected: hi\n", encoding="utf-8")


def test_autoevolve_without_paths_collects_only_the_catalog(pytester, write_scenarios, agents):
    _catalog_and_python_tests(pytester, write_scenarios)
    result = pytester.runpytest("--autoevolve", *MODELS, "--collect-only", "-q")
    result.stdout.fnmatch_lines(
        [
            "scenarios/demo.yaml::greet[[]incumbent[]]",
            "scenarios/demo.yaml::greet[[]candidate[]]",
            "scenarios/demo.yaml::add-1[[]incumbent[]]",
            "scenarios/demo.yaml::add-1[[]candidate[]]",
            "4 tests collected*",
        ]
    )
    result.stdout.no_fnmatch_line("*test_app*")
    result.stdout.no_fnmatch_line("*more-1*")
    result = pytester.runpytest("--autoevolve", *MODELS)
    result.assert_outcomes(passed=2, failed=2)


def test_autoevolve_without_paths_ignores_testpaths(pytester, write_scenarios, agents):
    _catalog_and_python_tests(pytester, write_scenarios)
    pytester.makeini("[pytest]\ntestpaths = tests\n")
    result = pytester.runpytest("--autoevolve", *MODELS, "--collect-only", "-q")
    result.stdout.fnmatch_lines(["4 tests collected*"])
    result.stdout.no_fnmatch_line("*test_app*")
    plain = pytester.runpytest("--collect-only", "-q")
    plain.stdout.fnmatch_lines(["tests/test_app.py::test_app", "1 test collected*"])


def test_autoevolve_honours_explicit_paths(pytester, write_scenarios, agents):
    _catalog_and_python_tests(pytester, write_scenarios)
    result = pytester.runpytest("--autoevolve", *MODELS, "tests")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*demo.yaml*")

    result = pytester.runpytest("--autoevolve", *MODELS, "extra/more.yaml", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*extra/more.yaml::more-1?incumbent? PASSED*"])

    result = pytester.runpytest("--autoevolve", *MODELS, "scenarios/demo.yaml::greet[candidate]", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*scenarios/demo.yaml::greet?candidate? PASSED*"])


def test_custom_catalog_setting(pytester, agents):
    cases = pytester.mkdir("cases")
    (cases / "a.yaml").write_text("scenarios:\n  - id: a-1\n    input: hi\n    expected: hi\n", encoding="utf-8")
    pytester.makepyprojecttoml('[tool.autoevolve]\ncatalog = "cases"\n')
    result = pytester.runpytest("--autoevolve", *MODELS, "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*cases/a.yaml::a-1?incumbent? PASSED*"])

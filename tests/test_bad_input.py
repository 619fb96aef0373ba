"""Malformed scenario files are collection errors that say where and what is allowed (DESIGN §4);
failing models are trial errors, not crashes (DESIGN §3)."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from tests.support.runs import read_run, run_models

GOOD = "scenarios: [{id: good-1, input: ok, expected: ok}]"
KNOWN_KEYS = "allowed: id, description, input, messages, expected"


def write(pytester: pytest.Pytester, files: dict[str, str]) -> None:
    folder = pytester.path / "scenarios"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text), encoding="utf-8")


def assert_clean_collection_error(result: Any) -> str:
    """A collection error of pytest's own kind, with no internal error or traceback."""
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.INTERRUPTED, out
    assert "INTERNALERROR" not in out
    assert "Traceback" not in out
    assert "error during collection" in out or "errors during collection" in out
    return out


CASES = [
    pytest.param(
        {"demo.yaml": "scenarios:\n  - {id: ok-1, input: a, expected: a}\n  - {input: b, expected: b}\n"},
        ["scenarios/demo.yaml:3", "scenario #2", "key 'id'", "every scenario needs an 'id'"],
        id="missing-id",
    ),
    pytest.param(
        {"demo.yaml": "scenarios:\n  - {id: x, input: a, expected: a}\n  - {id: x, input: b, expected: b}\n"},
        ["scenarios/demo.yaml:3", "scenario 'x'", "key 'id'", "duplicate id, first defined at line 2"],
        id="duplicate-id-in-file",
    ),
    pytest.param(
        {
            "a.yaml": "scenarios: [{id: same, input: a, expected: a}]",
            "b.yaml": "scenarios: [{id: same, input: b, expected: b}]",
        },
        ["scenarios/b.yaml", "scenario 'same'", "key 'id'", "already defined in scenarios/a.yaml"],
        id="duplicate-id-across-files",
    ),
    pytest.param(
        {"demo.yaml": "scenarios: [{id: q, expected: a}]"},
        ["scenarios/demo.yaml", "scenario 'q'", "key 'input'", "exactly one of 'input'", "'messages'", "got neither"],
        id="no-input",
    ),
    pytest.param(
        {"demo.yaml": "scenarios: [{id: q, input: a, messages: [{role: user, content: a}], expected: a}]"},
        ["scenarios/demo.yaml", "scenario 'q'", "key 'input'", "exactly one of 'input'", "got both"],
        id="input-and-messages",
    ),
    pytest.param(
        {"demo.yaml": "scenarios: [{id: q, input: a, expected: a, expectt: [contains: a]}]"},
        ["scenarios/demo.yaml", "scenario 'q'", "key 'expectt'", KNOWN_KEYS],
        id="unknown-key",
    ),
    pytest.param(
        {"demo.yaml": "scenarios: [{id: q, input: a, expect: [startswith: a]}]"},
        ["scenario 'q'", "key 'expect[0].startswith'", "unknown grader 'startswith'", "known graders: contains"],
        id="unknown-grader",
    ),
    pytest.param(
        {"demo.yaml": "scenarios: [{id: q, input: a, expect: [contains: a, regex: '(unclosed']}]"},
        ["scenarios/demo.yaml", "scenario 'q'", "key 'expect[1].regex'", "not a valid regular expression"],
        id="invalid-regex",
    ),
    pytest.param(
        {"demo.yaml": "scenarios: [{id: q, input: a, expected: a, repeats: three}]"},
        ["scenario 'q'", "key 'repeats'", "positive whole number, got 'three'"],
        id="repeats-word",
    ),
    pytest.param(
        {"demo.yaml": "scenarios: [{id: q, input: a, expected: a, repeats: -2}]"},
        ["scenario 'q'", "key 'repeats'", "positive whole number, got -2"],
        id="repeats-negative",
    ),
    pytest.param(
        {"demo.yaml": "scenarios: [{id: q, input: a, expected: a, repeats: true}]"},
        ["scenario 'q'", "key 'repeats'", "positive whole number, got True"],
        id="repeats-bool",
    ),
    pytest.param(
        {"demo.yaml": "scenarios: [{id: q, input: a, expected: a, repeats: 2.5}]"},
        ["scenario 'q'", "key 'repeats'", "positive whole number, got 2.5"],
        id="repeats-fraction",
    ),
    pytest.param(
        {"demo.yaml": "scenarios: [{id: q, input: a, expected: a, timeout_s: 0}]"},
        ["scenario 'q'", "key 'timeout_s'", "positive number of seconds"],
        id="timeout-zero",
    ),
    pytest.param(
        {"demo.yaml": "scenarios: [{id: q, input: a, expected: a, split: test}]"},
        ["scenario 'q'", "key 'split'", "'test' is not allowed; allowed: eval, train"],
        id="unknown-split",
    ),
    pytest.param(
        {
            "demo.yaml": "scenarios: [{id: q, messages: [{role: user, content: a}, {role: bot, content: b}], "
            "expected: a}]"
        },
        ["scenario 'q'", "key 'messages[1].role'", "unknown role 'bot'", "allowed: system, user, assistant"],
        id="unknown-role",
    ),
    pytest.param(
        {"demo.yaml": "scenarios: [{id: q, input: a, critical: yes-please, expected: a}]"},
        ["scenario 'q'", "key 'critical'", "true or false"],
        id="critical-not-bool",
    ),
    pytest.param(
        {"demo.yaml": "scenarios: [{id: q, input: a, expect: [python: 'no_such_graders_mod:check']}]"},
        ["scenario 'q'", "key 'expect[0].python'", "'no_such_graders_mod:check' cannot be imported"],
        id="python-grader-not-importable",
    ),
    pytest.param(
        {
            "demo.yaml": "scenarios: [{id: q, input: a, expect: [python: 'broken_syntax_graders:f']}]",
            "broken_syntax_graders.py": "def f(:\n",
        },
        ["scenario 'q'", "key 'expect[0].python'", "'broken_syntax_graders:f' cannot be imported: SyntaxError"],
        id="python-grader-module-has-syntax-error",
    ),
    pytest.param(
        {
            "demo.yaml": "scenarios: [{id: q, input: a, expect: [python: 'raising_graders:f']}]",
            "raising_graders.py": "raise RuntimeError('no api key')\n",
        },
        ["scenario 'q'", "key 'expect[0].python'", "cannot be imported: RuntimeError: no api key"],
        id="python-grader-module-raises-on-import",
    ),
    pytest.param(
        {"demo.yaml": "scenarios: [{id: q, input: a, expect: [python: 'toyagents:missing_fn']}]"},
        ["scenario 'q'", "key 'expect[0].python'", "has no attribute 'missing_fn'"],
        id="python-grader-function-missing",
    ),
    pytest.param(
        {"demo.yaml": "scenarios: [{id: q, input: a, expect: [python: {function: 'toyagents:echo', threshold: x}]}]"},
        ["scenario 'q'", "key 'expect[0].python'", "threshold is a number, e.g. 0.8, got 'x'"],
        id="python-grader-threshold-not-a-number",
    ),
    pytest.param(
        {"demo.yaml": "scenarios: [{id: q, input: a, expect: [json_schema: {type: 12}]}]"},
        ["scenario 'q'", "key 'expect[0].json_schema'", "not a valid JSON Schema"],
        id="invalid-json-schema",
    ),
    pytest.param(
        {"demo.yaml": "scenarios: [{id: q, input: a, expect: [json_schema: object]}]"},
        ["scenario 'q'", "key 'expect[0].json_schema'", "takes a JSON Schema mapping"],
        id="json-schema-not-mapping",
    ),
    pytest.param(
        {"demo.yaml": "scenarios:\n  - id: q\n    input: [unclosed\n    expected: a\n"},
        ["scenarios/demo.yaml:4: YAML syntax error"],
        id="yaml-syntax-error",
    ),
    pytest.param(
        {"demo.yaml": "- {id: q, input: a, expected: a}\n"},
        ["scenarios/demo.yaml", "a mapping with a 'scenarios' list", "this is a list"],
        id="file-is-a-list",
    ),
    pytest.param(
        {"demo.yaml": ""},
        ["scenarios/demo.yaml", "a mapping with a 'scenarios' list", "this is an empty file"],
        id="empty-file",
    ),
    pytest.param(
        {"demo.yaml": "scenarios: [{id: q, input: a, expected: a}]\nsettings: {}\n"},
        ["scenarios/demo.yaml", "key 'settings'", "allowed: defaults, scenarios"],
        id="unknown-top-level-key",
    ),
    pytest.param(
        {"demo.yaml": "defaults: {idd: x}\nscenarios: [{id: q, input: a, expected: a}]\n"},
        ["scenarios/demo.yaml", "key 'defaults.idd'", "allowed: description, input"],
        id="unknown-defaults-key",
    ),
    pytest.param(
        {"demo.yaml": "scenarios: [{id: q, input: a}]"},
        ["scenario 'q'", "key 'expect'", "no grader: give 'expected' or a list under 'expect'"],
        id="no-grader",
    ),
    pytest.param(
        {"demo.yaml": "scenarios: [{id: 'q-{{a}}', input: '{{a}} {{b}}', expected: a, vars: [{a: 1}]}]"},
        ["scenario 'q-{{a}}'", "key 'vars'", "placeholder {{b}} has no value", "vars give: a"],
        id="vars-missing-value",
    ),
    pytest.param(
        {"demo.yaml": "scenarios: [{id: q, input: a, expected: a, vars: {a: 1}}]"},
        ["scenario 'q'", "key 'vars'", "mapping of non-empty lists"],
        id="vars-wrong-shape",
    ),
]


@pytest.mark.parametrize(("files", "fragments"), CASES)
def test_malformed_file_is_a_clean_collection_error(pytester, agents, files, fragments):
    write(pytester, files)
    result = run_models(pytester)
    out = assert_clean_collection_error(result)
    missing = [fragment for fragment in fragments if fragment not in out]
    assert not missing, out


def test_yaml_syntax_error_names_the_line(pytester, agents):
    write(pytester, {"demo.yaml": "scenarios:\n  - id: q\n\tinput: a\n    expected: a\n"})
    result = run_models(pytester)
    assert_clean_collection_error(result)
    result.stdout.fnmatch_lines(["scenarios/demo.yaml:3: YAML syntax error: *cannot start any token*"])


def test_other_files_run_with_continue_on_collection_errors(pytester, agents):
    write(pytester, {"a_bad.yaml": "scenarios: [{id: q, input: a, expected: a, repeats: three}]", "b_good.yaml": GOOD})
    result = run_models(pytester, "--continue-on-collection-errors")
    result.assert_outcomes(passed=2, errors=1)
    out = result.stdout.str()
    assert "INTERNALERROR" not in out
    assert "Traceback" not in out
    result.stdout.fnmatch_lines(["*scenarios/a_bad.yaml*scenario 'q'*key 'repeats'*"])
    trajectories, _ = read_run(pytester.path)
    assert {t["scenario_id"] for t in trajectories} == {"good-1"}


def test_without_continue_nothing_runs(pytester, agents):
    write(pytester, {"a_bad.yaml": "scenarios: [{id: q, input: a, expected: a, repeats: three}]", "b_good.yaml": GOOD})
    result = run_models(pytester)
    assert_clean_collection_error(result)
    result.assert_outcomes(errors=1)


# --- model failures -----------------------------------------------------------------------


def test_model_that_raises_is_that_trials_error(pytester, agents):
    write(
        pytester,
        {
            "demo.yaml": """
            scenarios:
              - {id: first, input: a, expected: a}
              - {id: second, input: b, expected: b, repeats: 2}
            """
        },
    )
    result = run_models(pytester, candidate="python:toyagents:boom")
    result.assert_outcomes(passed=2, failed=2)
    out = result.stdout.str()
    assert "INTERNALERROR" not in out
    assert "Traceback" not in out
    result.stdout.fnmatch_lines(["*: 0/1 passed: *error RuntimeError: model exploded*"])
    trajectories, summary = read_run(pytester.path)
    candidate = [t for t in trajectories if t["role"] == "candidate"]
    assert [(t["scenario_id"], t["repeat"]) for t in candidate] == [("first", 0), ("second", 0), ("second", 1)]
    for trajectory in candidate:
        assert trajectory["error"] == "RuntimeError: model exploded"
        assert trajectory["passed"] is False
        assert trajectory["grades"] == []
    assert all(t["passed"] and t["error"] is None for t in trajectories if t["role"] == "incumbent")
    assert summary["candidate"]["errors"] == 3


def test_unknown_model_provider_is_a_usage_error(pytester, agents):
    write(pytester, {"demo.yaml": GOOD})
    result = run_models(pytester, candidate="nope:x")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "--autoevolve-candidate" in err
    assert "unknown model provider 'nope'" in err
    assert "python" in err
    assert "INTERNALERROR" not in err + result.stdout.str()
    assert "Traceback" not in err + result.stdout.str()


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("python:no_such_agent_module:fn", "no_such_agent_module"),
        ("python:toyagents:no_such_function", "no_such_function"),
        ("python:broken_agent:fn", "broken_agent"),
    ],
)
def test_python_model_that_cannot_be_imported_fails_each_trial(pytester, agents, spec, fragment):
    pytester.makepyfile(broken_agent="def fn(messages:\n")
    write(pytester, {"demo.yaml": "scenarios: [{id: a, input: a, expected: a}, {id: b, input: b, expected: b}]"})
    result = run_models(pytester, candidate=spec)
    result.assert_outcomes(passed=2, failed=2)
    out = result.stdout.str()
    assert "INTERNALERROR" not in out
    assert "Traceback" not in out
    result.stdout.fnmatch_lines([f"*: 0/1 passed: *error *could not be loaded*{fragment}*"])
    trajectories, _ = read_run(pytester.path)
    candidate = [t for t in trajectories if t["role"] == "candidate"]
    assert [t["scenario_id"] for t in candidate] == ["a", "b"]
    for trajectory in candidate:
        assert fragment in trajectory["error"]
        assert "cannot be imported" in trajectory["error"] or "has no attribute" in trajectory["error"]
        assert trajectory["passed"] is False

"""What `pytest --autoevolve` prints: failed scenario items as evidence in brief, the verdict last."""

from __future__ import annotations

import pytest

from tests.support.agents import SAY_AGENTS

CATALOG = """
scenarios:
  - id: say-{{n}}
    input: "say {{n}}"
    expected: "{{n}}"
    vars:
""" + "".join(f"      - {{n: {i}}}\n" for i in range(30))


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".yaml", **{"scenarios/say": CATALOG})
    pytester.makepyfile(say=SAY_AGENTS)
    pytester.makefile(".yaml", autoevolve="gate:\n  max_latency_increase: null\n")
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    models = ("--autoevolve-incumbent", "python:say:weak", "--autoevolve-candidate", "python:say:strong")
    return pytester.runpytest("--autoevolve", *models, "--junitxml=run.xml", *args)


def test_the_verdict_is_the_last_line_and_failures_are_brief(project):
    result = run(project)
    lines = result.outlines
    assert result.ret == 0
    assert lines[-1] == "autoevolve gate: PASS (exit status 0)"
    assert len(lines) < 60
    assert not any(line.startswith(("FAILED ", "____")) for line in lines)
    assert "Traceback" not in result.stdout.str()
    # the count line speaks of scenario items, not failed tests, and pytest still counts them as failures
    result.assert_outcomes(passed=40, failed=20)
    assert any("20 failed scenario items" in line for line in lines)
    result.stdout.fnmatch_lines(
        [
            "failed scenario items: 20 (20 incumbent); -v shows each in full",
            "  say-1[incumbent]: 0/1 passed: expected '1', got '?' [equals]",
        ]
    )
    # junit keeps every failure a failure
    assert (project.path / "run.xml").read_text().count("<failure") == 20


def test_verbose_shows_each_failure_in_full(project):
    result = run(project, "-v")
    result.stdout.fnmatch_lines(["*scenario 'say-1' failed for the incumbent*", "*grader equals said no*"])
    assert result.outlines[-1] == "autoevolve gate: PASS (exit status 0)"


def test_a_failing_gate_ends_with_its_exit_status(project):
    models = ("--autoevolve-incumbent", "python:say:strong", "--autoevolve-candidate", "python:say:weak")
    result = project.runpytest("--autoevolve", *models)
    assert result.ret == 1 and result.outlines[-1] == "autoevolve gate: FAIL (exit status 1)"

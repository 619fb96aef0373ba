from __future__ import annotations

from tests.support.runs import read_run


def test_python_model_runs_both_roles(pytester, write_scenarios, agents):
    write_scenarios(
        """
        scenarios:
          - id: add-1
            input: "add 1+2="
            expected: "3"
          - id: echo-1
            input: "hello"
            expect:
              - contains: hell
        """
    )
    result = pytester.runpytest(
        "--autoevolve",
        "--autoevolve-incumbent",
        "python:toyagents:echo",
        "--autoevolve-candidate",
        "python:toyagents:answer",
    )
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["*add-1?incumbent?: 0/1 passed: expected '3', got 'add 1+2='*"])
    trajectories, summary = read_run(pytester.path)
    assert len(trajectories) == 4
    assert summary["candidate"]["pass_rate"] == 0.5
    assert summary["incumbent"]["pass_rate"] == 0.5

"""The verdict and exit status of whole runs, serial and under xdist."""

from __future__ import annotations

import pytest

from tests.support.agents import SAY_AGENTS
from tests.support.runs import read_run

CATALOG = """
scenarios:
  - id: crit
    input: "say 0"
    expected: "0"
    critical: true
  - id: q-{{n}}
    input: "say {{n}}"
    expected: "{{n}}"
    vars:
      n: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
          21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40]
"""


@pytest.fixture
def project(pytester, write_scenarios):
    """The catalog, and the "say N" agents as the module ``models``, importable in runs."""
    write_scenarios(CATALOG)
    pytester.makepyfile(models=SAY_AGENTS)
    pytester.syspathinsert()


CASES = [
    ("better", "pass", 0),
    ("half", "fail", 1),
    ("worse", "fail", 1),
    ("breaks_critical", "fail", 1),
    ("erroring", "inconclusive", 1),
]


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
@pytest.mark.parametrize(("candidate", "verdict", "status"), CASES, ids=[c[0] for c in CASES])
def test_verdict_and_exit_status(pytester, project, candidate, verdict, status, workers):
    result = pytester.runpytest_subprocess(
        "--autoevolve",
        "--autoevolve-incumbent",
        "python:models:half",
        "--autoevolve-candidate",
        f"python:models:{candidate}",
        *workers,
    )
    assert result.ret == status
    result.stdout.fnmatch_lines([f"*autoevolve gate: {verdict.upper()}*"])
    _, summary = read_run(pytester.path)
    assert summary["verdict"] == verdict
    assert summary["n_paired"] == 41
    if candidate == "breaks_critical":
        assert summary["critical_regressions"] == ["crit"]
        assert summary["p_value"] < 0.05
    if candidate == "better":
        assert summary["lift"] == pytest.approx(20 / 41)
        assert summary["test"] == "score"
        assert sorted(summary["improvements"]) == sorted(f"q-{n}" for n in range(1, 41, 2))


def test_xdist_and_serial_give_the_same_numbers(pytester, project):
    args = [
        "--autoevolve",
        "--autoevolve-incumbent",
        "python:models:worse",
        "--autoevolve-candidate",
        "python:models:half",
        "--autoevolve-repeats",
        "2",
        "-p",
        "no:cacheprovider",
    ]
    summaries = []
    for extra in ([], ["-n", "2"]):
        pytester.runpytest_subprocess(*args, *extra)
        _, summary = read_run(pytester.path)
        summaries.append(summary)
        for run in (pytester.path / ".autoevolve" / "runs").iterdir():
            for file in run.iterdir():
                file.unlink()
            run.rmdir()
    keys = ("verdict", "lift", "ci_low", "ci_high", "p_value", "test", "n_paired", "regressions", "improvements")
    serial, distributed = summaries
    assert {k: serial[k] for k in keys} == {k: distributed[k] for k in keys}
    assert serial["scenarios"] == distributed["scenarios"]


def test_a_run_with_nothing_collected_does_not_pass(pytester, write_scenarios):
    write_scenarios("scenarios:\n  - id: only-train\n    input: x\n    expected: x\n    split: train\n")
    result = pytester.runpytest("--autoevolve")
    assert result.ret != 0

"""A gate that cannot be talked into PASS: crashed, killed, cut-short and mixed runs never pass and exit non-zero."""

from __future__ import annotations

import json

import pytest

from tests.support.runs import read_jsonl, read_run, run_dirs

# 12 scenarios "say N" -> "N"; the candidate answers all of them, the incumbent every third,
# so a complete run passes the gate (8 improvements, p = 0.0039).
CATALOG = "scenarios:\n" + "".join(
    f"  - {{id: q-{n:02d}, input: 'say {n}', expected: '{n}'{', critical: true' if n == 11 else ''}}}\n"
    for n in range(12)
)
AGENTS = """
import os
import signal

def _n(messages):
    return int(messages[-1]["content"].split()[-1])

def incumbent(messages):
    n = _n(messages)
    return str(n) if n % 3 == 0 else "?"

def candidate(messages):
    return str(_n(messages))

def leaves(messages):
    if _n(messages) == 5:
        os._exit(0)
    return candidate(messages)

def interrupted(messages):
    if _n(messages) == 5:
        raise KeyboardInterrupt
    return candidate(messages)

def killed(messages):
    if _n(messages) == 11:
        os.kill(os.getpid(), signal.SIGKILL)
    return candidate(messages)
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    (pytester.path / "scenarios").mkdir()
    (pytester.path / "scenarios" / "say.yaml").write_text(CATALOG, encoding="utf-8")
    pytester.makepyfile(gate_agents=AGENTS)
    return pytester


def gate(pytester: pytest.Pytester, candidate: str, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "--autoevolve",
        "--autoevolve-incumbent",
        "python:gate_agents:incumbent",
        "--autoevolve-candidate",
        f"python:gate_agents:{candidate}",
        "-p",
        "no:cacheprovider",
        *args,
    )


def test_a_complete_run_passes(project):
    result = gate(project, "candidate")
    assert result.ret == 0
    _, summary = read_run(project.path)
    assert (summary["verdict"], summary["complete"], summary["missing"]) == ("pass", True, [])


def test_an_agent_calling_os_exit_is_a_trial_error_not_the_end_of_the_run(project):
    result = gate(project, "leaves")
    assert result.ret == 1
    trajectories, summary = read_run(project.path)
    (left,) = [t for t in trajectories if t["error"]]
    assert left["scenario_id"] == "q-05" and left["error"] == "SystemExit: the model called os._exit(0) during a trial"
    assert summary["complete"] is True and summary["verdict"] != "pass"
    assert result.stdout.lines[-1].startswith("autoevolve gate: ")  # the run ended normally, with its verdict


@pytest.mark.parametrize("stop", ["-x", "--maxfail=1"])
def test_a_run_stopped_early_is_incomplete_and_cannot_pass(project, stop):
    result = gate(project, "candidate", stop)
    assert result.ret == 1
    _, summary = read_run(project.path)
    assert summary["complete"] is False and summary["verdict"] == "fail"  # q-11 is critical and never ran
    assert "q-11[candidate]" in summary["missing"]
    assert summary["reasons"][0].startswith(f"{len(summary['missing'])} selected scenario item(s) did not finish")
    result.stdout.fnmatch_lines(["*autoevolve gate: FAIL*", "*did not finish (stopping after 1 failures)*"])


def test_ctrl_c_leaves_an_incomplete_summary_that_does_not_pass(project):
    result = gate(project, "interrupted")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    (run,) = run_dirs(project.path)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["complete"] is False and summary["verdict"] == "fail"  # q-11, critical, never ran
    assert any("critical scenario(s) did not finish: q-11" in r for r in summary["reasons"])
    assert all(isinstance(line, dict) for line in read_jsonl(run / "trajectories.jsonl"))


def test_a_killed_xdist_worker_makes_its_critical_scenario_fail(project):
    pytest.importorskip("xdist")
    result = gate(project, "killed", "-n", "2")
    assert result.ret == 1
    _, summary = read_run(project.path)
    assert summary["complete"] is False and summary["verdict"] == "fail"
    assert "q-11[candidate]" in summary["missing"]
    assert summary["catalog_sha256"] != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # not empty


def test_failing_ordinary_tests_fail_the_run_even_when_the_gate_passes(project):
    project.makepyfile(
        test_plain="""
        def test_arithmetic():
            assert 1 + 1 == 3

        def test_the_catalog(autoevolve_scenario, autoevolve_candidate):
            autoevolve_candidate.run(autoevolve_scenario)
        """
    )
    result = gate(project, "candidate", "scenarios", "test_plain.py")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["*autoevolve gate: PASS*", "*1 ordinary test(s) failed (test_plain.py::test_arithmetic*"]
    )
    (run,) = run_dirs(project.path)
    gated = read_jsonl(run / "trajectories.jsonl")
    assert len(gated) == 24  # 12 scenarios x 2 roles: the fixture's 12 trials are kept apart
    assert len(read_jsonl(run / "fixture-trajectories.jsonl")) == 12
    assert json.loads((run / "summary.json").read_text())["candidate"]["n"] == 12


def test_catalog_digest_is_the_same_serial_and_under_xdist(project):
    pytest.importorskip("xdist")
    gate(project, "candidate")
    serial = read_run(project.path)[1]["catalog_sha256"]
    for run in run_dirs(project.path):
        for path in sorted(run.iterdir()):
            path.unlink()
        run.rmdir()
    gate(project, "candidate", "-n", "2")
    assert read_run(project.path)[1]["catalog_sha256"] == serial


def test_a_pass_with_items_missing_becomes_inconclusive():
    from pytest_autoevolve.gate.decide import decide, require_complete
    from pytest_autoevolve.gate.results import ItemResult
    from pytest_autoevolve.settings import GateConfig

    items = [ItemResult(f"s{n}", "incumbent", 1, int(n % 3 == 0), line=n) for n in range(12)]
    items += [ItemResult(f"s{n}", "candidate", 1, 1, line=n) for n in range(12)]
    assert decide(items, GateConfig()).verdict == "pass"
    lost = [ItemResult("s12", "candidate", 0, 0)]
    result = require_complete(decide(items, GateConfig()), lost, "the run was interrupted")
    assert (result.verdict, result.complete, result.missing) == ("inconclusive", False, ["s12[candidate]"])
    assert result.reasons == ["1 selected scenario item(s) did not finish (the run was interrupted): s12[candidate]"]

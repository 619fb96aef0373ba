"""Runs that outgrow one machine: shards merged into one verdict, and a run resumed where it stopped."""

from __future__ import annotations

import json

import pytest

from pytest_autoevolve.cli import app as cli
from pytest_autoevolve.gate.junit import read_junit
from tests.support.runs import read_jsonl, run_dirs

SCENARIOS = 31

COUNTING_AGENTS = """
import os

def _n(messages):
    return int(messages[-1]["content"].split()[-1])

def _log(name):
    with open(os.environ["CALLS"], "a") as calls:
        calls.write(name + "\\n")

def weak(messages):
    _log("weak")
    n = _n(messages)
    return str(n) if n % 3 == 0 else "?"

def strong(messages):
    _log("strong")
    n = _n(messages)
    if n == int(os.environ.get("CRASH_AT", "-1")):
        os.kill(os.getpid(), 9)  # the machine goes away mid-run
    if n == int(os.environ.get("ERROR_AT", "-1")) and not os.path.exists(os.environ["CALLS"] + ".errored"):
        open(os.environ["CALLS"] + ".errored", "w").close()
        raise ConnectionError("endpoint down")
    return str(n) if n % 5 else "?"
"""


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    rows = "".join(f"      - {{n: {i}}}\n" for i in range(SCENARIOS))
    catalog = (
        f'scenarios:\n  - id: say-{{{{n}}}}\n    input: "say {{{{n}}}}"\n    expected: "{{{{n}}}}"\n    vars:\n{rows}'
    )
    pytester.makefile(".yaml", **{"scenarios/say": catalog})
    pytester.makepyfile(counting=COUNTING_AGENTS)
    pytester.makefile(".yaml", autoevolve="gate:\n  max_latency_increase: null\n")
    monkeypatch.setenv("CALLS", str(pytester.path / "calls.log"))
    return pytester


MODELS = ("--autoevolve-incumbent", "python:counting:weak", "--autoevolve-candidate", "python:counting:strong")


def calls(pytester: pytest.Pytester) -> int:
    log = pytester.path / "calls.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def report(capsys: pytest.CaptureFixture[str], *files: str) -> tuple[int, dict[str, object]]:
    capsys.readouterr()
    status = cli.main(["report", "--json", *files])
    return status, json.loads(capsys.readouterr().out)


GATE = ("verdict", "lift", "ci_low", "ci_high", "p_value", "n_paired", "regressions", "improvements")


def test_shards_are_balanced_disjoint_and_merge_into_the_whole_runs_verdict(project, capsys):
    whole = project.runpytest("--autoevolve", *MODELS, "--junitxml=whole.xml", "-p", "no:cacheprovider")
    assert whole.ret == 0
    sizes = []
    for k in (1, 2, 3):
        shard = project.runpytest(
            "--autoevolve", *MODELS, f"--autoevolve-shard={k}/3", f"--junitxml=shard-{k}.xml", "-p", "no:cacheprovider"
        )
        assert shard.ret == 0  # a complete shard exits 0: the merge decides
        assert shard.outlines[-1] == "autoevolve gate: INCONCLUSIVE (exit status 0)"
        shard.stdout.fnmatch_lines([f"inconclusive: shard {k} of 3: one slice of the catalog decides nothing*"])
        sizes.append(len(read_junit(project.path / f"shard-{k}.xml").items) // 2)
    assert sorted(sizes) == [10, 10, 11] and sum(sizes) == SCENARIOS
    status, merged = report(capsys, "shard-1.xml", "shard-2.xml", "shard-3.xml")
    _, one = report(capsys, "whole.xml")
    assert status == 0 and {k: merged[k] for k in GATE} == {k: one[k] for k in GATE}


def test_a_sequential_gate_is_not_sharded(project):
    result = project.runpytest("--autoevolve", *MODELS, "--autoevolve-shard=1/2", "--autoevolve-sequential")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--autoevolve-shard: a sequential gate decides on one machine*"])


def test_a_resumed_run_equals_an_uninterrupted_one_and_runs_only_what_was_left(project, monkeypatch, capsys):
    whole = project.runpytest_subprocess("--autoevolve", *MODELS, "--autoevolve-cache=off", "--junitxml=whole.xml")
    assert whole.ret == 0 and calls(project) == 2 * SCENARIOS
    (project.path / "calls.log").unlink()
    monkeypatch.setenv("CRASH_AT", "20")  # the process dies at say-20's candidate trial
    died = project.runpytest_subprocess("--autoevolve", *MODELS, "--autoevolve-cache=off")
    assert died.ret != 0
    (stopped,) = [run for run in run_dirs(project.path) if not (run / "summary.json").exists()]
    finished = len(read_jsonl(stopped / "trajectories.jsonl"))
    assert 0 < finished < 2 * SCENARIOS and not (stopped / "summary.json").exists()
    monkeypatch.delenv("CRASH_AT")
    before = calls(project)
    resumed = project.runpytest_subprocess(
        "--autoevolve", *MODELS, "--autoevolve-cache=off", f"--autoevolve-resume={stopped}", "--junitxml=resumed.xml"
    )
    assert resumed.ret == 0
    assert calls(project) - before == 2 * SCENARIOS - finished  # only the trials that never finished
    _, one = report(capsys, "whole.xml")
    _, again = report(capsys, "resumed.xml")
    assert {k: again[k] for k in GATE} == {k: one[k] for k in GATE}


def test_retry_errors_runs_only_the_trials_that_errored(project, monkeypatch):
    monkeypatch.setenv("ERROR_AT", "4")
    first = project.runpytest("--autoevolve", *MODELS, "--autoevolve-cache=off", "-p", "no:cacheprovider")
    errored = run_dirs(project.path)[-1]
    assert sum(t["error"] is not None for t in read_jsonl(errored / "trajectories.jsonl")) == 1
    first.stdout.fnmatch_lines(["*say-4?candidate?: 0/1 passed: expected '4', error ConnectionError: endpoint down"])
    before = calls(project)
    again = project.runpytest(
        "--autoevolve", *MODELS, "--autoevolve-cache=off", f"--autoevolve-resume={errored.name}",
        "--autoevolve-retry-errors", "-p", "no:cacheprovider",
    )  # fmt: skip
    assert calls(project) - before == 1
    (resumed,) = [run for run in run_dirs(project.path) if run != errored]  # run ids of one second sort at random
    trials = read_jsonl(resumed / "trajectories.jsonl")
    assert len(trials) == 2 * SCENARIOS and all(t["error"] is None for t in trials)
    assert again.outlines[-1].startswith("autoevolve gate: ")


def test_resuming_what_is_not_there_or_with_other_models_is_a_usage_error(project):
    missing = project.runpytest("--autoevolve", *MODELS, "--autoevolve-resume=no-such-run")
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    missing.stderr.fnmatch_lines(["*--autoevolve-resume: no run at no-such-run*"])
    project.runpytest("--autoevolve", *MODELS, "-p", "no:cacheprovider")
    run = run_dirs(project.path)[-1].name
    other = ("--autoevolve-incumbent", "python:counting:strong", "--autoevolve-candidate", "python:counting:strong")
    result = project.runpytest("--autoevolve", *other, f"--autoevolve-resume={run}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*run {run} ran python:counting:weak as the incumbent, not python:counting:strong*"])

"""``autoevolve ci gate --base REF`` in a real git repository, run as the gate workflow runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import git
import pytest
from junitparser import JUnitXml

from tests.support.projects import commit_all, git_project
from tests.support.runs import read_jsonl, run_dirs

AUTOEVOLVE = str(Path(sys.executable).with_name("autoevolve"))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A git repo: the strings catalog, a python: agent, autoevolve.yaml naming the weak agent; committed."""
    config = "candidate: python:agent:weak\ngate:\n  min_paired: 10\n"
    return git_project(tmp_path / "project", config, gitignore="__pycache__/\n", message="base")


def ci_gate(root: Path, base: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run the command exactly as the autoevolve-gate workflow does, with GitHub's job environment."""
    env = {
        **os.environ,
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "step-summary.md"),
        "AGENT_CALLS": str(tmp_path / "calls.log"),
    }
    return subprocess.run(
        [AUTOEVOLVE, "ci", "gate", "--base", base, *extra],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def base_calls(tmp_path: Path) -> int:
    log = tmp_path / "calls.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_pull_request_changing_the_candidate_is_gated_and_the_base_run_is_reused(project: Path, tmp_path: Path):
    repo = git.Repo(project)
    base = repo.head.commit.hexsha
    (project / "autoevolve.yaml").write_text("candidate: python:agent:strong\ngate:\n  min_paired: 10\n")
    commit_all(repo, "head: a stronger candidate")

    first = ci_gate(project, base, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "incumbent: running python:agent:weak at " + base[:10] in first.stdout
    assert "autoevolve gate: PASS" in first.stdout
    calls = base_calls(tmp_path)
    assert calls > 20  # the base commit's agent answered every eval scenario, in its worktree

    outputs = project / ".autoevolve" / "ci"
    summary = json.loads((outputs / "summary.json").read_text())
    assert summary["verdict"] == "pass"
    assert summary["incumbent"]["spec"] == f"python:agent:weak @ {base[:10]}"
    assert summary["candidate"]["spec"] == "python:agent:strong"
    assert summary["incumbent"]["pass_rate"] < 0.5 < summary["candidate"]["pass_rate"]
    assert summary["n_paired"] == calls
    assert (outputs / "report.html").read_text().lower().startswith("<!doctype html>")
    assert "PASS" in (outputs / "report.md").read_text()
    assert "PASS" in (tmp_path / "step-summary.md").read_text()  # the job summary
    suites = list(JUnitXml.fromfile(str(outputs / "junit.xml")))
    assert sum(len(list(suite)) for suite in suites) == 2 * calls
    runs = list((project / ".autoevolve" / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "trajectories.jsonl").is_file()  # the head's run, with both roles
    assert not repo.is_dirty(untracked_files=True)  # the worktree is gone, the results are git-ignored
    assert len(repo.git.worktree("list").splitlines()) == 1
    stored = next((project / ".autoevolve" / "ci" / "incumbent").iterdir())
    meta = json.loads((stored / "meta.json").read_text())
    assert meta["commit"] == base and meta["base_spec"] == "python:agent:weak"

    second = ci_gate(project, base, tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "incumbent: reusing the stored run of python:agent:weak" in second.stdout
    assert base_calls(tmp_path) == calls  # no base-side model call the second time
    again = json.loads((outputs / "summary.json").read_text())
    assert (again["incumbent"]["pass_rate"], again["candidate"]["pass_rate"], again["p_value"]) == (
        summary["incumbent"]["pass_rate"],
        summary["candidate"]["pass_rate"],
        summary["p_value"],
    )

    (project / "scenarios" / "strings.yaml").write_text(
        (project / "scenarios" / "strings.yaml").read_text().replace("reverse {{word}}", "Reverse {{word}}")
    )
    commit_all(repo, "head: a changed catalog")
    third = ci_gate(project, base, tmp_path)
    assert "incumbent: running" in third.stdout  # a new catalog digest: the base runs again
    assert base_calls(tmp_path) == 2 * calls


def test_a_regression_is_annotated_and_fails(project: Path, tmp_path: Path):
    repo = git.Repo(project)
    (project / "autoevolve.yaml").write_text("candidate: python:agent:strong\n")
    base = commit_all(repo, "base: strong")
    (project / "autoevolve.yaml").write_text("candidate: python:agent:weak\n")
    commit_all(repo, "head: back to weak")
    done = ci_gate(project, base, tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "autoevolve gate: FAIL" in done.stdout
    assert "::error file=scenarios/strings.yaml,line=" in done.stdout
    assert json.loads((project / ".autoevolve" / "ci" / "summary.json").read_text())["verdict"] == "fail"


def test_agent_code_at_the_base_is_the_incumbent(project: Path, tmp_path: Path):
    repo = git.Repo(project)
    (project / "autoevolve.yaml").write_text("candidate: python:agent:answer\ngate:\n  min_paired: 10\n")
    base = commit_all(repo, "base: the agent at level 1")
    agent = project / "agent.py"
    agent.write_text(agent.read_text().replace("LEVEL = 1", "LEVEL = 3"))  # uncommitted: the working tree
    done = ci_gate(project, base, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((project / ".autoevolve" / "ci" / "summary.json").read_text())
    assert summary["incumbent"]["spec"] == f"python:agent:answer @ {base[:10]}"
    assert summary["incumbent"]["pass_rate"] < 0.5 < summary["candidate"]["pass_rate"]


def test_a_commit_against_itself_and_an_unknown_base_are_refused(project: Path, tmp_path: Path):
    same = ci_gate(project, "HEAD", tmp_path)
    assert same.returncode == 2
    assert "refusing to compare HEAD" in same.stderr and "with itself" in same.stderr
    unknown = ci_gate(project, "no-such-branch", tmp_path)
    assert unknown.returncode == 2
    assert "unknown base 'no-such-branch'" in unknown.stderr and "fetch-depth: 0" in unknown.stderr
    assert not (project / ".autoevolve" / "ci" / "incumbent").exists()


def test_replay_answers_with_the_recorded_trials(pytester: pytest.Pytester, write_scenarios, agents):
    write_scenarios("""
        scenarios:
          - {id: one, input: "1", expected: "1"}
          - {id: two, input: "2", expected: "2"}
    """)
    pytester.runpytest(
        "--autoevolve", f"--autoevolve-incumbent=python:{agents}:boom", f"--autoevolve-candidate=python:{agents}:answer"
    )
    recorded = run_dirs(pytester.path)[0] / "trajectories.jsonl"
    trials = {(t["role"], t["scenario_id"]): t for t in read_jsonl(recorded)}
    path = recorded.relative_to(pytester.path)
    before = set(run_dirs(pytester.path))
    result = pytester.runpytest(
        "--autoevolve", "--autoevolve-only=candidate", f"--autoevolve-candidate=replay:{path}+role=incumbent"
    )
    result.assert_outcomes(failed=2)
    (run,) = set(run_dirs(pytester.path)) - before
    replayed = read_jsonl(run / "trajectories.jsonl")
    assert {t["role"] for t in replayed} == {"candidate"}  # --autoevolve-only: one role's items
    for trial in replayed:
        assert trial["error"] == "TrialError: recorded: RuntimeError: model exploded"
        assert trial["passed"] is False
        assert trial["latency_s"] == trials[("incumbent", trial["scenario_id"])]["latency_s"]
    result = pytester.runpytest(
        "--autoevolve", "--autoevolve-only=candidate", f"--autoevolve-candidate=replay:{path}+role=candidate"
    )
    result.assert_outcomes(passed=2)


def test_sharded_gate_merges_to_the_verdict_of_one_run(project: Path, tmp_path: Path):
    repo = git.Repo(project)
    base = repo.head.commit.hexsha
    (project / "autoevolve.yaml").write_text("candidate: python:agent:strong\ngate:\n  min_paired: 10\n")
    commit_all(repo, "head: a stronger candidate")
    whole = ci_gate(project, base, tmp_path)
    assert whole.returncode == 0, whole.stdout + whole.stderr
    outputs = project / ".autoevolve" / "ci"
    one_run = json.loads((outputs / "summary.json").read_text())

    shards = tmp_path / "shards"
    for index in (1, 2):  # as the workflow's matrix jobs do, each uploading its ci/ results
        done = ci_gate(project, base, tmp_path, "--shard", f"{index}/2")
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"autoevolve ci gate: shard {index}/2 complete" in done.stdout
        folder = shards / f"autoevolve-shard-{index}"
        folder.mkdir(parents=True)
        for name in ("junit.xml", "gate-rule.json", "shard.json"):
            (folder / name).write_bytes((outputs / name).read_bytes())

    merge = [AUTOEVOLVE, "ci", "merge"]
    partial = subprocess.run([*merge, str(shards / "autoevolve-shard-1")], cwd=project, capture_output=True, text=True)
    assert partial.returncode == 2 and "shard(s) 2 of 2 are missing" in partial.stderr
    merged = subprocess.run([*merge, *map(str, sorted(shards.iterdir()))], cwd=project, capture_output=True, text=True)
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert merged.stdout.startswith("autoevolve gate: PASS")
    summary = json.loads((outputs / "summary.json").read_text())
    for field in ("verdict", "n_paired", "p_value", "lift", "ci_low", "ci_high"):
        assert summary[field] == one_run[field], field
    assert (outputs / "report.html").is_file()

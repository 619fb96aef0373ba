"""summary.json as a typed RunSummary: a real run's summary reads back unchanged; anything else is a FormatError."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pytest_autoevolve.errors import FormatError
from pytest_autoevolve.gate.summary import SUMMARY_FORMAT_VERSION, GateSummary, RunSummary


@pytest.fixture
def summary_path(pytester, write_scenarios, agents) -> Path:
    """The summary.json of a real run: 12 scenarios in two categories, two trials each."""
    lines = ["scenarios:"]
    for n in range(12):
        lines += [f"  - id: q-{n}", f"    input: 'q {n}'", f"    expected: 'a {n}'", f"    category: {'ab'[n % 2]}"]
    write_scenarios("\n".join(lines) + "\n")
    pytester.makefile(".yaml", autoevolve="gate:\n  max_latency_increase: null\n")
    pytester.runpytest(
        "--autoevolve",
        "--autoevolve-incumbent=python:toyagents:echo",
        "--autoevolve-candidate=python:toyagents:answer",
        "--autoevolve-repeats=2",
        "-p",
        "no:cacheprovider",
    )
    (path,) = (pytester.path / ".autoevolve" / "runs").glob("*/summary.json")
    return path


def test_a_real_summary_reads_back_unchanged(summary_path):
    data = json.loads(summary_path.read_text(encoding="utf-8"))
    summary = RunSummary.load(summary_path)
    assert summary.gate.verdict == data["verdict"] == "pass"
    assert len(summary.gate.scenarios) == 12 and len(summary.gate.categories) == 2
    assert summary.gate.scenarios[0].candidate.pass_hat_k == data["scenarios"][0]["candidate"]["pass^2"]
    assert summary.to_json() == data
    assert list(summary.to_json()) == list(data)  # the keys in the file's order
    assert RunSummary.from_json(summary.to_json()) == summary
    assert GateSummary.from_json(data) == summary.gate


def test_another_format_version_is_a_format_error(summary_path):
    data = json.loads(summary_path.read_text(encoding="utf-8"))
    summary_path.write_text(json.dumps({**data, "format_version": 99}), encoding="utf-8")
    message = f"{summary_path}: summary format_version 99; this version of pytest-autoevolve reads format_version "
    with pytest.raises(FormatError, match=re.escape(message + str(SUMMARY_FORMAT_VERSION))):
        RunSummary.load(summary_path)
    with pytest.raises(FormatError, match="format_version 99"):
        GateSummary.load(summary_path, partial=True)  # even an abbreviated summary must not be of another version


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json {", "not an autoevolve summary: not JSON"),
        ("[1, 2]", "not an autoevolve summary: it is a list ([1, 2]), not a JSON object"),
        ('{"verdict": "pass"}', "not an autoevolve summary: it has no format_version"),
    ],
)
def test_garbage_is_a_format_error(tmp_path, text, message):
    path = tmp_path / "summary.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(FormatError, match=re.escape(f"{path}: {message}")):
        RunSummary.load(path)


def test_a_malformed_key_is_named(summary_path):
    data = json.loads(summary_path.read_text(encoding="utf-8"))
    data["scenarios"][3]["candidate"]["trials"] = "two"
    with pytest.raises(FormatError, match=re.escape("key 'scenarios[3].candidate.trials' is a string (\"two\")")):
        RunSummary.from_json(data)
    del data["scenarios"]
    with pytest.raises(FormatError, match="malformed summary: key 'scenarios' is missing"):
        RunSummary.from_json(data)


def test_the_run_names_the_commit_as_git_does(tmp_path):
    from pytest_autoevolve.run.results import git_commit
    from tests.support.projects import commit_all, git_repo

    repo = git_repo(tmp_path / "repo", {"a.txt": "a"}, "first")
    sub = tmp_path / "repo" / "pkg" / "deep"
    sub.mkdir(parents=True)
    assert git_commit(sub) == repo.head.commit.hexsha  # found from a sub-folder, loose ref
    (tmp_path / "repo" / "b.txt").write_text("b")
    second = commit_all(repo, "second")
    repo.git.pack_refs("--all")  # the branch now lives in packed-refs only
    assert git_commit(tmp_path / "repo") == second
    repo.git.worktree("add", "--detach", str(tmp_path / "tree"), repo.head.commit.parents[0].hexsha)
    assert git_commit(tmp_path / "tree") == repo.head.commit.parents[0].hexsha  # a detached worktree
    repo.git.checkout("--detach", "HEAD")
    assert git_commit(tmp_path / "repo") == second
    assert git_commit(tmp_path) is None  # not in a repository

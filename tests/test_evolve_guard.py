"""The evolve loop's guard in real git repositories: resolved paths, protected settings, the user's files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import git
import pytest
import yaml

from pytest_autoevolve.loops import evolve
from pytest_autoevolve.loops.evolve import Loop
from pytest_autoevolve.loops.guard import Guard, Rejected
from pytest_autoevolve.loops.proposers import Context, Edit, EvolveError
from tests.support.agents import LEVEL_AGENT
from tests.support.projects import commit_all, git_project
from tests.support.runs import read_jsonl

CONFIG = "incumbent: python:agent:weak\ncandidate: python:agent:answer\ngate:\n  min_paired: 10\n"
STRONG_AGENT = LEVEL_AGENT.replace("LEVEL = 1", "LEVEL = 3")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A git repo with the strings catalog, a python: agent and autoevolve.yaml, all committed."""
    gitignore = ".autoevolve/\n__pycache__/\nsecret.txt\n"
    return git_project(tmp_path / "project", CONFIG, gitignore=gitignore, message="start")


class Scripted:
    """A python: style proposer handing out the given edits in order, then nothing."""

    def __init__(self, *edits: Edit) -> None:
        self.edits = list(edits)

    def propose(self, context: Context) -> Edit | None:
        return self.edits.pop(0) if self.edits else None


def config(**changes: Any) -> str:
    """The project's autoevolve.yaml with ``changes`` applied (a None value removes the key)."""
    data = yaml.safe_load(CONFIG)
    data.update(changes)
    return yaml.safe_dump({k: v for k, v in data.items() if v is not None}, sort_keys=False)


def log(root: Path, tag: str) -> list[dict[str, Any]]:
    return read_jsonl(root / ".autoevolve" / "evolve" / tag / "log.jsonl")


def quiet(_: str) -> None:
    """Progress goes nowhere."""


# 1. the allowlist works on normalised, resolved paths


def test_a_dotted_path_to_the_config_cannot_remove_the_gate(project: Path):
    proposer = Scripted(
        Edit("no gate", {"nonexistent/../autoevolve.yaml": config(gate=None, candidate="python:agent:strong")}),
        Edit("stronger agent", {"nonexistent/../agent.py": STRONG_AGENT}),
    )
    loop = Loop(project, proposer, targets=["./autoevolve.yaml", "src/../agent.py"], tag="g1", progress=quiet)
    result = loop.run(2)
    rejected, kept = result.iterations
    assert rejected.decision == "rejected" and "'gate'" in rejected.error and "min_paired" in rejected.error
    assert loop.targets == ["autoevolve.yaml", "agent.py"]
    assert kept.decision == "kept"  # the same dotted path to an allowed key is applied, at the normalised path
    assert "min_paired: 10" in (project / "autoevolve.yaml").read_text()
    kept_tree = git.Repo(project).heads["autoevolve/g1"].commit.tree  # the user is back on master
    assert kept_tree["agent.py"].data_stream.read().decode() == STRONG_AGENT and not (project / "nonexistent").exists()
    assert [e["decision"] for e in log(project, "g1")] == ["rejected", "kept"]
    assert "'gate'" in log(project, "g1")[0]["error"]
    assert not git.Repo(project).is_dirty(untracked_files=True)


def test_paths_are_resolved_against_the_root_before_the_allowlist(project: Path, tmp_path: Path):
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", project / "out")
    os.symlink("scenarios", project / "cases")
    os.symlink("autoevolve.yaml", project / "settings.yaml")
    guard = Guard.of(project, ["autoevolve.yaml", "agent.py"], ".autoevolve")
    cases = {
        str(project / "agent.py"): "is an absolute path",
        "../project/agent.py": "escapes the project root through '..'",
        "out/agent.py": "symbolic link",
        "nonexistent/../scenarios/strings.yaml": "scenarios/strings.yaml is not an allowlisted target: it is protected",
        "cases/../cases/strings.yaml": "(that is scenarios/strings.yaml) is not an allowlisted target: it is protected",
        "cases/strings.yaml": "it is protected",
        "settings.yaml": "'gate'",  # a link to the config is the config
        "./.autoevolve/ci/incumbent/x/trajectories.jsonl": "it is protected",
        "nonexistent/../README.md": "README.md is not an allowlisted target",
        "": "empty path",
    }
    for path, why in cases.items():
        with pytest.raises(Rejected) as caught:
            guard.check(Edit("x", {path: config(gate=None)}))
        assert why in str(caught.value), (path, str(caught.value))
    with pytest.raises(Rejected, match="two different texts"):
        guard.check(Edit("x", {"agent.py": "a", "./agent.py": "b"}))
    assert guard.check(Edit("x", {"./x/../agent.py": "a"})).files == {"agent.py": "a"}
    for target in ("cases/strings.yaml", "settings.yaml/..", "../elsewhere.txt", "out/x.py", ".git/config"):
        with pytest.raises(EvolveError, match="cannot be a target"):
            Guard.of(project, [target], ".autoevolve")


# 2. the gate settings, the catalog selection and the split are protected


def test_protected_settings_are_rejected_even_in_an_allowed_file(project: Path):
    proposer = Scripted(
        Edit("narrow the catalog", {"autoevolve.yaml": config(catalog=["scenarios/strings.yaml"])}),
        Edit("score on all", {"autoevolve.yaml": config(split="all")}),
        Edit("smaller limits", {"autoevolve.yaml": config(limits={"max_scenarios_per_entry": 5})}),
        Edit("another seed", {"autoevolve.yaml": config(seed=7)}),
        Edit("broken", {"autoevolve.yaml": "gate: [\n"}),
        Edit(
            "stronger, gate reformatted",
            {"autoevolve.yaml": config(candidate="python:agent:strong", gate=None) + "gate: {min_paired: 10}\n"},
        ),
    )
    result = Loop(project, proposer, tag="g2", progress=quiet).run(6)
    decisions = [(i.decision, i.error) for i in result.iterations]
    assert [d for d, _ in decisions] == ["rejected"] * 5 + ["kept"], decisions
    errors = [e for _, e in decisions]
    assert "'catalog'" in errors[0] and "scenarios/strings.yaml" in errors[0] and "not a target" in errors[0]
    assert "'split'" in errors[1] and "'limits'" in errors[2] and "'seed'" in errors[3]
    assert "invalid settings" in errors[4]
    assert [e["error"] for e in log(project, "g2")][:5] == errors[:5]
    assert result.verdict == "pass", result.gate_summary.get("reasons")
    assert "catalog" not in (project / "autoevolve.yaml").read_text()


def test_settings_are_compared_parsed_across_pyproject_and_the_config(tmp_path: Path):
    root = git_project(tmp_path / "p", "candidate: python:agent:answer\n", gitignore=".autoevolve/\n", message="s")
    (root / "pyproject.toml").write_text(
        '[tool.autoevolve]\ncatalog = ["scenarios"]\n[tool.autoevolve.gate]\nmin_paired = 10\n'
    )
    commit_all(git.Repo(root), "pyproject")
    guard = Guard.of(root, ["autoevolve.yaml"], ".autoevolve")
    with pytest.raises(Rejected, match=r"'gate' \(min_paired 10 -> 1\)"):
        guard.check(Edit("x", {"autoevolve.yaml": "candidate: x\ngate: {min_paired: 1}\n"}))
    with pytest.raises(Rejected, match="'catalog'"):
        guard.check(Edit("x", {"autoevolve.yaml": "candidate: x\ncatalog: [scenarios, more]\n"}))
    same = "candidate: python:agent:strong\ncatalog: [scenarios]\ngate:\n  min_paired: 10\n"
    assert guard.check(Edit("x", {"autoevolve.yaml": same})).files == {"autoevolve.yaml": same}
    with pytest.raises(EvolveError, match="cannot be a target"):
        Guard.of(root, ["pyproject.toml"], ".autoevolve")


def test_the_final_gate_refuses_a_best_state_off_the_start_catalog(project: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(Guard, "settings_change", lambda self, files: None)  # a hole in the guard
    narrowed = config(candidate="python:agent:strong", catalog=["scenarios/strings.yaml"])
    loop = Loop(project, Scripted(Edit("narrow", {"autoevolve.yaml": narrowed})), tag="g3", progress=quiet)
    result = loop.run(1)
    assert result.iterations[0].decision == "kept"
    assert result.verdict == "fail" and "'catalog'" in result.gate_summary["reasons"][0]
    assert "FAIL" in (project / ".autoevolve" / "evolve" / "g3" / "report.md").read_text()
    (project / "autoevolve.yaml").write_text(config())
    (project / "scenarios" / "strings.yaml").write_text("scenarios: []\n")
    assert "catalog files differ" in str(loop.guard.drift())


# 3. the user's untracked files survive


@pytest.mark.parametrize(
    ("target", "state"),
    [("prompt.txt", "untracked"), ("secret.txt", "ignored"), ("agent.py", "modified"), ("staged.txt", "staged")],
)
def test_uncommitted_targets_are_refused_and_left_alone(project: Path, target: str, state: str):
    content = b"the user's own\r\nwork \xff\n"
    (project / target).write_bytes(content)
    if state == "staged":
        git.Repo(project).git.add(target)
    proposer = Scripted(Edit("overwrite", {target: "edited"}))
    with pytest.raises(EvolveError, match=f"uncommitted target files: {target} \\({state}"):
        Loop(project, proposer, targets=[target], tag="g4", progress=quiet).run(1)
    assert (project / target).read_bytes() == content
    repo = git.Repo(project)
    assert repo.active_branch.name == "master" and [h.name for h in repo.heads] == ["master"]


@pytest.mark.parametrize("error", [RuntimeError("scoring broke"), KeyboardInterrupt()])
def test_a_crash_in_scoring_keeps_the_users_untracked_files(
    project: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
):
    mine = {"notes.bin": b"\x00\xffnotes\r\n", "prompts/other.txt": b"draft\n", "secret.txt": b"token\n"}
    for path, content in mine.items():
        (project / path).parent.mkdir(exist_ok=True)
        (project / path).write_bytes(content)
    real, calls = evolve.score_run, []

    def score_run(*args: Any, **options: Any) -> Path:
        calls.append(args)
        if len(calls) > 1:  # the start is scored; the edit's scoring crashes
            raise error
        return real(*args, **options)

    monkeypatch.setattr(evolve, "score_run", score_run)
    edit = Edit("new files", {"agent.py": STRONG_AGENT, "prompts/system.txt": "be right", "new/dir/x.txt": "x"})
    targets = ["agent.py", "prompts/system.txt", "new/dir/x.txt"]
    with pytest.raises(type(error)):
        Loop(project, Scripted(edit), targets=targets, tag="g5", progress=quiet).run(2)
    assert {path: (project / path).read_bytes() for path in mine} == mine
    assert not (project / "prompts" / "system.txt").exists() and not (project / "new").exists()
    assert (project / "agent.py").read_text() == LEVEL_AGENT
    repo = git.Repo(project)
    assert not repo.is_dirty(untracked_files=False) and sorted(repo.untracked_files) == [
        "notes.bin",
        "prompts/other.txt",
    ]
    entries = log(project, "g5")
    assert [e["decision"] for e in entries] == ["crashed"] and "loop stopped" in entries[0]["error"]

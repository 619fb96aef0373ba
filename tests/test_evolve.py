"""The edit-score-gate loop in a real git repository: keep, revert, reject, crash, and the llm proposer."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import git
import pytest

from pytest_autoevolve.loops.evolve import Loop
from pytest_autoevolve.loops.proposers import Context, Edit, EvolveError, ProposalError, SpaceProposer, parse_reply
from tests.support.agents import LEVEL_AGENT
from tests.support.fake_openai import Request, completion, fake_openai
from tests.support.projects import commit_all, copy_catalog, git_project
from tests.support.runs import read_jsonl


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A git repo with the strings catalog, a python: agent and autoevolve.yaml, all committed."""
    config = "incumbent: python:agent:weak\ncandidate: python:agent:answer\ngate:\n  min_paired: 10\n"
    return git_project(tmp_path / "project", config, gitignore=".autoevolve/\n__pycache__/\n", message="start")


def space(root: Path, *values: str) -> SpaceProposer:
    path = root.parent / "space.yaml"
    path.write_text(json.dumps({"target": "autoevolve.yaml", "key": "candidate", "values": list(values)}))
    return SpaceProposer(path)


def log(root: Path, tag: str) -> list[dict[str, Any]]:
    return read_jsonl(root / ".autoevolve" / "evolve" / tag / "log.jsonl")


def clean(root: Path) -> bool:
    return not git.Repo(root).is_dirty(untracked_files=True)


def test_space_keeps_a_good_edit_reverts_a_bad_one_and_gates(project: Path):
    loop = Loop(
        project,
        space(project, "python:agent:bad", "python:agent:answer", "python:agent:strong"),
        tag="t1",
        progress=lambda _: None,
    )
    result = loop.run(5)
    repo = git.Repo(project)
    assert repo.active_branch.name == "master" and clean(project)  # the user's branch, as before
    assert [i.decision for i in result.iterations] == ["reverted", "kept"]  # answer is the start: skipped
    assert "exhausted" in result.stop_reason
    kept = result.iterations[1]
    branch = repo.heads["autoevolve/t1"].commit
    assert branch.hexsha == kept.commit and kept.confirm_score is not None
    message = str(branch.message)
    assert "score: " in message and "p-value" in message and "confirm" in message
    assert "candidate: python:agent:strong" in repo.git.show("autoevolve/t1:autoevolve.yaml")
    assert "candidate: python:agent:answer" in (project / "autoevolve.yaml").read_text()
    assert result.best_score is not None and result.start_score is not None and result.best_score > result.start_score
    assert result.verdict == "pass", result.gate_summary.get("reasons")
    entries = log(project, "t1")
    assert [e["decision"] for e in entries] == ["reverted", "kept"]
    assert "-candidate: python:agent:answer" in entries[0]["diff"]
    folder = project / ".autoevolve" / "evolve" / "t1"
    assert len((folder / "results.tsv").read_text().splitlines()) == 3
    assert "PASS" in (folder / "report.md").read_text() and json.loads((folder / "report.json").read_text())["verdict"]
    assert result.gate_summary["path"] == ".autoevolve/evolve/t1/gate/summary.json"  # its own copy
    assert json.loads((folder / "gate" / "summary.json").read_text())["verdict"] == "pass"
    assert repo.git.rev_list("--count", "master..autoevolve/t1") == "1"


def test_dirty_tree_is_refused(project: Path):
    (project / "agent.py").write_text(LEVEL_AGENT + "\n# wip\n")
    with pytest.raises(EvolveError, match="uncommitted"):
        Loop(project, space(project, "python:agent:strong"), tag="t2", progress=lambda _: None).run(1)
    assert git.Repo(project).active_branch.name == "master"


class Scripted:
    """A python: style proposer handing out given edits, then raising what it is given."""

    def __init__(self, *edits: Edit | BaseException) -> None:
        self.edits = list(edits)

    def propose(self, context: Context) -> Edit | None:
        if not self.edits:
            return None
        edit = self.edits.pop(0)
        if isinstance(edit, BaseException):
            (context.root / "agent.py").write_text("half-written edit")  # interrupted mid-edit
            raise edit
        return edit


def test_edits_outside_the_allowlist_are_rejected(project: Path):
    config = (project / "autoevolve.yaml").read_text()
    proposer = Scripted(
        Edit("easier test", {"scenarios/strings.yaml": "scenarios: []\n"}),
        Edit("looser gate", {"autoevolve.yaml": config.replace("10", "1")}),
        Edit("outside", {"../elsewhere.txt": "x"}),
    )
    result = Loop(project, proposer, tag="t3", progress=lambda _: None).run(3)
    assert [i.decision for i in result.iterations] == ["rejected"] * 3
    assert "not an allowlisted target" in result.iterations[0].error and "'gate'" in result.iterations[1].error
    assert clean(project) and len(log(project, "t3")) == 3
    with pytest.raises(EvolveError, match="cannot be a target"):
        Loop(project, proposer, targets=["scenarios/strings.yaml"], progress=lambda _: None)


def test_a_proposer_that_raises_is_a_proposer_error_and_ctrl_c_restores_the_start(project: Path):
    strong = (
        (project / "autoevolve.yaml")
        .read_text()
        .replace("candidate: python:agent:answer", "candidate: python:agent:strong")
    )
    loop = Loop(
        project,
        Scripted(Edit("stronger", {"autoevolve.yaml": strong}), RuntimeError("proposer broke"), KeyboardInterrupt()),
        targets=["autoevolve.yaml", "agent.py"],
        tag="t4",
        progress=lambda _: None,
    )
    with pytest.raises(KeyboardInterrupt):
        loop.run(4)
    repo = git.Repo(project)
    kept = log(project, "t4")
    assert [e["decision"] for e in kept] == ["kept", "proposer-error", "crashed"]
    assert kept[1]["error"] == "RuntimeError: proposer broke" and "interrupted" in kept[2]["error"]
    assert repo.active_branch.name == "master" and clean(project)
    assert repo.heads["autoevolve/t4"].commit.hexsha == kept[0]["commit"]
    assert (project / "agent.py").read_text() == LEVEL_AGENT
    assert "interrupted" in (project / ".autoevolve" / "evolve" / "t4" / "report.md").read_text()


GOOD = """HYPOTHESIS: a higher level answers more scenarios
```
agent.py
<<<<<<< SEARCH
LEVEL = 1
=======
LEVEL = 3
>>>>>>> REPLACE
```"""
BAD = GOOD.replace("LEVEL = 3", "LEVEL = 0").replace("higher", "lower")
SCENARIO = """HYPOTHESIS: fewer scenarios are easier
```
scenarios/strings.yaml
<<<<<<< SEARCH
defaults:
=======
# nothing
defaults:
>>>>>>> REPLACE
```"""


def test_llm_proposer_against_a_local_openai_server(project: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    replies = ["I would make it better somehow.", SCENARIO, BAD, GOOD]
    prompts: list[str] = []

    def respond(request: Request, seen: int) -> dict[str, Any]:
        prompts.append(request.user)
        return completion(replies[len(prompts) - 1] if len(prompts) <= len(replies) else "no idea")

    with fake_openai(respond) as server:
        proposer = f"llm:openai:fake-model+base_url={server.url}+max_retries=0"
        from pytest_autoevolve.loops.proposer_specs import make_proposer

        loop = Loop(project, make_proposer(proposer, project), targets=["agent.py"], tag="t5", progress=lambda _: None)
        result = loop.run(4)
    assert [i.decision for i in result.iterations] == ["malformed", "rejected", "reverted", "kept"]
    assert "no SEARCH/REPLACE block" in result.iterations[0].error
    assert "scenarios/strings.yaml" in result.iterations[1].error
    assert "LEVEL = 3" in git.Repo(project).git.show("autoevolve/t5:agent.py") and clean(project)
    assert "LEVEL = 1" in prompts[0] and "--- agent.py" in prompts[0] and "none yet" in prompts[0]
    assert "malformed" in prompts[1] and "rejected" in prompts[2] and "reverted" in prompts[3]
    # the final gate runs the starting commit's code in a worktree: the code edit is measured, and passes
    assert result.verdict == "pass"
    assert result.gate_summary["incumbent"]["spec"] == f"python:agent:answer @ {result.start_commit[:10]}"
    assert result.gate_summary["incumbent"]["pass_rate"] < result.gate_summary["candidate"]["pass_rate"]


def test_llm_proposer_stops_when_its_token_budget_is_spent(project: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with fake_openai(lambda request, seen: completion(BAD)) as server:
        from pytest_autoevolve.loops.proposer_specs import make_proposer

        proposer = make_proposer(f"llm:openai:fake-model+base_url={server.url}+max_retries=0", project, max_tokens=1)
        result = Loop(project, proposer, targets=["agent.py"], tag="t6", progress=lambda _: None).run(4)
    assert len(result.iterations) == 1 and "token budget of 1 is spent" in result.stop_reason
    assert clean(project)


def test_iteration_seconds_stops_a_running_score(project: Path):
    loop = Loop(
        project,
        space(project, "python:agent:slow", "python:agent:strong"),
        tag="t7",
        iteration_seconds=12,
        progress=lambda _: None,
    )
    result = loop.run(2)
    slow, strong = result.iterations
    assert slow.decision == "reverted" and "over its time budget of" in slow.error and slow.seconds < 30
    assert strong.decision == "kept" and clean(project)


def test_parse_reply_errors():
    context = Context(Path("/nonexistent"), ["a.txt"], "train", None, [])
    with pytest.raises(ProposalError, match="no SEARCH/REPLACE"):
        parse_reply("HYPOTHESIS: x\nnothing", context)
    with pytest.raises(ProposalError, match="not in the file"):
        parse_reply(textwrap.dedent(GOOD).replace("agent.py", "a.txt"), context)


def test_the_fixture_runs_a_short_loop_on_a_clone(pytester: pytest.Pytester):
    copy_catalog(pytester.path / "scenarios")
    pytester.makepyfile(
        agent=LEVEL_AGENT,
        test_loop="""
        def test_a_stronger_agent_is_kept(autoevolve_evolve):
            result = autoevolve_evolve("space:space.yaml", iterations=3, tag="mine")
            assert [i.decision for i in result.iterations] == ["reverted", "kept"]
            assert result.best_candidate == "python:agent:strong" and result.verdict == "pass"
    """,
    )
    (pytester.path / "space.yaml").write_text(
        json.dumps({"key": "candidate", "values": ["python:agent:bad", "python:agent:strong"]})
    )
    (pytester.path / "autoevolve.yaml").write_text("candidate: python:agent:answer\ngate:\n  min_paired: 10\n")
    repo = git.Repo.init(pytester.path)
    commit_all(repo, "start")
    pytester.runpytest("-p", "no:cacheprovider", "test_loop.py").assert_outcomes(passed=1)
    assert repo.active_branch.name == "master" and "autoevolve/mine" not in [h.name for h in repo.heads]


def test_scoring_on_the_eval_split_says_the_final_gate_is_not_independent(project: Path):
    from pytest_autoevolve.loops.evolve import outcome_lines

    result = Loop(project, space(project, "python:agent:strong"), split="all", tag="t9", progress=lambda _: None).run(1)
    assert [i.decision for i in result.iterations] == ["kept"]
    caveat = "the loop scored its edits on the all split, so this gate on the eval split is not independent"
    assert any(reason.startswith(caveat) for reason in result.gate_summary["reasons"])
    assert f"- {caveat}" in (project / ".autoevolve" / "evolve" / "t9" / "report.md").read_text()
    assert any(line.startswith(f"note: {caveat}") for line in outcome_lines(result))

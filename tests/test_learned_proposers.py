"""The proposers that learn from trajectories, on a user's agent that reads its prompt file: fewshot and distill.

Each runs the real loop in a real git repository, scores with real ``pytest --autoevolve`` runs,
and ends in the final gate on the eval split; distill's model is a real local HTTP server
speaking the OpenAI API, scripted with the heuristics it proposes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import git
import pytest

from pytest_autoevolve.cli import main
from pytest_autoevolve.errors import FormatError
from pytest_autoevolve.loops.distill import HeuristicLog, parse_heuristics
from pytest_autoevolve.loops.evolve import Loop, write_like
from pytest_autoevolve.loops.fewshot import FewShotProposer, block_lines, managed_block
from pytest_autoevolve.loops.proposer_specs import make_proposer
from pytest_autoevolve.loops.proposers import ProposalError
from tests.support.fake_openai import Request, completion, fake_openai
from tests.support.projects import commit_all, git_project
from tests.support.runs import read_jsonl

# Upper-cases always; reverses a word of up to 3 letters, and any word once its prompt file shows how.
PROMPT_AGENT = """
import pathlib

PROMPT = pathlib.Path(__file__).with_name("prompt.txt")


def answer(messages, scenario):
    task, _, word = messages[-1]["content"].partition(" ")
    if task == "upper":
        return word.upper()
    prompt = PROMPT.read_text()
    shown = "Input: reverse" in prompt or "backwards" in prompt
    return word[::-1] if shown or len(word) <= 3 else word
"""

CONFIG = "incumbent: python:agent:answer\ncandidate: python:agent:answer\ngate:\n  min_paired: 10\n"

PROMPT = "You answer string tasks: reply with the answer only.\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A committed git project whose agent's behaviour depends on its prompt file ``prompt.txt``."""
    root = git_project(
        tmp_path / "project", CONFIG, gitignore=".autoevolve/\n__pycache__/\n", message="start", agent=PROMPT_AGENT
    )
    (root / "prompt.txt").write_text(PROMPT, encoding="utf-8")
    commit_all(git.Repo(root), "the prompt")
    return root


def on_branch(root: Path, tag: str, path: str = "prompt.txt") -> str:
    return str(git.Repo(root).git.show(f"autoevolve/{tag}:{path}"))


def test_fewshot_keeps_demonstrations_that_teach_reverts_a_set_that_does_not_and_the_gate_passes(project: Path):
    result = Loop(project, FewShotProposer(4, project), targets=["prompt.txt"], tag="fs", progress=lambda _: None).run(
        2
    )
    assert [i.decision for i in result.iterations] == ["kept", "reverted"], [i.error for i in result.iterations]
    kept, second = result.iterations
    assert "nearest to the failing ones" in kept.hypothesis and "seeded search" in second.hypothesis
    shown = block_lines(on_branch(project, "fs"), "examples")
    inputs = [line for line in shown if line.startswith("Input: ")]
    assert len(inputs) == 4 and all(line.startswith("Input: reverse ") for line in inputs)  # like the failures
    assert on_branch(project, "fs").startswith(PROMPT)  # the user's text kept, the block added after it
    ids = re.findall(r"[\w-]+-[a-z]+", kept.hypothesis.split(": ", 1)[1] + ", " + second.hypothesis.split(": ", 1)[1])
    assert ids and all(sid.startswith("train-") for sid in ids)  # demonstrations come from the train split only
    assert result.best_score is not None and result.start_score is not None and result.best_score > result.start_score
    assert result.verdict == "pass", result.gate_summary.get("reasons")
    assert (project / "prompt.txt").read_text() == PROMPT  # back on the user's branch, untouched


def heuristics(root: Path) -> dict[str, dict[str, Any]]:
    return {r["heuristic"]: r for r in read_jsonl(root / ".autoevolve" / "heuristics.jsonl")}


def test_distill_adds_heuristics_prunes_one_that_does_not_help_keeps_one_that_does(
    project: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    replies = [
        "HEURISTIC: Be concise.",
        "Two rules:\nHEURISTIC: Answer in plain text.\n"
        "**Heuristic 2:** To reverse a word, write its letters backwards.",
    ]
    asked: list[str] = []

    def respond(request: Request, seen: int) -> dict[str, Any]:
        asked.append(request.user)
        return completion(replies[min(len(asked), len(replies)) - 1])

    with fake_openai(respond) as server:
        spec = f"distill:openai:distiller+base_url={server.url}+max_retries=0"
        proposer = make_proposer(spec, project, targets=["prompt.txt"])
        result = Loop(project, proposer, targets=["prompt.txt"], tag="d1", progress=lambda _: None).run(4)

    decisions = [i.decision for i in result.iterations]
    assert decisions == ["reverted", "kept", "kept", "reverted"], [i.error for i in result.iterations]
    assert len(asked) == 2  # iterations 3 and 4 try removals: no model call
    assert "Be concise. (reverted)" in asked[1] and "Heuristics in the prompt now:\n- none" in asked[1]
    scenarios = re.findall(r"^- scenario (\S+)$", "\n".join(asked), re.MULTILINE)
    assert scenarios and all(sid.startswith("train-") for sid in scenarios)  # never an eval trial
    assert "Best train trials" in asked[0] and "Failing train trials" in asked[0]

    records = heuristics(project)
    assert records["Be concise."]["status"] == "reverted" and records["Be concise."]["iterations_used"] == 0
    plain, reverse = records["Answer in plain text."], records["To reverse a word, write its letters backwards."]
    assert plain["status"] == "pruned" and plain["pruned_iteration"] == 3 and plain["kept_lift"] > 0
    assert plain["iterations_used"] == 1  # iteration 2; iteration 3 scored the prompt without it
    assert reverse["status"] == "kept" and reverse["kept_lift"] > 0 and reverse["kept_p_value"] < 0.05
    assert reverse["removal_tried"] and reverse["iterations_used"] == 2  # iterations 2 and 3, not 4 (without it)
    assert {r["format_version"] for r in records.values()} == {1}
    assert any("kept" in why and "lift" in why for why in reverse["why"]) and reverse["tag"] == "d1"
    assert "(prune): reverted" in reverse["why"][-1] and "(prune): kept" in plain["why"][-1]

    assert block_lines(on_branch(project, "d1"), "heuristics") == ["- To reverse a word, write its letters backwards."]
    assert result.verdict == "pass", result.gate_summary.get("reasons")


def test_managed_blocks_are_replaced_in_place_and_removed_when_empty():
    text = managed_block("Intro.\n", "heuristics", ["- a"])
    assert text == 'Intro.\n\n<heuristics source="autoevolve">\n- a\n</heuristics>\n'
    again = managed_block(text + "Outro.\n", "heuristics", ["- a", "- b"])
    assert block_lines(again, "heuristics") == ["- a", "- b"] and again.endswith("</heuristics>\nOutro.\n")
    assert managed_block(again, "heuristics", []) == "Intro.\n\nOutro.\n"


def test_heuristic_replies_are_read_leniently_and_refused_when_empty():
    reply = "Sure!\n1. HEURISTIC: Check the task word.\n- **Heuristic:** Check the task word.\nheuristic - Be brief"
    assert parse_heuristics(reply) == ["Check the task word.", "Be brief"]
    with pytest.raises(ProposalError, match="no heuristic"):
        parse_heuristics("I would add a rule about reversing.")


def test_an_older_log_loads_and_a_loop_that_stopped_mid_iteration_leaves_its_heuristics_abandoned(tmp_path: Path):
    path = tmp_path / "heuristics.jsonl"
    old = {"heuristic": "Be brief.", "tag": "t0", "added": "2026-01-01T00:00:00+00:00", "iteration": 1}
    path.write_text(json.dumps({**old, "status": "proposed", "a_later_key": 1}) + "\n\n", encoding="utf-8")
    log = HeuristicLog(path)
    assert [(r.heuristic, r.status) for r in log.records] == [("Be brief.", "abandoned")]
    assert [r.heuristic for r in log.tried()] == ["Be brief."]  # never proposed again as new
    path.write_text("not json\n", encoding="utf-8")
    with pytest.raises(FormatError, match=r"heuristics.jsonl:1: not a heuristic record"):
        HeuristicLog(path)


def test_bad_proposer_specs_and_a_missing_prompt_file_are_one_line(project: Path, monkeypatch, capsys):
    monkeypatch.chdir(project)
    assert main(["evolve", "--proposer", "fewshot:many", "--targets", "prompt.txt"]) == 2
    assert "fewshot:K takes a number" in capsys.readouterr().err
    for targets in (["agent.py"], ["settings.json", "autoevolve.yaml"]):
        assert main(["evolve", "--proposer", "fewshot:4", "--targets", *targets]) == 2
        assert "name one in --targets" in capsys.readouterr().err
    assert main(["evolve", "--proposer", "recall:4"]) == 2
    assert "fewshot:K, distill:SPEC" in capsys.readouterr().err
    assert git.Repo(project).active_branch.name == "master" and len(list(git.Repo(project).heads)) == 1


def test_an_edit_keeps_the_line_ends_of_the_file_it_writes(tmp_path: Path):
    crlf, lf = tmp_path / "crlf.txt", tmp_path / "lf.txt"
    crlf.write_bytes(b"Be brief.\r\nAnswer only.\r\n")
    lf.write_bytes(b"Be brief.\n")
    edited = managed_block("Be brief.\nAnswer only.\n", "heuristics", ["- Reverse letter by letter."])
    write_like(crlf, edited)
    assert crlf.read_bytes() == edited.replace("\n", "\r\n").encode()  # every line CRLF: the diff is the block
    write_like(lf, "Be brief.\r\nMore.\n")
    assert lf.read_bytes() == b"Be brief.\nMore.\n"
    write_like(tmp_path / "new" / "prompt.txt", "Hello.\n")
    assert (tmp_path / "new" / "prompt.txt").read_bytes() == b"Hello.\n"

"""The loops on a user's own project: one-line errors, documented exit statuses, the user's branch and config kept.

Real git repositories in temporary folders, the real command line, and a real local HTTP server
speaking the OpenAI API as the `llm:` proposer's model (answering, failing, hanging, rambling).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import git
import pytest

from pytest_autoevolve.cli import main
from pytest_autoevolve.loops import evolve
from pytest_autoevolve.loops.evolve import Loop
from pytest_autoevolve.loops.proposers import Context, LLMProposer, ProposalError, parse_reply
from tests.support.agents import LEVEL_AGENT
from tests.support.fake_openai import Answer, FakeOpenAI, Request, completion, error, fake_openai
from tests.support.projects import commit_all, git_project
from tests.support.runs import read_jsonl
from tests.test_evolve import GOOD

CONFIG = "incumbent: python:agent:weak\ncandidate: python:agent:answer\ngate:\n  min_paired: 10\n"

LONG_FLOAT = re.compile(r"\d\.\d{5,}")
"""A raw float as Python prints it (0.16666666666666666): never in the loops' output."""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A committed git project (strings catalog, python: agent, config) as the current folder, with an API key."""
    root = git_project(tmp_path / "project", CONFIG, gitignore=".autoevolve/\n__pycache__/\n", message="start")
    monkeypatch.chdir(root)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    return root


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    """The proposer's model: answers what a test puts in ``server.script`` in order (the last one repeats)."""
    script: list[Answer | dict[str, Any]] = []

    def respond(request: Request, seen: int) -> Answer | dict[str, Any]:
        return script[min(len(server.requests), len(script)) - 1]

    with fake_openai(respond) as server:
        server.script = script  # type: ignore[attr-defined]
        yield server


def llm(server: FakeOpenAI, **params: Any) -> str:
    options = {"base_url": server.url, "max_retries": 1, "backoff_s": 0, **params}
    return "llm:openai:fake-model" + "".join(f"+{key}={value}" for key, value in options.items())


def log(root: Path, tag: str) -> list[dict[str, Any]]:
    return read_jsonl(root / ".autoevolve" / "evolve" / tag / "log.jsonl")


def branches(root: Path) -> list[str]:
    return sorted(head.name for head in git.Repo(root).heads)


def one_line(err: str) -> str:
    """The single line a command wrote to stderr (never a traceback)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# --- evolve: the proposer fails, hangs or rambles ------------------------------------------------


def test_a_proposer_failing_mid_run_stops_the_loop_which_still_gates_what_was_kept(project, server, capsys):
    server.script += [completion(GOOD), error(400, "bad request", kind="invalid_request_error"), error(503, "down")]
    assert main(["evolve", "--proposer", llm(server), "--targets", "agent.py", "--iterations", "6", "--tag", "t"]) == 2
    out, err = capsys.readouterr()
    assert one_line(err).startswith("autoevolve evolve: the proposer failed 3 times in a row (last: ")
    assert "HTTP 503" in err and not LONG_FLOAT.search(out)
    entries = log(project, "t")
    assert [e["decision"] for e in entries] == ["kept", "proposer-error", "proposer-error", "proposer-error"]
    assert "HTTP 400: bad request (not retried)" in entries[1]["error"]
    assert "gave up after 2 attempt(s)" in entries[2]["error"]  # the model's retry policy ran first
    report = json.loads((project / ".autoevolve" / "evolve" / "t" / "report.json").read_text())
    assert report["verdict"] in ("pass", "fail") and report["error"].startswith("the proposer failed 3 times")
    copy = project / ".autoevolve" / "evolve" / "t" / "gate" / "summary.json"
    assert report["gate_summary"]["path"] == ".autoevolve/evolve/t/gate/summary.json"
    assert json.loads(copy.read_text())["verdict"] == report["verdict"]  # its own copy, not ci/summary.json
    assert "`gate/summary.json`" in (copy.parent.parent / "report.md").read_text()
    repo = git.Repo(project)
    assert repo.active_branch.name == "master" and not repo.is_dirty(untracked_files=True)
    assert repo.heads["autoevolve/t"].commit.hexsha == entries[0]["commit"]
    assert "LEVEL = 1" in (project / "agent.py").read_text()
    assert "you are on master, as before; the kept commits are on autoevolve/t" in out
    assert re.search(r"scores: start python:agent:answer \d+\.\d%, best python:agent:answer \d+\.\d%", out)


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--iteration-seconds", "1.5", "--max-proposer-errors", "2"], "the proposer failed 2 times in a row"),
        (["--max-seconds", "12"], None),
    ],
)
def test_a_hanging_proposer_is_bounded_by_the_budgets_with_progress(
    project, server, capsys, monkeypatch, options, said
):
    monkeypatch.setattr(evolve, "PROGRESS_SECONDS", 0.5)
    server.script.append(Answer(body=completion(GOOD), delay_s=60))
    started = time.monotonic()
    status = main(["evolve", "--proposer", llm(server, timeout_s=120), "--targets", "agent.py", "--tag", "h", *options])
    out, err = capsys.readouterr()
    assert time.monotonic() - started < 40
    assert "iteration 1: waiting for the proposer (" in out
    entries = log(project, "h")
    assert entries[0]["decision"] == "proposer-error" and "no proposal within" in entries[0]["error"]
    if said:
        assert status == 2 and said in one_line(err)
    else:  # a spent budget is the loop's normal end: nothing kept, so nothing passed
        assert status == 1 and err == "" and "the total budget of 12s is spent" in out
    assert branches(project) == ["master"]  # nothing kept: no branch left behind


def test_an_oversized_or_malformed_reply_is_logged_as_such(project, server, capsys):
    huge = GOOD.replace("LEVEL = 3\n", "LEVEL = 3\n" + "# padding\n" * 30_000)  # 300 KB
    server.script += [completion(huge), completion("Sure! I would raise the level.")]
    assert main(["evolve", "--proposer", llm(server), "--targets", "agent.py", "--iterations", "2", "--tag", "o"]) == 1
    entries = log(project, "o")
    assert [e["decision"] for e in entries] == ["rejected", "malformed"]
    assert "agent.py: the edit writes 294 KB, over the limit of 256 KB" in entries[0]["error"]
    assert entries[1]["error"].startswith("malformed proposal: the reply has no SEARCH/REPLACE block")
    folder = project / ".autoevolve" / "evolve" / "o"
    assert sum(path.stat().st_size for path in folder.iterdir() if path.is_file()) < 20_000  # not copied around
    assert branches(project) == ["master"]
    out, _ = capsys.readouterr()
    assert "nothing was kept, so no branch was left behind" in out and "final gate on the eval split: not run" in out


def test_model_and_target_mistakes_are_one_line_before_anything_starts(project, capsys, monkeypatch):
    assert main(["evolve", "--proposer", "llm:nope:model"]) == 2
    assert "unknown model provider 'nope'" in one_line(capsys.readouterr().err)
    monkeypatch.delenv("OPENAI_API_KEY")
    assert main(["evolve", "--proposer", "llm:openai:gpt-4o-mini"]) == 2
    assert "needs an API key in $OPENAI_API_KEY" in one_line(capsys.readouterr().err)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert main(["evolve", "--proposer", "llm:openai:m", "--targets", "agent.py", "prompts/sytem.txt"]) == 2
    said = one_line(capsys.readouterr().err)
    assert "no such target file: prompts/sytem.txt" in said and "--create" in said
    assert branches(project) == ["master"] and not (project / ".autoevolve").exists()


def test_ctrl_c_writes_the_log_line_and_report_and_exits_130(project: Path):
    (project / "slow_proposer.py").write_text(
        "import pathlib, time\n\ndef propose(context):\n    pathlib.Path('asked').touch()\n    time.sleep(60)\n"
    )
    commit_all(git.Repo(project), "a slow proposer")
    command = [sys.executable, "-m", "pytest_autoevolve.cli", "evolve", "--proposer", "python:slow_proposer:propose"]
    process = subprocess.Popen([*command, "--tag", "c"], cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (project / "asked").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert one_line(err.decode()) == "autoevolve evolve: interrupted"
    assert "what was done is in .autoevolve/evolve/c/report.md" in out.decode()
    assert log(project, "c")[-1]["error"] == "loop stopped: interrupted (Ctrl-C)"
    assert "interrupted" in (project / ".autoevolve" / "evolve" / "c" / "report.md").read_text()
    assert branches(project) == ["master"] and git.Repo(project).active_branch.name == "master"


def test_ctrl_c_during_the_final_gate_keeps_the_kept_commit_and_reports(project: Path, monkeypatch):
    import pytest_autoevolve.loops.ci as ci

    def interrupted(*args: Any, **options: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(ci, "gate_against_base", interrupted)
    strong = CONFIG.replace("python:agent:answer", "python:agent:strong")

    class Once:
        def __init__(self) -> None:
            self.done = False

        def propose(self, context: Context) -> evolve.Edit | None:
            self.done, first = True, not self.done
            return evolve.Edit("stronger", {"autoevolve.yaml": strong}) if first else None

    with pytest.raises(KeyboardInterrupt):
        Loop(project, Once(), tag="g", progress=lambda _: None).run(2)
    entries = log(project, "g")
    assert [e["decision"] for e in entries] == ["kept", "crashed"] and "interrupted" in entries[1]["error"]
    assert "before its final gate" in (project / ".autoevolve" / "evolve" / "g" / "report.md").read_text()
    assert git.Repo(project).active_branch.name == "master" and branches(project) == ["autoevolve/g", "master"]


def test_ctrl_c_during_ci_gate_is_one_line_and_leaves_no_worktree(project: Path):
    repo = git.Repo(project)
    (project / "autoevolve.yaml").write_text(CONFIG.replace("python:agent:answer", "python:agent:slow"))
    commit_all(repo, "a slow candidate")
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest_autoevolve.cli", "ci", "gate", "--base", "HEAD~1"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(4)  # the base run, then the slow candidate's
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and one_line(err.decode()) == "autoevolve ci gate: interrupted"
    assert len(repo.git.worktree("list").splitlines()) == 1


# --- the llm proposer's prompt and reply ---------------------------------------------------------


def test_the_llm_proposer_sees_failing_train_trials_and_never_eval_ones(project, server):
    server.script.append(completion("no edit today"))
    proposer = LLMProposer(llm(server).removeprefix("llm:"), project)
    result = Loop(project, proposer, targets=["agent.py"], split="all", tag="e", progress=lambda _: None).run(2)
    assert [i.decision for i in result.iterations] == ["malformed", "malformed"]
    first, second = (request.user for request in server.requests)
    shown = [re.findall(r"^- scenario (\S+)$", prompt, re.MULTILINE) for prompt in (first, second)]
    eval_ids = {s.id for s in proposer.catalog.scenarios().values() if s.split == "eval"}
    assert shown[0] and shown[1] and not eval_ids & {*shown[0], *shown[1]}  # scored on eval too, never shown
    assert all(sid.startswith("train-") for sid in shown[0]) and shown[0] != shown[1]  # the sample rotates
    assert "Failing train trials (6 of the " in first
    scenario = proposer.catalog.scenarios()[shown[0][0]]
    assert f"  input: {scenario.input}\n  expected: {scenario.expected}\n  output: ?\n" in first
    assert f"  grader equals: expected '{scenario.expected}', got '?'" in first
    assert re.search(r"best so far: \d+\.\d%", first)


@pytest.mark.parametrize(
    "reply",
    [
        "**HYPOTHESIS:** raise the level\n\n`agent.py`\n```\n<<<<<<< SEARCH\nLEVEL = 1\n=======\nLEVEL = 3\n"
        ">>>>>>> REPLACE\n```",
        "## Hypothesis\nraise the level\n\n**agent.py**\n```text\n<<<<<<< SEARCH\nLEVEL = 1\n=======\nLEVEL = 3\n"
        ">>>>>>> REPLACE\n```",
        "Hypothesis: raise the level\r\nFile: agent.py\r\n```python\r\n<<<<<<< SEARCH\r\nLEVEL = 1\r\n=======\r\n"
        "LEVEL = 3\r\n>>>>>>> REPLACE\r\n```",
    ],
)
def test_the_reply_parser_accepts_the_common_variants(tmp_path: Path, reply: str):
    (tmp_path / "agent.py").write_text(LEVEL_AGENT)
    edit = parse_reply(reply, Context(tmp_path, ["agent.py"], "train", None, []))
    assert edit.hypothesis == "raise the level" and "LEVEL = 3" in edit.files["agent.py"]


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        ("HYPOTHESIS: x\n<<<<<<< SEARCH\nLEVEL = 1\n=======\nLEVEL = 3\n>>>>>>> REPLACE", "block 1 names no file"),
        ("HYPOTHESIS: x\nagent.py\n<<<<<<< SEARCH\nLEVEL = 1\nLEVEL = 3\n>>>>>>> REPLACE", "no '=======' line"),
        ("HYPOTHESIS: x\nagent.py\n<<<<<<< SEARCH\nLEVEL = 1\n=======\nLEVEL = 3\n", "does not end with a '>>>>>>>"),
        (
            "HYPOTHESIS: x\nagent.py\n<<<<<<< SEARCH\nLEVEL = 2\n=======\nLEVEL = 3\n>>>>>>> REPLACE",
            "starts 'LEVEL = 2'",
        ),
        ("agent.py\n<<<<<<< SEARCH\nLEVEL = 1\n=======\nLEVEL = 3\n>>>>>>> REPLACE", "has no hypothesis"),
    ],
)
def test_a_malformed_reply_says_exactly_what_is_wrong(tmp_path: Path, reply: str, said: str):
    (tmp_path / "agent.py").write_text(LEVEL_AGENT)
    with pytest.raises(ProposalError, match=re.escape(said)):
        parse_reply(reply, Context(tmp_path, ["agent.py"], "train", None, []))


# --- improve and the config ----------------------------------------------------------------------


def test_improve_on_a_fresh_init_project_shows_the_curation_and_what_to_add(tmp_path, monkeypatch, capsys):
    assert main(["init", str(tmp_path), "--no-workflows"]) == 0
    monkeypatch.chdir(tmp_path)
    config = (tmp_path / "autoevolve.yaml").read_bytes()
    capsys.readouterr()
    assert main(["improve", "--dry-run", "--k", "2"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and "round 1: curation of 14 sampled answers (min_examples 20):" in out
    assert re.search(r"round 1:   rejected: grader_failed\s+\d+", out) and "train-add-11-22" in out
    assert "dry run: a real run would stop here: too few examples to train on" in out
    assert main(["improve", "--k", "2"]) == 2
    said = one_line(capsys.readouterr().err)
    assert re.search(r"too few examples to train on: \d+ distinct passing answers, 20 needed", said)
    assert "Add train scenarios (split: train) that tiny passes" in said and "(--k 4)" in said
    assert (tmp_path / "autoevolve.yaml").read_bytes() == config


def test_an_agent_incumbent_is_curated_and_a_real_run_names_the_backends(project, capsys):
    config = b"# my agent, in production\nincumbent: python:agent:strong  # the deployed one\n"
    (project / "autoevolve.yaml").write_bytes(config)
    assert main(["improve", "--dry-run", "--k", "1"]) == 0
    out, _ = capsys.readouterr()
    assert "curated " in out and "dry run: stopped before training" in out
    assert main(["improve", "--k", "1"]) == 2
    said = one_line(capsys.readouterr().err)
    dataset = re.search(r"curated into (finetune/datasets/v2-[0-9a-f]{8})", said)
    assert dataset, said
    assert f"`autoevolve finetune train {dataset[1]} --backend openai --base MODEL`" in said
    assert f"`autoevolve finetune train {dataset[1]} --base hf:PATH`" in said
    assert "improve --backend" not in said
    assert (project / "autoevolve.yaml").read_bytes() == config  # a failed improve changes nothing


def test_promote_and_rollback_keep_the_configs_comments_and_say_what_changed(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    text = (
        "# models\nincumbent: tiny  # deployed\ncandidate: tiny+adapter=m  # proposed\n\ngate:\n  alpha: 0.05  # kept\n"
    )
    (tmp_path / "autoevolve.yaml").write_text(text)
    assert main(["promote", "--force", "--reason", "manual"]) == 0
    assert "autoevolve.yaml: incumbent: tiny -> tiny+adapter=m" in capsys.readouterr().out
    promoted = (tmp_path / "autoevolve.yaml").read_text()
    assert promoted == text.replace("incumbent: tiny  #", "incumbent: tiny+adapter=m #")  # the comment's column
    assert main(["rollback"]) == 0
    assert (
        "autoevolve.yaml: incumbent: tiny+adapter=m -> tiny; candidate: tiny+adapter=m -> tiny"
        in capsys.readouterr().out
    )
    lines = (tmp_path / "autoevolve.yaml").read_text().splitlines()
    assert [re.sub(r"\s+#", " #", line) for line in lines] == [
        "# models",
        "incumbent: tiny # deployed",
        "candidate: tiny # proposed",
        "",
        "gate:",
        "  alpha: 0.05 # kept",
    ]

"""A cached answer is never stale: every file, module and variable a `python:` agent reads is in its key."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from pytest_autoevolve.loops.evolve import Loop
from pytest_autoevolve.loops.proposers import Context, Edit
from pytest_autoevolve.providers.base import CachePolicy, ModelSpecError, Reply, parse_spec
from pytest_autoevolve.run.cache import ResponseCache
from pytest_autoevolve.run.fingerprint import ProjectKeys
from pytest_autoevolve.settings import Settings
from tests.support.projects import copy_catalog, git_repo, write_files
from tests.support.runs import read_jsonl, run_dirs

AGENT = """
import json
import os
from pathlib import Path

from agent.helper import decorate

ROOT = Path(__file__).resolve().parents[1]


def answer(messages):
    prompt = (ROOT / "prompts" / "system.txt").read_text(encoding="utf-8").strip()
    capitals = json.loads((ROOT / "data" / "capitals.json").read_text(encoding="utf-8"))
    return decorate(f"{prompt} {capitals['Italy']} {os.environ.get('ANSWER_STYLE', 'plain')}")
"""
PROJECT = {
    "agent/__init__.py": "",
    "agent/main.py": AGENT,
    "agent/helper.py": "def decorate(text):\n    return text\n",
    "prompts/system.txt": "Answer briefly.\n",
    "data/capitals.json": '{"Italy": "Rome"}\n',
    "README.md": "# The capitals agent\n",
    "docs/usage.md": "Run pytest --autoevolve.\n",
    "scenarios/capitals.yaml": "scenarios:\n  - {id: italy, input: 'capital of Italy?', expected: Rome}\n",
}
SPEC = "python:agent.main:answer"


def config(**entry: object) -> str:
    """autoevolve.yaml with the agent in both roles, as a ``models:`` entry with ``entry``'s keys."""
    return json.dumps({"incumbent": "agent", "candidate": "agent", "models": {"agent": {"spec": SPEC, **entry}}})


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """A fresh ``pytest --autoevolve`` process in the project."""
    return pytester.runpytest_subprocess("--autoevolve", "-p", "no:cacheprovider", *args)


def calls(pytester: pytest.Pytester) -> int:
    """Model calls of the latest run (one model in both roles: at most one per scenario and repeat)."""
    return int(json.loads((run_dirs(pytester.path)[-1] / "summary.json").read_text())["cache"]["model_calls"])


def answer(pytester: pytest.Pytester) -> str:
    """The agent's answer in the latest run."""
    return str(read_jsonl(run_dirs(pytester.path)[-1] / "trajectories.jsonl")[0]["output"])


def edit(pytester: pytest.Pytester, path: str, old: str, new: str) -> None:
    file = pytester.path / path
    file.write_text(file.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """The agent's project as a git repository; byte code is not ignored: it must not count on its own."""
    monkeypatch.delenv("ANSWER_STYLE", raising=False)
    ignored = "stdout\nstderr\nrunpytest-*/\n"  # what pytester writes into the project as a run goes
    files = {**PROJECT, "autoevolve.yaml": config(cache_env=["ANSWER_STYLE"]), ".gitignore": ignored}
    git_repo(pytester.path, files, "start")
    return pytester


def test_every_input_the_agent_reads_is_in_its_key(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    run(project)
    assert (calls(project), answer(project)) == (1, "Answer briefly. Rome plain")
    run(project)
    assert calls(project) == 0  # nothing changed
    run(project, "-n", "2")
    assert calls(project) == 0  # nor under xdist
    edit(project, "README.md", "agent", "agent, documented")
    edit(project, "docs/usage.md", "Run", "Please run")
    run(project)
    assert calls(project) == 0  # documentation is no input

    steps = [
        ("prompts/system.txt", "briefly", "in full", "Answer in full. Rome plain"),
        ("agent/helper.py", "return text", "return text.upper()", "ANSWER IN FULL. ROME PLAIN"),
        ("data/capitals.json", "Rome", "Roma", "ANSWER IN FULL. ROMA PLAIN"),
    ]
    for path, old, new, expected in steps:
        edit(project, path, old, new)
        run(project)
        assert (calls(project), answer(project)) == (1, expected), path
    monkeypatch.setenv("ANSWER_STYLE", "formal")
    run(project)
    assert (calls(project), answer(project)) == (1, "ANSWER IN FULL. ROMA FORMAL")
    run(project)
    assert calls(project) == 0


def test_the_header_says_which_inputs_changed(project: pytest.Pytester):
    run(project)
    edit(project, "prompts/system.txt", "briefly", "in full")
    (project.path / "prompts" / "style.txt").write_text("formal\n", encoding="utf-8")
    run(project).stdout.fnmatch_lines(
        [f"autoevolve cache: {SPEC}: its cached answers miss: prompts/style.txt added, prompts/system.txt changed"]
    )
    assert "its cached answers miss" not in run(project).stdout.str()


def test_cache_inputs_narrow_the_key_to_their_files_and_the_imported_modules(project: pytest.Pytester):
    (project.path / "autoevolve.yaml").write_text(config(cache_inputs=["prompts/*.txt"]), encoding="utf-8")
    run(project)
    edit(project, "data/capitals.json", "Rome", "Roma")
    run(project)
    assert calls(project) == 0  # not among the declared inputs
    edit(project, "agent/helper.py", "return text", "return text.upper()")
    run(project)
    assert (calls(project), answer(project)) == (1, "ANSWER BRIEFLY. ROMA PLAIN")  # an imported module
    edit(project, "prompts/system.txt", "briefly", "in full")
    run(project)
    assert (calls(project), answer(project)) == (1, "ANSWER IN FULL. ROMA PLAIN")


def test_entries_older_than_the_expiry_are_misses(project: pytest.Pytester):
    (project.path / "autoevolve.yaml").write_text(config(cache_expiry="1h"), encoding="utf-8")
    run(project)
    run(project)
    assert calls(project) == 0
    old = time.time() - 2 * 3600
    for entry in (project.path / ".autoevolve" / "cache" / "models").glob("*/*.json"):
        os.utime(entry, (old, old))
    run(project)
    assert calls(project) == 1  # expired: asked again, and stored afresh
    run(project)
    assert calls(project) == 0


def test_an_expired_entry_is_a_counted_miss(tmp_path: Path):
    cache = ResponseCache(tmp_path, "models")
    key = cache.key("m", [{"role": "user", "content": "hi"}], [], 0, 0)
    cache.put(key, Reply("hello"), 0.1)
    old = time.time() - 3 * 86400
    os.utime(next(cache.folder.glob("*/*.json")), (old, old))
    assert cache.get(key, max_age_s=2 * 86400) is None and (cache.expired, cache.misses) == (1, 1)
    assert cache.get(key, max_age_s=4 * 86400) == (Reply("hello"), 0.1) and cache.get(key) is not None


def test_outside_git_the_key_covers_the_agent_package(pytester: pytest.Pytester):
    write_files(pytester.path, {**PROJECT, "autoevolve.yaml": config(), "notes.txt": "todo\n"})
    run(pytester).stdout.fnmatch_lines(
        [
            f"autoevolve cache: {SPEC}: not in a git repository, so its cache key covers the files under agent/ "
            "and the project modules it imports"
        ]
    )
    edit(pytester, "notes.txt", "todo", "done")
    run(pytester)
    assert calls(pytester) == 0  # outside the agent's package
    (pytester.path / "agent" / "tone.txt").write_text("warm\n", encoding="utf-8")
    run(pytester)
    assert calls(pytester) == 1


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"cache_env": ["A-B"]}, "cache_env is a list of environment variable names, got ['A-B']"),
        ({"cache_inputs": ["../secrets/*"]}, "cache_inputs is a list of file globs"),
        ({"cache_expiry": "soon"}, "cache_expiry is a duration like 7d, 12h or 30m, got 'soon'"),
        ({"cache_expiry": 0}, "cache_expiry is a duration"),
        ({"spec": "openai:gpt-4o-mini", "cache_inputs": ["*.txt"]}, "cache_inputs applies to python: agents only"),
    ],
)
def test_bad_cache_keys_name_the_key(entry: dict[str, object], message: str):
    with pytest.raises(ModelSpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_spec({"spec": SPEC, **entry})


def test_cache_keys_are_no_model_parameters():
    parsed = parse_spec({"spec": f"{SPEC}+cache_env=MODE", "cache_expiry": "12h", "temperature": 0})
    assert parsed.params == {"temperature": 0} and parsed.display == f"{SPEC}+temperature=0"
    assert (parsed.cache.env, parsed.cache.expiry_s, parsed.cache.inputs) == (("MODE",), 12 * 3600, None)


def test_a_bad_cache_key_is_a_usage_error(project: pytest.Pytester):
    (project.path / "autoevolve.yaml").write_text(config(cache_expiry="soon"), encoding="utf-8")
    result = run(project)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*cache_expiry is a duration like 7d, 12h or 30m, got 'soon'"])


PROMPT_AGENT = """
import zlib
from pathlib import Path

PROMPT = Path(__file__).resolve().parent / "prompts" / "system.txt"


def answer(messages, scenario):
    effort = int(PROMPT.read_text(encoding="utf-8").split("effort:")[1])
    right = zlib.crc32(scenario.id.encode()) % 4 < effort
    return (scenario.expected or "") if right else "?"
"""


class Prompts:
    """A proposer that hands out prompt edits in order."""

    def __init__(self, *efforts: int) -> None:
        self.efforts = list(efforts)

    def propose(self, context: Context) -> Edit | None:
        if not self.efforts:
            return None
        effort = self.efforts.pop(0)
        return Edit(f"effort {effort}", {"prompts/system.txt": f"You answer string puzzles.\neffort: {effort}\n"})


def test_evolve_scores_each_prompt_edit_afresh_with_the_cache_on(tmp_path: Path):
    root = tmp_path / "project"
    copy_catalog(root / "scenarios")
    files = {
        "agent.py": PROMPT_AGENT,
        "prompts/system.txt": "You answer string puzzles.\neffort: 1\n",
        "autoevolve.yaml": "candidate: python:agent:answer\ngate:\n  min_paired: 10\n",
        ".gitignore": "__pycache__/\n",
    }
    repo = git_repo(root, files, "start")
    loop = Loop(root, Prompts(0, 3), targets=["prompts/system.txt"], tag="prompt", progress=lambda _: None)
    result = loop.run(2)
    assert [i.decision for i in result.iterations] == ["reverted", "kept"]
    worse, better = result.iterations
    assert None not in (worse.score, better.score, result.start_score)
    assert worse.score < result.start_score < better.score  # each edit scored afresh, not from the cache
    kept = repo.commit(better.commit).tree / "prompts" / "system.txt"
    assert b"effort: 3" in kept.data_stream.read() and result.verdict == "pass"


class Agent:
    """What the fingerprint reads of a `python:` model: its spec, own fingerprint, package folder and modules."""

    spec = fingerprint = SPEC
    code_folder = None
    local_modules = ("agent/main.py",)


def test_an_edit_that_keeps_size_and_mtime_is_still_seen(tmp_path: Path):
    git_repo(tmp_path, {"agent/main.py": AGENT, "prompts/system.txt": "Answer briefly.\n"}, "start")
    prompt, stamp = tmp_path / "prompts" / "system.txt", time.time() - 3600

    def fingerprint() -> str:
        os.utime(prompt, (stamp, stamp))
        key = ProjectKeys.of(tmp_path, Settings()).key(Agent(), CachePolicy())
        assert key is not None
        return key.fingerprint

    first = fingerprint()
    assert fingerprint() == first
    prompt.write_text("Answer loudly.\n", encoding="utf-8")  # same size, and the same mtime once set back
    assert fingerprint() != first

"""``autoevolve ci gate`` measures what it claims: the base's code, a fresh base run, the base's rule, any folder."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import git
import pytest

from pytest_autoevolve.errors import ConfigError
from pytest_autoevolve.settings import load_settings
from tests.support.agents import LEVEL_AGENT
from tests.support.fake_openai import Answer, Request, completion, error, fake_openai
from tests.support.projects import REPO, commit_all, git_repo

AUTOEVOLVE = str(Path(sys.executable).with_name("autoevolve"))
STRINGS = (REPO / "scenarios" / "strings.yaml").read_text(encoding="utf-8")
IGNORE = "__pycache__/\n.autoevolve/\n"

# A tool module in the catalog folder and an agent that answers with whatever the tool says.
SAY_SCENARIOS = """
scenarios:
  - id: say-{{n}}
    input: "say {{n}}"
    expected: "{{n}}"
    tools: [say_tools:lookup]
    vars: [{n: 0}, {n: 1}, {n: 2}, {n: 3}, {n: 4}, {n: 5}, {n: 6}, {n: 7}, {n: 8}, {n: 9}, {n: 10}, {n: 11}]
"""
TOOL_AGENT = """
def answer(messages, scenario):
    return str(scenario.tools[0].function(messages[-1]["content"]))
"""
BROKEN_TOOL = "def lookup(text: str) -> str:\n    return '?'\n"
FIXED_TOOL = "def lookup(text: str) -> str:\n    return text.split()[-1]\n"

# An agent whose endpoint answers 429 to its first FLAKY_FAILURES calls (counted in the file FLAKY_COUNT).
FLAKY_AGENT = """
import json
import os
import urllib.request


def answer(messages, scenario):
    body = json.dumps({"model": "backend", "messages": messages}).encode()
    request = urllib.request.Request(
        os.environ["FLAKY_URL"] + "/chat/completions", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:  # a 429 raises: that trial's error
        json.load(reply)
    return scenario.expected
"""


def ci_gate(root: Path, base: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``autoevolve ci gate --base BASE`` in ``root``, with ``env`` added to this environment."""
    return subprocess.run(
        [AUTOEVOLVE, "ci", "gate", "--base", base],
        cwd=root,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )


def summary_of(root: Path) -> dict[str, Any]:
    return json.loads((root / ".autoevolve" / "ci" / "summary.json").read_text(encoding="utf-8"))


def level_project(root: Path, config: str, agent_path: str = "agent.py") -> git.Repo:
    """A repository of the strings catalog, ``LEVEL_AGENT`` at ``agent_path`` and ``config``, committed."""
    files = {
        "scenarios/strings.yaml": STRINGS,
        agent_path: LEVEL_AGENT,
        "autoevolve.yaml": config,
        ".gitignore": IGNORE,
    }
    return git_repo(root, files, "base")


def test_a_src_layout_agent_on_pythonpath_runs_the_base_commits_code(tmp_path: Path):
    project = tmp_path / "project"
    agent = project / "src" / "myagent" / "__init__.py"
    repo = level_project(project, "candidate: python:myagent:answer\n", "src/myagent/__init__.py")
    agent.write_text(agent.read_text().replace("LEVEL = 1", "LEVEL = 3"))
    base = commit_all(repo, "base: a good agent")
    agent.write_text(agent.read_text().replace("LEVEL = 3", "LEVEL = 1"))  # the pull request makes it worse

    done = ci_gate(project, base, PYTHONPATH=str(project / "src"))  # as an editable install or CI's PYTHONPATH
    assert done.returncode == 1, done.stdout + done.stderr
    summary = summary_of(project)
    assert summary["verdict"] == "fail"
    assert isinstance(summary["lift"], float) and summary["lift"] < 0  # not incumbent == candidate
    assert summary["incumbent"]["pass_rate"] > 0.5 > summary["candidate"]["pass_rate"]


SRC_LAYOUT = """
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "myagent"
version = "0.1.0"

[tool.setuptools.packages.find]
where = ["src"]
"""


def editable_venv(tmp_path: Path, project: Path) -> str:
    """A fresh virtual environment that sees this one's packages, with ``project`` installed by ``pip install -e``."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    Path(site, "_these_packages.pth").write_text(f"import site; site.addsitedir({ours!r})\n", encoding="utf-8")
    install = [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*install, "-e", str(project)], check=True, capture_output=True, timeout=300)
    return python


def test_an_editable_install_of_a_src_layout_agent_runs_the_base_commits_code(tmp_path: Path):
    project = tmp_path / "project"
    agent = project / "src" / "myagent" / "__init__.py"
    repo = level_project(project, "candidate: python:myagent:answer\n", "src/myagent/__init__.py")
    (project / "pyproject.toml").write_text(SRC_LAYOUT, encoding="utf-8")
    agent.write_text(agent.read_text().replace("LEVEL = 1", "LEVEL = 3"))
    base = commit_all(repo, "base: a good agent, an installable package")
    agent.write_text(agent.read_text().replace("LEVEL = 3", "LEVEL = 1"))  # the pull request makes it worse
    python = editable_venv(tmp_path, project)
    imported = subprocess.run([python, "-c", "import myagent; print(myagent.__file__)"], capture_output=True, text=True)
    assert imported.stdout.strip() == str(agent)  # the editable install points into the working tree

    done = subprocess.run(
        [python, "-m", "pytest_autoevolve.cli", "ci", "gate", "--base", base],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    summary = summary_of(project)
    assert summary["verdict"] == "fail" and summary["lift"] < 0  # not incumbent == candidate
    assert summary["incumbent"]["pass_rate"] > 0.5 > summary["candidate"]["pass_rate"]


def test_a_base_that_would_import_the_working_trees_agent_is_refused(tmp_path: Path):
    project = tmp_path / "project"
    repo = level_project(project, "candidate: python:myagent:answer\n", "lib/myagent/__init__.py")
    site = tmp_path / "site-packages"  # an install that points into the checkout, outside src/
    site.mkdir()
    (site / "myagent").symlink_to(project / "lib" / "myagent")
    agent = project / "lib" / "myagent" / "__init__.py"
    agent.write_text(agent.read_text().replace("LEVEL = 1", "LEVEL = 3"))
    commit_all(repo, "head")

    done = ci_gate(project, "HEAD~1", PYTHONPATH=str(site))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "would import the agent module 'myagent' from the working tree" in done.stderr
    assert str((project / "lib" / "myagent").resolve()) in done.stderr
    assert not (project / ".autoevolve" / "ci" / "incumbent").exists()


def test_a_changed_tool_module_in_the_catalog_runs_the_base_again(tmp_path: Path):
    project = tmp_path / "project"
    files = {
        "scenarios/say.yaml": SAY_SCENARIOS,
        "scenarios/say_tools.py": BROKEN_TOOL,
        "agent.py": TOOL_AGENT,
        # cache off: the response cache keys a python: agent on its own module, not on the tools it calls
        "autoevolve.yaml": 'candidate: python:agent:answer\ncache: "off"\ngate: {min_paired: 10}\n',
        ".gitignore": IGNORE,
    }
    repo = git_repo(project, files, "base: the tool is broken")
    base = repo.head.commit.hexsha
    (project / "README.md").write_text("a pull request\n")
    commit_all(repo, "head 1")
    first = ci_gate(project, base)
    assert "incumbent: running" in first.stdout, first.stdout + first.stderr
    assert summary_of(project)["incumbent"]["pass_rate"] == 0.0

    (project / "scenarios" / "say_tools.py").write_text(FIXED_TOOL)  # the agent is unchanged
    commit_all(repo, "head 2: the tool fixed")
    second = ci_gate(project, base)
    assert "incumbent: running" in second.stdout, second.stdout + second.stderr  # not the stale run
    summary = summary_of(project)
    assert summary["incumbent"]["pass_rate"] == summary["candidate"]["pass_rate"] == 1.0
    assert summary["lift"] == 0.0
    assert second.returncode == 1  # superiority: an unchanged agent has no lift
    assert len(list((project / ".autoevolve" / "ci" / "incumbent").iterdir())) == 2


def test_a_base_run_with_errors_is_reported_and_never_reused(tmp_path: Path):
    project = tmp_path / "project"
    files = {
        "scenarios/strings.yaml": STRINGS,
        "agent.py": FLAKY_AGENT,
        # a margin wide enough that a dozen tied scenarios show non-inferiority (at 0.02 they could not)
        "autoevolve.yaml": (
            "candidate: python:agent:answer\ngate: {mode: non_inferiority, margin: 0.3, min_paired: 10}\n"
        ),
        ".gitignore": IGNORE,
    }
    repo = git_repo(project, files, "base")
    base = repo.head.commit.hexsha
    (project / "README.md").write_text("a pull request that leaves the agent as it is\n")
    commit_all(repo, "head")
    calls = itertools.count()

    def flaky(request: Request, seen: int) -> Answer | dict[str, Any]:  # the first six requests are rate-limited
        return error(429, "Too Many Requests") if next(calls) < 6 else completion("ok")

    with fake_openai(flaky) as server:
        env = {"FLAKY_URL": server.url}
        first = ci_gate(project, base, **env)  # the base run meets six 429s; the candidate's calls come later
        assert "the base run recorded 6 trial error(s)" in first.stdout, first.stdout + first.stderr
        assert "HTTP Error 429" in first.stdout and "not reused" in first.stdout
        assert "the base run had 6 trial error(s)" in first.stdout.splitlines()[-1]
        (stored,) = (project / ".autoevolve" / "ci" / "incumbent").iterdir()
        assert json.loads((stored / "meta.json").read_text())["errors"] == 6

        second = ci_gate(project, base, **env)
        assert "recorded 6 trial error(s); running it again" in second.stdout, second.stdout + second.stderr
        assert "reusing" not in second.stdout
        summary = summary_of(project)
        assert summary["incumbent"]["pass_rate"] == summary["candidate"]["pass_rate"] == 1.0
        assert summary["lift"] == 0.0 and summary["verdict"] == "pass"
        assert json.loads((stored / "meta.json").read_text())["errors"] == 0

        third = ci_gate(project, base, **env)
        assert "incumbent: reusing the stored run" in third.stdout, third.stdout + third.stderr  # a clean run is reused


def test_a_project_in_a_sub_folder_of_its_repository(tmp_path: Path):
    repo_root = tmp_path / "monorepo"
    files = {
        "pyproject.toml": '[tool.pytest.ini_options]\naddopts = ""\n',  # the repository's own pytest config
        "autoevolve.yaml": "candidate: tiny\n",  # another project's, at the top
        ".gitignore": IGNORE,
        "services/bot/scenarios/strings.yaml": STRINGS,
        "services/bot/agent.py": LEVEL_AGENT,
        "services/bot/autoevolve.yaml": "candidate: python:agent:weak\ngate: {min_paired: 10}\n",
    }
    repo = git_repo(repo_root, files, "base")
    base = repo.head.commit.hexsha
    project = repo_root / "services" / "bot"
    (project / "autoevolve.yaml").write_text("candidate: python:agent:strong\ngate: {min_paired: 10}\n")
    commit_all(repo, "head: a stronger agent")

    done = ci_gate(project, base)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"incumbent: running python:agent:weak at {base[:10]}" in done.stdout
    summary = summary_of(project)
    assert summary["verdict"] == "pass"
    assert summary["incumbent"]["spec"] == f"python:agent:weak @ {base[:10]}"
    assert summary["incumbent"]["pass_rate"] < 0.5 < summary["candidate"]["pass_rate"]
    assert not (repo_root / ".autoevolve").exists()
    assert not repo.is_dirty(untracked_files=True)


def test_a_pull_request_that_loosens_the_gate_is_gated_by_the_bases_rule_and_fails(tmp_path: Path):
    project = tmp_path / "project"
    repo = level_project(project, "candidate: python:agent:strong\ngate: {min_paired: 10}\n")
    base = repo.head.commit.hexsha
    loosened = "gate: {mode: non_inferiority, margin: 0.9, min_paired: 1}\n"
    (project / "autoevolve.yaml").write_text("candidate: python:agent:bad\n" + loosened)
    commit_all(repo, "head: a worse agent and a gate that passes anything")

    done = ci_gate(project, base)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "the working tree changes gate (gate.mode 'superiority' -> 'non_inferiority'" in done.stdout
    assert "the base's value applies" in done.stdout
    last = done.stdout.splitlines()[-1]
    assert last.startswith("autoevolve ci gate: FAIL") and "head_may_change" in last
    summary = summary_of(project)
    assert summary["thresholds"]["mode"] == "superiority"
    assert summary["thresholds"]["min_paired"] == 10
    assert summary["verdict"] == "fail"


def test_a_rule_change_the_base_allows_is_applied(tmp_path: Path):
    project = tmp_path / "project"
    config = "candidate: python:agent:strong\ngate: {min_paired: 10, head_may_change: [gate]}\n"
    repo = level_project(project, config)
    base = repo.head.commit.hexsha
    (project / "autoevolve.yaml").write_text(
        "candidate: python:agent:strong\ngate: {mode: non_inferiority, margin: 0.1, min_paired: 10}\n"
    )
    commit_all(repo, "head: the gate becomes a non-inferiority check")

    done = ci_gate(project, base)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "allowed by the base's gate.head_may_change" in done.stdout
    assert done.stdout.splitlines()[-1].startswith("autoevolve ci gate: PASS")
    summary = summary_of(project)
    assert summary["thresholds"]["mode"] == "non_inferiority"
    assert summary["verdict"] == "pass"


def test_head_may_change_names_base_owned_settings(tmp_path: Path):
    (tmp_path / "autoevolve.yaml").write_text("gate: {head_may_change: [gate, candidate]}\n")
    with pytest.raises(ConfigError, match="head_may_change is a list of settings among gate, catalog, split"):
        load_settings(tmp_path)
    (tmp_path / "autoevolve.yaml").write_text("gate: {head_may_change: [gate, catalog]}\n")
    assert load_settings(tmp_path).gate == load_settings(tmp_path / "nothing").gate  # not part of the rule

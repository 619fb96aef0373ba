"""Projects the tests build: the shipped demo catalog copied in, and git repositories of an agent and its config."""

from __future__ import annotations

import shutil
from pathlib import Path

import git

from tests.support.agents import LEVEL_AGENT

REPO = Path(__file__).resolve().parents[2]
"""The repository root: the shipped ``scenarios/``, ``pyproject.toml``, the package."""


def copy_catalog(folder: Path, name: str = "strings.yaml") -> Path:
    """Copy the shipped demo catalog file ``scenarios/<name>`` into ``folder`` (made if missing); return the copy."""
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(REPO / "scenarios" / name, folder / name))


def commit_all(repo: git.Repo, message: str) -> str:
    """Stage everything (as ``git add --all``) and commit it; the new commit's sha."""
    repo.git.add("--all")
    return str(repo.index.commit(message).hexsha)


def git_project(root: Path, config: str, *, gitignore: str, message: str, agent: str = LEVEL_AGENT) -> Path:
    """A git repository at ``root``, all committed with ``message``: the strings catalog in ``scenarios/``,
    ``agent`` as ``agent.py``, ``config`` as ``autoevolve.yaml`` and ``gitignore`` as ``.gitignore``."""
    copy_catalog(root / "scenarios")
    (root / "agent.py").write_text(agent, encoding="utf-8")
    (root / "autoevolve.yaml").write_text(config, encoding="utf-8")
    (root / ".gitignore").write_text(gitignore, encoding="utf-8")
    commit_all(git.Repo.init(root), message)
    return root


def write_files(root: Path, files: dict[str, str]) -> None:
    """Write each text under ``root`` at its relative path, making folders as needed."""
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text, encoding="utf-8")


def git_repo(root: Path, files: dict[str, str], message: str) -> git.Repo:
    """A git repository at ``root`` holding ``files`` (relative path to text), all committed with ``message``."""
    write_files(root, files)
    repo = git.Repo.init(root)
    commit_all(repo, message)
    return repo

"""The starter files of ``autoevolve init``: config, scenarios, evolve space and CI workflows.

The files are package data under ``templates/``. A workflow template that installs the plugin
holds a line ``@AUTOEVOLVE_INSTALL@`` where the install command goes: a user's repository installs the
released package (`PACKAGE_INSTALL`), this project's own repository its source tree
(`SOURCE_INSTALL`), so both run the same workflows. ``python -m pytest_autoevolve.cli.scaffold
DIR`` rewrites the workflows of a source checkout at DIR from the templates.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pytest_autoevolve.errors import AutoevolveError

INSTALL_MARK = "@AUTOEVOLVE_INSTALL@"
PACKAGE_INSTALL = (
    'pip install "pytest-autoevolve[train]"\n'
    "if [ -f requirements.txt ]; then pip install -r requirements.txt; fi  # your model's or agent's dependencies"
)
SOURCE_INSTALL = 'pip install -e ".[train]"'
WORKFLOWS = ("autoevolve-gate.yml", "autoevolve-gate-comment.yml", "autoevolve-improve.yml", "autoevolve-evolve.yml")
WORKFLOW_DIR = ".github/workflows"
STARTERS = ("autoevolve.yaml", "scenarios/example.yaml", "evolve-space.yaml")


class ScaffoldError(AutoevolveError):
    """A file that cannot be written: the message names it."""


@dataclass(frozen=True)
class Outcome:
    """What happened to one file: ``written``, ``overwritten`` or ``skipped`` (it existed)."""

    path: str
    action: str


def template(name: str) -> str:
    """The text of ``templates/<name>`` (a ``/``-separated relative path)."""
    folder = resources.files("pytest_autoevolve").joinpath("templates")
    return folder.joinpath(*name.split("/")).read_text(encoding="utf-8")


def render_workflow(name: str, install: str = PACKAGE_INSTALL) -> str:
    """Workflow ``name`` with its install line, if it has one, replaced by ``install`` (one command per line)."""
    lines = template(f"workflows/{name}").splitlines(keepends=True)
    for number, line in enumerate(lines):
        if line.strip() == INSTALL_MARK:
            indent = line[: len(line) - len(line.lstrip())]
            lines[number] = "".join(f"{indent}{command}\n" for command in install.splitlines())
    return "".join(lines)


def files(*, workflows: bool = True, install: str = PACKAGE_INSTALL) -> dict[str, str]:
    """The starter files by path relative to the project root."""
    out = {name: template(name) for name in STARTERS}
    if workflows:
        out.update({f"{WORKFLOW_DIR}/{name}": render_workflow(name, install) for name in WORKFLOWS})
    return out


def write(root: Path, contents: dict[str, str], *, force: bool = False) -> list[Outcome]:
    """Write ``contents`` under ``root``; an existing file is skipped unless ``force``."""
    outcomes = []
    for relative, text in contents.items():
        path = root / relative
        if path.is_dir():
            raise ScaffoldError(f"{path} is a folder, expected a file")
        existed = path.exists()
        if existed and not force:
            outcomes.append(Outcome(relative, "skipped"))
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ScaffoldError(f"cannot write {path}: {exc}") from None
        outcomes.append(Outcome(relative, "overwritten" if existed else "written"))
    return outcomes


def scaffold(root: Path, *, force: bool = False, workflows: bool = True) -> list[Outcome]:
    """Write the starter files of a project at ``root`` (created if missing)."""
    if root.exists() and not root.is_dir():
        raise ScaffoldError(f"{root} is a file, expected a folder")
    return write(root, files(workflows=workflows), force=force)


def sync_source_workflows(root: Path) -> list[Outcome]:
    """Rewrite the autoevolve workflows of this project's source checkout at ``root``."""
    contents = {f"{WORKFLOW_DIR}/{name}": render_workflow(name, SOURCE_INSTALL) for name in WORKFLOWS}
    return write(root, contents, force=True)


if __name__ == "__main__":  # pragma: no cover
    for outcome in sync_source_workflows(Path(sys.argv[1] if len(sys.argv) > 1 else ".")):
        print(f"{outcome.action:<11} {outcome.path}")

"""``autoevolve ci gate --base REF``: the working tree gated against the repository as it is at a base commit.

The incumbent is the base commit itself: its config, prompts, adapters and agent code, checked
out with gitpython in a temporary worktree and run there on the head's eval catalog (its
configured ``candidate`` is the model that commit ships). That run is stored under
``<artifacts>/ci/incumbent/<key>/`` with a key made of the base commit, the catalog's digest,
the incumbent's spec, the repeats and the seed, and reused while they are unchanged. The
candidate is the working tree's configured candidate, run live in an ordinary
``pytest --autoevolve`` run against the stored base run replayed as the incumbent, so the
summary, reports, junit, job summary and annotations are the plugin's own. Stable copies of
the summary, reports and junit go to ``<artifacts>/ci/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_autoevolve.errors import FormatError, LoopError

if TYPE_CHECKING:
    import git

    from pytest_autoevolve.gate.summary import RunSummary
    from pytest_autoevolve.settings import Settings

KEY_VERSION = 1
"""Bump when what a stored base run means changes, so old entries are not reused."""


class CIGateError(LoopError):
    """The comparison cannot be made: the message says why and what to do."""


@dataclass
class BaseRun:
    """The incumbent's stored run: where it is, what it recorded, and whether it was reused."""

    key: str
    trajectories: Path
    spec: str
    commit: str
    reused: bool


@dataclass
class GateOutcome:
    """The exit status of the gate run, where its results are, and its summary (None when it wrote none)."""

    status: int
    base: BaseRun
    outputs: Path
    summary: RunSummary | None


def open_repo(root: Path) -> git.Repo:
    """The git repository at ``root``; CIGateError when there is none."""
    import git

    try:
        return git.Repo(root, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise CIGateError(f"{root} is not in a git repository: the base is a commit") from None


def resolve_base(repo: git.Repo, ref: str) -> git.Commit:
    """The base commit; refuse an unknown ref and a base whose tree is the working tree's."""
    import git

    try:
        commit = repo.commit(ref)
    except (git.BadName, git.BadObject, ValueError):
        raise CIGateError(
            f"unknown base {ref!r}: fetch it first (in GitHub Actions, actions/checkout with fetch-depth: 0)"
        ) from None
    if commit.tree.hexsha == repo.head.commit.tree.hexsha and not repo.is_dirty(untracked_files=True):
        raise CIGateError(
            f"refusing to compare {ref} ({commit.hexsha[:10]}) with itself: the working tree is that commit's "
            "tree, so the gate could only measure noise; pass the commit the change is based on"
        )
    return commit


def load_settings(folder: Path, where: str) -> Settings:
    """The autoevolve settings in ``folder``; CIGateError naming ``where`` when they are invalid."""
    from pytest_autoevolve.errors import ConfigError
    from pytest_autoevolve.settings import load_settings

    try:
        return load_settings(folder)
    except ConfigError as exc:
        raise CIGateError(f"the config {where} is invalid: {exc}") from None


def settings_at(commit: git.Commit) -> Settings:
    """The autoevolve settings the repository had at ``commit`` (autoevolve.yaml over pyproject.toml)."""
    with tempfile.TemporaryDirectory(prefix="autoevolve-config-") as folder:
        for name in ("pyproject.toml", "autoevolve.yaml"):
            try:
                blob = commit.tree / name
            except KeyError:
                continue
            (Path(folder) / name).write_bytes(blob.data_stream.read())
        return load_settings(Path(folder), f"at the base commit {commit.hexsha[:10]}")


def catalog_digest(root: Path, settings: Settings) -> str:
    """A digest of every scenario file under the catalog folders (path and content)."""
    from pytest_autoevolve.catalog.loader import scenario_files
    from pytest_autoevolve.files import files_sha256

    files = scenario_files(root / entry for entry in settings.catalog)
    return files_sha256(root, [path.relative_to(root).as_posix() for path in files])


def incumbent_key(commit: str, catalog: str, spec: str, settings: Settings) -> str:
    """The stored base run's key: base commit, catalog digest, incumbent spec, repeats and seed."""
    fields = [KEY_VERSION, commit, catalog, spec, settings.repeats, settings.seed]
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:20]


def run_base(repo: git.Repo, commit: git.Commit, settings: Settings, folder: Path) -> None:
    """Run the base commit's candidate on the head's eval catalog in a worktree; store its trajectories."""
    from pytest_autoevolve.loops.project import FineTuneError
    from pytest_autoevolve.loops.subprocess import run_pytest

    root = Path(str(repo.working_tree_dir))
    with tempfile.TemporaryDirectory(prefix="autoevolve-base-") as temporary:
        worktree = Path(temporary) / "base"
        repo.git.worktree("add", "--detach", str(worktree), commit.hexsha)
        try:
            for entry in settings.catalog:  # the head's scenarios: both sides answer the same catalog
                shutil.rmtree(worktree / entry, ignore_errors=True)
                if (root / entry).is_dir():
                    shutil.copytree(root / entry, worktree / entry)
            args = [
                "--autoevolve-split",
                "eval",
                "--autoevolve-only",
                "candidate",
                "--autoevolve-repeats",
                str(settings.repeats),
                "--autoevolve-seed",
                str(settings.seed),
            ]
            for entry in settings.catalog:
                args += ["--autoevolve-catalog", entry]
            try:
                _, run = run_pytest(worktree, args)
            except FineTuneError as exc:
                raise CIGateError(f"the base commit's run failed: {exc}") from None
            recorded = run / "trajectories.jsonl" if run else None
            if recorded is None or not recorded.is_file():
                raise CIGateError("the base run recorded no trajectories: does the catalog have eval scenarios?")
            folder.mkdir(parents=True, exist_ok=True)
            partial = folder / ".trajectories.jsonl.tmp"
            shutil.copyfile(recorded, partial)
            os.replace(partial, folder / "trajectories.jsonl")
        finally:
            repo.git.worktree("remove", "--force", str(worktree))


def base_run(
    repo: git.Repo,
    root: Path,
    commit: git.Commit,
    settings: Settings,
    artifacts: str,
    *,
    refresh: bool,
    progress: Callable[[str], None],
) -> BaseRun:
    """The stored base run for this key: reused when present (unless ``refresh``), else made now."""
    from pytest_autoevolve.files import write_json_atomic
    from pytest_autoevolve.providers.base import parse_spec

    base = settings_at(commit)
    raw = base.candidate if base.candidate is not None else base.incumbent
    spec = parse_spec(raw, base.models).display
    catalog = catalog_digest(root, settings)
    key = incumbent_key(commit.hexsha, catalog, json.dumps(raw, sort_keys=True, default=str), settings)
    folder = root / artifacts / "ci" / "incumbent" / key
    trajectories = folder / "trajectories.jsonl"
    shown = f"{spec} at {commit.hexsha[:10]}"
    if trajectories.is_file() and (folder / "meta.json").is_file() and not refresh:
        progress(f"incumbent: reusing the stored run of {shown} ({folder.relative_to(root)})")
        return BaseRun(key, trajectories, spec, commit.hexsha, reused=True)
    progress(f"incumbent: running {shown} on the eval split in a worktree of the base commit")
    run_base(repo, commit, settings, folder)
    meta = {
        "spec": f"{spec} @ {commit.hexsha[:10]}",
        "base_spec": spec,
        "commit": commit.hexsha,
        "catalog_sha256": catalog,
        "repeats": settings.repeats,
        "seed": settings.seed,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "key_version": KEY_VERSION,
    }
    write_json_atomic(folder / "meta.json", meta)
    return BaseRun(key, trajectories, spec, commit.hexsha, reused=False)


def gate_against_base(
    root: Path,
    ref: str,
    *,
    artifacts: str = ".autoevolve",
    refresh: bool = False,
    stream: bool = True,
    progress: Callable[[str], None] = print,
) -> GateOutcome:
    """Gate the working tree's candidate against the repository at ``ref`` on the eval split."""
    from pytest_autoevolve.gate.summary import RunSummary
    from pytest_autoevolve.loops.project import FineTuneError
    from pytest_autoevolve.loops.subprocess import run_pytest

    root = root.resolve()
    repo = open_repo(root)
    commit = resolve_base(repo, ref)
    settings = load_settings(root, "of the working tree")
    base = base_run(repo, root, commit, settings, artifacts, refresh=refresh, progress=progress)
    outputs = root / artifacts / "ci"
    junit = outputs / "junit.xml"
    replay = f"replay:{base.trajectories.relative_to(root).as_posix()}+role=candidate"
    progress(f"candidate: running the working tree's {_spec(settings)} against the replayed base run")
    args = ["--autoevolve-split", "eval", "--autoevolve-incumbent", replay, f"--junitxml={junit}"]
    try:
        status, run = run_pytest(root, args, artifacts, capture=not stream)
    except FineTuneError as exc:
        raise CIGateError(str(exc)) from None
    for name in ("summary.json", "report.md", "report.html"):  # this run's copies, never an earlier run's
        (outputs / name).unlink(missing_ok=True)
        if run is not None and (run / name).is_file():
            shutil.copyfile(run / name, outputs / name)
    made = outputs / "summary.json"
    try:
        summary = RunSummary.load(made) if made.is_file() else None
    except FormatError as exc:
        raise CIGateError(f"the gate run's summary cannot be read: {exc}") from None
    return GateOutcome(status, base, outputs, summary)


def _spec(settings: Settings) -> str:
    from pytest_autoevolve.providers.base import parse_spec

    return parse_spec(settings.candidate, settings.models).display


def main_gate(ref: str, *, artifacts: str, refresh: bool) -> int:
    """The ``autoevolve ci gate`` command: 0 only when the gate passes, 2 when it cannot run."""
    try:
        outcome = gate_against_base(Path.cwd(), ref, artifacts=artifacts, refresh=refresh)
    except CIGateError as exc:
        print(f"autoevolve ci gate: {exc}", file=sys.stderr)
        return 2
    shown = (
        outcome.outputs.relative_to(Path.cwd().resolve())
        if outcome.outputs.is_relative_to(Path.cwd().resolve())
        else outcome.outputs
    )
    verdict = (outcome.summary.gate.verdict if outcome.summary else "inconclusive").upper()
    print(
        f"autoevolve ci gate: {verdict} (base {outcome.base.commit[:10]}, incumbent "
        f"{'reused' if outcome.base.reused else 'run now'}); results in {shown}/"
    )
    return outcome.status if outcome.summary is not None else max(outcome.status, 1)

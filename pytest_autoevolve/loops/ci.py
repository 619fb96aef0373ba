"""``autoevolve ci gate --base REF``: the working tree gated against the repository as it is at a base commit.

The project is the current directory, which may be a sub-folder of its repository (a monorepo).
The base owns the rule: the gate settings, the catalog folders, the split, the repeats and the
seed come from the base commit's config (`GateConfig.BASE_OWNED`); a pull request that changes
one of them fails unless the base lists it under ``gate: {head_may_change: [...]}``.

The incumbent is the base commit itself: its config, prompts, adapters and agent code, checked
out with gitpython in a temporary worktree and run there on the head's eval catalog (its
configured ``candidate`` is the model that commit ships), with the worktree's own source roots
first on ``PYTHONPATH`` so an editable install or a ``PYTHONPATH`` into the working tree cannot
hand it the head's code. That run is stored under ``<artifacts>/ci/incumbent/<key>/`` with a key
made of the base commit, the project folder, the digest of every file under the catalog folders,
the incumbent's spec, the split, the repeats and the seed, and reused while they are unchanged
and it recorded no trial error. The candidate is the working tree's configured candidate, run
live in an ordinary ``pytest --autoevolve`` run against the stored base run replayed as the
incumbent and under the base's rule (``-p pytest_autoevolve.loops.ci_rule --autoevolve-ci-rule FILE``),
so the summary, reports, junit, job summary and annotations are the plugin's own. Stable copies
of the summary, reports and junit go to ``<artifacts>/ci/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeGuard

from pytest_autoevolve.errors import FormatError, LoopError
from pytest_autoevolve.loops.ci_rule import BaseConfig, rule_changes, ruled_settings

if TYPE_CHECKING:
    import git

    from pytest_autoevolve.gate.summary import RunSummary
    from pytest_autoevolve.providers.base import ModelSpec
    from pytest_autoevolve.settings import Settings


KEY_VERSION = 2

"""Bump when what a stored base run means changes, so old entries are not reused."""

SKIPPED = ("__pycache__", "*.pyc")

"""Files under the catalog folders that are neither copied to the base nor digested (Python's byte code)."""


RULE_FILE = "gate-rule.json"
"""The base's gate rule as the run applied it, beside its junit file: what merging shards decides by."""
SHARD_FILE = "shard.json"
"""Which shard of how many a sharded gate ran, and against which base commit."""
Shard = tuple[int, int]
"""Shard K of N (1-based)."""


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
    errors: int = 0
    """Trials of the base run that errored (such a run is never reused)."""


@dataclass
class GateOutcome:
    """The exit status of the gate run, where its results are, and its summary (None when it wrote none)."""

    status: int
    base: BaseRun
    outputs: Path
    summary: RunSummary | None
    refused: list[str] = field(default_factory=list)
    """The base-owned settings the working tree changes without the base's leave: each fails the gate."""


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


def settings_at(commit: git.Commit, project: str = ".") -> BaseConfig:
    """The settings of the project folder ``project`` at ``commit``, and what its ``head_may_change`` allows.

    autoevolve.yaml wins over pyproject.toml, as in a run.
    """
    from pytest_autoevolve.settings import GateConfig, read_file_settings

    try:
        tree = commit.tree / project if project != "." else commit.tree
    except KeyError:
        raise CIGateError(
            f"the project folder {project}/ does not exist at the base commit {commit.hexsha[:10]}: "
            "a new project has no base to gate against; pass a base that has it"
        ) from None
    with tempfile.TemporaryDirectory(prefix="autoevolve-config-") as folder:
        for name in ("pyproject.toml", "autoevolve.yaml"):
            try:
                blob = tree / name
            except KeyError:
                continue
            (Path(folder) / name).write_bytes(blob.data_stream.read())
        settings = load_settings(Path(folder), f"at the base commit {commit.hexsha[:10]}")
        gate = read_file_settings(Path(folder)).get("gate") or {}
    return BaseConfig(settings, GateConfig.head_may_change(gate))


def catalog_digest(root: Path, settings: Settings) -> str:
    """A digest of every file under the catalog folders (path and content), byte code aside."""
    from pytest_autoevolve.files import files_sha256

    paths: set[str] = set()
    for entry in settings.catalog:
        top = root / entry
        found = [top] if top.is_file() else [p for p in top.rglob("*") if p.is_file()] if top.is_dir() else []
        paths.update(os.path.relpath(p, root) for p in found if not _skipped(p))
    return files_sha256(root, [Path(p).as_posix() for p in paths])


def _skipped(path: Path) -> bool:
    return "__pycache__" in path.parts or path.suffix == ".pyc"


def incumbent_key(
    commit: str, project: str, catalog: str, spec: str, settings: Settings, shard: Shard | None = None
) -> str:
    """The stored base run's key: base commit, project, catalog digest, incumbent spec, split, repeats, seed, shard."""
    fields = [KEY_VERSION, commit, project, catalog, spec, settings.split, settings.repeats, settings.seed]
    if split_catalog(shard):
        fields.append(list(shard))
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:20]


def split_catalog(shard: Shard | None) -> TypeGuard[Shard]:
    """Whether ``shard`` is one slice of several (shard 1 of 1 is the whole catalog)."""
    return shard is not None and shard[1] > 1


def shard_args(shard: Shard | None) -> list[str]:
    """The pytest option that runs one shard of the catalog (none for the whole catalog, shard 1 of 1 included)."""
    return ["--autoevolve-shard", f"{shard[0]}/{shard[1]}"] if split_catalog(shard) else []


def base_environment(repo_root: Path, worktree: Path, project: Path) -> dict[str, str]:
    """The environment of the base run: the base project's own source roots first on ``PYTHONPATH``.

    ``project`` and its ``src/`` come first; absolute entries into the working tree at ``repo_root``
    are moved to the ``worktree``'s copy (or dropped), so the base never imports the head's code.
    """
    entries = [str(folder) for folder in (project, project / "src") if folder.is_dir()]
    for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        if not entry or not os.path.isabs(entry):  # relative entries resolve in the worktree already
            entries += [entry] if entry else []
            continue
        path = Path(entry).resolve()
        if path.is_relative_to(repo_root):
            copy = worktree / path.relative_to(repo_root)
            entries += [str(copy)] if copy.exists() else []
        else:
            entries.append(entry)
    return {**os.environ, "PYTHONPATH": os.pathsep.join(entries)}


def imported_from(folder: Path, module: str, env: Mapping[str, str]) -> Path | None:
    """Where a Python started in ``folder`` with ``env`` finds the top-level package of ``module`` (None: nowhere)."""
    code = (
        "import importlib.util, sys\n"
        "spec = importlib.util.find_spec(sys.argv[1])\n"
        "paths = spec and (spec.submodule_search_locations or [])\n"
        "where = spec and (spec.origin if spec.has_location else next(iter(paths), ''))\n"
        "print(where or '')\n"
    )
    top = module.split(".")[0]
    done = subprocess.run(
        [sys.executable, "-c", code, top], cwd=folder, env=dict(env), capture_output=True, text=True, check=False
    )
    found = done.stdout.strip()
    return Path(found).resolve() if done.returncode == 0 and found else None


def check_agent_source(spec: ModelSpec, repo_root: Path, worktree: Path, project: Path, env: Mapping[str, str]) -> None:
    """Refuse a base run whose ``python:`` agent would be imported from the working tree instead of the base."""
    from pytest_autoevolve.imports import split_reference

    if spec.provider != "python" or not spec.target:
        return
    module = split_reference(spec.target)[0]
    where = imported_from(project, module, env)
    if where is not None and where.is_relative_to(repo_root) and not where.is_relative_to(worktree):
        raise CIGateError(
            f"the base run would import the agent module {module!r} from the working tree ({where}), not from "
            "the base commit, so the incumbent would be the pull request's code: it is installed or on PYTHONPATH "
            "by an absolute path outside the project folder and its src/; keep the package there, or install it "
            "without -e"
        )


def run_base(
    repo: git.Repo,
    commit: git.Commit,
    project: str,
    spec: ModelSpec,
    settings: Settings,
    folder: Path,
    shard: Shard | None = None,
) -> None:
    """Run the base commit's candidate on the head's catalog in a worktree; store its trajectories."""
    from pytest_autoevolve.loops.project import FineTuneError
    from pytest_autoevolve.loops.subprocess import run_pytest

    repo_root = Path(str(repo.working_tree_dir)).resolve()
    root = repo_root / project
    with tempfile.TemporaryDirectory(prefix="autoevolve-base-") as temporary:
        worktree = Path(temporary).resolve() / "base"
        repo.git.worktree("add", "--detach", str(worktree), commit.hexsha)
        try:
            base = worktree / project
            for entry in settings.catalog:  # the head's scenarios: both sides answer the same catalog
                _copy(root / entry, base / entry)
            env = base_environment(repo_root, worktree, base)
            check_agent_source(spec, repo_root, worktree, base, env)
            args = [
                f"--rootdir={base}",
                "--autoevolve-split",
                settings.split,
                "--autoevolve-only",
                "candidate",
                "--autoevolve-repeats",
                str(settings.repeats),
                "--autoevolve-seed",
                str(settings.seed),
                *shard_args(shard),
            ]
            for entry in settings.catalog:
                args += ["--autoevolve-catalog", entry]
            try:
                _, run = run_pytest(base, args, env=env)
            except FineTuneError as exc:
                raise CIGateError(f"the base commit's run failed: {exc}") from None
            recorded = run / "trajectories.jsonl" if run else None
            if recorded is None or not recorded.is_file():
                raise CIGateError(
                    f"the base run recorded no trajectories: does the catalog have {settings.split} scenarios?"
                )
            folder.mkdir(parents=True, exist_ok=True)
            partial = folder / ".trajectories.jsonl.tmp"
            shutil.copyfile(recorded, partial)
            os.replace(partial, folder / "trajectories.jsonl")
        finally:
            repo.git.worktree("remove", "--force", str(worktree))


def _copy(source: Path, target: Path) -> None:
    """Replace ``target`` with a copy of the file or folder ``source`` (byte code left out)."""
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink(missing_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, ignore=shutil.ignore_patterns(*SKIPPED))
    elif source.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


def trial_errors(trajectories: Path) -> list[str]:
    """The errors a stored run recorded, one per errored trial."""
    from pytest_autoevolve.files import read_trajectories

    try:
        return [f"{t.scenario_id}: {t.error}" for t in read_trajectories(trajectories) if t.error]
    except FormatError as exc:
        raise CIGateError(f"the stored base run cannot be read: {exc}; run again with --refresh") from None


def base_run(
    repo: git.Repo,
    root: Path,
    commit: git.Commit,
    settings: Settings,
    artifacts: str,
    *,
    base: BaseConfig,
    refresh: bool,
    progress: Callable[[str], None],
    shard: Shard | None = None,
) -> BaseRun:
    """The stored run of the ``base`` config's model: reused when present, clean and not ``refresh``, else made now."""
    from pytest_autoevolve.files import write_json_atomic
    from pytest_autoevolve.providers.base import parse_spec

    project = root.relative_to(Path(str(repo.working_tree_dir)).resolve()).as_posix()
    raw = base.settings.candidate if base.settings.candidate is not None else base.settings.incumbent
    parsed = parse_spec(raw, base.settings.models)
    spec = parsed.display
    catalog = catalog_digest(root, settings)
    key = incumbent_key(commit.hexsha, project, catalog, json.dumps(raw, sort_keys=True, default=str), settings, shard)
    folder = root / artifacts / "ci" / "incumbent" / key
    trajectories = folder / "trajectories.jsonl"
    shown = f"{spec} at {commit.hexsha[:10]}" + (f" (shard {shard[0]}/{shard[1]})" if split_catalog(shard) else "")
    if trajectories.is_file() and (folder / "meta.json").is_file() and not refresh:
        stale = trial_errors(trajectories)
        if not stale:
            progress(f"incumbent: reusing the stored run of {shown} ({folder.relative_to(root)})")
            return BaseRun(key, trajectories, spec, commit.hexsha, reused=True)
        progress(f"incumbent: the stored run of {shown} recorded {len(stale)} trial error(s); running it again")
    progress(f"incumbent: running {shown} on the {settings.split} split in a worktree of the base commit")
    (folder / "meta.json").unlink(missing_ok=True)
    run_base(repo, commit, project, parsed, settings, folder, shard)
    errors = trial_errors(trajectories)
    if errors:
        progress(
            f"incumbent: WARNING: the base run recorded {len(errors)} trial error(s) (first: {errors[0]}); they "
            "count against the incumbent, so the candidate may look better than it is; this run is not reused "
            "(the next gate runs the base again)"
        )
    meta = {
        "spec": f"{spec} @ {commit.hexsha[:10]}",
        "base_spec": spec,
        "commit": commit.hexsha,
        "project": project,
        "catalog_sha256": catalog,
        "split": settings.split,
        "repeats": settings.repeats,
        "seed": settings.seed,
        "shard": list(shard) if shard else None,
        "errors": len(errors),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "key_version": KEY_VERSION,
    }
    write_json_atomic(folder / "meta.json", meta)
    return BaseRun(key, trajectories, spec, commit.hexsha, reused=False, errors=len(errors))


def gate_against_base(
    root: Path,
    ref: str,
    *,
    artifacts: str = ".autoevolve",
    refresh: bool = False,
    stream: bool = True,
    progress: Callable[[str], None] = print,
    shard: Shard | None = None,
) -> GateOutcome:
    """Gate the candidate of the project at ``root`` against the repository at ``ref``, by the base's rule.

    With ``shard`` (K, N) both sides run only shard K of N of the catalog; the run decides
    nothing, and `shard_results` (``autoevolve ci merge``) gives the verdict of all N. Shard 1
    of 1 is the whole catalog, marked as a shard so that the merge reads it like any other.
    """
    from pytest_autoevolve.gate.summary import RunSummary
    from pytest_autoevolve.loops.project import FineTuneError
    from pytest_autoevolve.loops.subprocess import run_pytest

    root = root.resolve()
    repo = open_repo(root)
    commit = resolve_base(repo, ref)
    project = root.relative_to(Path(str(repo.working_tree_dir)).resolve()).as_posix()
    head = load_settings(root, "of the working tree")
    base = settings_at(commit, project)
    changes = rule_changes(base.settings, head)
    allowed = [name for name in changes if name in base.head_may_change]
    refused = [name for name in changes if name not in base.head_may_change]
    for name, change in changes.items():
        verdict = "allowed by the base's gate.head_may_change" if name in allowed else "the base's value applies"
        progress(f"rule: the working tree changes {name} ({change}): {verdict}")
    settings = ruled_settings(base, head, allowed)
    stored = base_run(
        repo, root, commit, settings, artifacts, base=base, refresh=refresh, progress=progress, shard=shard
    )
    outputs = root / artifacts / "ci"
    junit = outputs / "junit.xml"
    replay = f"replay:{stored.trajectories.relative_to(root).as_posix()}+role=candidate"
    progress(f"candidate: running the working tree's {_spec(head)} against the replayed base run")
    outputs.mkdir(parents=True, exist_ok=True)
    rule = outputs / RULE_FILE
    rule.write_text(json.dumps({k: v for k, v in asdict(settings.gate).items() if k != "seed"}), encoding="utf-8")
    shard_file = outputs / SHARD_FILE
    shard_file.unlink(missing_ok=True)
    if shard is not None:
        shard_file.write_text(json.dumps({"shard": list(shard), "base": commit.hexsha}), encoding="utf-8")
    args = [
        f"--rootdir={root}",
        "-p",
        "pytest_autoevolve.loops.ci_rule",
        f"--autoevolve-ci-rule={rule}",
        "--autoevolve-split",
        settings.split,
        "--autoevolve-repeats",
        str(settings.repeats),
        "--autoevolve-seed",
        str(settings.seed),
        *(f"--autoevolve-catalog={entry}" for entry in settings.catalog),
        "--autoevolve-incumbent",
        replay,
        f"--junitxml={junit}",
        *shard_args(shard),
    ]
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
    return GateOutcome(status, stored, outputs, summary, refused)


def _spec(settings: Settings) -> str:
    from pytest_autoevolve.providers.base import parse_spec

    return parse_spec(settings.candidate, settings.models).display


def shard_results(folders: Sequence[Path]) -> tuple[list[Path], Path]:
    """The junit files of a complete set of shards, and the gate rule they ran under; `CIGateError` otherwise.

    Each folder holds one shard's ``junit.xml``, ``gate-rule.json`` and ``shard.json``; together
    they must be shards 1..N of one N, against one base commit, under one rule.
    """
    seen: dict[int, Path] = {}
    totals, bases, rules = set(), set(), set()
    for folder in folders:
        missing = [name for name in ("junit.xml", RULE_FILE, SHARD_FILE) if not (folder / name).is_file()]
        if missing:
            raise CIGateError(f"{folder} is not a shard's results: it has no {', '.join(missing)}")
        try:
            marker = json.loads((folder / SHARD_FILE).read_text(encoding="utf-8"))
            index, total = (int(n) for n in marker["shard"])
            base = str(marker["base"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CIGateError(f"{folder / SHARD_FILE} cannot be read: {exc!r}") from None
        if index in seen:
            raise CIGateError(f"shard {index} is in both {seen[index]} and {folder}")
        seen[index] = folder
        totals.add(total)
        bases.add(base)
        rules.add((folder / RULE_FILE).read_text(encoding="utf-8"))
    if len(totals) != 1 or len(bases) != 1 or len(rules) != 1:
        what = "shard counts" if len(totals) > 1 else "base commits" if len(bases) > 1 else "gate rules"
        raise CIGateError(f"the shards are of different runs: their {what} differ")
    (total,) = totals
    absent = sorted(set(range(1, total + 1)) - set(seen))
    if absent or not seen:
        listed = ", ".join(map(str, absent)) or "all"
        raise CIGateError(f"shard(s) {listed} of {total} are missing: part of the catalog decides nothing")
    ordered = [seen[index] for index in sorted(seen)]
    return [folder / "junit.xml" for folder in ordered], ordered[0] / RULE_FILE


def main_gate(ref: str, *, artifacts: str, refresh: bool, shard: Shard | None = None) -> int:
    """The ``autoevolve ci gate`` command: 0 only when the gate passes; `CIGateError` (status 2) when it cannot run.

    A shard exits 0 when it ran completely: its verdict is the merge's (``autoevolve ci merge``).
    """
    outcome = gate_against_base(Path.cwd(), ref, artifacts=artifacts, refresh=refresh, shard=shard)
    if split_catalog(shard) and not outcome.refused:
        done = outcome.status == 0
        state = "complete" if done else "INCOMPLETE (trial errors or an interrupted run: see above)"
        print(f"autoevolve ci gate: shard {shard[0]}/{shard[1]} {state}; merge the shards with autoevolve ci merge")
        return 0 if done else 1
    shown = (
        outcome.outputs.relative_to(Path.cwd().resolve())
        if outcome.outputs.is_relative_to(Path.cwd().resolve())
        else outcome.outputs
    )
    verdict = (outcome.summary.gate.verdict if outcome.summary else "inconclusive").upper()
    notes = [f"base {outcome.base.commit[:10]}", f"incumbent {'reused' if outcome.base.reused else 'run now'}"]
    if outcome.base.errors:
        notes.append(f"the base run had {outcome.base.errors} trial error(s)")
    status = 0 if outcome.status == 0 and outcome.summary is not None else 1  # pytest's other statuses: not a pass
    if outcome.refused:
        verdict, status = "FAIL", 1
        notes.append(
            f"the working tree changes {', '.join(outcome.refused)}, which the base owns: to allow it, list "
            f"it under gate: head_may_change in the base's config"
        )
    print(f"autoevolve ci gate: {verdict} ({'; '.join(notes)}); results in {shown}/")
    return status

"""A model's fingerprint in the response cache: everything it can read, digested once per run.

A ``python:`` agent answers from more than its module: its prompt files, helper modules and data.
Its key covers every project file git does not ignore (outside git: the files under the agent's
package folder), less the scenario catalog, the artifacts and the documentation, plus the project
modules loaded with it; a model entry narrows that to ``cache_inputs`` globs, and adds the
``cache_env`` variables. Files are digested through a memo keyed on their ``stat`` (size, times,
inode), so an unchanged project costs a few milliseconds. Each model's per-file digests of its
last run are kept, so a run can say which inputs changed ("prompts/system.txt changed").
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import stat
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_autoevolve.errors import ArtifactWriteError
from pytest_autoevolve.files import write_json_atomic
from pytest_autoevolve.providers.base import CachePolicy
from pytest_autoevolve.run.cache import FINGERPRINTS
from pytest_autoevolve.settings import Settings

FORMAT_VERSION = 1
DOCS = ("readme", "changelog", "license", "licence", "contributing")
"""Top-level files whose names start so (in any case) are documentation an agent does not read at run time."""
SKIPPED_FOLDERS = ("docs/", ".github/")
NEVER = ("__pycache__", "node_modules", ".git")
"""Folders whose files are never inputs, wherever they are."""
NEVER_AT_TOP = tuple(f"{name}/" for name in NEVER)
NEVER_BELOW = tuple(f"/{name}/" for name in NEVER)
RACY_NS = 2_000_000_000
"""A file changed this recently is hashed again next time: a second edit may keep its size and times."""
LOG = logging.getLogger("pytest_autoevolve")


@dataclass(frozen=True)
class ModelKey:
    """A model's fingerprint for this run, and what changed since its last run."""

    fingerprint: str
    changes: tuple[str, ...] = ()
    """Why its cached answers miss: ``prompts/system.txt changed``, ``$AGENT_MODE changed``."""
    note: str | None = None
    """What the key covers, when that is not the default (outside a git repository)."""


class ProjectKeys:
    """The fingerprints of one run's models, each computed once, from the project at ``root``."""

    def __init__(self, root: Path, excluded: Iterable[str], state: Path) -> None:
        self.root = root
        self._prefix = os.path.join(root, "")
        self.excluded = tuple(f"{folder}/" for folder in excluded)
        """Root-relative folders (with a trailing ``/``) that are never inputs: the scenario catalog, the artifacts."""
        self.state = state
        self._keys: dict[tuple[str, str, CachePolicy], ModelKey] = {}
        self._memo: dict[str, list[Any]] | None = None
        self._digested: dict[str, str] = {}
        """This run's digests: a second model reading the same files costs no second look."""
        self._lock = threading.Lock()

    @classmethod
    def of(cls, root: Path, settings: Settings) -> ProjectKeys:
        """The keys of a run with ``settings`` in the project at ``root``."""
        artifacts, top = root / settings.artifacts, root.resolve()
        folders = [(root / entry).resolve() for entry in settings.catalog] + [artifacts.resolve()]
        inside = [f.relative_to(top).as_posix() for f in folders if f.is_relative_to(top) and f != top]
        return cls(root, inside, artifacts / "cache" / FINGERPRINTS)

    def key(self, model: object, policy: CachePolicy) -> ModelKey | None:
        """The fingerprint of ``model`` under ``policy``; None when the model has none (it is never cached)."""
        base = getattr(model, "fingerprint", None)
        if not base:
            return None
        spec = str(getattr(model, "spec", base))
        with self._lock:
            if (spec, base, policy) not in self._keys:
                self._keys[spec, base, policy] = self._compute(model, spec, base, policy)
            return self._keys[spec, base, policy]

    def _compute(self, model: object, spec: str, base: str, policy: CachePolicy) -> ModelKey:
        parts = {f"${name}": _value_digest(os.environ.get(name)) for name in policy.env}
        note = None
        modules = getattr(model, "local_modules", None)
        if modules is not None:  # the model runs the project's own code: it can read any of its files
            files, note = self._inputs(spec, getattr(model, "code_folder", None), modules, policy)
            parts.update(self._digests(files))
        if not parts:
            return ModelKey(base)
        digest = hashlib.sha256(json.dumps([base, parts], sort_keys=True).encode()).hexdigest()[:16]
        return ModelKey(f"{base}#inputs={digest}", self._remember(f"{spec}\0{policy}", base, parts), note)

    def _inputs(
        self, spec: str, folder: Path | None, modules: Iterable[str], policy: CachePolicy
    ) -> tuple[list[str], str | None]:
        """The root-relative files a key covers, and a note when that is not the project's git files."""
        local = {m for m in modules if not self._excluded(m)}
        if policy.inputs is not None:
            return sorted(self._globbed(policy.inputs) | local), None
        if self._project_files is not None:
            return sorted(set(self._project_files) | local), None
        return self._outside_git(spec, folder, local)

    def _outside_git(self, spec: str, folder: Path | None, local: set[str]) -> tuple[list[str], str]:
        """The files under the agent's package folder (when it is in the project) and its modules, with a note."""
        top, covers = self.root.resolve(), "the project modules it imports"
        package = folder.resolve() if folder is not None else None
        if package is not None and package.is_relative_to(top):
            covers = f"the files under {package.relative_to(top).as_posix()}/ and {covers}"
            local = local | set(self._walk(package))
        return sorted(local), f"{spec}: not in a git repository, so its cache key covers {covers}"

    @functools.cached_property
    def _project_files(self) -> list[str] | None:
        """The project's input files git lists (once a run); None outside a git repository."""
        listed = git_files(self.root)
        return None if listed is None else [path for path in listed if self._counts(path)]

    def _excluded(self, path: str) -> bool:
        return f"{path}/".startswith(self.excluded)

    def _counts(self, path: str) -> bool:
        """Whether a project file is an input: not catalog, artifacts, documentation or byte code."""
        if "/" not in path:
            return not path.lower().startswith(DOCS)
        if path.startswith((*SKIPPED_FOLDERS, *NEVER_AT_TOP, *self.excluded)) or path.endswith((".pyc", ".pyo")):
            return False
        return not any(folder in path for folder in NEVER_BELOW)

    def _globbed(self, patterns: Iterable[str]) -> set[str]:
        """The files ``patterns`` (``**`` included) match under the root, root-relative."""
        root = self.root.resolve()
        found = {p.resolve() for pattern in patterns for p in root.glob(pattern) if p.is_file()}
        return {p.relative_to(root).as_posix() for p in found if p.is_relative_to(root)}

    def _walk(self, folder: Path) -> list[str]:
        """The input files under ``folder`` (root-relative): no hidden folders, virtualenvs or byte code."""
        root, found = self.root.resolve(), []
        for top, folders, files in os.walk(folder):
            base = Path(top).relative_to(root)
            folders[:] = [f for f in folders if self._descend(Path(top, f), (base / f).as_posix())]
            found += [(base / name).as_posix() for name in files]
        return [path for path in found if self._counts(path)]

    def _descend(self, folder: Path, path: str) -> bool:
        hidden = folder.name.startswith(".") or folder.name in NEVER
        return not hidden and not self._excluded(path) and not (folder / "pyvenv.cfg").exists()

    def _digests(self, files: list[str]) -> dict[str, str]:
        """Each file's sha256, from the stat-keyed memo where its size, times and inode are unchanged."""
        memo, now, seen = self._load_memo(), time.time_ns(), {}
        for path in files:
            if path not in self._digested:
                entry = self._look(path, memo.get(path))
                if entry is not None:
                    self._digested[path] = entry[4]
                    if now - max(entry[1], entry[2]) > RACY_NS:
                        seen[path] = entry
        if any(memo.get(path) != entry for path, entry in seen.items()):
            memo.update(seen)
            self._write(self.state / "files.json", {"format_version": FORMAT_VERSION, "files": memo})
        return {path: self._digested[path] for path in files if path in self._digested}

    def _look(self, path: str, known: list[Any] | None) -> list[Any] | None:
        """A file's size, mtime, ctime, inode and sha256 (``known``'s when the rest matches); None if no file."""
        try:
            info = os.stat(self._prefix + path)
        except OSError:
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        signature = [info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino]
        if known is not None and known[:4] == signature:
            return known
        return [*signature, _file_digest(self._prefix + path)]

    def _load_memo(self) -> dict[str, list[Any]]:
        if self._memo is None:
            data = _read_json(self.state / "files.json")
            files = data.get("files") if data else None
            self._memo = files if isinstance(files, dict) else {}
        return self._memo

    def _remember(self, model: str, base: str, parts: dict[str, str]) -> tuple[str, ...]:
        """Keep this run's digests of a model's inputs; what changed since its last run (nothing on a first run)."""
        path = self.state / f"model-{hashlib.sha256(model.encode()).hexdigest()[:16]}.json"
        record = {"format_version": FORMAT_VERSION, "model": base, "parts": parts}
        last = _read_json(path)
        if last != record:
            self._write(path, record)
        if not last or not isinstance(last.get("parts"), dict):
            return ()
        changes = tuple(changed(last["parts"], parts))
        return changes or (("its code or parameters changed",) if last.get("model") != base else ())

    def _write(self, path: Path, data: dict[str, Any]) -> None:
        try:
            write_json_atomic(path, data)
        except ArtifactWriteError as exc:  # the digests save time and explain misses: a run goes on without them
            LOG.warning("autoevolve cache: %s", exc)


def changed(last: dict[str, str], now: dict[str, str]) -> Iterator[str]:
    """Each input added, removed or changed between two runs' digests, in name order."""
    for name in sorted(last.keys() | now.keys()):
        if name not in now:
            yield f"{name} removed"
        elif name not in last:
            yield f"{name} added"
        elif last[name] != now[name]:
            yield f"{name} changed"


def git_files(root: Path) -> list[str] | None:
    """The files under ``root`` git tracks or would track (not ignored), root-relative; None outside git."""
    try:
        done = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            check=False,
        )
    except OSError:  # no git at all
        return None
    if done.returncode != 0:
        return None
    return sorted({name for name in os.fsdecode(done.stdout).split("\0") if name})


def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _value_digest(value: str | None) -> str:
    """An environment variable's value as a digest (the value may be a secret): ``unset`` when it is not set."""
    return "unset" if value is None else hashlib.sha256(value.encode()).hexdigest()[:16]


def _read_json(path: Path) -> dict[str, Any] | None:
    """A digests file of this format, or None (missing, torn or foreign: it is rebuilt)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format_version") == FORMAT_VERSION else None

"""What an edit of the evolve loop may touch: its allowlisted targets, never the evaluation.

Every path an edit names is resolved against the project root (symbolic links followed) and
compared, normalised, with the targets, also resolved. Absolute paths, ``..`` escapes and links
out of the root are rejected, and so is any path into the evaluation: scenarios, tests, the
harness files, the catalog folders, ``.git`` and the artifacts. An edit to a settings file is
compared, parsed, with the settings the loop started from, so the gate, the catalog selection,
the split, the limits, the repeats and the seed stay the start's whatever file holds them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any

from pytest_autoevolve.errors import ConfigError, LoopError
from pytest_autoevolve.loops.project import CONFIG_FILE
from pytest_autoevolve.loops.proposers import Edit, EvolveError

if TYPE_CHECKING:
    import git


PROTECTED_KEYS = ("gate", "catalog", "split", "limits", "repeats", "seed")
"""Settings no edit may change, in ``autoevolve.yaml`` or ``[tool.autoevolve]``: the evaluation, not the subject."""

PROTECTED_PARTS = ("scenarios", "tests", ".git")
"""Folders no edit may write into, wherever they are."""

PROTECTED_NAMES = ("conftest.py", "pyproject.toml", "pytest.ini", ".pytest.ini", "tox.ini", "setup.cfg")
"""The harness: pytest's config files (their ``addopts`` can select the catalog) and conftest.py."""

SETTINGS_FILES = ("pyproject.toml", CONFIG_FILE)
"""The files `load_settings` reads, in the order it reads them."""

EVALUATION = "scenarios, tests, the harness, the catalog, .git and the artifacts are the evaluation"

MAX_EDIT_BYTES = 256 * 1024
"""The most an edit may write into one file (``autoevolve evolve --max-edit-kb``)."""


class Rejected(LoopError):
    """An edit the loop does not apply: the message says why, for the log."""


def protected(path: str, folders: Sequence[str] = ()) -> bool:
    """Whether ``path`` (relative to the root) is part of the evaluation: under a protected part or ``folders``."""
    parts = tuple(p.casefold() for p in PurePosixPath(path).parts)
    if any(p in PROTECTED_PARTS for p in parts) or (parts and parts[-1] in PROTECTED_NAMES):
        return True
    prefixes = (tuple(p.casefold() for p in PurePosixPath(f).parts) for f in folders)
    return any(prefix and parts[: len(prefix)] == prefix for prefix in prefixes)


def protected_values(root: Path) -> dict[str, Any]:
    """The protected settings as the files at ``root`` write them (absent keys are None), validated first."""
    from pytest_autoevolve.settings import load_settings, read_file_settings

    load_settings(root)  # ConfigError when the files hold invalid settings
    values = read_file_settings(root)
    return {key: values.get(key) for key in PROTECTED_KEYS}


def differences(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Each changed protected key with its old and new value, e.g. ``'gate' (min_paired 10 -> 1)``."""
    changed = []
    for key in before:
        old, new = before[key], after[key]
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            shown = ", ".join(
                f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in {**old, **new} if old.get(k) != new.get(k)
            )
        else:
            shown = f"{old!r} -> {new!r}"
        changed.append(f"'{key}' ({shown})")
    return changed


def uncommitted(repo: git.Repo, paths: Sequence[str]) -> list[str]:
    """The paths git does not hold as committed, each with its state: untracked, ignored, modified or staged."""
    states = {"??": "untracked", "!!": "ignored by git"}
    lines = repo.git.status("--porcelain", "--ignored", "--untracked-files=all", "--", *paths).splitlines()
    return [
        f"{line[3:]} ({states.get(line[:2], 'modified' if line[1] != ' ' else 'staged, not committed')})"
        for line in lines
    ]


@dataclass
class Guard:
    """The allowlist and the protected evaluation of one loop, fixed when it starts."""

    root: Path
    targets: list[str]
    start: dict[str, Any]
    """The protected settings the loop started from."""
    folders: list[str]
    catalog: str
    """The digest of the start's catalog files: the final gate must measure these."""
    max_bytes: int = MAX_EDIT_BYTES
    """The most an edit may write into one file."""

    @classmethod
    def of(cls, root: Path, targets: Sequence[str], artifacts: str, max_bytes: int = MAX_EDIT_BYTES) -> Guard:
        """The guard of the project at ``root``; EvolveError when a target is not an editable file."""
        from pytest_autoevolve.loops.ci import catalog_digest
        from pytest_autoevolve.settings import load_settings

        root = root.resolve()
        try:
            settings, start = load_settings(root), protected_values(root)
        except ConfigError as exc:
            raise EvolveError(f"the project's settings are invalid: {exc}") from None
        guard = cls(root, [], start, [], catalog_digest(root, settings), max_bytes)
        for folder in [*settings.catalog, artifacts, settings.artifacts]:
            resolved = (root / folder).resolve()
            if resolved.is_relative_to(root) and resolved != root:  # outside the root, no edit reaches it
                guard.folders.append(resolved.relative_to(root).as_posix())
        for target in targets:
            try:
                relative = guard.allowed(target)
            except Rejected as exc:
                raise EvolveError(f"{target} cannot be a target: {exc}") from None
            guard.targets.append(relative)
        return guard

    def resolve(self, path: str) -> str:
        """``path`` relative to the root, normalised, symbolic links followed; Rejected when it leaves the root."""
        if not path.strip():
            raise Rejected("the edit names a file with an empty path")
        if PurePosixPath(path).is_absolute() or PureWindowsPath(path).anchor:
            raise Rejected(f"{path} is an absolute path: an edit names files relative to the project root")
        if os.path.normpath(path).split(os.sep)[0] == "..":
            raise Rejected(f"{path} escapes the project root through '..'")
        resolved = (self.root / path).resolve()
        if not resolved.is_relative_to(self.root):
            raise Rejected(f"{path} is a symbolic link to {resolved}, outside the project root")
        return resolved.relative_to(self.root).as_posix()

    def allowed(self, path: str) -> str:
        """The normalised path of a file an edit may write; Rejected when it is part of the evaluation."""
        relative = self.resolve(path)
        lexical = Path(os.path.normpath(path)).as_posix()
        if protected(lexical, self.folders) or protected(relative, self.folders):
            shown = relative if relative == lexical else f"{path} (that is {relative})"
            raise Rejected(f"{shown} is not an allowlisted target: it is protected ({EVALUATION})")
        file = self.root / relative
        if file.exists() and not file.is_file():
            raise Rejected(f"{relative} is not a regular file")
        if file.is_file() and file.stat().st_nlink > 1:
            raise Rejected(f"{relative} has other hard links: an edit could change another file through it")
        return relative

    def check(self, edit: Edit) -> Edit:
        """The edit with normalised paths; Rejected when it touches anything but the targets or a protected setting."""
        if not edit.files:
            raise Rejected("the edit changes no file")
        files: dict[str, str] = {}
        for path, text in edit.files.items():
            relative = self.allowed(path)
            if relative not in self.targets:
                raise Rejected(f"{relative} is not an allowlisted target ({', '.join(self.targets)})")
            if relative in files and files[relative] != text:
                raise Rejected(f"the edit gives {relative} two different texts under two names")
            size = len(text.encode("utf-8"))
            if size > self.max_bytes:
                raise Rejected(f"{relative}: the edit writes {_kb(size)}, over the limit of {_kb(self.max_bytes)}")
            files[relative] = text
        why = self.settings_change(files)
        if why:
            raise Rejected(why)
        return replace(edit, files=files)

    def settings_change(self, files: Mapping[str, str]) -> str | None:
        """Why the settings with ``files`` written differ from the start's in a protected key, or None."""
        names = [name for name in SETTINGS_FILES if name in files]
        if not names:
            return None
        with tempfile.TemporaryDirectory(prefix="autoevolve-settings-") as folder:
            for name in SETTINGS_FILES:
                text = files.get(name)
                if text is None and (self.root / name).is_file():
                    text = (self.root / name).read_text(encoding="utf-8")
                if text is not None:
                    (Path(folder) / name).write_text(text, encoding="utf-8")
            try:
                after = protected_values(Path(folder))
            except ConfigError as exc:
                return f"{' and '.join(names)} would hold invalid settings: {str(exc).replace(folder + os.sep, '')}"
        changed = differences(self.start, after)
        if not changed:
            return None
        return (
            f"the edit changes {', '.join(changed)} in {' and '.join(names)}: the gate settings, the catalog "
            f"selection, the split, the limits, the repeats and the seed are the evaluation, not a target"
        )

    def drift(self) -> str | None:
        """Why the working tree no longer measures the start's evaluation (settings or catalog files), or None."""
        from pytest_autoevolve.loops.ci import catalog_digest
        from pytest_autoevolve.settings import load_settings

        try:
            changed = differences(self.start, protected_values(self.root))
        except ConfigError as exc:
            return f"the best kept state's settings are invalid: {exc}"
        if changed:
            return f"the best kept state changes {', '.join(changed)}: it would not be gated on the start's terms"
        if catalog_digest(self.root, load_settings(self.root)) != self.catalog:
            return "the best kept state's catalog files differ from the start's: the gate would measure other scenarios"
        return None


def _kb(size: int) -> str:
    return f"{size / 1024:.3g} KB" if size < 1024 * 1024 else f"{size / 1024 / 1024:.3g} MB"

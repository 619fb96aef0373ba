"""Files on disk: the artifacts folder, atomic JSON, the trajectory JSONL, and digests."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pytest_autoevolve.errors import FormatError
from pytest_autoevolve.records import Trajectory


def prepare_artifacts(root: Path) -> Path:
    """Create the artifacts folder with a ``.gitignore`` that keeps it out of git."""
    root.mkdir(parents=True, exist_ok=True)
    ignore = root / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# created by pytest-autoevolve\n*\n", encoding="utf-8")
    return root


def files_sha256(root: Path, paths: Iterable[str]) -> str:
    """A digest of files given relative to ``root``: each path and its content, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(set(paths)):
        full = root / path
        digest.update(path.encode() + b"\0" + (full.read_bytes() if full.is_file() else b"") + b"\0")
    return digest.hexdigest()


class TrajectoryWriter:
    """Appends trajectories to a JSONL file, one whole line per `os.write`.

    The file is opened in append mode, so an interrupted run, or several xdist
    workers writing the same file, leave only complete lines.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, trajectory: Trajectory) -> None:
        """Write one trajectory as one line."""
        line = (json.dumps(trajectory.to_record(), ensure_ascii=False, default=str) + "\n").encode("utf-8")
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)


def read_trajectories(path: Path) -> Iterator[Trajectory]:
    """Every trajectory in a JSONL file; a version mismatch is a `FormatError`."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise FormatError(f"{path}:{number}: not a JSON trajectory: {exc}") from None
            try:
                trajectory = Trajectory.from_record(record)
            except FormatError as exc:
                raise FormatError(f"{path}:{number}: {exc}") from None
            yield trajectory


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def fingerprint_files(*paths: str | Path) -> str:
    """A cheap digest of files or folders (names, sizes, modification times)."""
    digest = hashlib.sha256()
    for root in paths:
        root = Path(root)
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for file in files:
            stat = file.stat()
            digest.update(
                f"{file.relative_to(root) if root.is_dir() else file.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode()
            )
    return digest.hexdigest()[:16]

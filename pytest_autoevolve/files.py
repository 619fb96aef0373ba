"""Files on disk: the artifacts folder, atomic JSON, the trajectory JSONL, and digests."""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pytest_autoevolve.errors import ArtifactWriteError, FormatError
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
        """Write one trajectory as one line, whole or not at all.

        A write the disk cuts short (``ENOSPC``) is taken back, so the file stays valid JSONL,
        and raises `ArtifactWriteError`: the run cannot record, so it must stop.
        """
        line = (strict_json(trajectory.to_record()) + "\n").encode("utf-8")
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                start = os.fstat(fd).st_size
                try:
                    written = os.write(fd, line)
                except OSError as exc:
                    written, problem = -1, f"{exc.strerror or exc}"
                else:
                    problem = f"only {written} of {len(line)} bytes were written"
                if written != len(line):
                    os.ftruncate(fd, start)
                    raise ArtifactWriteError(f"{self.path}: cannot record a trajectory: {problem}; the run stops")
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
    """Write strict JSON to ``path`` through a temporary file and a rename; a failed write leaves neither half."""
    write_text_atomic(path, strict_json(data, indent=2) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename; a failed write leaves neither half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise ArtifactWriteError(f"{path}: cannot be written: {exc.strerror or exc}") from None


def strict_json(data: Any, indent: int | None = None) -> str:
    """JSON that every parser reads: NaN and infinities become ``null``, listed under ``"nonfinite"``."""
    found: list[str] = []
    clean = _finite(data, "", found)
    if found and isinstance(clean, dict):
        clean["nonfinite"] = found
    return json.dumps(clean, indent=indent, ensure_ascii=False, default=str, allow_nan=False)


def _finite(value: Any, where: str, found: list[str]) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        found.append(where or "(root)")
        return None
    if isinstance(value, dict):
        return {k: _finite(v, f"{where}.{k}" if where else str(k), found) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v, f"{where}[{i}]", found) for i, v in enumerate(value)]
    return value


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

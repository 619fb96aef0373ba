"""Trajectories: the record of one trial, and the JSONL file they are appended to (DESIGN §7)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from pytest_autoevolve.graders import Grade

FORMAT_VERSION = 1


class FormatError(Exception):
    """A trajectory or summary file of another format version, or not one at all."""


@dataclass
class Trajectory:
    """Everything one trial of one scenario on one model did and scored."""

    scenario_id: str
    role: str
    model: str
    messages: list[dict[str, Any]]
    seed: int
    repeat: int
    output: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    grades: list[Grade] = field(default_factory=list)
    score: float = 0.0
    passed: bool = False
    error: str | None = None
    latency_s: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = None
    turns: int = 0
    cached: bool = False
    started_at: str = ""
    finished_at: str = ""
    run_id: str = ""
    scenario_file: str = ""
    split: str = "eval"
    category: str | None = None

    @property
    def total_tokens(self) -> int | None:
        """Prompt plus completion tokens, when the model reported them."""
        if self.prompt_tokens is None and self.completion_tokens is None:
            return None
        return (self.prompt_tokens or 0) + (self.completion_tokens or 0)

    def failed_grades(self) -> list[Grade]:
        """The graders that said no."""
        return [g for g in self.grades if not g.passed]

    def to_record(self) -> dict[str, Any]:
        """The JSON object written as one line of ``trajectories.jsonl``."""
        record = {"format_version": FORMAT_VERSION, **asdict(self)}
        record["grades"] = [g.to_record() for g in self.grades]
        record["total_tokens"] = self.total_tokens
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Trajectory:
        """Read back one line written by `to_record`."""
        if not isinstance(record, dict):
            raise FormatError(f"a trajectory is a JSON object, got {type(record).__name__}")
        version = record.get("format_version")
        if version != FORMAT_VERSION:
            raise FormatError(f"trajectory format_version {version!r}; this version reads {FORMAT_VERSION}")
        known = {f.name for f in fields(cls)}  # keys added later within a format version are skipped
        values = {k: v for k, v in record.items() if k in known}
        try:
            values["grades"] = [Grade(**g) for g in values.get("grades", [])]
            return cls(**values)
        except TypeError as exc:
            raise FormatError(f"not a complete trajectory record: {exc}") from None


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

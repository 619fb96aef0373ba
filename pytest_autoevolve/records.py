"""The records at the bottom of the package: scenarios, grades, tools and trajectories, as plain typed data."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from pytest_autoevolve.aio import resolve
from pytest_autoevolve.errors import FormatError


class WrittenInt(int):
    """A YAML integer that remembers how it was written (``02134``, ``0x1F``, ``12:30``)."""

    written: str

    def __new__(cls, value: int, written: str) -> WrittenInt:
        """The number ``value``, written as ``written``."""
        number = super().__new__(cls, value)
        number.written = written
        return number

    def __getnewargs__(self) -> tuple[int, str]:  # type: ignore[override]
        """Copies and pickles keep the written text."""
        return int(self), self.written


class WrittenFloat(float):
    """A YAML float that remembers how it was written (``2.50``, ``3.10``)."""

    written: str

    def __new__(cls, value: float, written: str) -> WrittenFloat:
        """The number ``value``, written as ``written``."""
        number = super().__new__(cls, value)
        number.written = written
        return number

    def __getnewargs__(self) -> tuple[float, str]:  # type: ignore[override]
        """Copies and pickles keep the written text."""
        return float(self), self.written


def written_text(value: Any) -> str:
    """A scalar as the scenario file wrote it: ``expected: 2.50`` is ``"2.50"``, not ``"2.5"``."""
    return value.written if isinstance(value, WrittenInt | WrittenFloat) else str(value)


@dataclass(frozen=True)
class NamedCheck:
    """A grader as written in the file (name and value) with its built check."""

    name: str
    value: Any
    check: Check = field(compare=False, repr=False)


@dataclass(frozen=True)
class Scenario:
    """One expanded, validated scenario."""

    id: str
    messages: tuple[Mapping[str, str], ...]
    graders: tuple[NamedCheck, ...]
    path: str
    line: int = 0
    expected: str | None = None
    description: str | None = None
    category: str | None = None
    tags: tuple[str, ...] = ()
    split: str = "eval"
    repeats: int | None = None
    critical: bool = False
    timeout_s: float | None = None
    max_turns: int | None = None
    tools: tuple[Tool, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    turns: tuple[str, ...] = ()
    """Scripted user messages (``turns:``), each sent after the agent's previous reply."""
    user: SimulatedUser | None = None
    """A model playing the user once the scripted messages are spent (``user:``)."""

    @property
    def input(self) -> str:
        """The last user message: what the scenario asks."""
        users = [m["content"] for m in self.messages if m["role"] == "user"]
        return users[-1] if users else ""


@dataclass(frozen=True)
class SimulatedUser:
    """A model playing the user (``user:``): it answers the agent until it says ``stop`` or ``max_turns`` replies."""

    model: Any
    """The user model's spec as written: a spec string, a name under ``models:``, or a mapping."""
    display: str
    """The spec as errors name it, secrets removed."""
    persona: str
    max_turns: int = 10
    stop: str = "###STOP###"
    ask: Callable[[list[dict[str, Any]], int], str] | None = field(default=None, compare=False, repr=False)
    """Asks the user model (messages, seed) through the run's registry and cache; None outside a run."""


FORMAT_VERSION = 1


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
    reported_total_tokens: int | None = None
    """The total a model reported without a prompt/completion split."""
    spans: list[dict[str, Any]] = field(default_factory=list)
    """The OpenTelemetry spans the agent emitted during the trial: name, ids, duration, status, attributes."""

    @property
    def total_tokens(self) -> int | None:
        """Prompt plus completion tokens, or the total the model reported; `None` without either."""
        if self.prompt_tokens is None and self.completion_tokens is None:
            return self.reported_total_tokens
        return (self.prompt_tokens or 0) + (self.completion_tokens or 0)

    def failed_grades(self) -> list[Grade]:
        """The graders that said no."""
        return [g for g in self.grades if not g.passed]

    def to_record(self) -> dict[str, Any]:
        """The JSON object written as one line of ``trajectories.jsonl`` (it shares the trajectory's lists)."""
        record = {"format_version": FORMAT_VERSION, **{f.name: getattr(self, f.name) for f in fields(self)}}
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


@dataclass(frozen=True)
class Grade:
    """One grader's verdict on one trial."""

    grader: str
    passed: bool
    score: float
    reason: str
    steps: list[dict[str, Any]] | None = None
    """Per-step scores (`step_critic`): index (in the messages), role, what, score, reason, confidence."""

    def to_record(self) -> dict[str, Any]:
        """The JSON form written into trajectories (``steps`` only when the grader scored steps)."""
        record: dict[str, Any] = {"grader": self.grader, "passed": self.passed, "score": self.score}
        record["reason"] = self.reason
        if self.steps is not None:
            record["steps"] = self.steps
        return record


Check = Callable[[str, "Trajectory", "Scenario"], Grade]


@dataclass(frozen=True)
class Tool:
    """One function tool: its schema for the model and the callable that runs it."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    function: Callable[..., Any] = field(compare=False, repr=False)

    def schema(self) -> dict[str, Any]:
        """The OpenAI ``tools`` entry."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": dict(self.parameters)},
        }

    def call(self, arguments: str | Mapping[str, Any]) -> dict[str, Any]:
        """Run the tool on JSON (or already parsed) arguments; the record of the call, errors included."""
        record: dict[str, Any] = {"name": self.name, "arguments": arguments, "result": None, "error": None}
        try:
            parsed = json.loads(arguments) if isinstance(arguments, str) else dict(arguments)
            if not isinstance(parsed, dict):
                raise TypeError(f"arguments must be a JSON object, got {type(parsed).__name__}")
            record["arguments"] = parsed
            record["result"] = resolve(self.function(**parsed))
        except Exception as exc:  # a failing tool call is recorded and shown to the model
            record["error"] = f"{type(exc).__name__}: {exc}"
        return record


def result_text(record: Mapping[str, Any]) -> str:
    """What the model is told a tool call returned."""
    if record.get("error"):
        return f"error: {record['error']}"
    result = record.get("result")
    return result if isinstance(result, str) else json.dumps(result, default=str)

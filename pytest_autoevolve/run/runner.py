"""Running trials: one scenario, one model, one repeat, graded and recorded."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from pytest_autoevolve.aio import call_within
from pytest_autoevolve.errors import GradingError
from pytest_autoevolve.providers.base import CachePolicy, Model, ModelRequest, Reply
from pytest_autoevolve.records import Grade, Scenario, Trajectory
from pytest_autoevolve.run.cache import ResponseCache
from pytest_autoevolve.run.calls import cached_calls
from pytest_autoevolve.run.conversation import Transcript, capped, converse
from pytest_autoevolve.run.fingerprint import ModelKey, ProjectKeys
from pytest_autoevolve.run.spans import traced


def trial_seed(base: int, scenario_id: str, repeat: int) -> int:
    """The seed of one trial: the same for every model, so trials pair up."""
    digest = hashlib.sha256(f"{base}\0{scenario_id}\0{repeat}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class _ExitGuard:
    """While trials run, ``os._exit`` raises instead: an agent cannot end the run with no verdict."""

    def __init__(self) -> None:
        self.depth = 0
        self.lock = threading.Lock()
        self.original = os._exit

    def __enter__(self) -> None:
        with self.lock:
            if self.depth == 0:
                self.original = os._exit
                os._exit = _refuse_exit
            self.depth += 1

    def __exit__(self, *_: object) -> None:
        with self.lock:
            self.depth -= 1
            if self.depth == 0:
                os._exit = self.original


def _refuse_exit(status: int) -> NoReturn:
    raise SystemExit(f"the model called os._exit({status}) during a trial")


EXIT_GUARD = _ExitGuard()


def grade(trajectory: Trajectory, scenario: Scenario) -> None:
    """Apply every grader; a grader that raises is a failed grade with the reason."""
    grades: list[Grade] = []
    for named in scenario.graders:
        try:
            grades.append(named.check(trajectory.output, trajectory, scenario))
        except GradingError as exc:  # no verdict: the trial is an error, not a fail
            grades.append(Grade(named.name, False, 0.0, str(exc)))
            trajectory.error = trajectory.error or f"GradingError: {named.name}: {exc}"
        except (Exception, SystemExit) as exc:  # a grader's crash (even sys.exit) is a failed grade, not the run's
            grades.append(Grade(named.name, False, 0.0, f"grader raised {type(exc).__name__}: {exc}"))
    trajectory.grades = grades
    trajectory.score = sum(g.score for g in grades) / len(grades) if grades else 0.0
    trajectory.passed = trajectory.error is None and bool(grades) and all(g.passed for g in grades)


@dataclass
class ModelHandle:
    """A model in a role, ready to run scenarios: what the fixtures hand to tests."""

    role: str
    model: Model
    base_seed: int = 0
    system_prompt: str | None = None
    run_id: str = ""
    observe: Callable[[Trajectory], None] | None = None
    cache: ResponseCache | None = None
    max_output_chars: int = 1_000_000
    """Replies are kept up to this many characters (``limits.max_output_chars``), the rest cut with a mark."""
    cache_policy: CachePolicy = field(default_factory=CachePolicy)
    """The model entry's ``cache_inputs``, ``cache_env`` and ``cache_expiry``."""
    keys: ProjectKeys | None = None
    """The run's fingerprints of what models read; None: the model's own fingerprint alone."""
    call_cache: ResponseCache | None = None
    """Where the model calls a trial makes over HTTP are cached, keyed by what is sent (`run.calls`)."""

    @property
    def spec(self) -> str:
        """The model's spec, secrets removed."""
        return self.model.spec

    def cache_key(self) -> ModelKey | None:
        """The model's fingerprint in the response cache for this run; None when it is never cached."""
        if self.keys is not None:
            return self.keys.key(self.model, self.cache_policy)
        fingerprint = getattr(self.model, "fingerprint", None)
        return ModelKey(fingerprint) if fingerprint else None

    def cache_notes(self) -> list[str]:
        """The run header's lines on this model's cache: what its key covers, why its cached answers miss."""
        key = self.cache_key()
        if key is None:
            return []
        notes = [f"autoevolve cache: {key.note}"] if key.note else []
        if key.changes:
            shown = ", ".join(key.changes[:5]) + (f" and {len(key.changes) - 5} more" if len(key.changes) > 5 else "")
            notes.append(f"autoevolve cache: {self.spec}: its cached answers miss: {shown}")
        return notes

    def messages(self, scenario: Scenario) -> list[dict[str, Any]]:
        """The conversation sent to the model, with the configured system prompt first."""
        messages = [dict(m) for m in scenario.messages]
        if self.system_prompt and not any(m["role"] == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        return messages

    def run(self, scenario: Scenario, repeat: int = 0) -> Trajectory:
        """Run one trial and return its graded trajectory; a model error is recorded, not raised."""
        trajectory = self.trial(scenario, repeat)
        if self.observe is not None:
            self.observe(trajectory)
        return trajectory

    def trial(self, scenario: Scenario, repeat: int = 0) -> Trajectory:
        """Run one trial and return its graded trajectory, unrecorded (the caller records it)."""
        messages = self.messages(scenario)
        seed = trial_seed(self.base_seed, scenario.id, repeat)
        trajectory = Trajectory(
            scenario_id=scenario.id,
            role=self.role,
            model=self.spec,
            messages=messages,
            seed=seed,
            repeat=repeat,
            run_id=self.run_id,
            scenario_file=scenario.path,
            split=scenario.split,
            category=scenario.category,
            started_at=_now(),
        )
        self._answer(trajectory, scenario, messages)
        trajectory.finished_at = _now()
        if trajectory.error is None:
            grade(trajectory, scenario)
        return trajectory

    def _answer(self, trajectory: Trajectory, scenario: Scenario, messages: list[dict[str, Any]]) -> None:
        """Fill in the reply over the whole conversation, the latency, and the error; each reply cached."""
        transcript = Transcript([dict(m) for m in messages], self.max_output_chars)
        if getattr(self.model, "answers_whole_trials", False):  # a replayed trial holds its whole conversation
            scenario = dataclasses.replace(scenario, turns=(), user=None)
        hits: list[bool] = []
        started = time.perf_counter()
        try:
            with EXIT_GUARD:
                converse(
                    scenario, transcript, lambda sent: self._reply(sent, scenario, trajectory, hits), trajectory.seed
                )
        except (Exception, SystemExit) as exc:  # the trial's error, recorded (an agent's sys.exit too)
            trajectory.error = f"{type(exc).__name__}: {exc}"
        reply = transcript.reply()
        if reply is not None:
            _apply(trajectory, reply, self.max_output_chars)
        recorded = transcript.latency()
        trajectory.latency_s = round(time.perf_counter() - started if recorded is None else recorded, 6)
        trajectory.cached = bool(hits) and all(hits) and trajectory.error is None

    def _reply(
        self, messages: list[dict[str, Any]], scenario: Scenario, trajectory: Trajectory, hits: list[bool]
    ) -> tuple[Reply, float]:
        """The agent's reply to ``messages``, from the cache when it has it, and its recorded latency."""
        seed, repeat = trajectory.seed, trajectory.repeat
        key = self._cache_key(messages, scenario, seed, repeat)
        if key is not None and self.cache is not None:
            hit = self.cache.get(key, self.cache_policy.expiry_s)
            hits.append(hit is not None)
            if hit is not None:
                return hit
        started = time.perf_counter()
        request = ModelRequest.for_trial([dict(m) for m in messages], scenario, seed, repeat)
        call = cached_calls(self.call_cache, seed, repeat, lambda: self.model.generate(request))
        plain = getattr(self.model, "untraced", False) and not scenario.tools
        reply = call_within(call if plain else traced(call), scenario.timeout_s)
        latency = round(time.perf_counter() - started if reply.latency_s is None else reply.latency_s, 6)
        if key is not None and self.cache is not None:
            self.cache.put(key, reply, latency)
        return reply, latency

    def _cache_key(self, messages: list[dict[str, Any]], scenario: Scenario, seed: int, repeat: int) -> str | None:
        """The response-cache key of one agent call; None when the model is never cached."""
        model_key = self.cache_key() if self.cache is not None else None
        if self.cache is None or model_key is None:
            return None
        tools = [tool.schema() for tool in scenario.tools]
        return self.cache.key(model_key.fingerprint, messages, tools, seed, repeat, handed_over(scenario))

    def run_all(self, scenario: Scenario, repeats: int) -> list[Trajectory]:
        """Every repeat of one scenario, in order."""
        return [self.run(scenario, repeat) for repeat in range(repeats)]


def handed_over(scenario: Scenario) -> dict[str, Any]:
    """What a trial hands the model besides its messages: the scenario's metadata and its tools' code.

    Both join the cache key, so editing either is a fresh call, never an old answer.
    """
    handed = {"metadata": scenario.metadata, "tools": [_source_digest(tool.function) for tool in scenario.tools]}
    if scenario.turns:
        handed["turns"] = list(scenario.turns)
    if scenario.user is not None:
        user = scenario.user
        handed["user"] = {
            "model": user.display,
            "persona": user.persona,
            "max_turns": user.max_turns,
            "stop": user.stop,
        }
    return handed


@functools.cache
def _source_digest(function: Callable[..., Any]) -> str:
    """A digest of the source file a tool is defined in (its qualified name when there is none), read once."""
    try:
        return hashlib.sha256(Path(inspect.getfile(function)).read_bytes()).hexdigest()[:16]
    except (TypeError, OSError):
        return getattr(function, "__qualname__", repr(function))


def _apply(trajectory: Trajectory, reply: Reply, limit: int) -> None:
    trajectory.output = capped(reply.output, limit)
    if reply.messages is not None:
        trajectory.messages = reply.messages
    else:
        trajectory.messages = [*trajectory.messages, {"role": "assistant", "content": trajectory.output}]
    trajectory.tool_calls = reply.tool_calls
    trajectory.prompt_tokens = reply.prompt_tokens
    trajectory.completion_tokens = reply.completion_tokens
    trajectory.reported_total_tokens = reply.total_tokens
    trajectory.cost = reply.cost
    trajectory.turns = reply.turns
    trajectory.spans = reply.spans

"""The `step_critic` grader: a judge model scores every assistant and tool step of a trajectory.

Written ``step_critic: {rubric: "...", model: SPEC, min_mean: 0.6, min_step: 0.3}`` (or a
rubric string). For each step the judge sees the rubric, the conversation before the step and
the step itself (an assistant message's text and tool calls, or a tool result), and answers
with JSON ``{"reasoning": ..., "score": 0..1, "confidence": 0..1}``. The grade passes when the
mean step score reaches ``min_mean`` and the lowest reaches ``min_step`` (each when given;
neither given: ``min_mean`` 0.6). Its score is the mean; the per-step scores are kept in the
grade's ``steps``. A reply without a verdict is a `GradingError`, as for `llm_judge`; judge
calls go through the same judge and its cache.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_autoevolve.errors import GradingError
from pytest_autoevolve.graders.judge import Judge, parse_verdict
from pytest_autoevolve.records import Check, Grade

if TYPE_CHECKING:
    from pytest_autoevolve.records import Scenario, Trajectory

NAME = "step_critic"
CRITIC_KEYS = ("rubric", "model", "min_mean", "min_step")
DEFAULT_MIN_MEAN = 0.6
STEP_ROLES = ("assistant", "tool")
"""The messages that are steps of the agent: its own replies and the results of its tool calls."""
SHORT = 60
"""How many characters of a step's text its short description keeps."""
CRITIC_INSTRUCTIONS = (
    "You are a strict critic of one step of an AI agent's work. You see the conversation before the step and "
    "the step itself (an assistant message with its tool calls, or a tool's result). Judge only that step "
    "against the rubric: was it a good move at that point? Answer with one JSON object and nothing else: "
    '{"reasoning": "<one sentence>", "score": <a number from 0 to 1>, "confidence": <a number from 0 to 1>}.'
)


@dataclass(frozen=True)
class CriticConfig:
    """One `step_critic` entry, checked: the rubric, the judge, its spec and name, and the thresholds."""

    rubric: str
    judge: Judge
    spec: Any
    display: str
    min_mean: float | None
    min_step: float | None


@dataclass(frozen=True)
class Step:
    """One step of a trajectory: its message index, role, a short description and its text for the judge."""

    index: int
    role: str
    what: str
    text: str


def _content(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if content is None:
        return ""
    return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False, default=str)


def _call_parts(call: Any) -> tuple[str, str]:
    """A tool call's name and arguments, in the OpenAI wire form or the plugin's own record form."""
    if not isinstance(call, Mapping):
        return "?", str(call)
    function = call.get("function")
    inner: Mapping[str, Any] = function if isinstance(function, Mapping) else call
    arguments = inner.get("arguments", "")
    shown = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False, default=str)
    return str(inner.get("name", "?")), shown


def _calls(message: Mapping[str, Any]) -> list[tuple[str, str]]:
    calls = message.get("tool_calls")
    return [_call_parts(c) for c in calls] if isinstance(calls, list) else []


def _tool_names(messages: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Tool names by call id, from the assistants' tool calls (tool results name only the id)."""
    names: dict[str, str] = {}
    for message in messages:
        for call in message.get("tool_calls") or []:
            if isinstance(call, Mapping) and call.get("id") is not None:
                names[str(call["id"])] = _call_parts(call)[0]
    return names


def _tool_name(message: Mapping[str, Any], names: Mapping[str, str]) -> str:
    return str(message.get("name") or names.get(str(message.get("tool_call_id")), "tool"))


def render(message: Mapping[str, Any], names: Mapping[str, str]) -> str:
    """One message as the judge reads it: ``[role] text``, an assistant's tool calls on their own lines."""
    role = str(message.get("role", "?"))
    if role == "tool":
        return f"[tool {_tool_name(message, names)}] {_content(message)}"
    lines = [f"[{role}] {_content(message)}".rstrip()]
    lines += [f"  -> calls {name}({arguments})" for name, arguments in _calls(message)]
    return "\n".join(lines)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= SHORT else text[: SHORT - 3] + "...")


def _what(message: Mapping[str, Any], names: Mapping[str, str]) -> str:
    """A short description of a step: what the assistant did, or which tool answered what."""
    if message.get("role") == "tool":
        return f"result of {_tool_name(message, names)}: {_short(_content(message))}"
    calls = _calls(message)
    if calls:
        return "calls " + ", ".join(name for name, _ in calls)
    return f"replies {_short(_content(message))}"


def steps_of(messages: Sequence[Mapping[str, Any]]) -> list[Step]:
    """Every assistant and tool step of a conversation, in order, with its index in ``messages``."""
    names = _tool_names(messages)
    return [
        Step(index, str(m["role"]), _what(m, names), render(m, names))
        for index, m in enumerate(messages)
        if isinstance(m, Mapping) and m.get("role") in STEP_ROLES
    ]


def step_messages(rubric: str, messages: Sequence[Mapping[str, Any]], step: Step) -> list[dict[str, Any]]:
    """The conversation shown to the judge for one step: the rubric, what came before, and the step."""
    names = _tool_names(messages)
    before = "\n".join(
        render(m, names) for m in messages[: step.index] if isinstance(m, Mapping) and m.get("role") != "system"
    )
    prompt = (
        f"Rubric:\n{rubric}\n\nConversation before the step:\n{before or '(nothing)'}\n\n"
        f"Step to grade (message {step.index}, {step.role}):\n{step.text}"
    )
    return [{"role": "system", "content": CRITIC_INSTRUCTIONS}, {"role": "user", "content": prompt}]


def parse_confidence(text: str) -> float | None:
    """The ``confidence`` of a JSON reply, clamped to 0..1; `None` when the judge gave none."""
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if not match:
        return None
    try:
        data = json.loads(match.group(0))
    except json.JSONDecodeError:
        return None
    value = data.get("confidence") if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return min(1.0, max(0.0, float(value)))


def score_steps(config: CriticConfig, trajectory: Trajectory) -> list[dict[str, Any]]:
    """The judge's score, reason and confidence for every step of ``trajectory`` (`GradingError` on no verdict)."""
    scored = []
    for step in steps_of(trajectory.messages):
        reply = config.judge.ask(config.spec, step_messages(config.rubric, trajectory.messages, step), trajectory.seed)
        try:
            score, reason = parse_verdict(reply)
        except GradingError as exc:
            raise GradingError(f"step {step.index} ({step.role}): {exc}") from None
        scored.append(
            {
                "index": step.index,
                "role": step.role,
                "what": step.what,
                "score": score,
                "reason": reason,
                "confidence": parse_confidence(reply),
            }
        )
    return scored


def worst_step(steps: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The lowest-scored step (the first of equals)."""
    return min(steps, key=lambda s: float(s["score"]))


def _bar(value: float, threshold: float | None, name: str) -> str:
    if threshold is None:
        return f"{value:.3g}"
    return f"{value:.3g} ({'>=' if value >= threshold else '<'} {name} {threshold:g})"


def verdict(config: CriticConfig, steps: Sequence[Mapping[str, Any]]) -> Grade:
    """The grade of scored steps: passed when the mean and the minimum reach their thresholds."""
    scores = [float(s["score"]) for s in steps]
    mean, low = sum(scores) / len(scores), min(scores)
    mean_ok = config.min_mean is None or mean >= config.min_mean
    passed = mean_ok and (config.min_step is None or low >= config.min_step)
    worst = worst_step(steps)
    reason = (
        f"{'PASS' if passed else 'FAIL'}: {len(steps)} step(s), mean {_bar(mean, config.min_mean, 'min_mean')}, "
        f"min {_bar(low, config.min_step, 'min_step')}; worst: step {worst['index']} ({worst['role']}, "
        f"{worst['what']}) scored {float(worst['score']):.3g}: {worst['reason']} (judge {config.display})"
    )
    return Grade(NAME, passed, mean, reason, steps=[dict(s) for s in steps])


def _threshold(value: Mapping[str, Any], key: str) -> float | None:
    if key not in value:
        return None
    number = value[key]
    if isinstance(number, bool) or not isinstance(number, int | float) or not 0 <= number <= 1:
        raise ValueError(f"'{NAME}' {key} is a number from 0 to 1, got {number!r}")
    return float(number)


def critic_config(judge: Judge | None, value: Any) -> CriticConfig:
    """The checked configuration of one entry; `ValueError` saying what is allowed."""
    if isinstance(value, str):
        value = {"rubric": value}
    if not isinstance(value, Mapping):
        raise ValueError(f"'{NAME}' takes a mapping with {', '.join(CRITIC_KEYS)} (or a rubric string)")
    unknown = sorted(str(k) for k in set(value) - set(CRITIC_KEYS))
    if unknown:
        raise ValueError(f"unknown {NAME} key(s) {', '.join(unknown)}; allowed: {', '.join(CRITIC_KEYS)}")
    rubric = value.get("rubric")
    if not isinstance(rubric, str) or not rubric.strip():
        raise ValueError(f"'{NAME}' needs a 'rubric': the text the judge scores each step against")
    min_mean, min_step = _threshold(value, "min_mean"), _threshold(value, "min_step")
    if min_mean is None and min_step is None:
        min_mean = DEFAULT_MIN_MEAN
    spec = value.get("model") or (judge.default if judge is not None else None)
    if not spec or judge is None:
        raise ValueError(f"'{NAME}' needs a judge model: set 'judge' in the config or 'model' in the grader")
    try:
        display = judge.describe(spec)
    except ValueError as exc:
        raise ValueError(f"'{NAME}' model: {exc}") from None
    return CriticConfig(rubric, judge, spec, display, min_mean, min_step)


def step_critic(judge: Judge | None, value: Any, _folder: Path) -> Check:
    """Build the grader for one `step_critic` entry, asking ``judge`` (registered with the run's judge)."""
    config = critic_config(judge, value)

    def check(_output: str, trajectory: Trajectory, _scenario: Scenario) -> Grade:
        steps = score_steps(config, trajectory)
        if not steps:
            raise GradingError("the trajectory has no assistant or tool step to score")
        return verdict(config, steps)

    return check

"""Multi-turn trials: the agent answers the scenario's scripted turns (``turns:``), then a simulated user (``user:``).

Each agent reply is one model call, made with the whole conversation so far; the trial's reply is
the last one, with the whole conversation, every tool call and the summed usage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pytest_autoevolve.errors import ModelError
from pytest_autoevolve.providers.base import Reply, TrialError
from pytest_autoevolve.records import Scenario, SimulatedUser

AgentCall = Callable[[list[dict[str, Any]]], tuple[Reply, float]]
"""One agent reply to a conversation, with its latency (measured, or as recorded)."""

USER_INSTRUCTIONS = (
    "You play the user in a conversation with an assistant: write only the user's next message. "
    "When your goal is met, or the conversation cannot go on, reply with {stop}."
)


class SimulatedUserError(ModelError):
    """The simulated user's model failed: the trial's error."""


def capped(text: str, limit: int) -> str:
    """``text`` up to ``limit`` characters, with a mark saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[{len(text) - limit} more characters cut at limits.max_output_chars]"


@dataclass
class Transcript:
    """A trial's conversation as it goes: the messages, and each agent reply with its recorded latency."""

    messages: list[dict[str, Any]]
    limit: int = 1_000_000
    replies: list[Reply] = field(default_factory=list)
    latencies: list[float | None] = field(default_factory=list)

    def add(self, reply: Reply, latency_s: float | None) -> None:
        """The agent's reply joins the conversation (its own ``messages`` replace it, when it gave them)."""
        self.replies.append(reply)
        self.latencies.append(latency_s)
        if reply.messages is not None:
            self.messages = [dict(m) for m in reply.messages]
        else:
            self.messages.append({"role": "assistant", "content": capped(reply.output, self.limit)})

    def latency(self) -> float | None:
        """The summed recorded latencies, or None when some reply's latency was not recorded."""
        known = [s for s in self.latencies if s is not None]
        return sum(known) if self.latencies and len(known) == len(self.latencies) else None

    def reply(self) -> Reply | None:
        """The replies so far as one: the last output, the whole conversation, every tool call, summed usage."""
        if len(self.replies) < 2:
            return self.replies[0] if self.replies else None
        replies = self.replies
        return Reply(
            output=replies[-1].output,
            messages=self.messages,
            tool_calls=[call for r in replies for call in r.tool_calls],
            prompt_tokens=_total(r.prompt_tokens for r in replies),
            completion_tokens=_total(r.completion_tokens for r in replies),
            cost=_total(r.cost for r in replies),
            turns=sum(r.turns for r in replies),
            total_tokens=_total(r.total_tokens for r in replies),
            spans=[span for r in replies for span in r.spans],
        )


def _total(values: Any) -> Any:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def converse(scenario: Scenario, transcript: Transcript, agent: AgentCall, seed: int) -> None:
    """Have the agent answer every user message: the opening, each of ``turns``, then the simulated user's."""
    pending = list(scenario.turns)
    while True:
        try:
            reply, latency = agent(transcript.messages)
        except BaseException as exc:  # a partial reply (an agent loop out of turns) is kept
            partial = exc.reply if isinstance(exc, TrialError) else None
            if partial is not None:
                transcript.add(partial, partial.latency_s)
            else:
                transcript.latencies.append(None)
            raise
        transcript.add(reply, latency)
        if not _next_turn(scenario.user, pending, transcript, seed):
            return


def _next_turn(user: SimulatedUser | None, pending: list[str], transcript: Transcript, seed: int) -> bool:
    """Add the next user message, scripted or simulated; whether the agent is to answer it."""
    if pending:
        transcript.messages.append({"role": "user", "content": pending.pop(0)})
        return True
    if user is None or len(transcript.replies) >= user.max_turns:
        return False
    if user.ask is None:
        raise SimulatedUserError(f"the simulated user {user.display} has no model registry to ask outside a run")
    try:
        line = user.ask(user_side(user, transcript.messages), seed)
    except Exception as exc:  # the user model's failure is the trial's error
        raise SimulatedUserError(f"the simulated user {user.display} failed: {type(exc).__name__}: {exc}") from exc
    transcript.messages.append({"role": "user", "content": line})
    return user.stop not in line


def user_side(user: SimulatedUser, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation as the simulated user sees it: the persona first, the agent's replies as ``user``."""
    system = f"{user.persona}\n\n{USER_INSTRUCTIONS.format(stop=user.stop)}"
    flipped = {"user": "assistant", "assistant": "user"}
    seen = [
        {"role": flipped[m["role"]], "content": m["content"]}
        for m in messages
        if m.get("role") in flipped and isinstance(m.get("content"), str) and m["content"]
    ]
    return [{"role": "system", "content": system}, *seen]

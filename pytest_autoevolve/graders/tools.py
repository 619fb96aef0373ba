"""Graders of what an agent did, not only what it said: which tools it called, with what, in what order.

``tool_called: NAME`` (or ``{name, arguments}``), ``tool_not_called: NAME``, and
``tool_sequence: {calls: [{name, arguments}], mode: strict | unordered | subset | superset}``,
whose argument values match exactly or with ``{regex: ...}``, ``{contains: ...}`` or ``{any: true}``,
as agentevals and promptfoo's ``trajectory:tool-sequence`` do.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_autoevolve.records import Check, Grade, Scenario, Trajectory

SEQUENCE_MODES = ("strict", "unordered", "subset", "superset")
MATCHERS = ("regex", "contains", "any")


def _verdict(name: str, passed: bool, reason: str) -> Grade:
    return Grade(name, passed, 1.0 if passed else 0.0, reason)


def _is_subset(want: Any, got: Any) -> bool:
    """Whether ``want`` is contained in ``got``: mappings key by key (recursively), anything else equal."""
    if isinstance(want, dict):
        return isinstance(got, dict) and all(k in got and _is_subset(v, got[k]) for k, v in want.items())
    return bool(want == got and isinstance(want, bool) == isinstance(got, bool))


def _arguments(call: Mapping[str, Any]) -> Any:
    """A tool call's arguments as data; the OpenAI wire format sends them as a JSON string."""
    arguments = call.get("arguments")
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except json.JSONDecodeError:
            return arguments
    return arguments


def tool_called(value: Any, _: Path) -> Check:
    """The agent called a tool: ``tool_called: NAME``, or ``{name: NAME, arguments: {...}}``.

    With ``arguments``, some call of the tool must have had at least those arguments
    (a subset match: other arguments may be present too; nested mappings match the same way).
    """
    shape = "'tool_called' takes a tool name, or a mapping with 'name' and optional 'arguments' (a mapping)"
    arguments: dict[str, Any] | None = None
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"name", "arguments"})
        if unknown or "name" not in value:
            raise ValueError(f"{shape}; got keys {', '.join(map(str, value))}")
        if value.get("arguments") is not None and not isinstance(value["arguments"], dict):
            raise ValueError(f"{shape}; 'arguments' is {type(value['arguments']).__name__}")
        arguments = value.get("arguments")
        value = value["name"]
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{shape}; got {value!r}")
    name = value.strip()
    label = f"tool_called:{name}"

    def check(_o: str, trajectory: Trajectory, _s: Scenario) -> Grade:
        calls = [c for c in trajectory.tool_calls if c.get("name") == name]
        if not calls:
            made = sorted({str(c.get("name")) for c in trajectory.tool_calls})
            return _verdict(label, False, f"{name!r} was not called; calls made: {', '.join(made) or 'none'}")
        if arguments is None:
            return _verdict(label, True, f"{name!r} was called {len(calls)} time(s)")
        for call in calls:
            if _is_subset(arguments, _arguments(call)):
                return _verdict(label, True, f"{name!r} was called with {json.dumps(_arguments(call), default=str)}")
        seen = "; ".join(json.dumps(c.get("arguments"), default=str) for c in calls)
        return _verdict(label, False, f"{name!r} was never called with {json.dumps(arguments)}; calls had {seen}")

    return check


def tool_not_called(value: Any, _: Path) -> Check:
    """The agent never called the tool ``NAME``."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"'tool_not_called' takes a tool name, got {value!r}")
    name = value.strip()
    label = f"tool_not_called:{name}"

    def check(_o: str, trajectory: Trajectory, _s: Scenario) -> Grade:
        count = sum(c.get("name") == name for c in trajectory.tool_calls)
        return _verdict(label, count == 0, f"{name!r} was called {count} time(s)")

    return check


def _matcher(value: Any, where: str) -> Any:
    """Check an expected argument value: a plain value, or one of the ``{regex|contains|any: ...}`` matchers."""
    if isinstance(value, Mapping) and len(value) == 1 and next(iter(value)) in MATCHERS:
        kind, operand = next(iter(value.items()))
        if kind == "regex":
            try:
                re.compile(str(operand))
            except re.error as exc:
                raise ValueError(f"{where}: {{regex: ...}} is not a valid regular expression: {exc}") from None
        if kind == "any" and operand is not True:
            raise ValueError(f"{where}: the matcher is written {{any: true}}")
    return value


def _matches(want: Any, got: Any) -> bool:
    """Whether an argument value ``got`` satisfies the expected ``want``."""
    if isinstance(want, Mapping) and len(want) == 1 and next(iter(want)) in MATCHERS:
        kind, operand = next(iter(want.items()))
        if kind == "any":
            return True
        text = got if isinstance(got, str) else json.dumps(got, default=str)
        return re.search(str(operand), text) is not None if kind == "regex" else str(operand) in text
    if isinstance(want, Mapping):
        return isinstance(got, Mapping) and all(k in got and _matches(v, got[k]) for k, v in want.items())
    return bool(want == got and isinstance(want, bool) == isinstance(got, bool))


def _call_matches(want: Mapping[str, Any], call: Mapping[str, Any]) -> bool:
    """A made call against an expected one: same name, and every listed argument matches (others ignored)."""
    if call.get("name") != want["name"]:
        return False
    arguments = _arguments(call)
    listed = want.get("arguments") or {}
    return all(
        isinstance(arguments, Mapping) and k in arguments and _matches(v, arguments[k]) for k, v in listed.items()
    )


def _assign(wanted: Sequence[Mapping[str, Any]], made: Sequence[Mapping[str, Any]]) -> bool:
    """Whether every expected call can be matched to a distinct made call (a small bipartite matching)."""
    if not wanted:
        return True
    first, rest = wanted[0], wanted[1:]
    return any(_call_matches(first, call) and _assign(rest, [*made[:i], *made[i + 1 :]]) for i, call in enumerate(made))


def tool_sequence(value: Any, _: Path) -> Check:
    """The agent's tool calls match the expected list, in one of four modes.

    ``strict``: the same calls in the same order; ``unordered``: the same calls in any order;
    ``subset``: it made only expected calls; ``superset``: it made at least the expected calls.
    """
    shape = "'tool_sequence' takes {calls: [{name, arguments}], mode: strict | unordered | subset | superset}"
    if not isinstance(value, Mapping) or set(value) - {"calls", "mode"} or not isinstance(value.get("calls"), list):
        raise ValueError(f"{shape}; got {value!r}")
    mode = value.get("mode", "strict")
    if mode not in SEQUENCE_MODES:
        raise ValueError(f"'tool_sequence' mode is one of {', '.join(SEQUENCE_MODES)}, got {mode!r}")
    calls: list[dict[str, Any]] = []
    for index, call in enumerate(value["calls"]):
        where = f"'tool_sequence' calls[{index}]"
        if isinstance(call, str):
            call = {"name": call}
        if not isinstance(call, Mapping) or not isinstance(call.get("name"), str) or set(call) - {"name", "arguments"}:
            raise ValueError(f"{where} is a tool name or {{name, arguments}}, got {call!r}")
        arguments = call.get("arguments") or {}
        if not isinstance(arguments, Mapping):
            raise ValueError(f"{where}: 'arguments' is a mapping, got {arguments!r}")
        calls.append({"name": call["name"], "arguments": {k: _matcher(v, where) for k, v in arguments.items()}})
    label = f"tool_sequence:{mode}"

    def check(_o: str, trajectory: Trajectory, _s: Scenario) -> Grade:
        made = list(trajectory.tool_calls)
        if mode == "strict":
            ok = len(made) == len(calls) and all(_call_matches(w, c) for w, c in zip(calls, made, strict=True))
        elif mode == "unordered":
            ok = len(made) == len(calls) and _assign(calls, made)
        elif mode == "superset":
            ok = _assign(calls, made)
        else:  # subset: every call made was one of the expected ones
            ok = all(any(_call_matches(w, c) for w in calls) for c in made)
        names = ", ".join(str(c.get("name")) for c in made) or "none"
        expected = ", ".join(c["name"] for c in calls) or "none"
        return _verdict(label, ok, f"calls made: {names}; expected ({mode}): {expected}")

    return check

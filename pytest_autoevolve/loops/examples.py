"""Training examples: a trajectory as a chat row in the OpenAI fine-tuning format, its validation and its digests."""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from pytest_autoevolve.errors import LoopError
from pytest_autoevolve.records import Trajectory

CHAT_ROLES = ("system", "user", "assistant", "tool")


class DatasetError(LoopError):
    """No dataset could be curated or read: too few examples, an empty split, a malformed file."""


def _canonical(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def example_sha256(row: Mapping[str, Any]) -> str:
    """The content hash of one chat example (canonical JSON: sorted keys, no spaces)."""
    return hashlib.sha256(_canonical(row)).hexdigest()


def _normalize(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def prompt_sha256(messages: Iterable[Mapping[str, Any]]) -> str:
    """The hash of a conversation's prompt: its user messages, whitespace- and NFC-normalized.

    System messages are left out so a configured system prompt does not hide an eval prompt;
    a conversation with no user message is hashed on its system messages.
    """
    messages = list(messages)
    texts = [_normalize(str(m.get("content") or "")) for m in messages if m.get("role") == "user"]
    if not texts:
        texts = ["system:" + _normalize(str(m.get("content") or "")) for m in messages if m.get("role") == "system"]
    return hashlib.sha256(_canonical(texts)).hexdigest()


def validate_example(row: Any) -> None:
    """Check one line is a valid chat fine-tuning example; `DatasetError` says what is wrong."""
    if not isinstance(row, dict):
        raise DatasetError(f"an example is a JSON object, got {type(row).__name__}")
    unknown = set(row) - {"messages", "tools"}
    if unknown:
        raise DatasetError(f"unknown key(s) {', '.join(sorted(unknown))}; an example has 'messages' (and 'tools')")
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise DatasetError("'messages' is a non-empty list of {role, content} objects")
    if "tools" in row and not isinstance(row["tools"], list):
        raise DatasetError("'tools' is a list of function tools")
    for position, message in enumerate(messages):
        at = f"message {position}"
        if not isinstance(message, dict):
            raise DatasetError(f"{at} is an object, got {type(message).__name__}")
        role = message.get("role")
        if role not in CHAT_ROLES:
            raise DatasetError(f"{at}: role {role!r} is not one of {', '.join(CHAT_ROLES)}")
        content, calls = message.get("content"), message.get("tool_calls")
        if calls is not None:
            if role != "assistant":
                raise DatasetError(f"{at}: only assistant messages have 'tool_calls'")
            _check_calls(calls, at)
        if content is None and not calls:
            raise DatasetError(f"{at}: 'content' is a string (null only for an assistant message with tool_calls)")
        if content is not None and not isinstance(content, str):
            raise DatasetError(f"{at}: 'content' is a string, got {type(content).__name__}")
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise DatasetError(f"{at}: a tool message needs a string 'tool_call_id'")
    if messages[-1]["role"] != "assistant":
        raise DatasetError(f"the last message is the assistant's reply, got role {messages[-1]['role']!r}")
    if not any(m["role"] == "user" for m in messages):
        raise DatasetError("an example needs a user message")


def _check_calls(calls: Any, at: str) -> None:
    if not isinstance(calls, list) or not calls:
        raise DatasetError(f"{at}: 'tool_calls' is a non-empty list")
    for number, call in enumerate(calls):
        where = f"{at}, tool_calls[{number}]"
        if not isinstance(call, dict) or not isinstance(call.get("id"), str) or call.get("type") != "function":
            raise DatasetError(f"{where}: a tool call is {{id, type: 'function', function: {{name, arguments}}}}")
        function = call.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise DatasetError(f"{where}: 'function' needs a string 'name'")
        if not isinstance(function.get("arguments"), str):
            raise DatasetError(f"{where}: 'function.arguments' is a JSON string")


def _openai_call(call: Any, position: int) -> dict[str, Any]:
    """One tool call in the OpenAI form, from that form or the plugin's {name, arguments} record."""
    if not isinstance(call, Mapping):
        raise ValueError(f"a tool call is an object, got {type(call).__name__}")
    nested = call.get("function")
    function: Mapping[str, Any] = nested if isinstance(nested, Mapping) else call
    name, arguments = function.get("name"), function.get("arguments", {})
    if not isinstance(name, str) or not name:
        raise ValueError("a tool call has no function name")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False, sort_keys=True)
    ident = call.get("id")
    return {
        "id": ident if isinstance(ident, str) and ident else f"call_{position}",
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def chat_messages(trajectory: Trajectory) -> list[dict[str, Any]]:
    """The trajectory's conversation in the OpenAI chat format, ending with the graded reply.

    `ValueError` when it cannot be one (an unknown role, a tool message without its call id,
    a final assistant message that is not the graded output).
    """
    messages: list[dict[str, Any]] = []
    calls_seen = 0
    for position, message in enumerate(trajectory.messages):
        if not isinstance(message, Mapping):
            raise ValueError(f"message {position} is not an object")
        role = message.get("role")
        if role not in CHAT_ROLES:
            raise ValueError(f"message {position} has role {role!r}, not one of {', '.join(CHAT_ROLES)}")
        content = message.get("content")
        out: dict[str, Any] = {"role": role}
        if role == "assistant" and message.get("tool_calls"):
            raw_calls = message["tool_calls"]
            if not isinstance(raw_calls, list):
                raise ValueError(f"message {position}: 'tool_calls' is not a list")
            out["content"] = content if isinstance(content, str) and content else None
            out["tool_calls"] = [_openai_call(c, calls_seen + i) for i, c in enumerate(raw_calls)]
            calls_seen += len(raw_calls)
        elif role == "tool":
            if not isinstance(message.get("tool_call_id"), str):
                raise ValueError(f"message {position}: a tool message has no 'tool_call_id'")
            out["tool_call_id"] = message["tool_call_id"]
            out["content"] = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
        else:
            if not isinstance(content, str):
                raise ValueError(f"message {position}: {role} content is not a string")
            out["content"] = content
        messages.append(out)
    last = messages[-1] if messages else None
    if last is None or last["role"] != "assistant" or "tool_calls" in last:
        messages.append({"role": "assistant", "content": trajectory.output})
    elif last["content"].strip() != trajectory.output.strip():
        raise ValueError("the last assistant message is not the graded output")
    if not any(m["role"] == "user" for m in messages):
        raise ValueError("the conversation has no user message")
    return messages

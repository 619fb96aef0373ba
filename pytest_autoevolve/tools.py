"""Tools a scenario exposes to the agent: Python callables offered as function tools.

A scenario lists them under ``tools:``, each ``pkg.module:function`` or a mapping with
``python`` and optional ``name``, ``description`` and ``parameters`` (a JSON Schema; by
default derived from the function's signature and type hints).
"""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_autoevolve.imports import import_object

JSON_TYPES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array",
                              dict: "object"}  # fmt: skip
TOOL_KEYS = ("python", "name", "description", "parameters")


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
            record["result"] = self.function(**parsed)
        except Exception as exc:  # a failing tool call is recorded and shown to the model
            record["error"] = f"{type(exc).__name__}: {exc}"
        return record


def result_text(record: Mapping[str, Any]) -> str:
    """What the model is told a tool call returned."""
    if record.get("error"):
        return f"error: {record['error']}"
    result = record.get("result")
    return result if isinstance(result, str) else json.dumps(result, default=str)


def parameters_for(function: Callable[..., Any]) -> dict[str, Any]:
    """A JSON Schema of the function's parameters from its signature and type hints."""
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # unresolvable hints: fall back to untyped parameters
        hints = {}
    properties: dict[str, Any] = {}
    required = []
    for name, parameter in inspect.signature(function).parameters.items():
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        hint = hints.get(name)
        origin = typing.get_origin(hint) or hint
        properties[name] = {"type": JSON_TYPES[origin]} if origin in JSON_TYPES else {}
        if parameter.default is inspect.Parameter.empty:
            required.append(name)
    return {"type": "object", "properties": properties, "required": required}


def tool_from_entry(entry: Any, folder: Path) -> Tool:
    """A `Tool` from one ``tools:`` entry; `ValueError` with what is allowed when it is wrong."""
    if isinstance(entry, str):
        entry = {"python": entry}
    if not isinstance(entry, dict) or "python" not in entry:
        raise ValueError("a tool is 'pkg.module:function' or a mapping with 'python' (and name, description, "
                         "parameters)")  # fmt: skip
    unknown = sorted(set(entry) - set(TOOL_KEYS))
    if unknown:
        raise ValueError(f"unknown tool key(s) {', '.join(unknown)}; allowed: {', '.join(TOOL_KEYS)}")
    ref = str(entry["python"])
    try:
        function = import_object(ref, [folder])
    except Exception as exc:  # any import failure is the scenario's error
        raise ValueError(f"tool {ref!r} cannot be imported: {type(exc).__name__}: {exc}") from None
    if not callable(function):
        raise ValueError(f"tool {ref!r} is not callable")
    parameters = entry.get("parameters") or parameters_for(function)
    if not isinstance(parameters, dict):
        raise ValueError("tool 'parameters' is a JSON Schema mapping")
    description = entry.get("description") or inspect.getdoc(function) or ""
    return Tool(str(entry.get("name") or function.__name__), str(description), parameters, function)

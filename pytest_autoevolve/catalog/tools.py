"""Tools a scenario exposes to the agent: Python callables offered as function tools.

A scenario lists them under ``tools:``, each ``pkg.module:function`` or a mapping with
``python`` and optional ``name``, ``description`` and ``parameters`` (a JSON Schema; by
default derived from the function's signature and type hints).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_autoevolve.imports import import_object
from pytest_autoevolve.records import Tool

JSON_TYPES: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    dict: "object",
}

TOOL_KEYS = ("python", "name", "description", "parameters")


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
        raise ValueError(
            "a tool is 'pkg.module:function' or a mapping with 'python' (and name, description, parameters)"
        )
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

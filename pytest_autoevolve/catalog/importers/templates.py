"""The basics of Nunjucks/Jinja templates that promptfoo and OpenAI's evals fill in: ``{{ var.path | filter }}``.

Output tags (``{{ ... }}``) with dotted and indexed paths and the common filters, comments (``{# #}``)
and ``{% raw %}`` blocks render as those engines render them; a name with no value renders as nothing,
as Nunjucks does. Any other tag (``{% if %}``, ``{% for %}``, ...) is a `TemplateError`: the importer
says so rather than guess.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

TAG = re.compile(r"\{%-?\s*raw\s*-?%\}(.*?)\{%-?\s*endraw\s*-?%\}|\{#.*?#\}|\{\{-?(.*?)-?\}\}|\{%.*?%\}", re.DOTALL)
PATH = re.compile(
    r"\s*([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z_][A-Za-z0-9_]*|\[\s*(?:\d+|'[^']*'|\"[^\"]*\")\s*\])*)\s*$"
)
STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*(\d+|'[^']*'|\"[^\"]*\")\s*\]")
FILTER = re.compile(r"\s*([A-Za-z_]+)\s*(?:\((.*)\))?\s*$", re.DOTALL)


class TemplateError(ValueError):
    """A template that uses more of Nunjucks than the importers render."""


def text_of(value: Any) -> str:
    """A value as a template prints it: numbers as JavaScript writes them, mappings and lists as JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _argument(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise TemplateError(f"filter argument {text!r} is not a literal") from None


def _arguments(text: str | None) -> list[Any]:
    if not text or not text.strip():
        return []
    parts = re.findall(r"'[^']*'|\"[^\"]*\"|[^,]+", text)
    return [_argument(p) for p in parts if p.strip()]


FILTERS: dict[str, Callable[..., Any]] = {
    "upper": lambda v: text_of(v).upper(),
    "lower": lambda v: text_of(v).lower(),
    "trim": lambda v: text_of(v).strip(),
    "capitalize": lambda v: text_of(v)[:1].upper() + text_of(v)[1:].lower(),
    "title": lambda v: text_of(v).title(),
    "length": lambda v: len(v) if isinstance(v, list | dict | str) else 0,
    "dump": lambda v, *_: json.dumps(v, ensure_ascii=False),
    "safe": lambda v: v,
    "string": text_of,
    "default": lambda v, fallback="", *_: fallback if v is None else v,
    "d": lambda v, fallback="", *_: fallback if v is None else v,
    "join": lambda v, sep="": sep.join(text_of(x) for x in v) if isinstance(v, list) else text_of(v),
    "replace": lambda v, old, new, *_: text_of(v).replace(str(old), str(new)),
    "first": lambda v: v[0] if v else None,
    "last": lambda v: v[-1] if v else None,
}


def _lookup(expression: str, variables: Mapping[str, Any]) -> Any:
    match = PATH.match(expression)
    if match is None:
        literal = expression.strip()
        if literal[:1] in "'\"" and literal[-1:] == literal[:1]:
            return literal[1:-1]
        raise TemplateError(f"{{{{ {expression.strip()} }}}} is an expression these importers do not evaluate")
    value: Any = variables.get(match.group(1))
    for attribute, index in STEP.findall(match.group(2)):
        key: Any = attribute or (int(index) if index.isdigit() else index[1:-1])
        if isinstance(value, dict):
            value = value.get(key)
        elif isinstance(value, list) and isinstance(key, int) and key < len(value):
            value = value[key]
        else:
            value = None
    return value


def _evaluate(expression: str, variables: Mapping[str, Any]) -> Any:
    head, *filters = re.split(r"\|(?![^()]*\))", expression)
    value = _lookup(head, variables)
    for text in filters:
        match = FILTER.match(text)
        if match is None or match.group(1) not in FILTERS:
            raise TemplateError(f"the filter '{text.strip()}' is not one these importers apply")
        value = FILTERS[match.group(1)](value, *_arguments(match.group(2)))
    return value


def render(template: str, variables: Mapping[str, Any]) -> str:
    """``template`` with its ``{{ }}`` tags filled from ``variables``; `TemplateError` for other tags."""

    def replace(match: re.Match[str]) -> str:
        whole = match.group(0)
        if match.group(1) is not None:
            return match.group(1)
        if whole.startswith("{#"):
            return ""
        if whole.startswith("{%"):
            raise TemplateError(f"the template tag {whole[:40]} is not supported (only {{{{ var }}}} and filters)")
        return text_of(_evaluate(match.group(2), variables))

    return TAG.sub(replace, template)


def lone_value(template: str, variables: Mapping[str, Any]) -> Any:
    """The value itself when ``template`` is one ``{{ path }}`` tag (a list stays a list), else the rendered text."""
    match = re.fullmatch(r"\s*\{\{-?(.*?)-?\}\}\s*", template, re.DOTALL)
    if match is not None and "{{" not in match.group(1):
        return _evaluate(match.group(1), variables)
    return render(template, variables)

"""What every importer shares: its options, its result, its errors, reading rows and writing the scenario file."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pytest_autoevolve.errors import FormatError

PARTIAL_TAG = "partial_import"
"""The tag of a scenario some of whose checks could not be imported (tags are pytest markers: no '-')."""


class SourceError(FormatError):
    """A file to import that is missing, unreadable, or not what its format says."""


@dataclass(frozen=True)
class ImportOptions:
    """How to read a source: field names of row formats, the grader of their expected values, the ids."""

    id_prefix: str = ""
    input_field: str | None = None
    expected_field: str | None = None
    id_field: str | None = None
    split_field: str | None = None
    metadata_fields: tuple[str, ...] = ()
    grader: str | None = None
    location: str = "end"
    items: Path | None = None
    data_dir: Path | None = None
    output_dir: Path = Path("scenarios")
    hf_split: str | None = None


@dataclass
class Imported:
    """The scenarios an importer made, and what it mapped, left out and why."""

    scenarios: list[dict[str, Any]] = field(default_factory=list)
    mapped: Counter[str] = field(default_factory=Counter)
    """``"source check → grader"`` and how many times."""
    dropped: Counter[str] = field(default_factory=Counter)
    """``"source check: why"`` for each check not imported, and how many times."""
    left_out: list[str] = field(default_factory=list)
    """Whole tests or rows not imported, each with why."""
    files: dict[str, str] = field(default_factory=dict)
    """Files the scenarios need beside the scenario file (a grader's code): name -> text."""

    def add(self, scenario: dict[str, Any], skipped: list[str]) -> None:
        """Add a scenario; one with ``skipped`` checks is tagged `PARTIAL_TAG` and lists them in its metadata."""
        if skipped:
            scenario.setdefault("tags", []).append(PARTIAL_TAG)
            scenario.setdefault("metadata", {})["not_imported"] = skipped
        self.scenarios.append(scenario)

    @property
    def partial(self) -> int:
        """How many scenarios are tagged `PARTIAL_TAG`."""
        return sum(PARTIAL_TAG in s.get("tags", ()) for s in self.scenarios)


def slug(text: str, limit: int = 60) -> str:
    """``text`` made a scenario id part: letters, digits, ``_``, ``.`` and ``-``."""
    cleaned = re.sub(r"[^A-Za-z0-9_.]+", "-", text.strip()).strip("-._")
    return cleaned[:limit].rstrip("-._")


def unique_ids(scenarios: list[dict[str, Any]]) -> None:
    """Suffix ``-2``, ``-3``, ... to ids written more than once, in order."""
    seen: Counter[str] = Counter()
    taken = {str(s["id"]) for s in scenarios}
    for scenario in scenarios:
        ident = str(scenario["id"])
        seen[ident] += 1
        if seen[ident] > 1:
            number = seen[ident]
            while f"{ident}-{number}" in taken:
                number += 1
            scenario["id"] = f"{ident}-{number}"
            taken.add(scenario["id"])


def read_text(path: Path, what: str = "file") -> str:
    """The text of ``path``; `SourceError` naming it when it cannot be read."""
    if not path.is_file():
        raise SourceError(f"{path}: no such {what}")
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: cannot be read: {exc}") from None


class CoreLoader(yaml.SafeLoader):
    """YAML 1.2's core schema, as JavaScript tools read YAML: only true/false are booleans, not yes/no/on/off."""


CoreLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
CoreLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def read_structured(path: Path, loader: type[yaml.SafeLoader] = yaml.SafeLoader) -> Any:
    """A JSON or YAML document (YAML read with ``loader``)."""
    text = read_text(path)
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=loader)
    except json.JSONDecodeError as exc:
        raise SourceError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise SourceError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None


def read_rows(path: Path, loader: type[yaml.SafeLoader] = yaml.SafeLoader) -> list[dict[str, Any]]:
    """The records of a JSONL, JSON (a list), YAML (a list, read with ``loader``) or CSV file, each a mapping."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows: list[Any] = list(csv.DictReader(io.StringIO(read_text(path), newline="")))
    elif suffix == ".jsonl":
        rows = []
        for number, line in enumerate(read_text(path).splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise SourceError(f"{path}:{number}: not a JSON line: {exc}") from None
    elif suffix in (".json", ".yaml", ".yml"):
        document = read_structured(path, loader)
        rows = document if isinstance(document, list) else [document]
    else:
        raise SourceError(f"{path}: a rows file is .jsonl, .json, .yaml or .csv, not {suffix or 'without extension'}")
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise SourceError(f"{path}: record {number} is a {type(row).__name__}, not a mapping of fields")
    if not rows:
        raise SourceError(f"{path}: holds no records")
    return rows


def chat_messages(value: Any) -> list[dict[str, str]] | None:
    """A list of ``{role, content}`` messages (content parts joined), or `None` when ``value`` is not one."""
    if not isinstance(value, list) or not value or not all(isinstance(m, dict) and "role" in m for m in value):
        return None
    messages = []
    for message in value:
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        if isinstance(content, dict):
            content = str(content.get("text", ""))
        role = {"developer": "system"}.get(message["role"], message["role"])
        if role == "system" and message.get("name") in ("example_user", "example_assistant"):
            role = str(message["name"]).removeprefix("example_")
        messages.append({"role": str(role), "content": "" if content is None else str(content)})
    return messages


def grader_name(entry: dict[str, Any]) -> str:
    """The name of a grader entry as a report shows it: ``not icontains`` for a negated one."""
    name, value = next(iter(entry.items()))
    return f"not {grader_name(value)}" if name == "not" and isinstance(value, dict) else str(name)


def dump_scenarios(imported: Imported, header: list[str]) -> str:
    """The scenario file's text: ``header`` as comments, then the scenarios."""
    body = yaml.safe_dump(
        {"scenarios": imported.scenarios}, sort_keys=False, allow_unicode=True, width=100, default_flow_style=False
    )
    return "".join(f"# {line}\n" for line in header) + body


def write_atomic(path: Path, text: str, check: Callable[[Path], object] | None = None) -> None:
    """Write ``path`` through a temporary file beside it, ``check``-ed before the rename: nothing half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        temporary.write_text(text, encoding="utf-8")
        if check is not None:
            check(temporary)
        os.replace(temporary, path)
    except OSError as exc:
        raise SourceError(f"{path}: cannot be written: {exc.strerror or exc}") from None
    finally:
        temporary.unlink(missing_ok=True)

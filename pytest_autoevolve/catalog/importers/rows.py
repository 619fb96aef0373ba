"""Row files as scenarios: JSONL/CSV/JSON records (``jsonl``, ``csv``) and Inspect AI datasets (``inspect``).

Each record gives an input (a string, or a list of chat messages), an expected value (a string or a
list of them), and optionally an id, a split and metadata, from the fields the options name. The
expected value is graded by ``--grader``: ``equals`` by default for row files, Inspect's ``match``
scorer (the end of the output, case and punctuation ignored) for Inspect datasets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_autoevolve.catalog.importers.base import (
    Imported,
    ImportOptions,
    SourceError,
    chat_messages,
    read_rows,
    slug,
    unique_ids,
)
from pytest_autoevolve.catalog.importers.templates import text_of

ROW_GRADERS = (
    "equals",
    "identical",
    "contains",
    "icontains",
    "starts_with",
    "match",
    "includes",
    "exact",
    "fuzzy_match",
)
"""What ``--grader`` may name: how a record's expected value(s) are graded."""

INPUT_FIELDS = ("input", "prompt", "question")
EXPECTED_FIELDS = ("expected", "target", "ideal", "answer", "output")
TRAIN_SPLITS = ("train", "training")


class _RowSkip(Exception):
    """A record that is not imported, and why."""


def import_jsonl(source: Path, options: ImportOptions) -> Imported:
    """The scenarios of a JSONL, JSON or CSV file of records."""
    return import_records(source, read_rows(source), options)


def import_records(source: Path, rows: list[dict[str, Any]], options: ImportOptions) -> Imported:
    """The scenarios of ``rows`` read from ``source`` (at least one), mapped as the row formats map them."""
    return _import_rows(source, rows, options, "equals", inspect=False)


def import_inspect(source: Path, options: ImportOptions) -> Imported:
    """The scenarios of an Inspect AI dataset (JSON, JSONL or CSV with input, target, id, metadata)."""
    return _import_rows(source, read_rows(source), options, "match", inspect=True)


def _import_rows(
    source: Path, rows: list[dict[str, Any]], options: ImportOptions, default_grader: str, *, inspect: bool
) -> Imported:
    grader = options.grader or default_grader
    if grader not in ROW_GRADERS:
        raise SourceError(f"--grader {grader!r} is not one of {', '.join(ROW_GRADERS)}")
    fields = {**rows[0], **rows[-1]}
    input_field = _field(source, fields, options.input_field, INPUT_FIELDS[:1] if inspect else INPUT_FIELDS, "input")
    wanted = ("target",) if inspect else EXPECTED_FIELDS
    expected_field = _field(source, fields, options.expected_field, wanted, "expected")
    id_field = options.id_field or ("id" if "id" in fields else None)
    imported = Imported()
    for number, row in enumerate(rows, start=1):
        try:
            scenario = _scenario(row, number, options, input_field, expected_field, id_field, grader, inspect)
        except _RowSkip as exc:
            imported.left_out.append(f"record {number}: {exc}")
            continue
        imported.mapped[f"{expected_field} -> {next(iter(scenario['expect'][0]))}"] += 1
        imported.add(scenario, [])
    unique_ids(imported.scenarios)
    return imported


def _field(source: Path, fields: dict[str, Any], given: str | None, defaults: tuple[str, ...], what: str) -> str:
    """The record field for ``what``: the one given, else the first default the records have."""
    if given is not None:
        if given not in fields:
            raise SourceError(f"{source}: records have no field {given!r} (fields: {', '.join(fields)})")
        return given
    for name in defaults:
        if name in fields:
            return name
    raise SourceError(
        f"{source}: no {what} field among {', '.join(fields)}; name it with --{what}-field "
        f"(looked for {', '.join(defaults)})"
    )


def _scenario(
    row: dict[str, Any],
    number: int,
    options: ImportOptions,
    input_field: str,
    expected_field: str,
    id_field: str | None,
    grader: str,
    inspect: bool,
) -> dict[str, Any]:
    if inspect and row.get("choices"):
        raise _RowSkip("a multiple-choice sample: Inspect's multiple_choice solver writes its choices into the prompt")
    prompt = row.get(input_field)
    messages = chat_messages(prompt)
    if messages is None and (prompt is None or isinstance(prompt, dict | list)):
        raise _RowSkip(f"field {input_field!r} is neither text nor a list of chat messages")
    targets = _targets(row.get(expected_field), expected_field)
    ident = row.get(id_field) if id_field else None
    scenario: dict[str, Any] = {
        "id": ".".join(filter(None, [options.id_prefix, slug(text_of(ident)) if ident is not None else str(number)]))
    }
    scenario.update({"messages": messages} if messages else {"input": text_of(prompt)})
    scenario["expect"] = [_grader(grader, targets, options.location)]
    split = row.get(options.split_field) if options.split_field else None
    if split is not None:
        scenario["split"] = "train" if str(split).lower() in TRAIN_SPLITS else "eval"
    metadata = dict(row.get("metadata") or {}) if inspect and isinstance(row.get("metadata"), dict) else {}
    metadata.update({name: row[name] for name in options.metadata_fields if name in row})
    if metadata:
        scenario["metadata"] = metadata
    return scenario


def _targets(value: Any, field: str) -> list[str]:
    if value is None or value == "" or value == []:
        raise _RowSkip(f"no expected value in field {field!r}")
    if isinstance(value, list):
        return [text_of(v) for v in value]
    return [text_of(value)]


def _grader(name: str, targets: list[str], location: str) -> dict[str, Any]:
    """The grader entry for ``--grader NAME`` and a record's expected value(s)."""
    one: str | list[str] = targets[0] if len(targets) == 1 else targets
    if name in ("equals", "identical"):
        if len(targets) > 1:
            raise _RowSkip(f"{len(targets)} expected values, and '{name}' takes one (use --grader match or includes)")
        return {name: targets[0]}
    if name in ("contains", "icontains"):
        return {name: targets[0]} if len(targets) == 1 else {f"{name}_any": targets}
    if name == "match":
        return {"match": one if location == "end" else {"target": one, "location": location}}
    return {{"includes": "icontains_any", "exact": "normalized_equals"}.get(name, name): one}

"""Importers: other eval tools' suites and dataset files as scenario files (``autoevolve import``).

Each format is a function ``(source, options) -> Imported``: the scenarios as the mappings a scenario
file holds, what was mapped to which grader, and what was not imported and why.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_autoevolve.catalog.importers.base import (
    PARTIAL_TAG,
    Imported,
    ImportOptions,
    SourceError,
    dump_scenarios,
    write_atomic,
)
from pytest_autoevolve.catalog.importers.hf import import_hf
from pytest_autoevolve.catalog.importers.openai_evals import import_openai_evals
from pytest_autoevolve.catalog.importers.promptfoo import import_promptfoo
from pytest_autoevolve.catalog.importers.rows import ROW_GRADERS, import_inspect, import_jsonl
from pytest_autoevolve.catalog.loader import PLACEHOLDER, UNTEMPLATED_KEYS

FORMATS: dict[str, Callable[[Path, ImportOptions], Imported]] = {
    "promptfoo": import_promptfoo,
    "openai-evals": import_openai_evals,
    "inspect": import_inspect,
    "jsonl": import_jsonl,
    "csv": import_jsonl,
    "hf": import_hf,
}

__all__ = [
    "FORMATS",
    "PARTIAL_TAG",
    "ROW_GRADERS",
    "ImportOptions",
    "Imported",
    "SourceError",
    "dump_scenarios",
    "import_source",
    "write_atomic",
]


def import_source(kind: str, source: Path, options: ImportOptions) -> Imported:
    """The scenarios of ``source`` read as format ``kind``; `SourceError` for input it cannot use."""
    if kind not in FORMATS:
        raise SourceError(f"unknown format {kind!r}; formats: {', '.join(FORMATS)}")
    if not source.exists():
        raise SourceError(f"{source}: no such file or folder")
    imported = FORMATS[kind](source, options)
    kept = []
    for scenario in imported.scenarios:
        found = _placeholder(scenario)
        if found:
            imported.left_out.append(f"{scenario['id']}: its text holds {found}, which scenario files read as a var")
        else:
            kept.append(scenario)
    imported.scenarios = kept
    if not kept:
        why = "; ".join(imported.left_out[:3]) or "the source holds no tests"
        raise SourceError(f"{source}: nothing could be imported as a {kind} source: {why}")
    return imported


def _placeholder(value: Any, key: str = "") -> str | None:
    """The first ``{{name}}`` in a scenario's templated text (metadata aside)."""
    if key in UNTEMPLATED_KEYS:
        return None
    if isinstance(value, str):
        match = PLACEHOLDER.search(value)
        return match.group(0) if match else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for child_key, child in items:
        found = _placeholder(child, str(child_key) if isinstance(value, dict) else key)
        if found:
            return found
    return None

"""Hugging Face ``datasets`` as scenarios (``hf``): a folder saved with ``save_to_disk``, or a data file.

The folder holds a ``Dataset`` or a ``DatasetDict`` (``--hf-split`` picks one of its splits; one split
is taken as it is); a file is parquet, arrow (a ``save_to_disk`` shard), JSON, JSONL or CSV. Both are
read with the ``datasets`` library (the ``hf`` extra), from local files only: never the hub. Records
are mapped as the row formats map them (``--input-field``, ``--expected-field``, ``--id-field``,
``--split-field``, ``--grader``).
"""

from __future__ import annotations

import importlib
import tempfile
from pathlib import Path
from typing import Any

from pytest_autoevolve.catalog.importers.base import Imported, ImportOptions, SourceError
from pytest_autoevolve.catalog.importers.rows import import_records

HF_FILES = {".parquet": "parquet", ".arrow": "arrow", ".json": "json", ".jsonl": "json", ".csv": "csv"}
"""The data files ``hf`` reads, and the ``datasets`` loader of each."""

SAVED_MARKS = ("dataset_dict.json", "state.json")
"""What ``save_to_disk`` writes at the top of a ``DatasetDict`` and of a ``Dataset`` folder."""


def import_hf(source: Path, options: ImportOptions) -> Imported:
    """The scenarios of a saved ``datasets`` folder or a parquet, arrow, JSON(L) or CSV file."""
    try:
        datasets = importlib.import_module("datasets")  # heavy: imported only when a dataset is read
    except ImportError:
        raise SourceError(
            f"{source}: reading Hugging Face datasets needs the datasets library: pip install 'pytest-autoevolve[hf]'"
        ) from None
    quiet = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()  # the command prints its own lines
    try:
        rows = _rows(datasets, source, options.hf_split)
    finally:
        if not quiet:
            datasets.enable_progress_bars()
    if not rows:
        raise SourceError(f"{source}: holds no records")
    return import_records(source, rows, options)


def _rows(datasets: Any, source: Path, split: str | None) -> list[dict[str, Any]]:
    """The records of the folder or file, as plain Python values."""
    if source.is_dir():
        if not any((source / mark).is_file() for mark in SAVED_MARKS):
            raise SourceError(
                f"{source}: not a Hugging Face datasets folder (no {' or '.join(SAVED_MARKS)}: "
                "one written by Dataset.save_to_disk or DatasetDict.save_to_disk)"
            )
        try:
            dataset = datasets.load_from_disk(str(source), keep_in_memory=True)
        except Exception as exc:  # a damaged folder: missing shards, an unreadable state
            raise SourceError(f"{source}: cannot be read as a datasets folder: {type(exc).__name__}: {exc}") from None
        if isinstance(dataset, datasets.DatasetDict):
            dataset = _split(source, dataset, split)
        elif split is not None:
            raise SourceError(f"{source}: holds one Dataset, not a DatasetDict; --hf-split {split} does not apply")
    else:
        loader = HF_FILES.get(source.suffix.lower())
        if loader is None:
            raise SourceError(
                f"{source}: an hf source is a datasets folder or a {', '.join(HF_FILES)} file, "
                f"not {source.suffix or 'a file without extension'}"
            )
        if split is not None:
            raise SourceError(f"{source}: a data file holds one split; --hf-split {split} applies to a DatasetDict")
        dataset = _file(datasets, source, loader)
    return [dict(row) for row in dataset]


def _split(source: Path, splits: Any, split: str | None) -> Any:
    """The split ``--hf-split`` names, or the only one."""
    names = list(splits)
    if split is None:
        if len(names) != 1:
            raise SourceError(f"{source}: a DatasetDict of splits {', '.join(names)}; pick one with --hf-split")
        split = names[0]
    if split not in names:
        raise SourceError(f"{source}: no split {split!r} (splits: {', '.join(names)})")
    return splits[split]


def _file(datasets: Any, source: Path, loader: str) -> Any:
    """A data file read into memory; the cache ``datasets`` builds on the way is a temporary folder."""
    try:
        if loader == "arrow":
            return datasets.Dataset.from_file(str(source), in_memory=True)
        read = {"parquet": datasets.Dataset.from_parquet, "json": datasets.Dataset.from_json}.get(
            loader, datasets.Dataset.from_csv
        )
        with tempfile.TemporaryDirectory(prefix="autoevolve-hf-") as cache:
            return read(str(source), cache_dir=cache, keep_in_memory=True)
    except Exception as exc:  # the library's own errors: a malformed file, a schema it cannot infer
        raise SourceError(f"{source}: cannot be read as a {loader} dataset: {type(exc).__name__}: {exc}") from None

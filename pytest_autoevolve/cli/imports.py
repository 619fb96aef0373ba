"""``autoevolve import FORMAT SOURCE``: another tool's eval suite or a dataset file as a scenario file."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path
from typing import Any

from pytest_autoevolve.errors import CommandError

EXAMPLE = "autoevolve import promptfoo promptfooconfig.yaml -o scenarios/support.yaml"

FORMAT_HELP = """\
formats:
  promptfoo     a promptfooconfig.yaml: one scenario per prompt x test; vars, defaultTest and
                file:// tests (CSV with __expected columns, JSONL, JSON, YAML); assertions mapped to
                graders with promptfoo's semantics, the rest listed and the scenario tagged partial_import
  openai-evals  an evals registry YAML (Match, Includes, FuzzyMatch with their samples_jsonl), a
                samples.jsonl (Match), or an Evals API eval JSON (--items for its items; a python
                criterion's source is written beside the scenario file)
  inspect       an Inspect AI dataset (JSON, JSONL, CSV: input, target, id, metadata), graded as its
                match scorer (--grader includes or exact for those scorers)
  jsonl, csv    records with --input-field, --expected-field, --id-field, --split-field, graded by --grader
  hf            a Hugging Face datasets folder (save_to_disk; --hf-split for a DatasetDict) or a parquet,
                arrow, JSON(L) or CSV file, read offline with `datasets` (pip install 'pytest-autoevolve[hf]');
                fields as for jsonl"""


def _import(args: argparse.Namespace, _extra: list[str]) -> int:
    """Import SOURCE, check the scenario file with the catalog loader, then write it."""
    from pytest_autoevolve.catalog.importers import ImportOptions, dump_scenarios, import_source, write_atomic

    source = Path(args.source)
    output = Path(args.output) if args.output else Path("scenarios") / f"{source.stem}.yaml"
    if output.exists() and not args.force:
        raise CommandError(f"{output} exists; give --force to replace it, or another -o")
    options = ImportOptions(
        id_prefix=output.stem if args.id_prefix is None else args.id_prefix,
        input_field=args.input_field,
        expected_field=args.expected_field,
        id_field=args.id_field,
        split_field=args.split_field,
        metadata_fields=tuple(args.metadata_field),
        grader=args.grader,
        location=args.location,
        items=Path(args.items) if args.items else None,
        data_dir=Path(args.data_dir) if args.data_dir else None,
        output_dir=output.parent,
        hf_split=args.hf_split,
    )
    imported = import_source(args.format, source, options)
    header = [f"imported by: autoevolve import {args.format} {source}", *_lines(imported)]
    judged = sum("llm_judge" in grader for s in imported.scenarios for grader in s["expect"])
    created = _write_files(imported.files, output.parent, args.force)
    try:
        write_atomic(output, dump_scenarios(imported, header), lambda path: _check(path, output, judged > 0))
    except BaseException:
        for path in created:  # nothing half-written: the graders' files go with the scenario file
            path.unlink(missing_ok=True)
        raise
    print(f"wrote {output}: {len(imported.scenarios)} scenarios from {source}")
    for name in imported.files:
        print(f"wrote {output.parent / name}: a grader's code the scenarios call")
    for line in _lines(imported):
        print(f"  {line}")
    if judged:
        print(f"  {judged} llm_judge graders: they need a judge model (`judge:` in autoevolve.yaml)")
    return 0


def _write_files(files: dict[str, str], folder: Path, force: bool) -> list[Path]:
    """Write the files the scenarios need beside the scenario file; the ones that were not there before."""
    from pytest_autoevolve.catalog.importers import write_atomic

    paths = {folder / name: text for name, text in files.items()}
    for path, text in paths.items():
        if path.exists() and not force and path.read_text(encoding="utf-8", errors="replace") != text:
            raise CommandError(f"{path} exists; give --force to replace it, or another -o")
    created = []
    try:
        for path, text in paths.items():
            if not path.exists():
                created.append(path)
            write_atomic(path, text)
    except BaseException:
        for path in created:
            path.unlink(missing_ok=True)
        raise
    return created


def _lines(imported: Any) -> list[str]:
    """What was mapped and what was not, one line each."""
    lines = [f"mapped: {what} ({n})" for what, n in sorted(imported.mapped.items())]
    lines += [f"not imported: {what} ({n})" for what, n in sorted(imported.dropped.items())]
    if imported.partial:
        lines.append(f"{imported.partial} scenarios tagged partial_import (run them apart with -m partial_import)")
    lines += [f"left out: {why}" for why in imported.left_out]
    return lines


def _check(path: Path, shown: Path, judged: bool) -> None:
    """Load the written file as ``pytest --autoevolve`` would; a judge stands in when none is configured."""
    import dataclasses

    from pytest_autoevolve.catalog.loader import load_file
    from pytest_autoevolve.errors import ScenarioError
    from pytest_autoevolve.run.registries import project_registries
    from pytest_autoevolve.settings import load_settings

    settings = load_settings(Path.cwd())
    if judged and settings.judge is None:
        settings = dataclasses.replace(settings, judge="tiny")  # only to check the file: the run needs a real judge
    registry = project_registries(Path.cwd(), settings).graders
    try:
        load_file(path, registry, str(shown), settings.limits)
    except ScenarioError as exc:
        raise CommandError(f"the imported scenarios do not load, so nothing was written: {exc}") from None


def add_commands(commands: Any) -> None:
    """Register ``import``."""
    command = commands.add_parser(
        "import",
        help="import promptfoo, OpenAI evals, Inspect or dataset files as a scenario file",
        description=textwrap.fill(
            "Write a scenario file from another tool's eval suite or a dataset file, and print what was mapped "
            "to which grader, what was not imported and why. The file is checked with the catalog loader "
            "before it is written.",
            94,
        ),
        epilog=f"{FORMAT_HELP}\n\nexample: {EXAMPLE}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command.add_argument("format", metavar="FORMAT", help="promptfoo, openai-evals, inspect, jsonl, csv or hf (below)")
    command.add_argument("source", metavar="SOURCE", help="the config, registry, eval or dataset file (or folder)")
    command.add_argument("-o", "--output", metavar="FILE", help="scenario file to write (default: scenarios/STEM.yaml)")
    command.add_argument("--force", action="store_true", help="replace the output file if it exists")
    command.add_argument("--id-prefix", metavar="TEXT", help="prefix of every scenario id (default: the output's stem)")
    command.add_argument("--input-field", metavar="NAME", help="record field of the input (rows; Evals API items)")
    command.add_argument("--expected-field", metavar="NAME", help="record field of the expected value(s)")
    command.add_argument("--id-field", metavar="NAME", help="record field of the scenario id (default: id)")
    command.add_argument(
        "--split-field", metavar="NAME", help="record field whose 'train' puts a row in the train split"
    )
    command.add_argument("--metadata-field", metavar="NAME", action="append", default=[], help="copy into metadata")
    command.add_argument(
        "--grader",
        metavar="NAME",
        help="how rows' expected values are graded: equals (rows' default), identical, contains, icontains, "
        "starts_with, match (inspect's default), includes, exact, fuzzy_match",
    )
    command.add_argument(
        "--location", choices=("begin", "end", "any", "exact"), default="end", help="for --grader match"
    )
    command.add_argument("--items", metavar="FILE", help="the items of an Evals API eval (JSONL)")
    command.add_argument("--data-dir", metavar="DIR", help="where an evals registry's samples_jsonl files lie")
    command.add_argument("--hf-split", metavar="NAME", help="the split of a DatasetDict folder to import (hf)")
    command.set_defaults(handler=_import)

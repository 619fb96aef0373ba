"""OpenAI evals as scenarios: the open-source ``evals`` registry and the Evals API's eval definitions.

- A registry YAML (``registry/evals/NAME.yaml``) names evals of the basic classes with their
  ``samples_jsonl`` (under ``registry/data/``); a ``samples.jsonl`` is read directly (as ``Match``).
  Samples hold ``input`` (chat messages or text) and ``ideal`` (a string or a list). ``Match`` passes
  when the output starts with an ideal answer, ``Includes`` when it contains one, ``FuzzyMatch`` when
  output and an ideal answer contain each other once normalised.
- An Evals API eval (its JSON: ``data_source_config`` and ``testing_criteria``) with items from
  ``--items FILE.jsonl`` or an embedded run's ``data_source``: ``string_check`` and ``text_similarity``
  become text graders, ``score_model`` and ``label_model`` an ``llm_judge``; ``{{item.x}}`` is filled in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pytest_autoevolve.catalog.importers.base import (
    Imported,
    ImportOptions,
    SourceError,
    chat_messages,
    grader_name,
    read_rows,
    read_structured,
    slug,
    unique_ids,
)
from pytest_autoevolve.catalog.importers.templates import TemplateError, lone_value, render, text_of

CLASSES = {"Match": "starts_with", "Includes": "contains_any", "FuzzyMatch": "fuzzy_match"}
"""The basic eval classes and the grader of each."""

OUTPUT_TEXT = "{{sample.output_text}}"

STRING_CHECKS = {"eq": "identical", "like": "contains", "ilike": "icontains"}

SIMILARITY = ("fuzzy_match", "bleu", "rouge_1", "rouge_2", "rouge_3", "rouge_4", "rouge_5", "rouge_l")


class _Skip(Exception):
    """A criterion or item that is not imported, and why."""


def import_openai_evals(source: Path, options: ImportOptions) -> Imported:
    """The scenarios of a registry YAML, a samples JSONL, or an Evals API eval JSON."""
    if source.suffix == ".jsonl":
        return _samples(source, read_rows(source), "Match", {}, options.id_prefix)
    document = read_structured(source)
    if isinstance(document, dict) and "testing_criteria" in document:
        return _api_eval(source, document, options)
    if not isinstance(document, dict) or not any(isinstance(v, dict) and "class" in v for v in document.values()):
        raise SourceError(
            f"{source}: not an OpenAI evals registry (no entry with 'class') nor an Evals API eval "
            "(no 'testing_criteria')"
        )
    imported = Imported()
    for name, spec in document.items():
        if not isinstance(spec, dict) or "class" not in spec:
            continue
        kind = str(spec["class"]).rpartition(":")[2]
        args = spec.get("args") or {}
        if kind not in CLASSES:
            imported.left_out.append(f"eval {name}: class {spec['class']} (only {', '.join(CLASSES)} are imported)")
            continue
        if args.get("num_few_shot"):
            imported.left_out.append(f"eval {name}: few-shot samples (num_few_shot) are not imported")
            continue
        path = _samples_path(source, str(args.get("samples_jsonl", "")), options)
        prefix = ".".join(filter(None, [options.id_prefix, slug(str(name))]))
        part = _samples(path, read_rows(path), kind, args, prefix)
        imported.scenarios += part.scenarios
        imported.mapped.update(part.mapped)
        imported.left_out += [f"eval {name}: {why}" for why in part.left_out]
    unique_ids(imported.scenarios)
    return imported


def _samples_path(source: Path, name: str, options: ImportOptions) -> Path:
    """Where a registry's ``samples_jsonl`` lies: under ``--data-dir``, ``registry/data/`` or beside the YAML."""
    if not name:
        raise SourceError(f"{source}: an eval's args name no samples_jsonl")
    roots = [options.data_dir] if options.data_dir else []
    roots += [source.parent.parent / "data", source.parent]
    for root in roots:
        if (root / name).is_file():
            return root / name
    tried = ", ".join(str(root / name) for root in roots)
    raise SourceError(f"{source}: samples_jsonl {name!r} not found (tried {tried}; give --data-dir)")


def _samples(path: Path, rows: list[dict[str, Any]], kind: str, args: dict[str, Any], prefix: str) -> Imported:
    imported = Imported()
    grader = "icontains_any" if kind == "Includes" and args.get("ignore_case") else CLASSES[kind]
    for number, row in enumerate(rows, start=1):
        if "input" not in row or "ideal" not in row:
            raise SourceError(f"{path}: sample {number} has no 'input' or no 'ideal' (fields: {', '.join(row)})")
        ideal = row["ideal"]
        ideals = [text_of(i) for i in ideal] if isinstance(ideal, list) else [text_of(ideal)]
        messages = chat_messages(row["input"])
        scenario: dict[str, Any] = {"id": ".".join(filter(None, [prefix, str(number)]))}
        scenario.update({"messages": messages} if messages else {"input": text_of(row["input"])})
        scenario["expect"] = [{grader: ideals}]
        scenario["metadata"] = {"source": "openai-evals", "class": kind}
        imported.mapped[f"{kind} -> {grader}"] += 1
        imported.add(scenario, [])
    return imported


def _api_eval(source: Path, document: dict[str, Any], options: ImportOptions) -> Imported:
    """An Evals API eval: each item one scenario, each testing criterion one grader."""
    run = document.get("data_source") or (document.get("run") or {}).get("data_source") or {}
    items = _items(source, document, run, options)
    template = (run.get("input_messages") or {}).get("template")
    if template is None and options.input_field is None:
        raise SourceError(
            f"{source}: no input_messages template (a run's data_source) to make the prompt; "
            "name the item field that is the prompt with --input-field"
        )
    imported = Imported()
    prefix = options.id_prefix or slug(str(document.get("name") or ""))
    for number, item in enumerate(items, start=1):
        context = {"item": item}
        try:
            prompt = _prompt(template, context, options.input_field)
        except (_Skip, TemplateError) as exc:
            imported.left_out.append(f"item {number}: {exc}")
            continue
        expect, skipped = [], []
        for criterion in document["testing_criteria"]:
            kind = str(criterion.get("type"))
            try:
                expect.append(_criterion(criterion, context))
                imported.mapped[f"{kind} -> {grader_name(expect[-1])}"] += 1
            except (_Skip, TemplateError) as exc:
                skipped.append(f"{criterion.get('name') or kind}: {exc}")
                imported.dropped[f"{kind}: {exc}"] += 1
        if not expect:
            imported.left_out.append(f"item {number}: none of its criteria could be imported")
            continue
        scenario: dict[str, Any] = {"id": ".".join(filter(None, [prefix, str(item.get("id") or number)]))}
        scenario.update({"messages": prompt} if isinstance(prompt, list) else {"input": prompt})
        scenario["expect"] = expect
        scenario["metadata"] = {"source": "openai-evals-api", "item": item}
        imported.add(scenario, skipped)
    unique_ids(imported.scenarios)
    return imported


def _items(source: Path, document: dict[str, Any], run: dict[str, Any], options: ImportOptions) -> list[dict[str, Any]]:
    """The eval's items: from ``--items``, else the run's inline ``file_content``."""
    if options.items is not None:
        rows = read_rows(options.items)
    else:
        content = (run.get("source") or {}).get("content") or document.get("items")
        if not content:
            raise SourceError(f"{source}: the eval carries no items; give them with --items FILE.jsonl")
        rows = content
    return [row["item"] if isinstance(row.get("item"), dict) else row for row in rows]


def _prompt(template: Any, context: dict[str, Any], input_field: str | None) -> str | list[dict[str, str]]:
    if template is None:
        value = context["item"].get(str(input_field))
        if value is None:
            raise _Skip(f"no field {input_field!r}")
        return chat_messages(value) or text_of(value)
    if isinstance(template, str):
        return render(template, context)
    messages = chat_messages(template)
    if messages is None:
        raise _Skip("its input_messages template is not a list of messages")
    return [{"role": m["role"], "content": render(m["content"], context)} for m in messages]


def _criterion(criterion: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """The grader entry for one testing criterion."""
    kind = criterion.get("type")
    if kind in ("string_check", "text_similarity"):
        if "".join(str(criterion.get("input", "")).split()) != OUTPUT_TEXT:
            raise _Skip(f"it grades {criterion.get('input')!r}, not the output text")
        reference = text_of(lone_value(str(criterion.get("reference", "")), context))
        if kind == "string_check":
            operation = criterion.get("operation")
            if operation == "ne":
                return {"not": {"identical": reference}}
            if operation not in STRING_CHECKS:
                raise _Skip(f"operation {operation!r}")
            return {STRING_CHECKS[str(operation)]: reference}
        metric = criterion.get("evaluation_metric")
        if metric not in SIMILARITY:
            raise _Skip(f"evaluation_metric {metric!r} (imported: {', '.join(SIMILARITY)})")
        return {"text_similarity": {"reference": reference, "metric": metric, "threshold": criterion["pass_threshold"]}}
    if kind in ("score_model", "label_model"):
        return {"llm_judge": _judge(criterion, context)}
    raise _Skip(f"a {kind} criterion has no grader here")


def _judge(criterion: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """A model grader's messages as a rubric; the score range or passing labels as the threshold."""
    shown = {**context, "sample": {"output_text": "(the response below)"}}
    lines = [render(m["content"], shown) for m in chat_messages(criterion.get("input")) or []]
    if criterion["type"] == "label_model":
        labels, passing = criterion.get("labels") or [], criterion.get("passing_labels") or []
        lines.append(
            f"Label the response with one of {json.dumps(labels)}; score 1 if the label is one of "
            f"{json.dumps(passing)}, else 0."
        )
        return {"rubric": "\n".join(lines)}
    low, high = (criterion.get("range") or [0, 1])[:2]
    threshold = criterion.get("pass_threshold", (low + high) / 2)
    lines.append(f"Score on the scale {low} to {high}, given as a fraction of it from 0 to 1.")
    return {"rubric": "\n".join(lines), "threshold": round((threshold - low) / (high - low), 6)}

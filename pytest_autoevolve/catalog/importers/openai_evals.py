"""OpenAI evals as scenarios: the open-source ``evals`` registry and the Evals API's eval definitions.

- A registry YAML (``registry/evals/NAME.yaml``) names evals of the basic classes with their
  ``samples_jsonl`` (under ``registry/data/``); a ``samples.jsonl`` is read directly (as ``Match``).
  Samples hold ``input`` (chat messages or text) and ``ideal`` (a string or a list). ``Match`` passes
  when the output starts with an ideal answer, ``Includes`` when it contains one, ``FuzzyMatch`` when
  output and an ideal answer contain each other once normalised.
- An Evals API eval (its JSON: ``data_source_config`` and ``testing_criteria``) with items from
  ``--items FILE.jsonl`` or an embedded run's ``data_source``: ``string_check`` and ``text_similarity``
  become text graders, ``score_model`` and ``label_model`` an ``llm_judge``; ``{{item.x}}`` is filled in.
  A ``python`` criterion's ``source`` is written to a module beside the scenario file, with a function
  that calls its ``grade(sample, item)`` (a ``python_assert`` at ``pass_threshold``, default 0.5); a
  ``multi`` criterion of ``string_check`` and ``text_similarity`` graders becomes a ``python_assert``
  that computes its ``calculate_output`` (arithmetic, ``min``, ``max``, ``average``, ... of their scores).
"""

from __future__ import annotations

import ast
import importlib.util
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

PYTHON_FUNCTION = "autoevolve_grade"
"""The function ``autoevolve import`` adds to a python criterion's module: the one its scenarios call."""

PYTHON_ADAPTER = f"""


# Added by `autoevolve import`: the python_assert function the scenarios call. It calls grade(sample, item)
# as the Evals API did, the item coming from the grader's config.
def {PYTHON_FUNCTION}(output, context):
    import json as _json

    try:
        output_json = _json.loads(output)
    except ValueError:
        output_json = None
    sample = {{"output_text": output, "output_json": output_json, "output_tools": [], "choices": []}}
    return grade(sample, context["config"]["item"])
"""

STRING_SCORES = {
    "eq": "output == {0}",
    "ne": "output != {0}",
    "like": "{0} in output",
    "ilike": "{0}.lower() in output.lower()",
}
"""A multi grader's string_check operations as Python (the reference in place of ``{0}``)."""

FORMULA_FUNCTIONS = {
    "min": "min",
    "max": "max",
    "abs": "abs",
    "floor": "math.floor",
    "ceil": "math.ceil",
    "sqrt": "math.sqrt",
    "exp": "math.exp",
    "log": "math.log",
}
"""The functions a multi grader's ``calculate_output`` may call, and their Python."""

AVERAGE = ("average", "mean")
"""The names of the mean of their arguments, which a formula may also call."""


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
    modules = _python_modules(document["testing_criteria"], prefix, imported)
    for number, item in enumerate(items, start=1):
        context = {"item": item}
        try:
            prompt = _prompt(template, context, options.input_field)
        except (_Skip, TemplateError) as exc:
            imported.left_out.append(f"item {number}: {exc}")
            continue
        expect, skipped = [], []
        for index, criterion in enumerate(document["testing_criteria"]):
            kind = str(criterion.get("type"))
            try:
                expect.append(_criterion(criterion, context, modules.get(index)))
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


def _criterion(criterion: dict[str, Any], context: dict[str, Any], module: str | _Skip | None) -> dict[str, Any]:
    """The grader entry for one testing criterion (``module``: a python criterion's file, or why it has none)."""
    kind = criterion.get("type")
    if kind == "python":
        if not isinstance(module, str):
            raise module or _Skip("it has no source")
        threshold = _threshold(criterion)
        entry = {
            "file": module,
            "function": PYTHON_FUNCTION,
            "threshold": threshold,
            "config": {"item": context["item"]},
        }
        return {"python_assert": entry}
    if kind == "multi":
        return {"python_assert": {"code": _multi_code(criterion, context), "threshold": _threshold(criterion)}}
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


def _threshold(criterion: dict[str, Any]) -> float:
    """A python or multi criterion's ``pass_threshold``: its score passes at or above it (default 0.5)."""
    threshold = criterion.get("pass_threshold", 0.5)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise _Skip(f"its pass_threshold {threshold!r} is not a number")
    return float(threshold)


def _python_modules(criteria: list[dict[str, Any]], prefix: str, imported: Imported) -> dict[int, str | _Skip]:
    """The module file of each python criterion, by index, added to ``imported.files``; or why it has none."""
    modules: dict[int, str | _Skip] = {}
    for index, criterion in enumerate(criteria):
        if criterion.get("type") != "python":
            continue
        stem = "_".join(
            slug(str(part)).replace("-", "_").replace(".", "_")
            for part in (prefix or "eval", criterion.get("name") or index)
        )
        name = f"{stem}_grader.py"
        if name in imported.files:
            name = f"{stem}_{index}_grader.py"
        try:
            imported.files[name] = _python_module(criterion)
            modules[index] = name
        except _Skip as exc:
            modules[index] = exc
    return modules


def _python_module(criterion: dict[str, Any]) -> str:
    """A python criterion's source and the function its scenarios call; `_Skip` when it cannot run here."""
    source = criterion.get("source")
    if not isinstance(source, str) or not source.strip():
        raise _Skip("it has no source")
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise _Skip(f"its source is not valid Python: {exc.msg} (line {exc.lineno})") from None
    if not any(isinstance(node, ast.FunctionDef) and node.name == "grade" for node in tree.body):
        raise _Skip("its source defines no grade(sample, item)")
    imports = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imports |= {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module and not node.level
    }
    missing = sorted(name for name in imports if not _installed(name))
    if missing:
        raise _Skip(f"its source imports {', '.join(missing)}, not installed here")
    return source.rstrip() + "\n" + PYTHON_ADAPTER


def _installed(module: str) -> bool:
    """Whether the top-level package of ``module`` can be imported here."""
    try:
        return importlib.util.find_spec(module.partition(".")[0]) is not None
    except (ImportError, ValueError):
        return False


def _multi_code(criterion: dict[str, Any], context: dict[str, Any]) -> str:
    """A multi criterion as python_assert code: each grader's score, then its ``calculate_output``."""
    graders = criterion.get("graders")
    if not isinstance(graders, dict) or not graders:
        raise _Skip("it has no graders")
    formula = str(criterion.get("calculate_output") or "")
    try:  # their ^ is a power, binding as Python's ** does
        tree = ast.parse(formula.strip().replace("^", "**"), mode="eval")
    except SyntaxError:
        raise _Skip(f"its calculate_output {formula!r} is not a formula") from None
    expression = ast.unparse(ast.fix_missing_locations(_formula(tree.body, set(graders), formula)))
    lines = ["import math", "", "from pytest_autoevolve.graders.text import similarity", "", "scores = {"]
    lines += [f"    {name!r}: {_sub_score(str(name), grader, context)}," for name, grader in graders.items()]
    return "\n".join([*lines, "}", f"return {expression}"])


def _sub_score(name: str, grader: Any, context: dict[str, Any]) -> str:
    """A multi's grader as a Python expression of ``output`` giving its score from 0 to 1."""
    kind = grader.get("type") if isinstance(grader, dict) else None
    if kind not in ("string_check", "text_similarity"):
        raise _Skip(f"its grader {name!r} is a {kind} grader (a multi's string_check and text_similarity are imported)")
    if "".join(str(grader.get("input", "")).split()) != OUTPUT_TEXT:
        raise _Skip(f"its grader {name!r} grades {grader.get('input')!r}, not the output text")
    reference = text_of(lone_value(str(grader.get("reference", "")), context))
    if kind == "string_check":
        operation = grader.get("operation")
        if operation not in STRING_SCORES:
            raise _Skip(f"its grader {name!r} has operation {operation!r}")
        return f"float({STRING_SCORES[str(operation)].format(repr(reference))})"
    metric = grader.get("evaluation_metric")
    if metric not in SIMILARITY:
        raise _Skip(f"its grader {name!r} has evaluation_metric {metric!r} (imported: {', '.join(SIMILARITY)})")
    return f"similarity({metric!r}, output, {reference!r})"


def _formula(node: ast.expr, names: set[str], formula: str) -> ast.expr:
    """``calculate_output`` as Python over ``scores``: numbers, grader names, + - * / ^ and a few functions."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return node
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise _Skip(f"its calculate_output {formula!r} names {node.id!r}, none of its graders")
        return ast.Subscript(ast.Name("scores", ast.Load()), ast.Constant(node.id), ast.Load())
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        return ast.UnaryOp(node.op, _formula(node.operand, names, formula))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub | ast.Mult | ast.Div | ast.Pow):
        return ast.BinOp(_formula(node.left, names, formula), node.op, _formula(node.right, names, formula))
    function = node.func.id if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) else ""
    if isinstance(node, ast.Call) and node.args and not node.keywords and function in (*FORMULA_FUNCTIONS, *AVERAGE):
        arguments = [_formula(argument, names, formula) for argument in node.args]
        if function in AVERAGE:
            total = arguments[0]
            for argument in arguments[1:]:
                total = ast.BinOp(total, ast.Add(), argument)
            return ast.BinOp(total, ast.Div(), ast.Constant(len(arguments)))
        module, _, attribute = FORMULA_FUNCTIONS[function].rpartition(".")
        call: ast.expr = (
            ast.Attribute(ast.Name(module, ast.Load()), attribute, ast.Load())
            if module
            else ast.Name(attribute, ast.Load())
        )
        return ast.Call(call, arguments, [])
    raise _Skip(
        f"its calculate_output {formula!r} uses {ast.unparse(node)!r} (imported: numbers, grader names, "
        f"+ - * / ^, {', '.join(FORMULA_FUNCTIONS)}, average)"
    )

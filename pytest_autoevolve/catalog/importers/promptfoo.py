"""promptfoo configs as scenarios: one scenario per prompt x test (x each value of a list var).

Each test's ``vars`` (``defaultTest.vars`` under them) fill the prompt's ``{{ }}`` tags and the assertion
values, as promptfoo renders them; ``defaultTest.assert`` comes before the test's own. Tests are inline or
``file://`` CSV (``__expected`` columns), JSONL, JSON or YAML files. Each assertion becomes the grader with
promptfoo's semantics (`ASSERTIONS`); others are listed as not imported and their scenario is tagged
``partial_import``. A test none of whose assertions can be imported is left out, and said so.
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pytest_autoevolve.catalog.importers.base import (
    CoreLoader,
    Imported,
    ImportOptions,
    SourceError,
    chat_messages,
    grader_name,
    read_rows,
    read_structured,
    read_text,
    slug,
    unique_ids,
)
from pytest_autoevolve.catalog.importers.templates import TemplateError, lone_value, render

SAME = {
    "contains": "contains",
    "icontains": "icontains",
    "contains-any": "contains_any",
    "contains-all": "contains_all",
    "icontains-any": "icontains_any",
    "icontains-all": "icontains_all",
    "starts-with": "starts_with",
    "regex": "regex",
}
"""Assertions whose value a grader of ours takes as it is."""

JUDGED = ("llm-rubric", "g-eval", "factuality", "model-graded-closedqa", "model-graded-factuality")

ASSERTIONS = (*SAME, "equals", "is-json", "contains-json", "levenshtein", "latency", "cost", "python", *JUDGED)
"""Every promptfoo assertion type this importer maps (each also in its ``not-`` form)."""

WHY_NOT = {
    "javascript": "runs JavaScript",
    "similar": "needs an embedding model",
    "webhook": "calls a web service",
    "ruby": "runs Ruby",
    "moderation": "calls a moderation API",
    "select-best": "compares outputs of several prompts",
    "max-score": "compares outputs of several prompts",
    "human": "asks a person",
    "assert-set": "a group with a score threshold",
}

CSV_TYPES = (
    "answer-relevance|bleu|classifier|contains-all|contains-any|contains-html|contains-json|contains-sql|contains-xml|"
    "contains|context-faithfulness|context-recall|context-relevance|cost|equals|factuality|finish-reason|g-eval|gleu|"
    "guardrails|icontains-all|icontains-any|icontains|is-html|is-json|is-refusal|is-sql|is-valid-openai-tools-call|"
    "is-xml|javascript|latency|levenshtein|llm-rubric|meteor|model-graded-closedqa|model-graded-factuality|moderation|"
    "perplexity-score|perplexity|python|regex|rouge-n|ruby|similar|starts-with|webhook|word-count"
)
CSV_ASSERTION = re.compile(rf"^(not-)?({CSV_TYPES})(?:\((\d+(?:\.\d+)?)\))?(?::([\s\S]*))?$")
"""promptfoo's reading of an ``__expected`` cell: ``[not-]TYPE[(THRESHOLD)][:VALUE]``."""

CSV_THRESHOLDED = ("cost", "latency", "levenshtein", "starts-with", "similar", "answer-relevance", "classifier")


@dataclass(frozen=True)
class Prompt:
    """One prompt of the config: its label and template."""

    label: str
    template: str


class _Skip(Exception):
    """An assertion that is not imported, and why."""


def import_promptfoo(source: Path, options: ImportOptions) -> Imported:
    """The scenarios of a promptfoo config file."""
    config = read_structured(source, CoreLoader)
    if not isinstance(config, dict) or not ({"prompts", "tests"} & set(config)):
        raise SourceError(f"{source}: not a promptfoo config: a mapping with 'prompts' and 'tests' was expected")
    base = source.parent
    prompts = _prompts(config.get("prompts"), base, source)
    default = _load_ref(config.get("defaultTest") or {}, base)
    if not isinstance(default, dict):
        raise SourceError(f"{source}: 'defaultTest' is a mapping, got {type(default).__name__}")
    tests = _tests(config.get("tests"), base, source)
    imported = Imported()
    builder = _Builder(options, base, imported)
    for number, test in enumerate(tests, start=1):
        if not isinstance(test, dict):
            raise SourceError(f"{source}: test {number} is a {type(test).__name__}, not a mapping")
        builder.test(_merge(default, test), number, prompts)
    if config.get("scenarios"):
        imported.left_out.append("'scenarios' (groups of config and tests): import each group's tests file instead")
    unique_ids(imported.scenarios)
    return imported


def _load_ref(value: Any, base: Path) -> Any:
    if isinstance(value, str) and value.startswith("file://"):
        return read_structured(base / value.removeprefix("file://"), CoreLoader)
    return value


def _files(reference: str, base: Path, what: str) -> list[Path]:
    """The files a ``file://`` reference names (globs expanded); `SourceError` for none."""
    pattern = reference.removeprefix("file://")
    if ":" in pattern and Path(pattern.rsplit(":", 1)[0]).suffix in (".py", ".js", ".ts"):
        raise SourceError(f"{base / pattern}: {what} made by a function ({pattern}) cannot be imported")
    if glob.has_magic(pattern):
        found = sorted(Path(p) for p in glob.glob(str(base / pattern)))
        if not found:
            raise SourceError(f"{base / pattern}: no file matches this {what} pattern")
        return found
    path = base / pattern
    if not path.is_file():
        raise SourceError(f"{path}: no such file ({what} {reference})")
    return [path]


def _prompts(raw: Any, base: Path, source: Path) -> list[Prompt]:
    """The config's prompts: strings, ``file://`` text (split at ``---`` lines) or chat JSON/YAML, or mappings."""
    if raw is None:
        raise SourceError(f"{source}: no 'prompts': a promptfoo config names at least one prompt")
    entries = list(raw.items()) if isinstance(raw, dict) else [(item, None) for item in _as_list(raw)]
    prompts: list[Prompt] = []
    for entry, label in entries:
        if isinstance(entry, dict):
            text = entry.get("raw") or entry.get("content")
            if not isinstance(text, str):
                raise SourceError(f"{source}: a prompt mapping needs 'raw' text; got keys {', '.join(entry)}")
            found = [(text, entry.get("label") or entry.get("id"))]
        elif isinstance(entry, str) and entry.startswith("file://"):
            found = [(text, label) for path in _files(entry, base, "prompt") for text in _prompt_file(path)]
        elif isinstance(entry, str):
            found = [(entry, label)]
        else:
            raise SourceError(f"{source}: a prompt is a string or a mapping, got {type(entry).__name__}")
        prompts += [Prompt(str(lab or f"p{len(prompts) + i + 1}"), text) for i, (text, lab) in enumerate(found)]
    return prompts


def _prompt_file(path: Path) -> list[str]:
    if path.suffix in (".py", ".js", ".ts", ".mjs", ".cjs"):
        raise SourceError(f"{path}: prompts made by a function cannot be imported")
    text = read_text(path, "prompt file")
    if path.suffix in (".json", ".yaml", ".yml"):
        messages = read_structured(path, CoreLoader)
        if chat_messages(messages) is None:
            raise SourceError(f"{path}: a JSON or YAML prompt is a list of {{role, content}} chat messages")
        return [json.dumps(messages, ensure_ascii=False)]
    return [part.strip() for part in re.split(r"^---$", text, flags=re.MULTILINE) if part.strip()]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _tests(raw: Any, base: Path, source: Path) -> list[Any]:
    """The config's tests: inline mappings and ``file://`` CSV, JSONL, JSON or YAML files."""
    if raw is None:
        return [{}]
    tests: list[Any] = []
    for entry in _as_list(raw):
        if isinstance(entry, str) and entry.startswith("file://"):
            for path in _files(entry, base, "tests"):
                tests += _test_file(path)
        elif isinstance(entry, str):
            raise SourceError(
                f"{source}: tests from {entry!r} cannot be imported (only file:// CSV, JSONL, JSON, YAML)"
            )
        else:
            tests.append(entry)
    return tests


def _test_file(path: Path) -> list[Any]:
    if path.suffix.lower() not in (".csv", ".jsonl", ".json", ".yaml", ".yml"):
        raise SourceError(f"{path}: tests are read from .csv, .jsonl, .json or .yaml files, not {path.suffix}")
    rows = read_rows(path, CoreLoader)
    return [_csv_test(row) for row in rows] if path.suffix.lower() == ".csv" else rows


def _csv_test(row: dict[str, Any]) -> dict[str, Any]:
    """The test promptfoo reads from a CSV row: ``__expected*`` cells are assertions, other columns vars."""
    test: dict[str, Any] = {"vars": {}, "assert": [], "metadata": {}}
    for key, value in ((k.strip(), v or "") for k, v in row.items() if k is not None):
        if key.startswith("__expected"):
            if value.strip():
                test["assert"].append(assertion_from_string(value.strip()))
        elif key == "__description":
            test["description"] = value
        elif key in ("__prefix", "__suffix"):
            test.setdefault("options", {})[key[2:]] = value
        elif key == "__threshold" and value.strip():
            test["threshold"] = float(value)
        elif key.startswith("__metadata:") and value.strip():
            test["metadata"][key.removeprefix("__metadata:")] = value
        elif not key.startswith("__"):
            test["vars"][key] = value
    return test


def assertion_from_string(text: str) -> dict[str, Any]:
    """An assertion written as a CSV cell, read as promptfoo reads it (a plain value means ``equals``)."""
    if text.startswith(("javascript:", "fn:", "eval:")) or (text.startswith("file://") and ".js" in text):
        return {"type": "javascript", "value": text.split(":", 1)[1].strip()}
    if text.startswith(("grade:", "llm-rubric:")):
        return {"type": "llm-rubric", "value": text.split(":", 1)[1]}
    if text.startswith("python:"):
        return {"type": "python", "value": text.removeprefix("python:").strip()}
    if text.startswith("file://") and (text.endswith(".py") or ".py:" in text):
        return {"type": "python", "value": text}
    match = CSV_ASSERTION.match(text)
    if match is None:
        return {"type": "equals", "value": text}
    negated, kind, threshold, value = match.groups()
    assertion: dict[str, Any] = {"type": f"{negated or ''}{kind}"}
    if kind in ("contains-any", "contains-all", "icontains-any", "icontains-all"):
        assertion["value"] = comma_values(value) if value else value
    elif kind in ("contains-json", "is-json"):
        assertion["value"] = value
    else:
        assertion["value"] = value.strip() if value else value
    if kind in CSV_THRESHOLDED:
        assertion["threshold"] = float(threshold) if threshold else 0.75
    if assertion["value"] is None:
        del assertion["value"]
    return assertion


def comma_values(text: str) -> list[str]:
    """How promptfoo splits ``a, "b, c", d`` into values (quotes keep commas)."""
    return [
        q[1:-1].replace('""', '"') if q.startswith('"') else q.strip()
        for q in re.findall(r'\s*("(?:[^"]|"")*"|[^,]*)\s*(?:,|$)', text)
        if q.strip()
    ]


def _merge(default: dict[str, Any], test: dict[str, Any]) -> dict[str, Any]:
    """The test with ``defaultTest`` under it: vars, options and metadata merged, default assertions first."""
    merged = {**default, **test}
    for key in ("vars", "options", "metadata"):
        merged[key] = {**(default.get(key) or {}), **(test.get(key) or {})}
    merged["assert"] = [*(default.get("assert") or []), *(test.get("assert") or [])]
    return merged


def _combinations(variables: dict[str, Any]) -> list[dict[str, Any]]:
    """How promptfoo expands vars: a var holding a list of strings gives one test per string."""
    rows: list[dict[str, Any]] = [{}]
    for name, value in variables.items():
        values = value if isinstance(value, list) and value and isinstance(value[0], str) else [value]
        rows = [{**row, name: v} for row in rows for v in values]
    return rows


class _Builder:
    """Turns merged tests into scenarios."""

    def __init__(self, options: ImportOptions, base: Path, imported: Imported) -> None:
        self.options, self.base, self.imported = options, base, imported

    def test(self, test: dict[str, Any], number: int, prompts: list[Prompt]) -> None:
        """Add the scenarios of one test (each prompt, each var combination)."""
        name = str(test.get("description") or f"test {number}")
        if (test.get("options") or {}).get("transform"):
            self.imported.left_out.append(f"{name}: options.transform rewrites the output with JavaScript first")
            return
        combos = _combinations(test.get("vars") or {})
        for index, variables in enumerate(combos, start=1):
            try:
                variables = {k: self._var(v) for k, v in variables.items()}
            except (SourceError, _Skip) as exc:
                self.imported.left_out.append(f"{name}: {exc}")
                continue
            for prompt in prompts:
                ident = [slug(str(test.get("description") or "")) or f"t{number}"]
                ident += [f"v{index}"] if len(combos) > 1 else []
                ident += [slug(prompt.label) or "p"] if len(prompts) > 1 else []
                self.scenario(test, variables, prompt, ".".join(filter(None, [self.options.id_prefix, *ident])), name)

    def _var(self, value: Any) -> Any:
        if isinstance(value, str) and value.startswith("file://"):
            path = self.base / value.removeprefix("file://")
            if path.suffix in (".py", ".js", ".ts"):
                raise _Skip(f"var {value} is computed by a script")
            return read_text(path, "var file")
        return value

    def scenario(self, test: dict[str, Any], variables: dict[str, Any], prompt: Prompt, ident: str, name: str) -> None:
        """One scenario: the rendered prompt and the converted assertions."""
        where = f"{name} (prompt {prompt.label})"
        options = test.get("options") or {}
        try:
            text = (
                str(options.get("prefix") or "") + render(prompt.template, variables) + str(options.get("suffix") or "")
            )
        except TemplateError as exc:
            self.imported.left_out.append(f"{where}: the prompt: {exc}")
            return
        expect: list[dict[str, Any]] = []
        skipped: list[str] = []
        for assertion in _flatten(test.get("assert") or []):
            kind = str(assertion.get("type", "?")) if isinstance(assertion, dict) else "?"
            try:
                grader = self.convert(assertion, variables, options)
            except _Skip as exc:
                skipped.append(f"{kind}: {exc}")
                self.imported.dropped[f"{kind}: {exc}"] += 1
                continue
            except TemplateError as exc:
                skipped.append(f"{kind}: {exc}")
                self.imported.dropped[f"{kind}: its value's template: {exc}"] += 1
                continue
            expect.append(grader)
            self.imported.mapped[f"{kind} -> {grader_name(grader)}"] += 1
        if not expect:
            why = "it has no assertion" if not skipped else f"none of its assertions could be imported ({skipped[0]})"
            self.imported.left_out.append(f"{where}: {why}")
            return
        if isinstance(test.get("threshold"), int | float):
            skipped.append(f"threshold {test['threshold']}: a weighted score threshold; every grader must pass here")
        scenario: dict[str, Any] = {"id": ident}
        if test.get("description"):
            scenario["description"] = str(test["description"])
        messages = _chat(text)
        scenario.update({"messages": messages} if messages else {"input": text})
        scenario["expect"] = expect
        scenario["metadata"] = {**test["metadata"], "source": "promptfoo", "prompt": prompt.label, "vars": variables}
        self.imported.add(scenario, skipped)

    def convert(self, assertion: Any, variables: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        """The grader entry for one assertion; `_Skip` with why when there is none."""
        if not isinstance(assertion, dict) or not isinstance(assertion.get("type"), str):
            raise _Skip("an assertion is a mapping with a 'type'")
        kind: str = assertion["type"]
        negated = kind.startswith("not-")
        base = kind.removeprefix("not-")
        if assertion.get("transform") or assertion.get("contextTransform"):
            raise _Skip("its transform rewrites the output with JavaScript first")
        if base not in ASSERTIONS:
            raise _Skip(WHY_NOT.get(base, "no grader has its semantics"))
        value = self._value(assertion.get("value"), variables, base)
        grader = self._grader(base, value, assertion, options)
        if not negated:
            return grader
        if base == "contains":
            return {"not_contains": grader["contains"]}
        if base in ("latency", "cost"):
            raise _Skip("a lower bound on latency or cost has no grader")
        return {"not": grader}

    def _value(self, value: Any, variables: dict[str, Any], kind: str) -> Any:
        """The assertion value as promptfoo renders it: vars filled in, ``file://`` read."""
        if kind == "python" and isinstance(value, str) and value.startswith("file://"):
            return value
        if isinstance(value, str) and value.startswith("file://"):
            path = self.base / value.removeprefix("file://")
            if path.suffix in (".py", ".js", ".ts"):
                raise _Skip("its value is computed by a script")
            return read_structured(path, CoreLoader) if path.suffix in (".json", ".yaml", ".yml") else read_text(path)
        if isinstance(value, str):
            return lone_value(value, variables) if kind == "equals" else render(value, variables)
        if isinstance(value, list):
            return [render(v, variables) if isinstance(v, str) else v for v in value]
        return value

    def _grader(self, kind: str, value: Any, assertion: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        threshold = assertion.get("threshold")
        if kind in SAME:
            if value in (None, "", []):
                raise _Skip("it has no value")
            if kind.endswith(("-any", "-all")) and isinstance(value, str):
                value = comma_values(value)
            return {SAME[kind]: [str(v) for v in value] if isinstance(value, list) else str(value)}
        if kind == "equals":
            return (
                {"json_equals": value}
                if isinstance(value, dict | list)
                else {"identical": "" if value is None else str(value)}
            )
        if kind in ("is-json", "contains-json"):
            schema = yaml.load(value, Loader=CoreLoader) if isinstance(value, str) else value
            if kind == "is-json":
                return {"json_schema": schema} if schema else {"is_json": True}
            return {"contains_json": schema or True}
        if kind == "levenshtein":
            return {"levenshtein": {"text": str(value), "max_distance": 5 if threshold is None else threshold}}
        if kind in ("latency", "cost"):
            if not isinstance(threshold, int | float):
                raise _Skip("it has no threshold")
            return {"max_latency_s": threshold / 1000} if kind == "latency" else {"max_cost": threshold}
        if kind == "python":
            return {"python_assert": self._python(value, threshold)}
        return {"llm_judge": self._judge(kind, value, threshold, assertion, options)}

    def _python(self, value: Any, threshold: Any) -> Any:
        if not isinstance(value, str):
            raise _Skip("its value is not Python code or a file:// reference")
        entry: dict[str, Any] = {}
        if value.startswith("file://"):
            reference = value.removeprefix("file://")
            file, _, function = reference.partition(":")
            path = self.base / file
            if not path.is_file():
                raise SourceError(f"{path}: no such file (python assertion {value})")
            entry["file"] = os.path.relpath(path.resolve(), self.options.output_dir.resolve())
            if function:
                entry["function"] = function
        else:
            entry["code"] = value
        if isinstance(threshold, int | float):
            entry["threshold"] = threshold
        return entry if len(entry) > 1 or "code" not in entry else entry["code"]

    def _judge(
        self, kind: str, value: Any, threshold: Any, assertion: dict[str, Any], options: dict[str, Any]
    ) -> dict[str, Any]:
        text = json.dumps(value) if isinstance(value, dict | list) else str(value or "")
        rubric = {
            "llm-rubric": text,
            "g-eval": f"Evaluate the response against these criteria: {text}",
            "factuality": f"The response is factually consistent with this reference answer: {text}",
            "model-graded-factuality": f"The response is factually consistent with this reference answer: {text}",
            "model-graded-closedqa": f"The response meets this criterion: {text}",
        }[kind]
        judge: dict[str, Any] = {"rubric": rubric}
        if isinstance(threshold, int | float):
            judge["threshold"] = threshold
        elif kind == "g-eval":
            judge["threshold"] = 0.7
        provider = assertion.get("provider") or options.get("provider")
        if isinstance(provider, str) and provider.startswith("openai:"):
            judge["model"] = "openai:" + provider.removeprefix("openai:").removeprefix("chat:")
        return judge


def _flatten(assertions: list[Any]) -> Iterator[Any]:
    """The assertions, ``assert-set`` groups without a threshold opened (every member must pass, as here)."""
    for assertion in assertions:
        if isinstance(assertion, dict) and assertion.get("type") == "assert-set" and assertion.get("threshold") is None:
            yield from _flatten(assertion.get("assert") or [])
        else:
            yield assertion


def _chat(text: str) -> list[dict[str, str]] | None:
    """A prompt that is a JSON list of chat messages, as messages."""
    if not text.lstrip().startswith("["):
        return None
    try:
        return chat_messages(json.loads(text))
    except json.JSONDecodeError:
        return None

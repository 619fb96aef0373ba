"""The built-in graders: text, regex, JSON Schema, python callables, tool calls and limits."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_autoevolve.aio import call_within, resolve
from pytest_autoevolve.errors import GradingError
from pytest_autoevolve.graders.critic import step_critic
from pytest_autoevolve.graders.judge import Judge, llm_judge
from pytest_autoevolve.graders.registry import GraderFactory, GraderRegistry
from pytest_autoevolve.graders.text import (
    contains_all,
    contains_any,
    fuzzy_match,
    icontains,
    icontains_all,
    icontains_any,
    identical,
    levenshtein,
    match,
    normalized_equals,
    starts_with,
    text_similarity,
)
from pytest_autoevolve.graders.tools import tool_called, tool_not_called, tool_sequence
from pytest_autoevolve.imports import import_object
from pytest_autoevolve.records import Check, Grade, written_text

if TYPE_CHECKING:
    from pytest_autoevolve.records import Scenario, Trajectory


GRADER_TIMEOUT_S = 60.0
"""How long a ``python:`` grader may take before the trial is an error (it is left running, unread)."""

REGEX_TIMEOUT_S = 2.0
"""How long one ``regex`` match may run before the trial is an error."""


def _text(value: Any, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"'{name}' takes a string, got {type(value).__name__} {value!r}")
    return written_text(value)


def _verdict(name: str, passed: bool, reason: str) -> Grade:
    return Grade(name, passed, 1.0 if passed else 0.0, reason)


def equals(value: Any, _: Path) -> Check:
    """Output equals the value, both whitespace-trimmed (also what `expected:` means)."""
    want = _text(value, "equals").strip()

    def check(output: str, _t: Trajectory, _s: Scenario) -> Grade:
        got = output.strip()
        if got == want:
            return _verdict("equals", True, f"output equals {want!r}")
        return _verdict("equals", False, f"expected {want!r}, got {got!r}")

    return check


def contains(value: Any, _: Path) -> Check:
    """Output contains the substring (case-sensitive)."""
    needle = _text(value, "contains")

    def check(output: str, _t: Trajectory, _s: Scenario) -> Grade:
        found = needle in output
        return _verdict("contains", found, f"{needle!r} {'found' if found else 'not found'} in output")

    return check


def not_contains(value: Any, _: Path) -> Check:
    """Output does not contain the substring (case-sensitive)."""
    needle = _text(value, "not_contains")

    def check(output: str, _t: Trajectory, _s: Scenario) -> Grade:
        found = needle in output
        return _verdict("not_contains", not found, f"{needle!r} {'found' if found else 'not found'} in output")

    return check


def regex(value: Any, _: Path) -> Check:
    """The regular expression matches somewhere in the output (``re.search`` semantics).

    A match that runs past ``REGEX_TIMEOUT_S`` (catastrophic backtracking, ``^(a+)+$``) is a
    `GradingError`: the trial is an error, and the run goes on.
    """
    import regex as engine  # the `re` syntax, with a time limit on a match

    pattern = _text(value, "regex")
    try:
        compiled = engine.compile(pattern, flags=engine.VERSION0)
    except engine.error as exc:
        raise ValueError(f"'regex' is not a valid regular expression: {exc} in {pattern!r}") from None

    def check(output: str, _t: Trajectory, _s: Scenario) -> Grade:
        try:
            matched = compiled.search(output, timeout=REGEX_TIMEOUT_S) is not None
        except TimeoutError:
            raise GradingError(
                f"/{pattern}/ ran past {REGEX_TIMEOUT_S:g} s on a {len(output)}-character output"
            ) from None
        return _verdict("regex", matched, f"/{pattern}/ {'matched' if matched else 'did not match'}")

    return check


def json_schema(value: Any, _: Path) -> Check:
    """The output parses as JSON and validates against the schema; ``$ref`` stays inside the schema."""
    import jsonschema
    import referencing
    import referencing.exceptions

    if not isinstance(value, dict):
        raise ValueError(f"'json_schema' takes a JSON Schema mapping, got {type(value).__name__}")
    validator_class = jsonschema.validators.validator_for(value)
    try:
        validator_class.check_schema(value)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"'json_schema' is not a valid JSON Schema: {exc.message}") from None
    # an explicit registry, whose default retrieve refuses: no remote $ref is ever fetched
    validator = validator_class(value, registry=referencing.Registry())

    def check(output: str, _t: Trajectory, _s: Scenario) -> Grade:
        try:
            document = json.loads(output)
        except json.JSONDecodeError as exc:
            return _verdict("json_schema", False, f"output is not JSON: {exc}")
        try:
            errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
        except referencing.exceptions.Unresolvable as exc:
            raise GradingError(f"the schema's $ref {exc} is not inside it (remote schemas are not fetched)") from None
        if errors:
            where = "/".join(str(p) for p in errors[0].path) or "(root)"
            return _verdict("json_schema", False, f"schema violation at {where}: {errors[0].message}")
        return _verdict("json_schema", True, "output matches the schema")

    return check


def python(value: Any, folder: Path) -> Check:
    """A user callable ``(output, trajectory, scenario) -> bool | float | (bool|float, reason)``.

    Written ``python: pkg.module:function``, or as a mapping with ``function`` and
    ``threshold`` (a float result passes at or above it; default 0.5).
    """
    threshold = 0.5
    if isinstance(value, dict):
        unknown = set(value) - {"function", "threshold"}
        if unknown or "function" not in value:
            raise ValueError("'python' takes 'pkg.module:function' or a mapping with 'function' and 'threshold'")
        threshold = value.get("threshold", threshold)
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise ValueError(f"'python' threshold is a number, e.g. 0.8, got {threshold!r}")
        value = value["function"]
    ref = _text(value, "python")
    try:
        function = import_object(ref, [folder])
    except ImportError as exc:
        raise ValueError(f"'python' grader {ref!r} cannot be imported: {exc}") from None
    except Exception as exc:  # the module itself is broken: a SyntaxError, or it raised on import
        raise ValueError(f"'python' grader {ref!r} cannot be imported: {type(exc).__name__}: {exc}") from None
    if not callable(function):
        raise ValueError(f"'python' grader {ref!r} is not callable")

    def check(output: str, trajectory: Trajectory, scenario: Scenario) -> Grade:
        try:
            result = call_within(
                lambda: resolve(function(output, trajectory, scenario)), GRADER_TIMEOUT_S, f"grader {ref}"
            )
            return _interpret(ref, result, threshold)
        except TimeoutError as exc:  # a grader that never decides: the trial is an error
            raise GradingError(str(exc)) from None
        except Exception as exc:  # named after the function, so a report says which grader broke
            return Grade(f"python:{ref}", False, 0.0, f"grader raised {type(exc).__name__}: {exc}")

    return check


def _interpret(ref: str, result: Any, threshold: float) -> Grade:
    """Turn a python grader's return value into a `Grade`."""
    name = f"python:{ref}"
    reason = ""
    if isinstance(result, tuple) and len(result) == 2:
        result, reason = result[0], str(result[1])
    if getattr(result, "shape", None) == () and callable(getattr(result, "item", None)):
        result = result.item()  # a numpy scalar: numpy.bool_, numpy.float32
    if isinstance(result, bool):
        return Grade(name, result, 1.0 if result else 0.0, reason or ("passed" if result else "failed"))
    if isinstance(result, int | float):
        score = float(result)
        passed = score >= threshold
        return Grade(name, passed, score, reason or f"score {score:g} {'>=' if passed else '<'} {threshold:g}")
    raise TypeError(f"grader {ref} returned {result!r}; expected bool, float or (bool, reason)")


def _limit(name: str, value: Any, *, whole: bool) -> float:
    kind = "a whole number" if whole else "a number"
    if isinstance(value, bool) or not isinstance(value, int | float) or (whole and not isinstance(value, int)):
        raise ValueError(f"'{name}' takes {kind} of at least 0, got {type(value).__name__} {value!r}")
    if value < 0 or value != value:
        raise ValueError(f"'{name}' takes {kind} of at least 0, got {value!r}")
    return float(value)


def _ceiling(
    name: str, what: str, read: Callable[[Trajectory], float | None], missing: str, *, whole: bool
) -> GraderFactory:
    """A grader factory: the trajectory's ``what`` (read by ``read``) is at most the YAML value."""

    def factory(value: Any, _: Path) -> Check:
        limit = _limit(name, value, whole=whole)

        def check(_o: str, trajectory: Trajectory, _s: Scenario) -> Grade:
            got = read(trajectory)
            if got is None:
                return _verdict(name, False, f"no {what} recorded: {missing}")
            ok = got <= limit
            return _verdict(name, ok, f"{what} {got:g} {'<=' if ok else '>'} {limit:g}")

        return check

    factory.__doc__ = f"The trial's {what} is at most the value."
    return factory


max_turns = _ceiling("max_turns", "turns", lambda t: t.turns, "the model made no call", whole=True)

max_latency_s = _ceiling("max_latency_s", "latency (s)", lambda t: t.latency_s, "the trial did not run", whole=False)

max_tokens = _ceiling(
    "max_tokens", "total tokens", lambda t: t.total_tokens, "the model reported no token usage", whole=True
)

max_cost = _ceiling(
    "max_cost", "cost (USD)", lambda t: t.cost, "the model has no prices (set 'prices' on it)", whole=False
)


def is_json(value: Any, _: Path) -> Check:
    """The whole output parses as JSON (``is_json: true``; for a schema use ``json_schema``)."""
    if value is not True:
        raise ValueError(f"'is_json' takes true (with a schema, write json_schema: SCHEMA), got {value!r}")

    def check(output: str, _t: Trajectory, _s: Scenario) -> Grade:
        try:
            json.loads(output)
        except json.JSONDecodeError as exc:
            return _verdict("is_json", False, f"output is not JSON: {exc}")
        return _verdict("is_json", True, "output is JSON")

    return check


def json_objects(text: str, limit: int = 100_000) -> list[dict[str, Any]]:
    """The JSON objects written inside ``text``, as promptfoo's ``contains-json`` finds them.

    Each ``{`` opens a candidate that ends at its balancing ``}`` (or the text's end, closed for it); a
    candidate that parses as a mapping (JSON, or YAML's flow style) is taken and the scan goes on after it.
    """
    import yaml

    found: list[dict[str, Any]] = []
    start = text.find("{")
    while start != -1:
        depth, end = 0, len(text)
        for position in range(start, min(len(text), start + limit)):
            depth += (text[position] == "{") - (text[position] == "}")
            if depth == 0:
                end = position + 1
                break
        candidate = text[start:end] + "}" * max(depth, 0)
        try:
            parsed = json.loads(candidate)
        except json.JSONDecodeError:
            try:
                parsed = yaml.safe_load(candidate)
            except yaml.YAMLError:
                parsed = None
        if isinstance(parsed, dict):
            found.append(parsed)
            start = text.find("{", end)
        else:
            start = text.find("{", start + 1)
    return found


def contains_json(value: Any, folder: Path) -> Check:
    """The output holds a JSON object somewhere (``contains_json: true``) that validates against a schema, if given."""
    if value is not True and not isinstance(value, dict):
        raise ValueError(f"'contains_json' takes true or a JSON Schema mapping, got {value!r}")
    schema = json_schema(value, folder) if isinstance(value, dict) else None

    def check(output: str, trajectory: Trajectory, scenario: Scenario) -> Grade:
        objects = json_objects(output)
        if not objects:
            return _verdict("contains_json", False, "no JSON object in the output")
        if schema is None:
            return _verdict("contains_json", True, f"{len(objects)} JSON object(s) in the output")
        grades = [schema(json.dumps(o), trajectory, scenario) for o in objects]
        passed = next((g for g in grades if g.passed), grades[-1])
        return _verdict("contains_json", passed.passed, passed.reason)

    return check


def json_equals(value: Any, _: Path) -> Check:
    """The output parses as JSON equal to the value (promptfoo's ``equals`` with an object)."""

    def check(output: str, _t: Trajectory, _s: Scenario) -> Grade:
        try:
            got = json.loads(output)
        except json.JSONDecodeError as exc:
            return _verdict("json_equals", False, f"output is not JSON: {exc}")
        same = _strictly_equal(got, value)
        return _verdict(
            "json_equals", same, "output equals the JSON value" if same else f"expected {value!r}, got {got!r}"
        )

    return check


def _strictly_equal(a: Any, b: Any) -> bool:
    """JSON equality as JavaScript's deep strict equality has it: ``true`` is not ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_strictly_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_strictly_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and bool(a == b)


PYTHON_ASSERT_KEYS = ("file", "function", "code", "threshold", "config")


def python_assert(value: Any, folder: Path) -> Check:
    """A promptfoo-style Python assertion: ``fn(output, context)`` returning a bool, a score or a dict.

    Written as code (an expression, or a function body that returns: ``output.startswith('Paris')``) or
    ``{file: checks.py, function: get_assert, threshold: 0.5, config: {...}}`` with the file beside the
    scenario file. ``context`` holds ``prompt``, ``vars`` (the scenario's ``metadata.vars``), ``test`` and
    ``config``. A dict result reads ``pass``, ``score`` and ``reason``; a number passes above 0, or at
    ``threshold`` and above when one is given.
    """
    options = value if isinstance(value, dict) else {"code": value}
    unknown = sorted(set(map(str, options)) - set(PYTHON_ASSERT_KEYS))
    if unknown or ("file" in options) == ("code" in options):
        raise ValueError(
            f"'python_assert' takes code, or a mapping with 'file' or 'code' and optional function, "
            f"threshold, config; got {value!r}"
        )
    threshold = options.get("threshold")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, int | float)):
        raise ValueError(f"'python_assert' threshold is a number, got {threshold!r}")
    function = _assert_function(options, folder)
    name = f"python_assert:{options.get('file') or 'code'}"

    def check(output: str, trajectory: Trajectory, scenario: Scenario) -> Grade:
        context = {
            "prompt": scenario.input,
            "vars": dict(scenario.metadata.get("vars") or {}),
            "test": {"description": scenario.description, "vars": dict(scenario.metadata.get("vars") or {})},
            "config": dict(options.get("config") or {}),
        }
        try:
            result = call_within(lambda: resolve(function(output, context)), GRADER_TIMEOUT_S, name)
        except TimeoutError as exc:
            raise GradingError(str(exc)) from None
        except Exception as exc:
            return Grade(name, False, 0.0, f"assertion raised {type(exc).__name__}: {exc}")
        return _assert_grade(name, result, threshold)

    return check


def _assert_function(options: dict[str, Any], folder: Path) -> Callable[[str, dict[str, Any]], Any]:
    """The assertion's callable: a function of a file beside the scenario, or the code made a function."""
    if "code" in options:
        code = _text(options["code"], "python_assert").rstrip()
        body = code if "\n" in code else f"return {code}"
        source = "import json\n\ndef main(output, context):\n" + "\n".join(f"    {line}" for line in body.splitlines())
        namespace: dict[str, Any] = {}
        try:
            exec(compile(source, "<python_assert>", "exec"), namespace)  # the scenario file's own code
        except SyntaxError as exc:
            raise ValueError(f"'python_assert' code is not valid Python: {exc.msg} in {code!r}") from None
        return namespace["main"]  # type: ignore[no-any-return]
    import importlib.util

    path = folder / _text(options["file"], "python_assert")
    function_name = str(options.get("function") or "get_assert")
    spec = importlib.util.spec_from_file_location(f"_autoevolve_assert_{abs(hash(path))}", path)
    if not path.is_file() or spec is None or spec.loader is None:
        raise ValueError(f"'python_assert' file {path} does not exist")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ValueError(f"'python_assert' file {path} cannot be imported: {type(exc).__name__}: {exc}") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ValueError(f"'python_assert' file {path} has no function {function_name!r}")
    return function  # type: ignore[no-any-return]


def _assert_grade(name: str, result: Any, threshold: float | None) -> Grade:
    """How promptfoo reads a script's result: true/false, a number, or a {pass, score, reason} mapping."""
    if isinstance(result, str) and result.strip().startswith("{"):
        result = json.loads(result)
    if isinstance(result, str) and result.strip().lower() in ("true", "false"):
        result = result.strip().lower() == "true"
    if isinstance(result, bool):
        return _verdict(name, result, "assertion returned " + str(result).lower())
    if isinstance(result, int | float):
        passed = result > 0 if threshold is None else result >= threshold
        return Grade(
            name, passed, float(result), f"score {result:g}" + ("" if threshold is None else f" vs {threshold:g}")
        )
    if isinstance(result, dict) and isinstance(result.get("pass", result.get("pass_")), bool):
        passed = bool(result.get("pass", result.get("pass_")))
        score = float(result.get("score", 1.0 if passed else 0.0))
        if threshold is not None and score < threshold:
            passed = False
        return Grade(name, passed, score, str(result.get("reason") or ("passed" if passed else "failed")))
    raise GradingError(f"{name} returned {result!r}; expected a bool, a number or a {{pass, score, reason}} mapping")


def negate(registry: GraderRegistry, value: Any, folder: Path) -> Check:
    """Passes when the grader it holds fails: ``not: {icontains: "sorry"}`` (promptfoo's ``not-`` forms)."""
    if not isinstance(value, dict) or len(value) != 1:
        raise ValueError(
            f"'not' takes one grader as a one-key mapping, e.g. not: {{icontains: 'sorry'}}; got {value!r}"
        )
    inner_name, inner_value = next(iter(value.items()))
    inner = registry.build(str(inner_name), inner_value, folder)

    def check(output: str, trajectory: Trajectory, scenario: Scenario) -> Grade:
        grade = inner(output, trajectory, scenario)
        return _verdict(f"not {grade.grader}", not grade.passed, f"not ({grade.reason})")

    return check


BUILTIN_GRADERS: dict[str, GraderFactory] = {
    "equals": equals,
    "contains": contains,
    "not_contains": not_contains,
    "regex": regex,
    "json_schema": json_schema,
    "python": python,
    "tool_called": tool_called,
    "tool_not_called": tool_not_called,
    "tool_sequence": tool_sequence,
    "max_turns": max_turns,
    "max_latency_s": max_latency_s,
    "max_tokens": max_tokens,
    "max_cost": max_cost,
    "icontains": icontains,
    "contains_any": contains_any,
    "contains_all": contains_all,
    "icontains_any": icontains_any,
    "icontains_all": icontains_all,
    "starts_with": starts_with,
    "identical": identical,
    "levenshtein": levenshtein,
    "match": match,
    "normalized_equals": normalized_equals,
    "fuzzy_match": fuzzy_match,
    "text_similarity": text_similarity,
    "is_json": is_json,
    "contains_json": contains_json,
    "json_equals": json_equals,
    "python_assert": python_assert,
}


def register_builtins(registry: GraderRegistry) -> None:
    """Add the built-in graders, `llm_judge` and `step_critic` asking the registry's judge among them."""
    for name, factory in BUILTIN_GRADERS.items():
        registry.register(name, factory)
    registry.register("llm_judge", functools.partial(llm_judge, registry.judge))
    registry.register("step_critic", functools.partial(step_critic, registry.judge))
    registry.register("not", functools.partial(negate, registry))


def default_registry(extra: Iterable[tuple[str, GraderFactory]] = (), judge: Judge | None = None) -> GraderRegistry:
    """A registry with the built-in graders and ``extra`` ones (no plugins: see `run.registries` for those)."""
    registry = GraderRegistry(judge)
    register_builtins(registry)
    for name, factory in extra:
        registry.register(name, factory)
    return registry

"""Other harnesses' result files as gate inputs: Inspect AI logs, promptfoo results, lm-eval samples, DeepEval runs.

Each reader returns a `JunitRun` as the junit reader does: one `ItemResult` per sample (Inspect: its
epochs are the trials), test (promptfoo: its repeats are the trials) or document (lm-eval), with the
run's task under ``run["task"]`` so a comparison of two different tasks is refused. ``read_results``
picks the reader from the file: ``.xml`` junit, ``.eval`` Inspect, ``.jsonl`` lm-eval, ``.json`` by
its content.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_autoevolve.gate.junit import JunitError, JunitRun, read_junit
from pytest_autoevolve.gate.results import ItemResult

INSPECT_VALUES = {"C": 1.0, "I": 0.0, "P": 0.5, "N": 0.0, "yes": 1.0, "no": 0.0, "true": 1.0, "false": 0.0}
"""Inspect AI's letter and word score values as numbers (its ``value_to_float``)."""


class HarnessError(JunitError):
    """A results file of another harness that cannot be read, or not as asked."""


@dataclass(frozen=True)
class ReadOptions:
    """How to read other harnesses' files: which provider is which role, which score, what passes."""

    incumbent: str | None = None
    """promptfoo: the provider label whose results are the incumbent's."""
    candidate: str | None = None
    """promptfoo: the provider label whose results are the candidate's."""
    scorer: str | None = None
    """Inspect: the scorer; lm-eval: the metric (``acc`` or ``exact_match,strict-match``); DeepEval: the metric."""
    pass_values: tuple[str, ...] = ()
    """Score values that pass (``C``), or one number: the threshold a score must reach (default 1)."""

    def label(self, role: str) -> str | None:
        """The provider label named for a role."""
        return self.incumbent if role == "incumbent" else self.candidate

    def passes(self, value: Any, where: str) -> tuple[bool, float]:
        """Whether a score value passes, and its number."""
        number = _as_number(value, where)
        if len(self.pass_values) == 1 and _is_number(self.pass_values[0]):
            return number >= float(self.pass_values[0]), number
        if self.pass_values:
            return str(value) in self.pass_values or (str(value).lower() in self.pass_values), number
        return number >= 1.0, number


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _as_number(value: Any, where: str) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        if value in INSPECT_VALUES or value.lower() in INSPECT_VALUES:
            return INSPECT_VALUES.get(value, INSPECT_VALUES.get(value.lower(), 0.0))
        if _is_number(value):
            return float(value)
    raise HarnessError(f"{where}: score value {value!r} is not a number, C/I/P/N or yes/no; choose with --pass-value")


def read_results(path: str | Path, options: ReadOptions, roles: Sequence[str]) -> JunitRun:
    """The items of one results file of any harness, as the given roles (one per file side)."""
    path = Path(path)
    if path.suffix == ".xml":
        return read_junit(path)
    if not path.is_file():
        raise HarnessError(f"no such results file: {path}")
    if path.suffix == ".eval":
        return _inspect(path, options, roles)
    if path.suffix == ".jsonl":
        return _lm_eval(path, options, roles)
    if path.suffix != ".json":
        raise HarnessError(
            f"{path}: not a results file autoevolve reads (junit .xml, Inspect .eval/.json, promptfoo .json, "
            "lm-eval samples .jsonl, DeepEval .json)"
        )
    data = _json(path)
    if isinstance(data, dict) and {"eval", "version"} <= set(data):
        return _inspect(path, options, roles)
    if isinstance(data, dict) and isinstance((data.get("results") or {}).get("results"), list):
        return _promptfoo(path, data, options, roles)
    if isinstance(data, dict) and ("testCases" in data or "test_cases" in data):
        return _deepeval(path, data, options, roles)
    raise HarnessError(
        f"{path}: a JSON file that is neither an Inspect log, promptfoo results (promptfoo eval -o results.json) "
        "nor a DeepEval test run"
    )


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise HarnessError(f"cannot read {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None


def _single_role(path: Path, roles: Sequence[str], what: str) -> str:
    if len(roles) != 1:
        raise HarnessError(
            f"{path}: {what} holds one model's run, so it gates nothing alone; compare two: "
            f"autoevolve compare BEFORE AFTER"
        )
    return roles[0]


def _item(
    scenario: str, role: str, model: str, path: Path, trials: Iterable[tuple[bool | None, float, float]]
) -> ItemResult:
    """An item from its trials: (passed, or None for an error; score; latency in seconds)."""
    trials = list(trials)
    return ItemResult(
        scenario=scenario,
        role=role,
        trials=len(trials),
        passes=sum(passed is True for passed, _, _ in trials),
        errors=sum(passed is None for passed, _, _ in trials),
        model=model,
        score=sum(score for _, score, _ in trials) / len(trials),
        latencies=[latency for _, _, latency in trials],
        file=str(path),
    )


def _grouped(rows: Iterable[tuple[str, Any]]) -> dict[str, list[Any]]:
    groups: dict[str, list[Any]] = {}
    for key, row in rows:
        groups.setdefault(key, []).append(row)
    return groups


# --------------------------------------------------------------------------- Inspect AI


def _inspect(path: Path, options: ReadOptions, roles: Sequence[str]) -> JunitRun:
    """An Inspect AI log read with its own reader: samples paired by id, epochs as trials."""
    role = _single_role(path, roles, "an Inspect log")
    try:
        from inspect_ai.log import read_eval_log
    except ImportError:
        raise HarnessError(
            f"{path}: reading Inspect logs needs inspect_ai: pip install 'pytest-autoevolve[inspect]'"
        ) from None
    try:
        log = read_eval_log(str(path))
    except Exception as exc:  # inspect_ai raises many kinds for a broken file
        raise HarnessError(f"{path}: not a readable Inspect log: {type(exc).__name__}: {exc}") from None
    samples = log.samples or []
    if not samples:
        raise HarnessError(f"{path}: the Inspect log holds no samples (was it written with --no-log-samples?)")
    scorer = _inspect_scorer(path, log, options)

    def trial(sample: Any) -> tuple[bool | None, float, float]:
        score = (sample.scores or {}).get(scorer)
        latency = float(sample.total_time or 0.0)
        if sample.error is not None or score is None:
            return None, 0.0, latency
        passed, number = options.passes(score.value, f"{path}: sample {sample.id} epoch {sample.epoch}")
        return passed, number, latency

    groups = _grouped((str(s.id), s) for s in samples)
    items = [_item(key, role, str(log.eval.model), path, map(trial, group)) for key, group in groups.items()]
    run = JunitRun(
        path=path, items=items, run={"task": str(log.eval.task), "scorer": scorer, "status": str(log.status)}
    )
    run.testcases = len(samples)
    return run


def _inspect_scorer(path: Path, log: Any, options: ReadOptions) -> str:
    names = [score.name for score in (log.results.scores if log.results else [])]
    if not names:
        names = sorted({name for sample in log.samples or [] for name in (sample.scores or {})})
    if options.scorer is not None:
        if options.scorer not in names:
            raise HarnessError(f"{path}: no scorer {options.scorer!r} in the log (scorers: {', '.join(names)})")
        return options.scorer
    if not names:
        raise HarnessError(f"{path}: the Inspect log's samples have no scores")
    return str(names[0])


# --------------------------------------------------------------------------- promptfoo


def _promptfoo(path: Path, data: dict[str, Any], options: ReadOptions, roles: Sequence[str]) -> JunitRun:
    """The results of promptfoo eval -o: each provider's results by test (description, else vars), repeats as trials."""
    results = [r for r in data["results"]["results"] if isinstance(r, dict)]
    by_label = _grouped((_provider(r), r) for r in results)
    several_prompts = len({_prompt_label(r) for r in results}) > 1
    items: list[ItemResult] = []
    for role in roles:
        label = _pick_label(path, by_label, options.label(role), role, len(roles))
        groups = _grouped((_test_key(r, several_prompts), r) for r in by_label[label])
        items += [_item(key, role, label, path, map(_promptfoo_trial, group)) for key, group in groups.items()]
    description = str((data.get("config") or {}).get("description") or "")
    run = JunitRun(path=path, items=items, run={"task": description} if description else {})
    run.testcases = len(results)
    return run


def _provider(result: dict[str, Any]) -> str:
    provider = result.get("provider") or {}
    if isinstance(provider, dict):
        return str(provider.get("label") or provider.get("id") or "?")
    return str(provider)


def _prompt_label(result: dict[str, Any]) -> str:
    prompt = result.get("prompt") or {}
    return str(prompt.get("label") or prompt.get("raw") or "") if isinstance(prompt, dict) else str(prompt)


def _test_key(result: dict[str, Any], several_prompts: bool) -> str:
    test = result.get("testCase") or {}
    key = str(test.get("description") or "") or json.dumps(result.get("vars") or test.get("vars") or {}, sort_keys=True)
    return f"{_prompt_label(result)} :: {key}" if several_prompts else key


def _pick_label(path: Path, by_label: dict[str, Any], wanted: str | None, role: str, sides: int) -> str:
    labels = list(by_label)
    if wanted is not None:
        if wanted not in by_label:
            raise HarnessError(f"{path}: no provider {wanted!r} (providers: {', '.join(labels)})")
        return wanted
    if len(labels) == 1 and sides == 1:
        return labels[0]
    if len(labels) == 1:
        raise HarnessError(
            f"{path}: the results hold one provider ({labels[0]}), so there is nothing to compare in it; "
            "compare two results files: autoevolve compare BEFORE.json AFTER.json"
        )
    raise HarnessError(
        f"{path}: the results hold {len(labels)} providers ({', '.join(labels)}); name the {role}'s with --{role} LABEL"
    )


def _promptfoo_trial(result: dict[str, Any]) -> tuple[bool | None, float, float]:
    latency = float(result.get("latencyMs") or 0) / 1000
    if result.get("failureReason") == 2:  # promptfoo's ResultFailureReason.ERROR: the call or an assertion broke
        return None, 0.0, latency
    return bool(result.get("success")), float(result.get("score") or 0.0), latency


# --------------------------------------------------------------------------- lm-evaluation-harness


LM_EVAL_NAME = re.compile(r"^samples_(.+)_\d{4}-\d{2}-\d{2}T[\d\-.]+$")


def _lm_eval(path: Path, options: ReadOptions, roles: Sequence[str]) -> JunitRun:
    """lm-evaluation-harness ``--log_samples`` JSONL: one document per line (per filter), by doc_id."""
    role = _single_role(path, roles, "an lm-eval samples file")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise HarnessError(f"{path}:{number}: not a JSON line: {exc.msg}") from None
    if not rows or not all(isinstance(r, dict) and "doc_id" in r for r in rows):
        raise HarnessError(f"{path}: not lm-eval samples (lines with doc_id, written by lm_eval --log_samples)")
    metric, _, wanted_filter = (options.scorer or "").partition(",")
    metric = metric or str((rows[0].get("metrics") or [""])[0])
    chosen = wanted_filter or str(rows[0].get("filter", ""))
    rows = [r for r in rows if str(r.get("filter", "")) == chosen]
    if not rows or metric not in rows[0]:
        raise HarnessError(f"{path}: no metric {metric!r} with filter {chosen!r} in the samples")

    def trial(row: dict[str, Any]) -> tuple[bool | None, float, float]:
        passed, number = options.passes(row[metric], f"{path}: doc {row['doc_id']}")
        return passed, number, 0.0

    match = LM_EVAL_NAME.match(path.stem)
    task = match.group(1) if match else path.stem
    groups = _grouped((str(r["doc_id"]), r) for r in rows)
    items = [_item(key, role, path.parent.name, path, map(trial, group)) for key, group in groups.items()]
    run = JunitRun(path=path, items=items, run={"task": task, "scorer": f"{metric},{chosen}"})
    run.testcases = len(rows)
    return run


# --------------------------------------------------------------------------- DeepEval


def _deepeval(path: Path, data: dict[str, Any], options: ReadOptions, roles: Sequence[str]) -> JunitRun:
    """A DeepEval test run (``.deepeval/.latest_test_run.json``): test cases by name, a metric's verdict or all."""
    role = _single_role(path, roles, "a DeepEval test run")
    cases = [c for c in data.get("testCases") or data.get("test_cases") or [] if isinstance(c, dict)]
    if not cases:
        raise HarnessError(f"{path}: the DeepEval test run holds no test cases")

    def trial(case: dict[str, Any]) -> tuple[bool | None, float, float]:
        metrics = [m for m in case.get("metricsData") or [] if options.scorer in (None, m.get("name"))]
        if options.scorer is not None and not metrics:
            raise HarnessError(f"{path}: test case {case.get('name')!r} has no metric {options.scorer!r}")
        if any(m.get("error") for m in metrics):
            return None, 0.0, float(case.get("runDuration") or 0.0)
        scores = [float(m.get("score") or 0.0) for m in metrics]
        passed = bool(case.get("success")) if options.scorer is None else all(m.get("success") for m in metrics)
        return passed, sum(scores) / len(scores) if scores else float(passed), float(case.get("runDuration") or 0.0)

    key: Callable[[dict[str, Any]], str] = lambda c: str(c.get("name") or c.get("input") or c.get("order"))  # noqa: E731
    groups = _grouped((key(c), c) for c in cases)
    items = [_item(name, role, path.stem, path, map(trial, group)) for name, group in groups.items()]
    run = JunitRun(
        path=path, items=items, run={"task": str(data.get("testFile") or "")} if data.get("testFile") else {}
    )
    run.testcases = len(cases)
    return run


def check_comparable(before: JunitRun, after: JunitRun) -> None:
    """Refuse to compare runs of two different tasks (when both files name theirs)."""
    first, second = before.run.get("task"), after.run.get("task")
    if first and second and first != second:
        raise HarnessError(
            f"{before.path} is a run of task {first!r} and {after.path} of task {second!r}: "
            "compare two runs of the same task"
        )

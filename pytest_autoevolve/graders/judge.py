"""The `llm_judge` grader: a rubric graded by a judge model (any provider) from the config.

Written ``llm_judge: "rubric"`` or as a mapping with ``rubric`` and optional ``model``
(a spec or a name under ``models:``; default: the ``judge`` setting) and ``threshold``
(default 0.5). The judge answers with JSON ``{"reasoning": ..., "score": 0..1}``; its
verdict and reasoning become the grade's reason in the trajectory. Judge calls are cached
in their own namespace, apart from the models under test.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pytest_autoevolve.errors import GradingError
from pytest_autoevolve.records import Check, Grade

if TYPE_CHECKING:
    from pytest_autoevolve.records import Scenario, Trajectory

JUDGE_KEYS = ("rubric", "model", "threshold")
VERDICT_WORD = re.compile(r"^[\s*_#>`\"'(\[]*(?:verdict\s*:\s*)?(PASS|FAIL)\b", re.IGNORECASE)
"""A verdict word that opens the reply (markdown emphasis and a ``Verdict:`` label allowed)."""
INSTRUCTIONS = (
    "You are a strict grader. Judge the response against the rubric only. Answer with one JSON object and "
    'nothing else: {"reasoning": "<one or two sentences>", "score": <a number from 0 to 1>}.'
)


class Judge(Protocol):
    """What the `llm_judge` grader needs of a judge: its default model, a name for a spec, and an answer."""

    @property
    def default(self) -> Any:
        """The configured ``judge`` spec, or `None`."""
        ...

    def describe(self, spec: Any) -> str:
        """The spec as grades name it (secrets removed); `ValueError` when it names no model."""
        ...

    def ask(self, spec: Any, messages: list[dict[str, Any]], seed: int) -> str:
        """The judge model's reply to ``messages``."""
        ...


def judge_messages(rubric: str, trajectory: Trajectory, output: str) -> list[dict[str, Any]]:
    """The conversation shown to the judge."""
    shown = "\n".join(f"[{m['role']}] {m.get('content') or ''}" for m in trajectory.messages if m["role"] != "system")
    prompt = f"Rubric:\n{rubric}\n\nConversation:\n{shown}\n\nResponse to grade:\n{output}"
    return [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": prompt}]


def parse_verdict(text: str) -> tuple[float, str]:
    """Score and reasoning from the judge's reply: a JSON object, or a leading PASS/FAIL word.

    A verdict word anywhere else is not read ("FAIL. It would need to name Paris to pass." is a
    FAIL); a reply with neither is a `GradingError`, so the trial is an error, never a grade.
    """
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if match:
        try:
            data = json.loads(match.group(0))
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("score"), int | float | bool):
            return min(1.0, max(0.0, float(data["score"]))), str(data.get("reasoning", "")).strip()
        if isinstance(data, dict) and isinstance(data.get("pass"), bool):
            return float(data["pass"]), str(data.get("reasoning", "")).strip()
    leading = VERDICT_WORD.match(text)
    if leading:
        return (1.0 if leading.group(1).upper() == "PASS" else 0.0), text.strip()
    raise GradingError(f"the judge's reply has no verdict (a JSON score or a leading PASS/FAIL): {text[:200]!r}")


def llm_judge(judge: Judge | None, value: Any, _folder: Path) -> Check:
    """Build the grader for one `llm_judge` entry, asking ``judge`` (registered with the run's judge)."""
    if isinstance(value, str):
        value = {"rubric": value}
    if not isinstance(value, dict) or not isinstance(value.get("rubric"), str):
        raise ValueError("'llm_judge' takes a rubric string or a mapping with 'rubric', 'model' and 'threshold'")
    unknown = sorted(set(value) - set(JUDGE_KEYS))
    if unknown:
        raise ValueError(f"unknown llm_judge key(s) {', '.join(unknown)}; allowed: {', '.join(JUDGE_KEYS)}")
    spec = value.get("model") or (judge.default if judge is not None else None)
    if not spec or judge is None:
        raise ValueError("'llm_judge' needs a judge model: set 'judge' in the config or 'model' in the grader")
    try:
        display = judge.describe(spec)
    except ValueError as exc:
        raise ValueError(f"'llm_judge' model: {exc}") from None
    threshold = float(value.get("threshold", 0.5))
    rubric = value["rubric"]

    def check(output: str, trajectory: Trajectory, _scenario: Scenario) -> Grade:
        reply = judge.ask(spec, judge_messages(rubric, trajectory, output), trajectory.seed)
        score, reasoning = parse_verdict(reply)
        passed = score >= threshold
        verdict = "PASS" if passed else "FAIL"
        return Grade("llm_judge", passed, score, f"judge {display}: {verdict} (score {score:g}): {reasoning}")

    return check

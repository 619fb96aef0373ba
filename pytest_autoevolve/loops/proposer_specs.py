"""Proposers by their spec on the command line: ``space:``, ``llm:``, ``fewshot:``, ``distill:``, ``python:``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_autoevolve.loops.distill import DistillProposer
from pytest_autoevolve.loops.fewshot import FewShotProposer, prompt_file
from pytest_autoevolve.loops.proposers import CallableProposer, EvolveError, LLMProposer, Proposer, SpaceProposer

PROPOSERS = "space:FILE, llm:SPEC, fewshot:K, distill:SPEC or python:module:function"


def make_proposer(
    text: str,
    root: Path,
    *,
    max_tokens: int | None = None,
    max_cost: float | None = None,
    max_heuristics: int = 3,
    artifacts: str = ".autoevolve",
    targets: Sequence[str] = (),
) -> Proposer:
    """A proposer from its spec; the model-backed ones (``llm``, ``distill``) with their token and cost budgets.

    With ``targets``, a proposer that writes into a prompt file (``fewshot``, ``distill``) checks at once
    that one of them is a prompt file.
    """
    kind, _, rest = text.partition(":")
    if kind in ("fewshot", "distill") and targets:
        prompt_file(targets)
    budgets: dict[str, Any] = {"max_tokens": max_tokens, "max_cost": max_cost}
    if kind == "space" and rest:
        path = Path(rest) if Path(rest).is_absolute() else root / rest
        if not path.is_file():
            raise EvolveError(f"no search space file {path}")
        return SpaceProposer(path)
    if kind == "llm" and rest:
        return LLMProposer(rest, root, **budgets)
    if kind == "fewshot" and rest:
        if not rest.isdigit():
            raise EvolveError(f"fewshot:K takes a number of demonstrations, got {text!r} (e.g. fewshot:4)")
        return FewShotProposer(int(rest), root)
    if kind == "distill" and rest:
        return DistillProposer(rest, root, limit=max_heuristics, artifacts=artifacts, **budgets)
    if kind == "python" and rest:
        return CallableProposer(rest, root)
    raise EvolveError(f"unknown proposer {text!r}; use {PROPOSERS}")

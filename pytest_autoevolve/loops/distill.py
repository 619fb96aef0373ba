"""The ``distill:SPEC`` proposer: a model distills short heuristics from the best and worst train trials.

Each proposal either adds at most N new heuristics, which the model writes after reading the best
run's passing and failing train trials (grader reasons included) and the heuristics already
tried, or, once heuristics are kept, takes one kept heuristic out again: a removal that scores no
worse than the best is kept, so a heuristic that does not help is pruned. The heuristics sit in
the prompt file between ``<heuristics source="autoevolve">`` and ``</heuristics>``. Every
heuristic's record (when it was added, the iterations it was used in, kept, reverted or pruned,
the lift it was kept with, and why) is kept in ``<artifacts>/heuristics.jsonl``.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pytest_autoevolve.errors import FormatError
from pytest_autoevolve.loops.fewshot import block_lines, managed_block, prompt_file
from pytest_autoevolve.loops.proposers import (
    Context,
    Edit,
    EvolveError,
    LLMProposer,
    ProposalError,
    evidence,
    passing_trials,
    trial_lines,
)
from pytest_autoevolve.report.format import p, pct, shorten

HEURISTICS_FILE = "heuristics.jsonl"

MAX_HEURISTIC = 300
"""Characters of one heuristic: a heuristic is a short rule, not a prompt."""

BEST_TRIALS = 6
"""Passing train trials shown to the model per proposal."""

HEURISTIC = re.compile(r"^[\s>*_#\d.)-]*heuristic[\s*_]*\d*[\s*_]*[:\u2013\u2014-][\s*_]*(?P<text>.+?)[\s*_]*$", re.I)

SYSTEM_PROMPT = """You distill winning strategies into short heuristics for an agent's system prompt.
You see the agent's best and worst trials on training tasks, with the graders' reasons, and the
heuristics it already has or has tried. Propose at most {n} NEW heuristics, each one short
imperative sentence that generalises (never name a specific input or answer). Answer with one line
per heuristic, `HEURISTIC: <the rule>`, and nothing else."""


HEURISTICS_FORMAT = 1
"""The version of a ``heuristics.jsonl`` record (its ``format_version``)."""


@dataclass
class Heuristic:
    """One heuristic's record: what it says, when it came, what became of it."""

    heuristic: str
    tag: str
    added: str
    iteration: int
    status: str = "proposed"
    """proposed, kept, pruned, the iteration's decision when it was not kept (reverted, rejected, ...), or
    abandoned (proposed by a loop that stopped before its iteration ended)."""
    iterations_used: int = 0
    """Scored iterations with the heuristic in the prompt: the one that kept it and each later one."""
    kept_lift: float | None = None
    kept_score: float | None = None
    kept_p_value: float | None = None
    pruned_iteration: int | None = None
    removal_tried: bool = False
    why: list[str] = field(default_factory=list)


class HeuristicLog:
    """``heuristics.jsonl``: every heuristic of every loop, rewritten whole after each change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records = self._read() if path.is_file() else []

    def _read(self) -> list[Heuristic]:
        """The records, keys of later versions skipped; one still ``proposed`` is from a loop that stopped."""
        known = {f.name for f in fields(Heuristic)}
        records = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                record = Heuristic(**{key: value for key, value in data.items() if key in known})
            except (ValueError, TypeError, AttributeError):
                raise FormatError(f"{self.path}:{number}: not a heuristic record; fix or remove that line") from None
            if record.status == "proposed":
                record.status = "abandoned"
            records.append(record)
        return records

    def save(self) -> None:
        """Write every record, one JSON object a line."""
        from pytest_autoevolve.files import write_text_atomic

        lines = (json.dumps({"format_version": HEURISTICS_FORMAT, **asdict(r)}, sort_keys=True) for r in self.records)
        write_text_atomic(self.path, "".join(f"{line}\n" for line in lines))

    def of(self, tag: str, texts: list[str]) -> list[Heuristic]:
        """The records of loop ``tag`` saying one of ``texts``."""
        return [r for r in self.records if r.tag == tag and r.heuristic in texts]

    def tried(self) -> list[Heuristic]:
        """The heuristics tried and not kept, or pruned: the model is told not to propose them again."""
        return [r for r in self.records if r.status not in ("kept", "proposed")]


def parse_heuristics(reply: str) -> list[str]:
    """The ``HEURISTIC:`` lines of a reply, each once; `ProposalError` when it has none."""
    found = [m["text"].strip() for line in reply.splitlines() if (m := HEURISTIC.match(line))]
    found = [shorten(" ".join(text.split()), MAX_HEURISTIC) for text in found if text.strip()]
    if not found:
        raise ProposalError("the reply has no heuristic: answer with lines 'HEURISTIC: <one short rule>'")
    return list(dict.fromkeys(found))


class DistillProposer(LLMProposer):
    """Adds distilled heuristics to the prompt file, and prunes kept ones whose removal does not hurt."""

    def __init__(
        self, spec: str, root: Path, *, limit: int = 3, artifacts: str = ".autoevolve", **budgets: Any
    ) -> None:
        if limit < 1:
            raise EvolveError(f"at most N heuristics a proposal: N must be >= 1, got {limit}")
        super().__init__(spec, root, **budgets)
        self.limit = limit
        self.log = HeuristicLog(root / artifacts / HEURISTICS_FILE)

    def propose(self, context: Context) -> Edit | None:
        """Prune the oldest kept heuristic not yet tried for removal, else ask the model for new ones."""
        path = prompt_file(context.targets)
        text = context.text(path)
        current = [line[2:] for line in block_lines(text, "heuristics") if line.startswith("- ")]
        kept = [r for r in self.log.records if r.status == "kept" and r.heuristic in current]
        untried = [r for r in kept if not r.removal_tried]
        if untried:
            record = untried[0]
            body = [f"- {h}" for h in current if h != record.heuristic]
            hypothesis = f"prune the heuristic {record.heuristic!r}: the prompt may do as well without it"
            point = {"action": "prune", "tag": record.tag, "heuristics": [record.heuristic], "in_prompt": current}
            return Edit(hypothesis, {path: managed_block(text, "heuristics", body)}, point, removal=True)
        reply = self.ask(SYSTEM_PROMPT.format(n=self.limit), self.evidence(context, current), len(context.history))
        tried = {r.heuristic for r in self.log.tried()}
        new = [h for h in parse_heuristics(reply) if h not in current and h not in tried][: self.limit]
        if not new:
            raise ProposalError("the reply proposes only heuristics already in the prompt or tried before")
        added, number = _now(), len(context.history) + 1
        self.log.records += [Heuristic(h, context.tag, added, number) for h in new]
        self.log.save()
        body = [f"- {h}" for h in current + new]
        hypothesis = "add the heuristic(s) " + "; ".join(repr(h) for h in new)
        point = {"action": "add", "tag": context.tag, "heuristics": new, "in_prompt": current + new}
        return Edit(hypothesis, {path: managed_block(text, "heuristics", body)}, point)

    def evidence(self, context: Context, current: list[str]) -> str:
        """The user message: the metric, the heuristics in the prompt and tried before, the best and worst trials."""
        scenarios = self.catalog.scenarios()
        parts = [
            f"Metric: the agent's pass rate on the {context.split} split; best so far: {pct(context.best_score)}.",
            "",
            "Heuristics in the prompt now:",
            *([f"- {h}" for h in current] if current else ["- none"]),
            "",
            "Heuristics tried before and not kept (do not propose them again):",
            *([f"- {r.heuristic} ({r.status})" for r in self.log.tried()] or ["- none"]),
            "",
        ]
        trials = self.catalog.train_trials(context.run)
        best = passing_trials(trials, {t.scenario_id for t in trials})[:BEST_TRIALS]
        if best:
            parts.append(f"Best train trials ({len(best)} passing scenarios):")
            for trial in best:
                parts += trial_lines(trial, scenarios[trial.scenario_id])
            parts.append("")
        parts += evidence(context, scenarios, trials)
        return "\n".join(parts)

    def outcome(self, edit: Edit, record: dict[str, Any]) -> None:
        """Record what became of the edit's heuristics, and count an iteration for every kept one it scored with."""
        point = edit.point if isinstance(edit.point, dict) else {}
        action, texts = point.get("action"), list(point.get("heuristics", []))
        decision, why = str(record.get("decision", "")), _why(record)
        for heuristic in self.log.of(str(point.get("tag", "")), texts):
            if action == "add" and heuristic.status == "proposed":
                heuristic.status = decision
                if decision == "kept":
                    first = record.get("stats", {}).get("first", {})
                    heuristic.kept_lift, heuristic.kept_p_value = first.get("lift"), first.get("p_value")
                    heuristic.kept_score = record.get("score")
            elif action == "prune" and heuristic.status == "kept":
                if decision == "kept":
                    heuristic.status, heuristic.pruned_iteration = "pruned", int(record["iteration"])
                else:
                    heuristic.removal_tried = True
            heuristic.why.append(f"iteration {record.get('iteration')} ({action}): {why}")
        if record.get("score") is not None:  # a scored iteration: each kept heuristic in its prompt was used
            scored = set(point.get("in_prompt", [])) - (set(texts) if action == "prune" else set())
            for heuristic in self.log.records:
                heuristic.iterations_used += heuristic.status == "kept" and heuristic.heuristic in scored
        self.log.save()


def _why(record: dict[str, Any]) -> str:
    """An iteration's decision in a few words: its scores against the best, or its error."""
    decision = record.get("decision", "")
    if record.get("error"):
        return f"{decision}: {shorten(str(record['error']), 200)}"
    first = record.get("stats", {}).get("first", {})
    scored = f"{pct(record.get('score'))} against the best {pct(record.get('baseline'))}"
    paired = f", lift {pct(first.get('lift'), signed=True)}, p {p(first.get('p_value'))}" if first else ""
    confirm = f", confirmed {pct(record['confirm_score'])}" if record.get("confirm_score") is not None else ""
    return f"{decision}: {scored}{paired}{confirm}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")

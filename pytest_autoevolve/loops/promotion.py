"""Promote and roll back: move the incumbent in the config, keeping a history.

The history, ``autoevolve-history.jsonl``, holds one JSON object a line: every promotion and
rollback, and every step of a canary slot (`pytest_autoevolve.loops.canary`). A canary promotion
(``canary-promote``) is a promotion: `rollback` undoes it as it undoes ``promote``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pytest_autoevolve.errors import FormatError
from pytest_autoevolve.gate.decide import decide
from pytest_autoevolve.gate.results import ItemResult
from pytest_autoevolve.gate.summary import GateSummary, RunSummary
from pytest_autoevolve.loops.project import FineTuneError, read_config, update_config

HISTORY_FILE = "autoevolve-history.jsonl"

PROMOTIONS = ("promote", "canary-promote")
"""The actions that move the incumbent forward; `rollback` undoes them, the newest first."""

ACTIONS = (*PROMOTIONS, "rollback", "canary-start", "canary-run", "canary-abort")
"""Every action of the history; each entry also names the incumbent before it (``previous``) and after it."""


def history(root: Path) -> list[dict[str, Any]]:
    """Every promotion, rollback and canary step, oldest first; a garbled line is a `FineTuneError` naming it."""
    path = root / HISTORY_FILE
    if not path.is_file():
        return []
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            entry = None
        if not isinstance(entry, dict) or entry.get("action") not in ACTIONS or "previous" not in entry:
            raise FineTuneError(f"{path}:{number}: not a promotion history entry; fix or remove that line")
        entries.append(entry)
    return entries


def append_history(root: Path, entry: dict[str, Any]) -> None:
    """Append one entry to the history (the file is made on first use)."""
    with (root / HISTORY_FILE).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")


def now() -> str:
    """The time of a history entry: UTC, to the second, ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def promote(
    root: Path, summary_path: Path | None, *, candidate: str | None = None, force: bool = False, reason: str = ""
) -> dict[str, Any]:
    """Make ``candidate`` (default: the configured one) the incumbent, after a passing gate of exactly that pair.

    The summary must be a whole ``summary.json`` of this format version, of a complete run (every
    selected scenario finished), whose verdict is pass, and whose numbers give pass again when the
    gate decides on them: a summary edited to say pass is refused (``force`` overrides, recorded).
    The promoted model becomes both incumbent and candidate; the entry's ``changes`` say how
    ``autoevolve.yaml`` changed.
    """
    config = read_config(root)
    incumbent = config.get("incumbent", "tiny")
    candidate = candidate or config.get("candidate")
    if not candidate or candidate == incumbent:
        raise FineTuneError("nothing to promote: autoevolve.yaml names no candidate different from the incumbent")
    gate = read_summary(summary_path).gate if summary_path is not None else None
    models = config.get("models")
    why = refusal(gate, incumbent, candidate, models if isinstance(models, Mapping) else None)
    passed = why is None
    if not passed and not force:
        raise FineTuneError(f"refusing to promote {candidate}: {why}; run the gate, or pass --force with a reason")
    digest = hashlib.sha256(summary_path.read_bytes()).hexdigest() if summary_path else None
    entry = {
        "action": "promote",
        "date": now(),
        "previous": incumbent,
        "incumbent": candidate,
        "gate_summary_sha256": digest,
        "verdict": gate.verdict if gate else None,
        "override": not passed,
        "reason": reason,
    }
    changes = update_config(root, {"incumbent": candidate, "candidate": candidate})
    append_history(root, entry)
    return {**entry, "changes": changes}


def read_summary(path: Path) -> RunSummary:
    """A whole ``summary.json`` to promote from; one that cannot be read is a `FineTuneError` saying why."""
    try:
        return RunSummary.load(path)
    except FormatError as exc:
        raise FineTuneError(f"cannot promote from it: {exc}") from None


def refusal(
    gate: GateSummary | None, incumbent: str, candidate: str, models: Mapping[str, Any] | None = None
) -> str | None:
    """Why ``gate`` does not allow promoting ``candidate`` over ``incumbent`` (named under ``models``); or None."""
    if gate is None:
        return "no gate summary given"
    if not _same(gate, incumbent, candidate, models or {}):
        return f"the summary gates {gate.candidate.spec} against {gate.incumbent.spec}, not this pair"
    if gate.verdict != "pass":
        return f"the gate said {gate.verdict!r} for this pair"
    if not gate.complete:
        return f"the run was not complete ({len(gate.missing)} scenario items did not finish)"
    again = decide(_items(gate), gate.thresholds).verdict
    if again != "pass":
        return f"the summary says pass but its numbers give {again!r} (was it edited?)"
    return None


def _items(gate: GateSummary) -> list[ItemResult]:
    """The per-scenario results a summary's rows hold, for the gate to decide on again."""
    return [
        ItemResult(row.id, role, side.trials, side.passes, side.errors, category=row.category, critical=row.critical)
        for row in gate.scenarios
        for role, side in (("incumbent", row.incumbent), ("candidate", row.candidate))
    ]


def _same(gate: GateSummary, incumbent: str, candidate: str, models: Mapping[str, Any]) -> bool:
    from pytest_autoevolve.providers.base import parse_spec

    def shown(spec: str) -> str:
        return parse_spec(spec, models).display

    return (gate.incumbent.spec, gate.candidate.spec) == (shown(incumbent), shown(candidate))


def rollback(root: Path) -> dict[str, Any]:
    """Restore the incumbent the last promotion (or canary promotion) replaced, and the candidate when it was that.

    Rollbacks walk back: the second undoes the promotion before the last, and so on.
    """
    in_effect: list[dict[str, Any]] = []  # a stack: each promotion pushed, each rollback pops the newest
    for entry in history(root):
        if entry["action"] in PROMOTIONS:
            in_effect.append(entry)
        elif entry["action"] == "rollback" and in_effect:
            in_effect.pop()
    if not in_effect:
        raise FineTuneError("nothing to roll back: no promotion is in effect")
    last = in_effect[-1]
    config = read_config(root)
    current = config.get("incumbent")
    entry = {"action": "rollback", "date": now(), "previous": current, "incumbent": last["previous"]}
    changes = {"incumbent": last["previous"]}
    if config.get("candidate") == current:
        changes["candidate"] = last["previous"]
    said = update_config(root, changes)
    append_history(root, entry)
    return {**entry, "changes": said}

"""Promote and roll back: move the incumbent in the config, keeping a history."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pytest_autoevolve.gate.summary import GateSummary
from pytest_autoevolve.loops.project import FineTuneError, read_config, write_config

HISTORY_FILE = "autoevolve-history.jsonl"


def history(root: Path) -> list[dict[str, Any]]:
    """Every promotion and rollback, oldest first."""
    path = root / HISTORY_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _append_history(root: Path, entry: dict[str, Any]) -> None:
    with (root / HISTORY_FILE).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def promote(root: Path, summary_path: Path | None, *, force: bool = False, reason: str = "") -> dict[str, Any]:
    """Make the configured candidate the incumbent, after a passing gate of exactly that pair (or ``force``).

    The gate's summary is read with its format version checked; an abbreviated summary, with
    no more than the verdict and the two specs, is accepted too (`GateSummary.load` ``partial``).
    """
    config = read_config(root)
    candidate, incumbent = config.get("candidate"), config.get("incumbent", "tiny")
    if not candidate or candidate == incumbent:
        raise FineTuneError("nothing to promote: autoevolve.yaml names no candidate different from the incumbent")
    gate = GateSummary.load(summary_path, partial=True) if summary_path is not None else None
    passed = gate is not None and gate.verdict == "pass" and _same(gate, incumbent, candidate)
    if not passed and not force:
        why = "no gate summary given" if gate is None else f"the gate said {gate.verdict!r} for this pair"
        raise FineTuneError(f"refusing to promote {candidate}: {why}; run the gate, or pass --force with a reason")
    digest = hashlib.sha256(summary_path.read_bytes()).hexdigest() if summary_path else None
    entry = {
        "action": "promote",
        "date": _now(),
        "previous": incumbent,
        "incumbent": candidate,
        "gate_summary_sha256": digest,
        "verdict": gate.verdict if gate else None,
        "override": not passed,
        "reason": reason,
    }
    config["incumbent"] = candidate
    config.pop("candidate", None)
    write_config(root, config)
    _append_history(root, entry)
    return entry


def _same(gate: GateSummary, incumbent: str, candidate: str) -> bool:
    from pytest_autoevolve.providers.base import parse_spec

    def shown(spec: str) -> str:
        return parse_spec(spec).display

    return (gate.incumbent.spec, gate.candidate.spec) == (shown(incumbent), shown(candidate))


def rollback(root: Path) -> dict[str, Any]:
    """Restore the incumbent the last promotion replaced."""
    promotions = [e for e in history(root) if e["action"] == "promote"]
    rollbacks = sum(e["action"] == "rollback" for e in history(root))
    if len(promotions) <= rollbacks:
        raise FineTuneError("nothing to roll back: no promotion is in effect")
    last = promotions[len(promotions) - rollbacks - 1]
    config = read_config(root)
    entry = {"action": "rollback", "date": _now(), "previous": config.get("incumbent"), "incumbent": last["previous"]}
    config["incumbent"] = last["previous"]
    write_config(root, config)
    _append_history(root, entry)
    return entry

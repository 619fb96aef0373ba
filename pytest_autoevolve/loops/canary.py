"""A canary slot: a model beside the incumbent that takes a seeded share of the scenarios until it is promoted.

``autoevolve canary start SPEC`` writes the slot as the top-level ``canary:`` key of
``autoevolve.yaml`` (comments kept); ``pytest --autoevolve --autoevolve-canary P`` runs it as the
candidate on a seeded share P of the scenarios and gates it against the incumbent on exactly
that traffic; ``canary promote`` makes it the incumbent after a passing, complete canary gate of
that pair; ``canary abort`` empties the slot. Every step is appended to the promotion history
(`pytest_autoevolve.loops.promotion`), and a canary promotion is undone by ``autoevolve rollback``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_autoevolve.loops.project import CONFIG_FILE, FineTuneError, read_config, update_config
from pytest_autoevolve.loops.promotion import append_history, history, now, read_summary, refusal

if TYPE_CHECKING:
    from pytest_autoevolve.gate.summary import RunSummary

CANARY_KEY = "canary"
"""The top-level key of ``autoevolve.yaml`` that holds the canary slot's spec."""


class CanaryRefused(FineTuneError):
    """A canary step the slots or the evidence do not allow; nothing changed (exit status 1)."""

    exit_status = 1


@dataclass(frozen=True)
class Slots:
    """The models of ``autoevolve.yaml``: the incumbent, the candidate, and the canary (None: no canary)."""

    incumbent: Any
    candidate: Any
    canary: Any
    models: Mapping[str, Any]
    """The ``models:`` names, to show and compare specs by."""

    @classmethod
    def read(cls, root: Path) -> Slots:
        """The slots as ``autoevolve.yaml`` holds them (the incumbent is ``tiny`` when none is set, as in a run)."""
        config = read_config(root)
        models = config.get("models")
        return cls(
            incumbent=config.get("incumbent", "tiny"),
            candidate=config.get("candidate"),
            canary=config.get(CANARY_KEY),
            models=models if isinstance(models, Mapping) else {},
        )

    def shown(self, spec: Any) -> str:
        """A spec as runs and summaries show it (``models:`` names resolved, secrets removed)."""
        from pytest_autoevolve.errors import ModelError
        from pytest_autoevolve.providers.base import parse_spec

        try:
            return parse_spec(spec, self.models).display
        except ModelError:
            return str(spec)


def start(root: Path, spec: Any = None, *, reason: str = "") -> dict[str, Any]:
    """Put ``spec`` (default: the configured candidate) in the canary slot; the history's ``canary-start`` entry.

    Refused (`CanaryRefused`) while a canary runs, or when ``spec`` is the incumbent. The entry's
    ``changes`` say how ``autoevolve.yaml`` changed.
    """
    slots = Slots.read(root)
    if slots.canary is not None:
        raise CanaryRefused(
            f"a canary is already running ({slots.shown(slots.canary)}): promote it (autoevolve canary promote) "
            "or abort it (autoevolve canary abort) first"
        )
    spec = spec or slots.candidate
    if not spec:
        raise FineTuneError(f"no canary to start: give a SPEC, or set a candidate in {CONFIG_FILE}")
    _check_spec(spec, slots)
    if spec == slots.incumbent or slots.shown(spec) == slots.shown(slots.incumbent):
        raise CanaryRefused(f"refusing to start a canary: {slots.shown(spec)} is the incumbent; name another model")
    entry = _entry("canary-start", slots.incumbent, slots.incumbent, spec, reason)
    changes = update_config(root, {CANARY_KEY: spec})
    append_history(root, entry)
    return {**entry, "changes": changes}


def promote(root: Path, summary_path: Path, *, reason: str = "") -> dict[str, Any]:
    """Make the canary the incumbent (and the candidate) and empty its slot; the ``canary-promote`` entry.

    Only on a whole ``summary.json`` of a canary run (``--autoevolve-canary``) that gated exactly this
    incumbent and canary, completely, with a pass that its numbers give again (`refusal`): anything
    else is `CanaryRefused` and nothing changes. The entry records the summary's sha256; ``autoevolve
    rollback`` undoes the promotion.
    """
    slots = Slots.read(root)
    if slots.canary is None:
        raise CanaryRefused("no canary is running: start one with autoevolve canary start SPEC")
    summary = read_summary(summary_path)
    why = canary_refusal(summary, slots) or traffic_refusal(root, summary)
    if why is not None:
        raise CanaryRefused(f"refusing to promote the canary {slots.shown(slots.canary)}: {why}")
    entry = _entry("canary-promote", slots.incumbent, slots.canary, slots.canary, reason)
    assert summary.canary is not None  # canary_refusal said so
    entry.update(
        gate_summary_sha256=hashlib.sha256(summary_path.read_bytes()).hexdigest(),
        verdict=summary.gate.verdict,
        share=summary.canary.share,
    )
    changes = update_config(root, {"incumbent": slots.canary, "candidate": slots.canary, CANARY_KEY: None})
    append_history(root, entry)
    return {**entry, "changes": changes}


def canary_refusal(summary: RunSummary, slots: Slots) -> str | None:
    """Why ``summary`` does not allow promoting the slots' canary over their incumbent; None when it does."""
    if summary.canary is None:
        return "the summary is not of a canary run (pytest --autoevolve --autoevolve-canary P)"
    if summary.canary.spec != summary.gate.candidate.spec:
        return f"its canary {summary.canary.spec} is not the candidate it gated (was it edited?)"
    return refusal(summary.gate, slots.incumbent, slots.canary, slots.models)


def traffic_refusal(root: Path, summary: RunSummary) -> str | None:
    """Why the canary's traffic was not the project's to judge by: another split or seed, or a filtered selection.

    A canary promoted on a seed tried until one passed, or on scenarios picked with ``-k``, would be
    promoted on traffic chosen after the fact; its run must route from the whole configured split
    with the configured seed.
    """
    from pytest_autoevolve.loops.project import project_catalog
    from pytest_autoevolve.settings import load_settings

    assert summary.canary is not None
    settings = load_settings(root)
    if summary.split != settings.split:
        return f"the canary ran on the {summary.split} split, not the configured {settings.split} split"
    if summary.seed != settings.seed:
        return f"its traffic was chosen with seed {summary.seed}, not the configured seed {settings.seed}"
    total = len(project_catalog(root).split(settings.split))
    if summary.canary.total != total:
        return (
            f"it routed a share of {summary.canary.total} scenarios, but the {settings.split} split has {total} "
            "(a run filtered with -k or -m, or an older catalog): run the canary on the whole split"
        )
    return None


def record_run(root: Path, summary_path: Path) -> dict[str, Any] | None:
    """Append a canary run's outcome to the history (``canary-run``); None when the run wrote no canary summary.

    Every run of the canary is on the audit trail, passing or not, so a promotion can be read
    beside the runs that came before it.
    """
    summary = read_summary(summary_path) if summary_path.is_file() else None
    if summary is None or summary.canary is None:
        return None
    slots = Slots.read(root)
    entry = _entry("canary-run", slots.incumbent, slots.incumbent, slots.canary, "")
    entry.update(
        run_id=summary.run_id,
        verdict=summary.gate.verdict,
        complete=summary.gate.complete,
        share=summary.canary.share,
        seed=summary.canary.seed,
        routed=summary.canary.routed,
        total=summary.canary.total,
        gate_summary_sha256=hashlib.sha256(summary_path.read_bytes()).hexdigest(),
    )
    append_history(root, entry)
    return entry


def abort(root: Path, *, reason: str = "") -> dict[str, Any]:
    """Empty the canary slot, the incumbent untouched; the ``canary-abort`` entry. `CanaryRefused` when none runs."""
    slots = Slots.read(root)
    if slots.canary is None:
        raise CanaryRefused("no canary is running: nothing to abort")
    entry = _entry("canary-abort", slots.incumbent, slots.incumbent, slots.canary, reason)
    changes = update_config(root, {CANARY_KEY: None})
    append_history(root, entry)
    return {**entry, "changes": changes}


def status(root: Path, last: int = 5) -> dict[str, Any]:
    """The slots (as runs show their specs) and the history's ``last`` entries, oldest first, with its length."""
    slots = Slots.read(root)
    entries = history(root)
    return {
        "incumbent": slots.shown(slots.incumbent),
        "candidate": None if slots.candidate is None else slots.shown(slots.candidate),
        "canary": None if slots.canary is None else slots.shown(slots.canary),
        "history": entries[-last:] if last > 0 else [],
        "history_entries": len(entries),
    }


def newest_summary(root: Path) -> Path | None:
    """The ``summary.json`` of the newest run (run ids sort by time) under the artifacts folder that wrote one."""
    from pytest_autoevolve.settings import load_settings

    runs = root / load_settings(root).artifacts / "runs"
    folders = sorted((p for p in runs.iterdir() if p.is_dir()), reverse=True) if runs.is_dir() else []
    return next((folder / "summary.json" for folder in folders if (folder / "summary.json").is_file()), None)


def _check_spec(spec: Any, slots: Slots) -> None:
    """A spec that names no model (a typo, a bad option) is a `FineTuneError` before anything is written."""
    from pytest_autoevolve.errors import ModelError
    from pytest_autoevolve.providers.base import parse_spec

    try:
        parse_spec(spec, slots.models)
    except ModelError as exc:
        raise FineTuneError(f"not a model spec: {exc}") from None


def _entry(action: str, previous: Any, incumbent: Any, canary: Any, reason: str) -> dict[str, Any]:
    """A history entry of a canary step: the incumbent before and after it, and the canary."""
    entry = {"action": action, "date": now(), "previous": previous, "incumbent": incumbent, "canary": canary}
    return {**entry, "reason": reason}

"""Preference pairs for DPO from a rejection-sampling run: a passing and a failing answer to one train scenario.

`curate_pairs` reads each run's trajectories and, per ``train`` scenario and per run, pairs the
distinct answers that passed every grader (chosen) with the distinct answers that were graded and
failed (rejected; errors are neither). A row is TRL's conversational preference format:
``{"prompt": [messages], "chosen": [assistant], "rejected": [assistant]}``. The leakage guard,
the split by scenario and the versioned, atomically written folder (``train.jsonl``,
``val.jsonl``, ``manifest.json``) are those of the chat dataset (`pytest_autoevolve.loops.dataset`).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pytest_autoevolve.catalog.loader import Catalog
from pytest_autoevolve.files import read_trajectories
from pytest_autoevolve.loops.dataset import (
    DATASET_FORMAT_VERSION,
    CuratedDataset,
    _reason,
    _split_scenarios,
    _trajectory_file,
    _write,
    check_leakage,
    dataset_sha256,
)
from pytest_autoevolve.loops.examples import DatasetError, chat_messages, example_sha256
from pytest_autoevolve.records import Trajectory

FAILED = ("grader_failed", "failed")

"""Rejection reasons of an answer that was graded and failed: a rejected answer."""


@dataclass
class _Answers:
    """The distinct passing and failing answers of one scenario in one run."""

    prompt: list[dict[str, Any]]
    chosen: dict[str, Trajectory] = field(default_factory=dict)
    rejected: dict[str, Trajectory] = field(default_factory=dict)


def _collect(runs: list[Path], catalog: Catalog) -> tuple[dict[tuple[int, str], _Answers], Counter[str]]:
    """Answers grouped by (run, scenario), and counts of what was read and left out."""
    split = {s.id: s.split for s in catalog}
    groups: dict[tuple[int, str], _Answers] = {}
    counts: Counter[str] = Counter()
    for number, run in enumerate(runs):
        for trajectory in read_trajectories(_trajectory_file(Path(run))):
            counts["read"] += 1
            reason = _reason(trajectory, split, None, None)
            if reason is not None and reason not in FAILED:
                counts[f"left out: {reason}"] += 1
                continue
            try:
                messages = chat_messages(trajectory)
            except ValueError:
                counts["left out: malformed"] += 1
                continue
            group = groups.setdefault((number, trajectory.scenario_id), _Answers(messages[:-1]))
            side = group.chosen if reason is None else group.rejected
            side.setdefault(json.dumps(messages[-1], sort_keys=True), trajectory)
    return groups, counts


def _pairs(
    groups: dict[tuple[int, str], _Answers], per_scenario: int
) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(scenario id, row, provenance) of each pair: chosen and rejected answers taken in turn."""
    pairs = []
    for (_, scenario_id), group in sorted(groups.items()):
        chosen, rejected = list(group.chosen.items()), list(group.rejected.items())
        if not chosen or not rejected:
            continue
        for index in range(min(max(len(chosen), len(rejected)), per_scenario)):
            (good, good_t), (bad, bad_t) = chosen[index % len(chosen)], rejected[index % len(rejected)]
            row = {"prompt": group.prompt, "chosen": [json.loads(good)], "rejected": [json.loads(bad)]}
            source = {"scenario_id": scenario_id, "run_id": good_t.run_id, "chosen_repeat": good_t.repeat}
            source |= {"rejected_repeat": bad_t.repeat, "sha256": example_sha256(row)}
            pairs.append((scenario_id, row, source))
    return pairs


def curate_pairs(
    runs: list[Path],
    catalog: Catalog,
    out_root: Path,
    *,
    val_fraction: float = 0.1,
    min_pairs: int = 20,
    per_scenario: int = 4,
    seed: int = 0,
    model_spec: str | None = None,
    git_commit: str | None = None,
) -> CuratedDataset:
    """Write the runs' preference pairs to ``out_root/v<N>-<sha8>/``; nothing when the guard or a count refuses."""
    if not runs:
        raise DatasetError("no runs to curate: give one or more run folders holding trajectories.jsonl")
    groups, counts = _collect(runs, catalog)
    pairs = _pairs(groups, per_scenario)
    check_leakage(((scenario_id, row["prompt"]) for scenario_id, row, _ in pairs), catalog)
    both = {sid for sid, _, _ in pairs}
    counted = (
        f"read {counts['read']} answers of {len({sid for _, sid in groups})} train scenario(s); {len(both)} have both"
    )
    if len(pairs) < min_pairs:
        raise DatasetError(
            f"too few preference pairs: {len(pairs)}, {min_pairs} needed; {counted} a passing and a failing answer "
            "in one run. Sample more answers per scenario (--k), at a higher temperature, or lower the minimum"
        )
    train_ids, val_ids = _split_scenarios(both, val_fraction, seed)
    if not val_ids:
        raise DatasetError(
            f"too few scenarios to split into train and val: {counted}; pairs of one scenario stay together"
        )
    val_set = set(val_ids)
    halves = [[p for p in pairs if (p[0] in val_set) == is_val] for is_val in (False, True)]
    lines = [b"".join(json.dumps(row, ensure_ascii=False).encode() + b"\n" for _, row, _ in half) for half in halves]
    sha = dataset_sha256(lines[0], lines[1])
    manifest: dict[str, Any] = {
        "format_version": DATASET_FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "version": "",
        "sha256": sha,
        "format": "trl-preference",
        "sources": [{"path": str(Path(run)), "index": number} for number, run in enumerate(runs)],
        "model_spec": model_spec,
        "git_commit": git_commit,
        "seed": seed,
        "val_fraction": val_fraction,
        "scenarios": {"train": train_ids, "val": val_ids},
        "leakage_check": {"eval_scenarios": sum(1 for s in catalog if s.split == "eval"), "passed": True},
        "counts": {"train": len(halves[0]), "val": len(halves[1]), "pairs": len(pairs), **dict(sorted(counts.items()))},
        "examples": {
            name: [source for _, _, source in half] for name, half in zip(("train", "val"), halves, strict=True)
        },
    }
    return _write(Path(out_root), sha, lines[0], lines[1], manifest)

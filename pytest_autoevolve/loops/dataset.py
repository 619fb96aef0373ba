"""Curation: promotable trajectories into a versioned chat fine-tuning dataset (issue 5, item 2).

`curate` reads the ``trajectories.jsonl`` of one or more runs and keeps the trials a model
should learn from: passed, no error, every grader passed, ``train`` split (in the trajectory
and in the catalog), within the latency and cost limits, and (with ``min_step_score``) no
`step_critic` step scored below that. It dedupes them by the content hash
of the whole chat example, splits them into train and val by scenario (all the examples of
one scenario on one side, chosen by a seeded hash), and writes ``<out_root>/v<N>-<sha8>/``
with ``train.jsonl``, ``val.jsonl`` (the OpenAI chat fine-tuning format) and
``manifest.json`` (provenance). The folder is written under a temporary name and renamed
at the end, so a crash leaves no half dataset.

A trial recorded in the ``eval`` split is rejected (``eval_split``). The leakage guard then
refuses, writing nothing, when a kept example belongs to a scenario the catalog puts in the
``eval`` split (a trial recorded as ``train`` against another version of the catalog), or when
its prompt (the normalized user messages) equals an ``eval`` scenario's prompt under another id.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pytest_autoevolve.catalog.loader import Catalog
from pytest_autoevolve.errors import FormatError
from pytest_autoevolve.files import read_trajectories
from pytest_autoevolve.loops.examples import (
    DatasetError,
    chat_messages,
    example_sha256,
    prompt_sha256,
    validate_example,
)
from pytest_autoevolve.records import Trajectory

DATASET_FORMAT_VERSION = 1

FILES = ("train.jsonl", "val.jsonl")

MANIFEST = "manifest.json"

VERSION_PATTERN = re.compile(r"^v(\d+)-[0-9a-f]{8}$")

REASONS = (
    "unknown_scenario",
    "eval_split",
    "error",
    "grader_failed",
    "failed",
    "low_step_score",
    "over_latency",
    "over_cost",
    "malformed",
)

"""Why a trajectory was not kept, in the order the rules are checked (the first that applies counts)."""

SHOWN = 5

"""How many offending scenario ids an error message names before it gives the count."""


class LeakageError(DatasetError):
    """A kept example would carry an ``eval``-split scenario (by id or by prompt) into training."""


@dataclass
class CuratedDataset:
    """A dataset folder `curate` wrote."""

    path: Path
    version: str
    sha256: str
    train: int
    val: int
    manifest: dict[str, Any] = field(repr=False)


@dataclass
class _Example:
    scenario_id: str
    row: dict[str, Any]
    sha256: str
    prompt_sha256: str
    trajectory: Trajectory


def dataset_sha256(train: bytes, val: bytes) -> str:
    """The dataset hash: sha256 over each file's name, byte length and bytes, train then val."""
    digest = hashlib.sha256()
    for name, content in zip(FILES, (train, val), strict=True):
        digest.update(f"{name}\n{len(content)}\n".encode())
        digest.update(content)
    return digest.hexdigest()


def low_step(trajectory: Trajectory, minimum: float) -> bool:
    """Whether a `step_critic` grade of ``trajectory`` scored some step below ``minimum``."""
    steps = (s for g in trajectory.grades if g.grader == "step_critic" for s in g.steps or [])
    return any(isinstance(s.get("score"), int | float) and s["score"] < minimum for s in steps)


def _reason(
    trajectory: Trajectory,
    catalog_split: dict[str, str],
    max_latency_s: float | None,
    max_cost: float | None,
    *,
    min_step_score: float | None = None,
) -> str | None:
    """The first rule a trajectory breaks (see `REASONS`), or None when it is promotable."""
    if trajectory.scenario_id not in catalog_split:
        return "unknown_scenario"
    if trajectory.split != "train":
        return "eval_split"
    if trajectory.error is not None:
        return "error"
    if trajectory.failed_grades():
        return "grader_failed"
    if not trajectory.passed or not trajectory.grades:
        return "failed"
    if min_step_score is not None and low_step(trajectory, min_step_score):
        return "low_step_score"
    if max_latency_s is not None and trajectory.latency_s > max_latency_s:
        return "over_latency"
    if max_cost is not None and trajectory.cost is not None and trajectory.cost > max_cost:
        return "over_cost"
    return None


def _named(ids: Iterable[str]) -> str:
    ordered = sorted(set(ids))
    shown = ", ".join(ordered[:SHOWN])
    more = f" and {len(ordered) - SHOWN} more" if len(ordered) > SHOWN else ""
    return f"{len(ordered)} scenario(s): {shown}{more}"


def check_leakage(examples: Iterable[tuple[str, Sequence[Mapping[str, Any]]]], catalog: Catalog) -> None:
    """Refuse (`LeakageError`) when a (scenario id, messages) pair is an eval scenario by id or by prompt."""
    eval_ids = {s.id for s in catalog if s.split == "eval"}
    eval_prompts: dict[str, str] = {}
    for scenario in catalog:
        if scenario.split == "eval":
            eval_prompts.setdefault(prompt_sha256(scenario.messages), scenario.id)
    by_id: set[str] = set()
    by_prompt: dict[str, str] = {}
    for scenario_id, messages in examples:
        if scenario_id in eval_ids:
            by_id.add(scenario_id)
            continue
        twin = eval_prompts.get(prompt_sha256(messages))
        if twin is not None:
            by_prompt[scenario_id] = twin
    problems = []
    if by_id:
        problems.append(f"{_named(by_id)} of the eval split by id")
    if by_prompt:
        pairs = sorted(f"{k} (= eval {v})" for k, v in by_prompt.items())
        more = f" and {len(pairs) - SHOWN} more" if len(pairs) > SHOWN else ""
        problems.append(
            f"{len(pairs)} scenario(s) whose prompt equals an eval scenario's: {', '.join(pairs[:SHOWN])}{more}"
        )
    if problems:
        raise LeakageError(
            "refusing to curate: the training data would contain "
            + "; and ".join(problems)
            + ". Eval scenarios must never be trained on; fix the catalog's splits or curate other runs."
        )


def _trajectory_file(run: Path) -> Path:
    path = run / "trajectories.jsonl" if run.is_dir() else run
    if not path.is_file():
        raise DatasetError(f"{run}: no trajectories.jsonl (give run folders such as .autoevolve/runs/<run-id>)")
    return path


def _split_scenarios(scenario_ids: Iterable[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Scenario ids to (train, val): a seeded hash orders them and the first share goes to val."""
    ordered = sorted(set(scenario_ids), key=lambda s: hashlib.sha256(f"{seed}\0{s}".encode()).hexdigest())
    count = min(max(1, round(val_fraction * len(ordered))), len(ordered) - 1) if len(ordered) > 1 else 0
    return sorted(ordered[count:]), sorted(ordered[:count])


def _next_version(out_root: Path) -> int:
    numbers = [int(m.group(1)) for p in out_root.iterdir() if (m := VERSION_PATTERN.match(p.name))]
    return max(numbers, default=0) + 1


def _ordered(examples: list[_Example], seed: int) -> list[_Example]:
    """The examples in a seeded order that depends on their content only, not on the order of the runs."""
    return sorted(examples, key=lambda e: hashlib.sha256(f"{seed}\0{e.sha256}".encode()).hexdigest())


def _lines(examples: list[_Example], seed: int) -> bytes:
    return b"".join(json.dumps(e.row, ensure_ascii=False).encode("utf-8") + b"\n" for e in _ordered(examples, seed))


@dataclass
class Selection:
    """What curation keeps of some runs and why it leaves the rest out, before anything is written."""

    kept: list[_Example] = field(default_factory=list)
    read: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    failed_graders: Counter[str] = field(default_factory=Counter)
    sources: list[dict[str, Any]] = field(default_factory=list)
    trials: Counter[str] = field(default_factory=Counter)
    """Trajectories read per scenario id."""

    def why(self) -> str:
        """What was read and why the rest was left out, in one line."""
        return _why(self.read, self.rejected, self.duplicates)

    def table(self) -> list[str]:
        """The curation as a table a person reads: the counts, then each scenario's trials and kept examples."""
        kept = Counter(e.scenario_id for e in self.kept)
        rows = [("read", self.read), ("kept", len(self.kept)), ("duplicates dropped", self.duplicates)]
        rows += [(f"rejected: {reason}", self.rejected[reason]) for reason in REASONS if self.rejected[reason]]
        lines = [f"  {label:<47}{count:>6}" for label, count in rows]
        lines.append(f"  {'scenario':<40}{'trials':>7}{'kept':>6}")
        lines += [f"  {sid:<40}{self.trials[sid]:>7}{kept[sid]:>6}" for sid in sorted(self.trials)]
        return lines


def select(
    runs: Sequence[Path],
    catalog: Catalog,
    *,
    max_latency_s: float | None = None,
    max_cost: float | None = None,
    min_step_score: float | None = None,
) -> Selection:
    """The promotable, deduplicated examples of ``runs`` (see the module's rules), and the counts of the rest.

    With ``min_step_score``, a passing trajectory whose `step_critic` scored some step below it is left out.
    """
    if not runs:
        raise DatasetError("no runs to curate: give one or more run folders holding trajectories.jsonl")
    catalog_split = {s.id: s.split for s in catalog}
    tools = {s.id: [t.schema() for t in s.tools] for s in catalog if s.tools}
    selection = Selection()
    seen: set[str] = set()
    for run in runs:
        path = _trajectory_file(Path(run))
        try:
            trajectories = list(read_trajectories(path))
        except FormatError as exc:
            raise DatasetError(str(exc)) from None
        for trajectory in trajectories:
            selection.trials[trajectory.scenario_id] += 1
            reason = _reason(trajectory, catalog_split, max_latency_s, max_cost, min_step_score=min_step_score)
            messages: list[dict[str, Any]] = []
            if reason is None:
                try:
                    messages = chat_messages(trajectory)
                except ValueError:
                    reason = "malformed"
            if reason is not None:
                selection.rejected[reason] += 1
                if reason == "grader_failed":
                    selection.failed_graders.update(g.grader for g in trajectory.failed_grades())
                continue
            row: dict[str, Any] = {"messages": messages}
            if trajectory.scenario_id in tools:
                row["tools"] = tools[trajectory.scenario_id]
            digest = example_sha256(row)
            if digest in seen:
                selection.duplicates += 1
                continue
            seen.add(digest)
            selection.kept.append(_Example(trajectory.scenario_id, row, digest, prompt_sha256(messages), trajectory))
        selection.read += len(trajectories)
        run_ids = sorted({t.run_id for t in trajectories if t.run_id}) or [path.parent.name]
        selection.sources.append({"run_ids": run_ids, "path": str(path.parent), "trajectories": len(trajectories)})
    return selection


def curate(
    runs: list[Path],
    catalog: Catalog,
    out_root: Path,
    *,
    val_fraction: float = 0.1,
    min_examples: int = 20,
    seed: int = 0,
    max_latency_s: float | None = None,
    max_cost: float | None = None,
    min_step_score: float | None = None,
    model_spec: str | None = None,
    git_commit: str | None = None,
) -> CuratedDataset:
    """Curate the promotable trajectories of ``runs`` into ``out_root/v<N>-<sha8>/``.

    `LeakageError` when an eval scenario would enter the data; `DatasetError` when fewer than
    ``min_examples`` remain or a split would be empty. Either way nothing is written.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction is between 0 and 1 (exclusive), got {val_fraction!r}")
    limits = {"max_latency_s": max_latency_s, "max_cost": max_cost, "min_step_score": min_step_score}
    selection = select(runs, catalog, **limits)
    kept, read, duplicates = selection.kept, selection.read, selection.duplicates
    rejected, failed_graders = selection.rejected, selection.failed_graders
    check_leakage(((e.scenario_id, e.row["messages"]) for e in kept), catalog)
    why = selection.why()
    if len(kept) < min_examples:
        raise DatasetError(f"too few examples to train on: {len(kept)} kept, min_examples={min_examples}; {why}")
    train_ids, val_ids = _split_scenarios((e.scenario_id for e in kept), val_fraction, seed)
    val_set = set(val_ids)
    train = [e for e in kept if e.scenario_id not in val_set]
    val = [e for e in kept if e.scenario_id in val_set]
    if not train or not val:
        raise DatasetError(
            f"the {'val' if train else 'train'} split would be empty: {len(kept)} example(s) of "
            f"{len(train_ids) + len(val_ids)} scenario(s), and a scenario never spans both splits; "
            f"{why}"
        )
    train_bytes, val_bytes = _lines(train, seed), _lines(val, seed)
    sha = dataset_sha256(train_bytes, val_bytes)
    manifest: dict[str, Any] = {
        "format_version": DATASET_FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "version": "",
        "sha256": sha,
        "sha256_of": "sha256 over 'train.jsonl\\n<byte length>\\n' + its bytes, then the same for val.jsonl",
        "format": "openai-chat",
        "sources": selection.sources,
        "model_spec": model_spec,
        "models": sorted({e.trajectory.model for e in kept}),
        "git_commit": git_commit,
        "seed": seed,
        "val_fraction": val_fraction,
        "limits": {"min_examples": min_examples, **limits},
        "scenarios": {"train": train_ids, "val": val_ids},
        "leakage_check": {"eval_scenarios": sum(1 for s in catalog if s.split == "eval"), "passed": True},
        "counts": {
            "read": read,
            "kept": len(kept),
            "train": len(train),
            "val": len(val),
            "duplicates": duplicates,
            "rejected": {reason: rejected[reason] for reason in REASONS if rejected[reason]},
            "failed_graders": dict(sorted(failed_graders.items())),
        },
        "examples": {
            name: [
                {
                    "scenario_id": e.scenario_id,
                    "sha256": e.sha256,
                    "prompt_sha256": e.prompt_sha256,
                    "run_id": e.trajectory.run_id,
                    "repeat": e.trajectory.repeat,
                    "model": e.trajectory.model,
                }
                for e in _ordered(group, seed)
            ]
            for name, group in (("train", train), ("val", val))
        },
    }
    return _write(Path(out_root), sha, train_bytes, val_bytes, manifest)


def _why(read: int, rejected: Counter[str], duplicates: int) -> str:
    reasons = ", ".join(f"{reason} {rejected[reason]}" for reason in REASONS if rejected[reason]) or "none"
    return f"read {read} trajectorie(s); rejected by reason: {reasons}; duplicates dropped: {duplicates}"


def curation_line(folder: Path) -> str:
    """What a curated folder's manifest counts, in one line: kept, read, rejected by reason, duplicates."""
    counts = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))["counts"]
    return f"kept {counts['kept']}; " + _why(counts["read"], Counter(counts["rejected"]), counts["duplicates"])


def _write(out_root: Path, sha: str, train: bytes, val: bytes, manifest: dict[str, Any]) -> CuratedDataset:
    """Write the files into a temporary folder, then rename it to the next free version."""
    out_root.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=".curating-", dir=out_root))
    try:
        (temporary / FILES[0]).write_bytes(train)
        (temporary / FILES[1]).write_bytes(val)
        while True:
            version = f"v{_next_version(out_root)}-{sha[:8]}"
            manifest["version"] = version
            (temporary / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", "utf-8")
            for name in (*FILES, MANIFEST):
                with (temporary / name).open("rb") as handle:
                    os.fsync(handle.fileno())
            target = out_root / version
            try:
                os.rename(temporary, target)
            except OSError:
                if target.exists():  # another curation took this number: take the next
                    continue
                raise
            break
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return CuratedDataset(target, version, sha, manifest["counts"]["train"], manifest["counts"]["val"], manifest)


def read_dataset(folder: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """The train rows, val rows and manifest of a curated folder, each line validated and the sha256 checked."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{folder}: no readable {MANIFEST}: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != DATASET_FORMAT_VERSION:
        version = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise DatasetError(f"{folder}: dataset format_version {version!r}; this version reads {DATASET_FORMAT_VERSION}")
    contents: list[bytes] = []
    splits: list[list[dict[str, Any]]] = []
    for name in FILES:
        path = folder / name
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise DatasetError(f"{path}: cannot read: {exc}") from None
        rows = []
        for number, line in enumerate(content.decode("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                validate_example(row)
            except ValueError as exc:
                raise DatasetError(f"{path}:{number}: not JSON: {exc}") from None
            except DatasetError as exc:
                raise DatasetError(f"{path}:{number}: {exc}") from None
            rows.append(row)
        contents.append(content)
        splits.append(rows)
    actual = dataset_sha256(contents[0], contents[1])
    if manifest.get("sha256") != actual:
        raise DatasetError(
            f"{folder}: the files' sha256 {actual[:12]} is not the manifest's "
            f"{str(manifest.get('sha256'))[:12]}: the dataset was changed after curation"
        )
    return splits[0], splits[1], manifest

"""The fine-tune loop: sample the train split, curate, LoRA-train, gate on eval, promote or roll back.

Every step runs the plugin's own machinery (a ``pytest --autoevolve`` subprocess), so samples
and gate runs are ordinary runs with trajectories, summaries and reports. The incumbent and
candidate live in ``autoevolve.yaml``; promotions and rollbacks are appended to
``autoevolve-history.jsonl`` beside it, so the history travels with the repository.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_autoevolve.gate.summary import RunSummary
from pytest_autoevolve.loops.project import (
    WORK_DIR,
    FineTuneError,
    incumbent_of,
    project_catalog,
    read_config,
    write_config,
)
from pytest_autoevolve.loops.promotion import promote
from pytest_autoevolve.loops.subprocess import run_pytest


def sample(root: Path, spec: str, *, k: int = 8, temperature: float = 1.0, artifacts: str = ".autoevolve") -> Path:
    """Run ``spec`` k times per train-split scenario at ``temperature`` (rejection sampling)."""
    sampled = f"{spec}+temperature={temperature}"
    args = ["--autoevolve-split", "train", "--autoevolve-only", "candidate", "--autoevolve-candidate", sampled]
    _, run = run_pytest(root, [*args, "--autoevolve-repeats", str(k)], artifacts)
    if run is None or not (run / "trajectories.jsonl").is_file():
        raise FineTuneError("sampling recorded no trajectories: does the catalog have a train split?")
    return run


def gate(root: Path, incumbent: str, candidate: str, artifacts: str = ".autoevolve") -> dict[str, Any]:
    """Gate ``candidate`` against ``incumbent`` on the eval split; the run's summary (verdict inside).

    The summary is read with its format checked (`RunSummary.load`) and returned as its JSON,
    with ``path`` added: where it is, relative to ``root`` when inside it.
    """
    _, run = run_pytest(root, ["--autoevolve-incumbent", incumbent, "--autoevolve-candidate", candidate], artifacts)
    summary_path = run / "summary.json" if run else None
    if summary_path is None or not summary_path.is_file():
        return {"verdict": "inconclusive", "reasons": ["the gate run wrote no summary: nothing ran"], "path": None}
    summary = RunSummary.load(summary_path).to_json()
    summary["path"] = str(summary_path.relative_to(root) if summary_path.is_relative_to(root) else summary_path)
    return summary


@dataclass
class RoundResult:
    """What one round of `improve` did."""

    round: int
    sample_run: str = ""
    dataset: str = ""
    examples: int = 0
    model: str = ""
    candidate: str = ""
    verdict: str = "inconclusive"
    summary: str | None = None
    promoted: bool = False
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def base_of(spec: str) -> tuple[Path, str]:
    """The local base model folder of an incumbent spec and the spec prefix adapters attach to."""
    from pytest_autoevolve.providers.base import parse_spec
    from pytest_autoevolve.tiny import TINY_DIR

    parsed = parse_spec(spec)
    if parsed.provider == "tiny":
        return TINY_DIR, "tiny"
    if parsed.provider == "hf":
        return Path(parsed.target), f"hf:{parsed.target}"
    raise FineTuneError(f"local LoRA training needs a tiny or hf: incumbent, got {spec!r}; use --backend openai")


def improve(
    root: Path,
    *,
    rounds: int = 1,
    dry_run: bool = False,
    k: int = 8,
    temperature: float = 1.0,
    progress: Callable[[str], None] = print,
) -> list[RoundResult]:
    """Sample, curate, train, gate and promote when the gate passes, ``rounds`` times."""
    from pytest_autoevolve.loops.lora import train_lora

    results = []
    runs: list[Path] = []
    for number in range(1, rounds + 1):
        started = time.perf_counter()
        result = RoundResult(number)
        incumbent = incumbent_of(root)
        base, prefix = base_of(incumbent)
        progress(f"round {number}: sampling {incumbent} x{k} per train scenario at temperature {temperature}")
        runs.append(sample(root, incumbent, k=k, temperature=temperature))
        result.sample_run = str(runs[-1].relative_to(root))
        dataset = curate_runs(root, runs, incumbent)
        result.dataset, result.examples = str(dataset.relative_to(root)), _lines(dataset / "train.jsonl")
        progress(f"round {number}: curated {result.examples} training examples into {result.dataset}")
        if dry_run:
            result.notes.append("dry run: stopped before training")
            results.append(result)
            break
        from pytest_autoevolve.loops.lora import next_version

        model_dir = next_version(root / WORK_DIR / "models")
        train_lora(
            base,
            dataset,
            model_dir,
            progress=functools.partial(_prefixed, progress, f"round {number}: "),
            base_name=prefix,
        )
        result.model = str(model_dir.relative_to(root))
        result.candidate = f"{prefix}+adapter={result.model}"
        config = read_config(root)
        config["candidate"] = result.candidate
        write_config(root, config)
        progress(f"round {number}: gating {result.candidate} against {incumbent} on the eval split")
        summary = gate(root, incumbent, result.candidate)
        result.verdict, result.summary = summary["verdict"], summary.get("path")
        progress(f"round {number}: gate {result.verdict.upper()}: " + "; ".join(summary.get("reasons", [])))
        if result.verdict == "pass" and result.summary:
            promote(root, root / result.summary)
            result.promoted = True
            progress(f"round {number}: promoted {result.candidate} to incumbent")
        result.seconds = round(time.perf_counter() - started, 1)
        results.append(result)
        if not result.promoted:
            break
    return results


def curate_runs(root: Path, runs: list[Path], spec: str, **options: Any) -> Path:
    """Curate the runs into a new versioned dataset under ``finetune/datasets``; its folder."""
    from pytest_autoevolve.loops.dataset import curate
    from pytest_autoevolve.run.results import git_commit

    options.setdefault("git_commit", git_commit(root))
    return Path(curate(runs, project_catalog(root), root / WORK_DIR / "datasets", model_spec=spec, **options).path)


def _prefixed(progress: Callable[[str], None], prefix: str, line: str) -> None:
    progress(prefix + line)


def _lines(path: Path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())


@dataclass
class FineTuneLoop:
    """The loop's steps bound to one project folder: what the ``autoevolve_finetune`` fixture gives tests."""

    root: Path
    artifacts: str = ".autoevolve"

    def sample(self, spec: str, k: int = 4, temperature: float = 1.0) -> Path:
        """Rejection-sample the train split; the run folder."""
        return sample(self.root, spec, k=k, temperature=temperature, artifacts=self.artifacts)

    def curate(self, runs: list[Path], spec: str = "", **options: Any) -> Path:
        """A versioned dataset folder from the runs' promotable trajectories."""
        return curate_runs(self.root, runs, spec, **options)

    def train(self, dataset: Path, base: str = "tiny", **settings: Any) -> str:
        """LoRA-train on ``dataset``; the candidate spec of the new adapter."""
        from pytest_autoevolve.loops.lora import LoraSettings, next_version, train_lora

        folder, prefix = base_of(base)
        out = next_version(self.root / WORK_DIR / "models")
        train_lora(folder, dataset, out, LoraSettings(**settings), progress=lambda _: None, base_name=prefix)
        return f"{prefix}+adapter={out.relative_to(self.root)}"

    def gate(self, incumbent: str, candidate: str) -> dict[str, Any]:
        """The eval-split gate of the pair; its summary."""
        return gate(self.root, incumbent, candidate, self.artifacts)

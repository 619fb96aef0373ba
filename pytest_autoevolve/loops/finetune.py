"""The fine-tune loop: sample the train split, curate, LoRA-train (SFT, DPO or GRPO), gate on eval, promote or not.

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
from typing import TYPE_CHECKING, Any

from pytest_autoevolve.gate.summary import RunSummary
from pytest_autoevolve.loops.project import CONFIG_FILE, WORK_DIR, FineTuneError, incumbent_of, project_catalog
from pytest_autoevolve.loops.promotion import promote
from pytest_autoevolve.loops.subprocess import run_pytest
from pytest_autoevolve.loops.training.base import base_of
from pytest_autoevolve.report.format import pct

if TYPE_CHECKING:
    from pytest_autoevolve.loops.dataset import Selection


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


DPO_TEMPERATURE = 0.5

"""The sampling temperature of a DPO round unless one is given."""


@dataclass
class RoundResult:
    """What one round of `improve` did."""

    round: int
    method: str = "sft"
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
    changes: list[str] = field(default_factory=list)
    """How ``autoevolve.yaml`` changed (only a promotion changes it)."""


def training_base(incumbent: str, dataset: str) -> tuple[Path, str]:
    """`base_of` the incumbent; for another model, a `FineTuneError` naming the backends that apply, with commands."""
    from pytest_autoevolve.providers.base import parse_spec

    try:
        return base_of(incumbent)
    except FineTuneError:
        pass
    parsed = parse_spec(incumbent)
    train = f"autoevolve finetune train {dataset}"
    if parsed.provider == "openai":
        model = parsed.target.removeprefix("ft:").split(":")[0]
        how = f"it is a hosted model: fine-tune it with `{train} --backend openai --base {model}`"
    else:
        how = (
            f"it is not a model autoevolve can train (improve trains tiny and hf: models); train the model it calls "
            f"on the curated dataset: a hosted OpenAI model with `{train} --backend openai --base MODEL`, a local "
            f"transformers model with `{train} --base hf:PATH`; then point it at the result"
        )
    then = "then gate the new candidate (pytest --autoevolve) and promote it (autoevolve promote SUMMARY)"
    raise FineTuneError(f"the incumbent {incumbent} was sampled and curated into {dataset}, but {how}; {then}")


def shortfall(selection: Selection, incumbent: str, min_examples: int, k: int) -> str | None:
    """Why ``selection`` is too small to train on, with the numbers and what to add; None when it is enough."""
    kept = len(selection.kept)
    if kept >= min_examples:
        return None
    return (
        f"too few examples to train on: {kept} distinct passing answers, {min_examples} needed (--min-examples); "
        f"{selection.why()}. Add train scenarios (split: train) that {incumbent} passes at least sometimes "
        f"(there are {len(selection.trials)}; each gives up to {k} examples), sample more answers per scenario "
        f"(--k {2 * k}), or lower --min-examples"
    )


def improve(
    root: Path,
    *,
    rounds: int = 1,
    dry_run: bool = False,
    k: int = 8,
    temperature: float | None = None,
    min_examples: int = 20,
    method: str = "sft",
    processes: int = 1,
    progress: Callable[[str], None] = print,
) -> list[RoundResult]:
    """Sample, curate, train with ``method``, gate and promote when the gate passes, ``rounds`` times.

    Only a promotion changes ``autoevolve.yaml``: the new adapter is gated by its spec. Too few
    examples is a `FineTuneError` saying what to add (a dry run notes it and stops instead).
    GRPO samples while it trains, so its rounds start with training on the train split's prompts.
    The sampling ``temperature`` is 1.0 by default, 0.5 for DPO (its rejected answers are then the
    mistakes the model makes near its greedy answer, which the gate sees).
    """
    from pytest_autoevolve.loops.training.launch import check_processes

    if processes > 1:
        check_processes(processes)  # before minutes of sampling
    temperature = temperature if temperature is not None else DPO_TEMPERATURE if method == "dpo" else 1.0
    results: list[RoundResult] = []
    runs: list[Path] = []
    for number in range(1, rounds + 1):
        started, result = time.perf_counter(), RoundResult(number, method)
        say = functools.partial(_prefixed, progress, f"round {number}: ")
        incumbent = incumbent_of(root)
        results.append(result)
        if method == "grpo":  # GRPO samples while it trains: no sampling run, nothing to curate
            if dry_run:
                result.notes.append("dry run: stopped before training")
                say(
                    "dry run: GRPO samples while it trains, so there is nothing to curate; autoevolve.yaml is unchanged"
                )
                break
        else:
            say(f"sampling {incumbent} x{k} per train scenario at temperature {temperature:g}")
            runs.append(sample(root, incumbent, k=k, temperature=temperature))
            result.sample_run = _relative(root, runs[-1])
            curate = _curated_pairs if method == "dpo" else _curated
            if not curate(root, runs, incumbent, result, dry_run=dry_run, k=k, min_examples=min_examples, say=say):
                break
        _train_gate_promote(root, incumbent, result, say, processes)
        result.seconds = round(time.perf_counter() - started, 1)
        if not result.promoted:
            break
    return results


def _curated(
    root: Path,
    runs: list[Path],
    incumbent: str,
    result: RoundResult,
    *,
    dry_run: bool,
    k: int,
    min_examples: int,
    say: Callable[[str], None],
) -> bool:
    """Curate the runs into a dataset, showing the table; whether to go on and train (never in a dry run)."""
    from pytest_autoevolve.loops.dataset import select

    selection = select(runs, project_catalog(root))
    result.examples = len(selection.kept)
    say(f"curation of {selection.read} sampled answers (min_examples {min_examples}):")
    for line in selection.table():
        say(line)
    short = shortfall(selection, incumbent, min_examples, k)
    if short and not dry_run:
        raise FineTuneError(short)
    if short:
        result.notes.append(f"dry run: {short}")
        say(f"dry run: a real run would stop here: {short}")
        return False
    dataset = curate_runs(root, runs, incumbent, min_examples=min_examples)
    result.dataset, result.examples = _relative(root, dataset), _lines(dataset / "train.jsonl")
    say(f"curated {result.examples} training examples into {result.dataset}")
    return _goes_on(result, dry_run, say)


def _curated_pairs(
    root: Path,
    runs: list[Path],
    incumbent: str,
    result: RoundResult,
    *,
    dry_run: bool,
    k: int,
    min_examples: int,
    say: Callable[[str], None],
) -> bool:
    """Curate the runs' preference pairs; whether to go on and train (never in a dry run)."""
    from pytest_autoevolve.loops.pairs import curate_pairs
    from pytest_autoevolve.run.results import git_commit

    pairs = curate_pairs(
        runs,
        project_catalog(root),
        root / WORK_DIR / "pairs",
        min_pairs=min_examples,
        per_scenario=k,
        model_spec=incumbent,
        git_commit=git_commit(root),
    )
    result.dataset, result.examples = _relative(root, pairs.path), pairs.train
    say(f"curated {pairs.train} preference pairs ({pairs.val} val) into {result.dataset}")
    return _goes_on(result, dry_run, say)


def _goes_on(result: RoundResult, dry_run: bool, say: Callable[[str], None]) -> bool:
    """Whether the round goes on to train: not in a dry run, which says where it stopped."""
    if dry_run:
        result.notes.append("dry run: stopped before training")
        say("dry run: stopped before training; autoevolve.yaml is unchanged")
    return not dry_run


def _train_gate_promote(
    root: Path, incumbent: str, result: RoundResult, say: Callable[[str], None], processes: int = 1
) -> None:
    """Train an adapter on the round's data, gate it by its spec, and promote it when the gate passes."""
    from pytest_autoevolve.loops.training import Job, next_version, train
    from pytest_autoevolve.loops.training.options import DEFAULTS

    base, prefix = training_base(incumbent, result.dataset or "the train split")
    model_dir = next_version(root / WORK_DIR / "models")
    data = root / result.dataset if result.dataset else root
    say(f"training {result.method} on {result.dataset or 'the train split'} in {processes} process(es)")
    train(Job(result.method, data, base, model_dir, prefix, DEFAULTS[result.method]), processes=processes, say=say)
    result.model = _relative(root, model_dir)
    result.candidate = f"{prefix}+adapter={result.model}"
    say(f"gating {result.candidate} against {incumbent} on the eval split")
    summary = gate(root, incumbent, result.candidate)
    result.verdict, result.summary = summary["verdict"], summary.get("path")
    rates = f"candidate {pct(_rate(summary, 'candidate'))} vs incumbent {pct(_rate(summary, 'incumbent'))}"
    say(f"gate {result.verdict.upper()} ({rates}): " + "; ".join(summary.get("reasons", [])))
    if result.verdict == "pass" and result.summary:
        result.changes = promote(root, root / result.summary, candidate=result.candidate)["changes"]
        result.promoted = True
        say(f"promoted {result.candidate} to incumbent; {CONFIG_FILE}: " + "; ".join(result.changes))
    else:
        say(f"not promoted: {CONFIG_FILE} is unchanged (the adapter stays in {result.model})")


def _rate(summary: dict[str, Any], role: str) -> float | None:
    side = summary.get(role)
    return side.get("pass_rate") if isinstance(side, dict) else None


def _relative(root: Path, path: Path) -> str:
    return str(path.relative_to(root) if path.is_relative_to(root) else path)


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

    def train(self, dataset: Path, base: str = "tiny", method: str = "sft", **settings: Any) -> str:
        """LoRA-train on ``dataset`` (pairs for dpo; the project for grpo); the candidate spec of the new adapter."""
        import dataclasses

        from pytest_autoevolve.loops.training import Job, next_version, train
        from pytest_autoevolve.loops.training.options import DEFAULTS

        folder, prefix = base_of(base)
        out = next_version(self.root / WORK_DIR / "models")
        job = Job(method, dataset, folder, out, prefix, dataclasses.replace(DEFAULTS[method], **settings))
        train(job, say=lambda _: None)
        return f"{prefix}+adapter={out.relative_to(self.root)}"

    def gate(self, incumbent: str, candidate: str) -> dict[str, Any]:
        """The eval-split gate of the pair; its summary."""
        return gate(self.root, incumbent, candidate, self.artifacts)

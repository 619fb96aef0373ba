"""The edit-score-gate loop: propose one edit, score it on the catalog, keep it in git or revert it, gate the best.

Each iteration applies one proposed edit to the allowlisted target files only (`guard` says
which paths and settings an edit may change, and rejects the rest), scores the
candidate on the scoring split (``train`` by default) with the plugin's own machinery (a
``pytest --autoevolve`` run of the candidate), pairs it by scenario with the best kept state's
recorded run, confirms a promising edit with a second, uncached run under another seed, and
keeps it as a git commit on the ``autoevolve/<tag>`` branch or restores the files. Every
iteration is logged to ``.autoevolve/evolve/<tag>/log.jsonl`` and ``results.tsv``. At the end
the best kept commit is gated against the starting commit on the ``eval`` split as
``autoevolve ci gate`` does: the start is checked out in a worktree, so an edit to agent code
is measured against the code it replaced.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pytest_autoevolve.gate.results import ItemResult, items_of_run
from pytest_autoevolve.loops.guard import Guard, Rejected, uncommitted
from pytest_autoevolve.loops.project import CONFIG_FILE, FineTuneError, read_config
from pytest_autoevolve.loops.proposers import (
    BudgetSpent,
    Context,
    Edit,
    EvolveError,
    ProposalError,
    Proposer,
    _fmt,
    make_proposer,
)
from pytest_autoevolve.loops.subprocess import run_pytest


@dataclass
class Score:
    """One scoring run of the candidate, paired by scenario with the best kept state's run."""

    score: float | None
    incumbent: float | None
    lift: float | None = None
    p_value: float | None = None
    n_paired: int = 0
    improvements: int = 0
    regressions: int = 0
    run: str = ""


def score_run(
    root: Path,
    split: str,
    *,
    seed: int = 0,
    cache: str | None = None,
    artifacts: str = ".autoevolve",
    timeout: float | None = None,
) -> Path:
    """Run the working tree's candidate alone on ``split``; the run's trajectories file."""
    args = ["--autoevolve-split", split, "--autoevolve-only", "candidate", "--autoevolve-seed", str(seed)]
    _, run = run_pytest(root, args + (["--autoevolve-cache", cache] if cache else []), artifacts, timeout=timeout)
    trajectories = run / "trajectories.jsonl" if run else None
    if trajectories is None or not trajectories.is_file():
        raise FineTuneError(f"the {split} run recorded no trajectories: does the catalog have a {split} split?")
    return trajectories


def role_items(trajectories: Path, role: str) -> list[ItemResult]:
    """Per-scenario results of a run's trajectories, as items of ``role`` (the scoring split is this loop's eval)."""
    from pytest_autoevolve.files import read_trajectories

    return items_of_run(read_trajectories(trajectories), role, split="eval")


def compare(root: Path, best: Path, new: Path, seed: int = 0) -> Score:
    """The new run against the best kept state's run: pass rates and the paired statistics."""
    from pytest_autoevolve.gate.decide import decide, pair, paired_test
    from pytest_autoevolve.settings import load_settings

    items = role_items(best, "incumbent") + role_items(new, "candidate")
    config = dataclasses.replace(load_settings(root).gate, seed=seed)  # the project's gate rule, as pytest reads it
    result = decide(items, config)  # items default to the eval split: the scoring split is this loop's eval
    test = result.test
    if test is None and result.n_paired:
        test = paired_test(pair(items), config, interval=False)
    return Score(
        result.candidate.pass_rate,
        result.incumbent.pass_rate,
        test.lift if test else None,
        test.p_value if test else None,
        result.n_paired,
        len(result.improvements),
        len(result.regressions),
        str(new.parent.relative_to(root)) if new.is_relative_to(root) else str(new.parent),
    )


@dataclass
class Iteration:
    """One logged iteration."""

    iteration: int
    hypothesis: str = ""
    diff: str = ""
    score: float | None = None
    baseline: float | None = None
    confirm_score: float | None = None
    decision: str = "crashed"
    seconds: float = 0.0
    error: str = ""
    commit: str = ""
    point: Any = None
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvolveResult:
    """What the loop did: its iterations, the starting and best states, and the final gate."""

    tag: str
    branch: str
    start_commit: str
    best_commit: str
    start_candidate: str
    best_candidate: str
    start_score: float | None
    best_score: float | None
    iterations: list[Iteration]
    verdict: str = "inconclusive"
    gate_summary: dict[str, Any] = field(default_factory=dict)
    log_dir: str = ""
    stop_reason: str = ""


def missing(root: Path, paths: Iterable[str]) -> list[str]:
    """The paths, and their parent folders, that do not exist yet: deepest first, as `Loop.restore` removes them."""
    found = {p for path in paths for p in [Path(path), *Path(path).parents][:-1] if not (root / p).exists()}
    return [p.as_posix() for p in sorted(found, key=lambda p: (-len(p.parts), p))]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


class Loop:
    """The loop bound to one repository; `run` does the iterations and the final gate."""

    def __init__(
        self,
        root: Path,
        proposer: Proposer,
        *,
        targets: Sequence[str] = (CONFIG_FILE,),
        split: str = "train",
        tag: str | None = None,
        max_seconds: float | None = None,
        iteration_seconds: float | None = None,
        artifacts: str = ".autoevolve",
        progress: Callable[[str], None] = print,
    ) -> None:
        import git

        self.root = root.resolve()
        try:
            self.repo = git.Repo(self.root)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise EvolveError(f"{root} is not a git repository: the loop keeps edits as commits") from None
        self.guard = Guard.of(self.root, targets, artifacts)
        self.targets = self.guard.targets
        self.proposer, self.split, self.artifacts, self.progress = proposer, split, artifacts, progress
        self.tag = tag or _now()
        self.max_seconds, self.iteration_seconds = max_seconds, iteration_seconds
        self.log_dir = self.root / artifacts / "evolve" / self.tag
        self.history: list[dict[str, Any]] = []
        self.started = time.perf_counter()
        self.best_run = Path()

    def candidate(self) -> str:
        """The configured candidate spec of the working tree."""
        config = read_config(self.root)
        return str(config.get("candidate", config.get("incumbent", "tiny")))

    def start(self) -> None:
        """Refuse uncommitted targets and a dirty tree, then create and check out the loop's branch."""
        changed = uncommitted(self.repo, self.targets)
        if changed:
            raise EvolveError(
                f"uncommitted target files: {', '.join(changed)}. A reverted edit restores the targets from git, "
                "so the loop would lose them: commit them first (git add -f PATH && git commit) "
                "or leave them out of --targets"
            )
        if self.repo.is_dirty(untracked_files=False):
            raise EvolveError("the working tree has uncommitted changes to tracked files: commit or stash them first")
        branch = f"autoevolve/{self.tag}"
        if branch in [h.name for h in self.repo.heads]:
            raise EvolveError(f"branch {branch} already exists: pass another --tag")
        self.repo.create_head(branch).checkout()
        self.log_dir.mkdir(parents=True, exist_ok=True)

    def restore(self, commit: str, created: Sequence[str] = ()) -> None:
        """Back to ``commit`` with a clean tree: tracked changes reset, files and folders an edit created removed."""
        self.repo.git.reset("--hard", commit)
        for path in created:  # deepest first: a created file, then its created folders
            file = self.root / path
            if file.is_file() and not self.repo.git.ls_files("--", path):
                file.unlink()
            elif file.is_dir() and not any(file.iterdir()):
                file.rmdir()

    def log(self, entry: Iteration) -> None:
        """Append one iteration to log.jsonl and results.tsv."""
        record = asdict(entry)
        self.history.append(record)
        with (self.log_dir / "log.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=str) + "\n")
        tsv = self.log_dir / "results.tsv"
        if not tsv.exists():
            tsv.write_text("iteration\thypothesis\tdiff\tscore\tdecision\tseconds\n", encoding="utf-8")
        cells = [
            str(entry.iteration),
            entry.hypothesis,
            entry.diff,
            _fmt(entry.score),
            entry.decision,
            f"{entry.seconds:.1f}",
        ]
        with tsv.open("a", encoding="utf-8") as handle:
            handle.write("\t".join(c.replace("\t", " ").replace("\n", "\\n") for c in cells) + "\n")
        self.progress(
            f"iteration {entry.iteration}: {entry.decision} score {_fmt(entry.score)} "
            f"(best {_fmt(entry.baseline)}) {entry.hypothesis}" + (f" [{entry.error}]" if entry.error else "")
        )

    def run(self, iterations: int) -> EvolveResult:
        """Start, iterate, gate; on any exception or Ctrl-C, back to the last kept commit and re-raise."""
        self.start()
        self.started = time.perf_counter()
        start_commit = self.repo.head.commit.hexsha
        result = EvolveResult(
            self.tag,
            self.repo.active_branch.name,
            start_commit,
            start_commit,
            self.candidate(),
            self.candidate(),
            None,
            None,
            [],
            log_dir=str(self.log_dir.relative_to(self.root)),
        )
        created: list[str] = []
        try:
            self.progress(f"scoring the starting state ({result.start_candidate}) on the {self.split} split")
            self.best_run = score_run(self.root, self.split, artifacts=self.artifacts)
            result.start_score = result.best_score = compare(self.root, self.best_run, self.best_run).score
            for number in range(1, iterations + 1):
                if self._left() == 0:
                    result.stop_reason = f"the total budget of {self.max_seconds:g}s is spent"
                    break
                entry, created = Iteration(number, baseline=result.best_score), []
                t0 = time.perf_counter()
                try:
                    edit = self.proposer.propose(
                        Context(self.root, self.targets, self.split, result.best_score, self.history)
                    )
                except BudgetSpent as exc:
                    result.stop_reason = str(exc)
                    break
                except ProposalError as exc:
                    entry.error = f"malformed proposal: {exc}"
                    self._record(entry, result, t0)
                    continue
                if edit is None:
                    result.stop_reason = "the proposer has nothing left to try (search space exhausted)"
                    break
                entry.hypothesis, entry.point = edit.hypothesis, edit.point
                try:
                    edit = self.guard.check(edit)
                except Rejected as exc:
                    entry.decision, entry.error = "rejected", str(exc)
                    entry.diff = "\n".join(sorted(edit.files))
                else:
                    created = missing(self.root, edit.files)
                    self._iterate(edit, entry, result, t0)
                    if entry.decision != "kept":
                        self.restore(result.best_commit, created)
                self._record(entry, result, t0)
            else:
                result.stop_reason = f"{iterations} iterations done"
        except BaseException as exc:
            self.restore(result.best_commit, created)
            self.log(
                Iteration(
                    len(result.iterations) + 1,
                    decision="crashed",
                    error=f"loop stopped: {exc!r}",
                    baseline=result.best_score,
                )
            )
            raise
        self._final_gate(result)
        write_report(self.log_dir, result)
        return result

    def _record(self, entry: Iteration, result: EvolveResult, t0: float) -> None:
        entry.seconds = round(time.perf_counter() - t0, 2)
        self.log(entry)
        result.iterations.append(entry)

    def _left(self, t0: float | None = None) -> float | None:
        """Seconds left in the total budget and (from ``t0``) the iteration's, or None when unbounded."""
        now = time.perf_counter()
        limits = [self.max_seconds - (now - self.started)] if self.max_seconds is not None else []
        if t0 is not None and self.iteration_seconds is not None:
            limits.append(self.iteration_seconds - (now - t0))
        return max(0.0, min(limits)) if limits else None

    def _final_gate(self, result: EvolveResult) -> None:
        """Gate the best kept commit against the starting commit on the eval split, as ``ci gate`` does."""
        from pytest_autoevolve.loops.ci import CIGateError, gate_against_base

        if result.best_commit == result.start_commit:
            result.gate_summary = {"verdict": "inconclusive", "reasons": ["no edit was kept: nothing to gate"]}
            return
        drift = self.guard.drift()
        if drift:  # the gate runs on the working tree's settings: they must be the start's
            result.gate_summary, result.verdict = {"verdict": "fail", "reasons": [drift]}, "fail"
            return
        self.progress(
            f"gating {result.best_candidate} (commit {result.best_commit[:10]}) against the start "
            f"{result.start_candidate} (commit {result.start_commit[:10]}) on the eval split"
        )
        try:
            outcome = gate_against_base(
                self.root, result.start_commit, artifacts=self.artifacts, stream=False, progress=self.progress
            )
        except CIGateError as exc:
            result.gate_summary = {"verdict": "inconclusive", "reasons": [f"the gate could not run: {exc}"]}
            return
        if outcome.summary is None:
            summary: dict[str, Any] = {"verdict": "inconclusive", "reasons": ["the gate run wrote no summary"]}
        else:
            summary = outcome.summary.to_json()
        summary["path"] = str((outcome.outputs / "summary.json").relative_to(self.root))
        result.gate_summary, result.verdict = summary, str(summary["verdict"])

    def _scored(self, entry: Iteration, t0: float, **options: Any) -> Score | None:
        """Score the working tree against the best kept run; None (with the error logged) when it failed."""
        try:
            run = score_run(self.root, self.split, artifacts=self.artifacts, timeout=self._left(t0), **options)
        except FineTuneError as exc:
            entry.decision, entry.error = "reverted", f"scoring failed: {str(exc)[:500]}"
            return None
        return compare(self.root, self.best_run, run)

    def _iterate(self, edit: Edit, entry: Iteration, result: EvolveResult, t0: float) -> None:
        for path, text in edit.files.items():
            file = self.root / path
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(text, encoding="utf-8")
        new = [p for p in edit.files if not self.repo.git.ls_files("--", p)]
        if new:
            self.repo.git.add("--intent-to-add", "--", *new)  # so the diff shows them
        entry.diff = self.repo.git.diff("--", *edit.files)
        if not entry.diff:
            entry.decision, entry.error = "reverted", "the edit changes nothing"
            return
        first = self._scored(entry, t0)
        if first is None:
            return
        entry.score, entry.stats = first.score, {"first": asdict(first)}
        if first.score is None or (result.best_score is not None and first.score <= result.best_score):
            entry.decision = "reverted"
            return
        again = self._scored(entry, t0, seed=1, cache="off")
        if again is None:
            entry.error = entry.error.replace("scoring failed", "confirmation failed")
            return
        entry.confirm_score, entry.stats["confirm"] = again.score, asdict(again)
        if again.score is None or (result.best_score is not None and again.score <= result.best_score):
            entry.decision, entry.error = "reverted", "not confirmed on a second, uncached run under another seed"
            return
        message = (
            f"autoevolve {self.tag} #{entry.iteration}: {edit.hypothesis}\n\n"
            f"metric: candidate pass rate on the {self.split} split\n"
            f"score: {_fmt(first.score)} (best was {_fmt(result.best_score)}); "
            f"confirm: {_fmt(again.score)} (seed 1, uncached)\n"
            f"paired with the best kept run: lift {_fmt(first.lift)}, p-value {_fmt(first.p_value)}, "
            f"{first.n_paired} scenarios, {first.improvements} improvements, "
            f"{first.regressions} regressions\n"
        )
        self.repo.git.add("--", *edit.files)
        commit = self.repo.index.commit(message)
        entry.commit, entry.decision = commit.hexsha, "kept"
        result.best_commit, result.best_score, result.best_candidate = commit.hexsha, first.score, self.candidate()
        self.best_run = Path(self.root / first.run / "trajectories.jsonl")


def evolve_clone(source: Path, workdir: Path, proposer: str, iterations: int = 2, **options: Any) -> EvolveResult:
    """Clone the git repository at ``source`` (its committed state) into ``workdir`` and run the loop there.

    ``options`` go to `Loop` (targets, split, tag, budgets); the source repository is never touched.
    """
    import git

    try:
        repo = git.Repo(source, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise EvolveError(f"{source} is not in a git repository: the loop runs on a clone of it") from None
    clone = repo.clone(str(workdir / "evolve-clone"))
    root = Path(str(clone.working_tree_dir))
    loop = Loop(root, make_proposer(proposer, root), progress=options.pop("progress", lambda _: None), **options)
    return loop.run(iterations)


def write_report(folder: Path, result: EvolveResult) -> None:
    """``report.json`` and ``report.md``: the iteration table and the final gate's verdict."""
    data = asdict(result)
    (folder / "report.json").write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    summary = result.gate_summary
    lines = [
        f"# autoevolve evolve {result.tag}",
        "",
        f"- branch: `{result.branch}` (from `{result.start_commit[:10]}`, best `{result.best_commit[:10]}`)",
        f"- starting candidate: `{result.start_candidate}`, score {_fmt(result.start_score)}",
        f"- best candidate: `{result.best_candidate}`, score {_fmt(result.best_score)}",
        f"- stopped: {result.stop_reason}",
        "",
        "| # | decision | score | confirm | seconds | hypothesis | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for it in result.iterations:
        note = it.error or (it.commit[:10] if it.commit else "")
        lines.append(
            f"| {it.iteration} | {it.decision} | {_fmt(it.score)} | {_fmt(it.confirm_score)} | "
            f"{it.seconds:.1f} | {it.hypothesis.replace('|', '/')} | {note.replace('|', '/')} |"
        )
    lines += [
        "",
        f"## Gate on the eval split: {result.verdict.upper()}",
        "",
        f"`{result.best_candidate}` against `{result.start_candidate}`: "
        f"{_fmt((summary.get('candidate') or {}).get('pass_rate'))} vs "
        f"{_fmt((summary.get('incumbent') or {}).get('pass_rate'))}",
        "",
    ]
    lines += [f"- {reason}" for reason in summary.get("reasons", [])]
    if summary.get("path"):
        lines += ["", f"Gate summary: `{summary['path']}`"]
    (folder / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")

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
is measured against the code it replaced. However the loop ends (its end, a proposer that keeps
failing, an exception, Ctrl-C), what it did is reported and the user's branch is checked out
again; the loop's branch stays only when it holds a kept commit.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pytest_autoevolve.errors import AutoevolveError
from pytest_autoevolve.gate.results import ItemResult, items_of_run
from pytest_autoevolve.loops.guard import MAX_EDIT_BYTES, Guard, Rejected, uncommitted
from pytest_autoevolve.loops.project import CONFIG_FILE, FineTuneError, read_config
from pytest_autoevolve.loops.proposer_specs import make_proposer
from pytest_autoevolve.loops.proposers import (
    BudgetSpent,
    Context,
    Edit,
    EvolveError,
    Learner,
    ProposalError,
    Proposer,
    ProposerError,
)
from pytest_autoevolve.loops.subprocess import run_pytest
from pytest_autoevolve.report.format import p, pct, shorten


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
    """One logged iteration.

    ``decision``: kept, reverted, rejected (the guard refused the edit), malformed (a reply that is no
    edit), proposer-error (the proposer failed or gave no edit in time), crashed (the loop stopped).
    """

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
    """The loop's branch, holding the kept commits; empty when nothing was kept (the branch is removed)."""
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
    error: str = ""
    """Why the loop could not do its work (the proposer kept failing, the final gate could not run): exit 2."""
    origin: str = ""
    """Where the user was when the loop started, and is again when it ends: a branch, or a commit when detached."""
    split: str = "train"
    """The split the edits were scored on."""


PROPOSER_ERRORS = 3
"""Proposer failures in a row after which the loop stops."""

PROGRESS_SECONDS = 15.0
"""How often a loop waiting for its proposer says so."""

MAX_HYPOTHESIS = 500
"""Characters of a hypothesis logged: a runaway reply does not flood the log."""


def missing(root: Path, paths: Iterable[str]) -> list[str]:
    """The paths, and their parent folders, that do not exist yet: deepest first, as `Loop.restore` removes them."""
    found = {p for path in paths for p in [Path(path), *Path(path).parents][:-1] if not (root / p).exists()}
    return [p.as_posix() for p in sorted(found, key=lambda p: (-len(p.parts), p))]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _said(exc: BaseException) -> str:
    """An exception in one line: its message for ours, its type and message for any other."""
    return str(exc) if isinstance(exc, AutoevolveError) else f"{type(exc).__name__}: {exc}"


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
        create: bool = True,
        max_proposer_errors: int = PROPOSER_ERRORS,
        max_edit_bytes: int = MAX_EDIT_BYTES,
    ) -> None:
        import git

        self.root = root.resolve()
        try:
            self.repo = git.Repo(self.root)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise EvolveError(f"{root} is not a git repository: the loop keeps edits as commits") from None
        self.guard = Guard.of(self.root, targets, artifacts, max_edit_bytes)
        self.targets = self.guard.targets
        absent = [target for target in self.targets if not (self.root / target).exists()]
        if absent and not create:
            raise EvolveError(
                f"no such target file: {', '.join(absent)}; check the path, or pass --create to let edits create it"
            )
        self.proposer, self.split, self.artifacts, self.progress = proposer, split, artifacts, progress
        self.tag = tag or _now()
        self.branch = f"autoevolve/{self.tag}"
        self.max_seconds, self.iteration_seconds = max_seconds, iteration_seconds
        self.max_proposer_errors, self.progress_seconds = max_proposer_errors, PROGRESS_SECONDS
        self.log_dir = self.root / artifacts / "evolve" / self.tag
        self.history: list[dict[str, Any]] = []
        self.started = time.perf_counter()
        self.best_run = Path()
        self.created: list[str] = []
        """Files and folders the current iteration's edit created, removed when it is reverted."""

    def candidate(self) -> str:
        """The configured candidate spec of the working tree."""
        config = read_config(self.root)
        return str(config.get("candidate", config.get("incumbent", "tiny")))

    def start(self) -> str:
        """Refuse uncommitted targets and a dirty tree, then create and check out the loop's branch; where HEAD was."""
        changed = uncommitted(self.repo, self.targets)
        if changed:
            raise EvolveError(
                f"uncommitted target files: {', '.join(changed)}. A reverted edit restores the targets from git, "
                "so the loop would lose them: commit them first (git add -f PATH && git commit) "
                "or leave them out of --targets"
            )
        if self.repo.is_dirty(untracked_files=False):
            raise EvolveError("the working tree has uncommitted changes to tracked files: commit or stash them first")
        if self.branch in [h.name for h in self.repo.heads]:
            raise EvolveError(f"branch {self.branch} already exists: pass another --tag")
        origin = self.repo.head.commit.hexsha if self.repo.head.is_detached else self.repo.active_branch.name
        self.repo.create_head(self.branch).checkout()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return origin

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
        """Append one iteration to log.jsonl and results.tsv, and say it."""
        record = asdict(entry)
        self.history.append(record)
        with (self.log_dir / "log.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=str) + "\n")
        tsv = self.log_dir / "results.tsv"
        if not tsv.exists():
            tsv.write_text("iteration\thypothesis\tdiff\tscore\tdecision\tseconds\n", encoding="utf-8")
        score = "" if entry.score is None else f"{entry.score:.4g}"
        cells = [str(entry.iteration), entry.hypothesis, entry.diff, score, entry.decision, f"{entry.seconds:.1f}"]
        with tsv.open("a", encoding="utf-8") as handle:
            handle.write("\t".join(c.replace("\t", " ").replace("\n", "\\n") for c in cells) + "\n")
        scored = f", {pct(entry.score)} (best {pct(entry.baseline)})" if entry.score is not None else ""
        said = f": {entry.hypothesis}" if entry.hypothesis else ""
        self.progress(
            f"iteration {entry.iteration}: {entry.decision}{scored}{said}"
            + (f" [{entry.error}]" if entry.error else "")
        )

    def run(self, iterations: int) -> EvolveResult:
        """Start, iterate, gate, report, and check out the branch the user was on.

        On an exception or Ctrl-C the tree goes back to the last kept commit, the stop is logged and
        reported (``report.md``, and ``traceback.txt`` for a crash), the user is back on their branch,
        and the exception goes on.
        """
        origin = self.start()
        start_commit = self.repo.head.commit.hexsha
        candidate = self.candidate()
        log_dir = str(self.log_dir.relative_to(self.root))
        result = EvolveResult(
            self.tag, self.branch, start_commit, start_commit, candidate, candidate, None, None, [], log_dir=log_dir
        )
        result.origin, result.split = origin, self.split
        self.started = time.perf_counter()
        try:
            self._iterations(result, iterations)
            self._final_gate(result)
        except BaseException as exc:
            self._stopped(result, exc)
            raise
        write_report(self.log_dir, result)
        self._finish(result)
        return result

    def _iterations(self, result: EvolveResult, iterations: int) -> None:
        """Score the start, then propose, check, score and keep or revert, until a budget or the proposer stops it."""
        self.progress(f"scoring the starting state ({result.start_candidate}) on the {self.split} split")
        self.best_run = score_run(self.root, self.split, artifacts=self.artifacts)
        result.start_score = result.best_score = compare(self.root, self.best_run, self.best_run).score
        failures = 0
        for number in range(1, iterations + 1):
            if self._left() == 0:
                result.stop_reason = f"the total budget of {self.max_seconds:g}s is spent"
                return
            entry, t0 = Iteration(number, baseline=result.best_score), time.perf_counter()
            context = Context(
                self.root, self.targets, self.split, result.best_score, self.history, self.best_run, self.tag
            )
            edit = None
            try:
                edit = self._propose(context, number, t0)
            except BudgetSpent as exc:
                result.stop_reason = str(exc)
                return
            except ProposalError as exc:
                entry.decision, entry.error = "malformed", f"malformed proposal: {exc}"
            except Exception as exc:  # the proposer failed: this iteration's outcome, not the loop's end
                entry.decision, entry.error = "proposer-error", _said(exc)
            else:
                if edit is None:
                    result.stop_reason = "the proposer has nothing left to try (search space exhausted)"
                    return
                self._try(edit, entry, result, t0)
            self._record(entry, result, t0)
            if edit is not None and isinstance(self.proposer, Learner):
                self.proposer.outcome(edit, self.history[-1])
            failures = failures + 1 if entry.decision == "proposer-error" else 0
            if failures >= self.max_proposer_errors:
                result.stop_reason = result.error = (
                    f"the proposer failed {failures} times in a row (last: {entry.error})"
                )
                return
        result.stop_reason = f"{iterations} iterations done"

    def _propose(self, context: Context, number: int, t0: float) -> Edit | None:
        """The proposer's edit, waited for while the budgets allow, with a progress line now and then."""
        outcome: dict[str, Any] = {}

        def ask() -> None:
            try:
                outcome["edit"] = self.proposer.propose(context)
            except BaseException as exc:  # handed to the loop's thread
                outcome["error"] = exc

        worker = threading.Thread(target=ask, name="autoevolve-proposer", daemon=True)
        worker.start()
        while True:
            left = self._left(t0)
            worker.join(self.progress_seconds if left is None else min(self.progress_seconds, left))
            if not worker.is_alive():
                break
            waited = time.perf_counter() - t0
            if self._left(t0) == 0:  # the thread is left behind; a daemon, it ends with the process
                raise ProposerError(f"no proposal within {waited:.3g}s: the time budget ran out while waiting")
            self.progress(f"iteration {number}: waiting for the proposer ({waited:.0f}s so far)")
        if "error" in outcome:
            raise outcome["error"]
        edit: Edit | None = outcome.get("edit")
        return edit

    def _try(self, edit: Edit, entry: Iteration, result: EvolveResult, t0: float) -> None:
        """Check the edit, apply and score it, keep it or revert it."""
        entry.hypothesis, entry.point = shorten(edit.hypothesis, MAX_HYPOTHESIS), edit.point
        try:
            edit = self.guard.check(edit)
        except Rejected as exc:
            entry.decision, entry.error = "rejected", str(exc)
            entry.diff = "\n".join(sorted(edit.files))
            return
        self.created = missing(self.root, edit.files)
        self._iterate(edit, entry, result, t0)
        if entry.decision != "kept":
            self.restore(result.best_commit, self.created)
        self.created = []

    def _stopped(self, result: EvolveResult, exc: BaseException) -> None:
        """After an exception or Ctrl-C: back to the last kept commit, the stop logged and reported, back home."""
        import traceback

        interrupted = isinstance(exc, KeyboardInterrupt)
        self.restore(result.best_commit, self.created)
        reason = "interrupted (Ctrl-C)" if interrupted else _said(exc)
        entry = Iteration(len(result.iterations) + 1, decision="crashed", error=f"loop stopped: {reason}")
        entry.baseline = result.best_score
        self.log(entry)
        result.iterations.append(entry)
        result.stop_reason = f"stopped: {reason}"
        if not interrupted and not isinstance(exc, AutoevolveError):
            (self.log_dir / "traceback.txt").write_text("".join(traceback.format_exception(exc)), encoding="utf-8")
        if not result.gate_summary:
            result.gate_summary = {"verdict": "inconclusive", "reasons": ["the loop stopped before its final gate"]}
        write_report(self.log_dir, result)
        self._finish(result)
        self.progress(f"stopped: {reason}; what was done is in {result.log_dir}/report.md")

    def _finish(self, result: EvolveResult) -> None:
        """Check out where the user was; remove the loop's branch when it holds nothing kept."""
        self.repo.git.checkout(result.origin)
        if result.best_commit == result.start_commit:
            self.repo.delete_head(self.branch, force=True)
            result.branch = ""

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
            result.error = f"the final gate could not run: {exc}"
            result.gate_summary = {"verdict": "inconclusive", "reasons": [result.error]}
            return
        if outcome.summary is None:
            summary: dict[str, Any] = {"verdict": "inconclusive", "reasons": ["the gate run wrote no summary"]}
        else:
            summary = outcome.summary.to_json()
            summary["path"] = str(self._keep_gate(outcome.outputs).relative_to(self.root))
        if self.split != "train":
            summary["reasons"] = [*summary.get("reasons", []), not_independent(self.split)]
        result.gate_summary, result.verdict = summary, str(summary["verdict"])

    def _keep_gate(self, outputs: Path) -> Path:
        """Copy the gate's summary and reports into the log folder (the next ``ci gate`` overwrites its own)."""
        folder = self.log_dir / "gate"
        folder.mkdir(exist_ok=True)
        for name in ("summary.json", "report.md", "report.html"):
            if (outputs / name).is_file():
                shutil.copyfile(outputs / name, folder / name)
        return folder / "summary.json"

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
            write_like(self.root / path, text)
        new = [p for p in edit.files if not self.repo.git.ls_files("--", p)]
        if new:
            self.repo.git.add("--intent-to-add", "--", *new)  # so the diff shows them
        entry.diff = self.repo.git.diff("--", *edit.files)
        if not entry.diff:
            entry.decision, entry.error = "reverted", "the edit changes nothing"
            return
        self.progress(f"iteration {entry.iteration}: scoring the edit on the {self.split} split")
        first = self._scored(entry, t0)
        if first is None:
            return
        entry.score, entry.stats = first.score, {"first": asdict(first)}
        if not better(first.score, result.best_score, edit.removal):
            entry.decision = "reverted"
            return
        self.progress(f"iteration {entry.iteration}: {pct(first.score)}; confirming it on an uncached run, seed 1")
        again = self._scored(entry, t0, seed=1, cache="off")
        if again is None:
            entry.error = entry.error.replace("scoring failed", "confirmation failed")
            return
        entry.confirm_score, entry.stats["confirm"] = again.score, asdict(again)
        if not better(again.score, result.best_score, edit.removal):
            entry.decision, entry.error = "reverted", "not confirmed on a second, uncached run under another seed"
            return
        message = (
            f"autoevolve {self.tag} #{entry.iteration}: {entry.hypothesis}\n\n"
            f"metric: candidate pass rate on the {self.split} split\n"
            f"score: {pct(first.score)} (best was {pct(result.best_score)}); "
            f"confirm: {pct(again.score)} (seed 1, uncached)\n"
            f"paired with the best kept run: lift {pct(first.lift, signed=True)}, p-value {p(first.p_value)}, "
            f"{first.n_paired} scenarios, {first.improvements} improvements, "
            f"{first.regressions} regressions\n"
        )
        self.repo.git.add("--", *edit.files)
        commit = self.repo.index.commit(message)
        entry.commit, entry.decision = commit.hexsha, "kept"
        result.best_commit, result.best_score, result.best_candidate = commit.hexsha, first.score, self.candidate()
        self.best_run = Path(self.root / first.run / "trajectories.jsonl")


def write_like(file: Path, text: str) -> None:
    """Write an edit's text with the line ends the file has (CRLF stays CRLF), so its diff is the edit alone."""
    crlf = file.is_file() and b"\r\n" in file.read_bytes()
    file.parent.mkdir(parents=True, exist_ok=True)
    text = text.replace("\r\n", "\n")
    file.write_text(text.replace("\n", "\r\n") if crlf else text, encoding="utf-8", newline="")


def not_independent(split: str) -> str:
    """The caveat of a final gate whose eval scenarios also scored the loop's edits."""
    return (
        f"the loop scored its edits on the {split} split, so this gate on the eval split is not independent "
        "of the search (the kept edits were chosen for how they did there): confirm on scenarios the loop never "
        "scored, or score with --split train"
    )


def better(score: float | None, best: float | None, removal: bool = False) -> bool:
    """Whether a score earns keeping an edit: above the best, or for a removal no worse than it."""
    if score is None:
        return False
    return best is None or (score >= best if removal else score > best)


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
    """``report.json`` and ``report.md``: the iteration table, where the branches are, and the final gate's verdict."""
    data = asdict(result)
    (folder / "report.json").write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    summary = result.gate_summary
    branch = f"`{result.branch}`" if result.branch else "none (nothing was kept, so the loop's branch was removed)"
    lines = [
        f"# autoevolve evolve {result.tag}",
        "",
        f"- branch: {branch}; started from `{result.origin or result.start_commit[:10]}` "
        f"at `{result.start_commit[:10]}`, best `{result.best_commit[:10]}`",
        f"- starting candidate: `{result.start_candidate}`, score {pct(result.start_score)}",
        f"- best candidate: `{result.best_candidate}`, score {pct(result.best_score)}",
        f"- stopped: {result.stop_reason}",
        *([f"- error: {result.error}"] if result.error else []),
        "",
        "| # | decision | score | confirm | seconds | hypothesis | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for it in result.iterations:
        note = shorten(it.error, 300) or (it.commit[:10] if it.commit else "")
        lines.append(
            f"| {it.iteration} | {it.decision} | {pct(it.score)} | {pct(it.confirm_score)} | "
            f"{it.seconds:.3g} | {it.hypothesis.replace('|', '/')} | {note.replace('|', '/')} |"
        )
    lines += [
        "",
        f"## Gate on the eval split: {result.verdict.upper()}",
        "",
        f"`{result.best_candidate}` against `{result.start_candidate}`: "
        f"{pct((summary.get('candidate') or {}).get('pass_rate'))} vs "
        f"{pct((summary.get('incumbent') or {}).get('pass_rate'))}",
        "",
    ]
    lines += [f"- {reason}" for reason in summary.get("reasons", [])]
    if summary.get("path"):
        lines += [
            "",
            "This loop's copy of the gate's results: `gate/summary.json`, `gate/report.md`, `gate/report.html`",
        ]
    (folder / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def outcome_lines(result: EvolveResult) -> list[str]:
    """What the loop did, in a few lines for the terminal: decisions, scores, the gate, where things are."""
    counts = Counter(i.decision for i in result.iterations)
    done = ", ".join(f"{n} {decision}" for decision, n in counts.items()) or "no iteration"
    gate = result.verdict.upper()
    if result.best_commit == result.start_commit:
        gate = "not run (no edit was kept)"
    lines = [
        f"iterations: {done}" + ("" if result.error else f"; stopped: {result.stop_reason}"),
        f"scores: start {result.start_candidate} {pct(result.start_score)}, "
        f"best {result.best_candidate} {pct(result.best_score)}",
        f"final gate on the eval split: {gate}; report {result.log_dir}/report.md",
    ]
    if result.split != "train" and result.best_commit != result.start_commit:
        lines.append(f"note: {not_independent(result.split)}")
    if result.branch:
        lines.append(
            f"you are on {result.origin}, as before; the kept commits are on {result.branch} "
            f"(git switch {result.branch}, or git merge {result.branch})"
        )
    else:
        lines.append(f"you are on {result.origin}, as before; nothing was kept, so no branch was left behind")
    return lines

"""Per-scenario results: one `ItemResult` per scenario and role, built from trajectories in one place.

They travel as test report properties (so they survive xdist and junit) and are rebuilt from either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_autoevolve.records import Scenario, Trajectory


@dataclass
class ItemResult:
    """One scenario run on one role: the numbers the gate needs."""

    scenario: str
    role: str
    trials: int
    passes: int
    errors: int = 0
    model: str = ""
    split: str = "eval"
    category: str = ""
    critical: bool = False
    score: float = 0.0
    latencies: list[float] = field(default_factory=list)
    cost: float | None = None
    tokens: int = 0
    file: str = ""
    line: int = 0
    cached: int = 0

    @classmethod
    def from_trials(
        cls,
        trials: Sequence[Trajectory],
        *,
        scenario: Scenario | None = None,
        role: str | None = None,
        model: str | None = None,
        split: str | None = None,
    ) -> ItemResult:
        """The result of one scenario's trials on one role; the scenario, when known, adds where it is written."""
        first = trials[0]
        costs = [t.cost for t in trials if t.cost is not None]
        return cls(
            scenario=first.scenario_id,
            role=role or first.role,
            trials=len(trials),
            passes=sum(t.passed for t in trials),
            errors=sum(t.error is not None for t in trials),
            model=model or first.model,
            split=split or (scenario.split if scenario else first.split),
            category=(scenario.category if scenario else first.category) or "",
            critical=scenario.critical if scenario else False,
            score=sum(t.score for t in trials) / len(trials),
            latencies=[t.latency_s for t in trials],
            cost=sum(costs) if costs else None,
            tokens=sum(t.total_tokens or 0 for t in trials),
            cached=sum(t.cached for t in trials),
            file=scenario.path if scenario else first.scenario_file,
            line=scenario.line if scenario else 0,
        )

    @property
    def pass_rate(self) -> float:
        """Passed trials over trials."""
        return self.passes / self.trials if self.trials else 0.0

    @property
    def stability(self) -> str:
        """stable-pass, stable-fail or flaky across the trials."""
        if self.passes == self.trials:
            return "stable-pass"
        return "stable-fail" if self.passes == 0 else "flaky"

    def to_properties(self) -> list[tuple[str, Any]]:
        """The item's junit properties."""
        return [
            ("autoevolve", "scenario"),
            ("role", self.role),
            ("scenario", self.scenario),
            ("model", self.model),
            ("split", self.split),
            ("category", self.category),
            ("critical", str(self.critical).lower()),
            ("file", self.file),
            ("line", self.line),
            ("trials", self.trials),
            ("passes", self.passes),
            ("errors", self.errors),
            ("pass_rate", round(self.pass_rate, 6)),
            ("score", round(self.score, 6)),
            ("passed", str(self.passes == self.trials).lower()),
            ("stability", self.stability),
            ("latency_s", round(sum(self.latencies), 6)),
            ("latencies", ";".join(f"{x:.6f}" for x in self.latencies)),
            ("cost", "" if self.cost is None else self.cost),
            ("tokens", self.tokens),
            ("cached", self.cached),
        ]

    @classmethod
    def from_properties(cls, props: Mapping[str, Any]) -> ItemResult | None:
        """Rebuild from properties (strings after junit); None when they are not an autoevolve item's."""
        if props.get("autoevolve") != "scenario":
            return None
        latencies = [float(x) for x in str(props.get("latencies") or "").split(";") if x]
        return cls(
            scenario=str(props["scenario"]),
            role=str(props["role"]),
            trials=int(props["trials"]),
            passes=int(props["passes"]),
            errors=int(props.get("errors") or 0),
            model=str(props.get("model", "")),
            split=str(props.get("split", "eval")),
            category=str(props.get("category") or ""),
            critical=str(props.get("critical")).lower() == "true",
            score=float(props.get("score") or 0.0),
            latencies=latencies,
            cost=float(props["cost"]) if props.get("cost") not in (None, "") else None,
            tokens=int(props.get("tokens") or 0),
            file=str(props.get("file", "")),
            line=int(props.get("line") or 0),
            cached=int(props.get("cached") or 0),
        )


def items_of_run(trials: Iterable[Trajectory], role: str, split: str | None = None) -> list[ItemResult]:
    """One result per scenario of a recorded run's trials, as items of ``role`` (in first-seen order)."""
    grouped: dict[str, list[Trajectory]] = {}
    for trial in trials:
        grouped.setdefault(trial.scenario_id, []).append(trial)
    return [ItemResult.from_trials(group, role=role, split=split) for group in grouped.values()]

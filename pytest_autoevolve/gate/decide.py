"""The gate: pair incumbent and candidate by scenario and decide pass, fail or inconclusive (DESIGN §6).

The metric is each scenario's pass rate over its trials; lift is candidate minus incumbent.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from pytest_autoevolve.gate import sequential, stats
from pytest_autoevolve.gate.results import ItemResult
from pytest_autoevolve.settings import GateConfig

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

VERDICTS = ("pass", "fail", "inconclusive")


@dataclass(frozen=True)
class RoleStats:
    """Aggregate numbers of one role over the paired scenarios.

    ``pass_rate`` is the mean of the scenarios' pass rates, the quantity whose difference is the
    lift; ``trial_pass_rate`` pools the trials (they differ when scenarios have different repeats).
    """

    spec: str
    pass_rate: float | None
    n: int
    passed: int
    errors: int
    error_rate: float | None
    scenarios: int
    p95_latency_s: float | None
    cost: float | None
    tokens: int
    trial_pass_rate: float | None = None
    ci: tuple[float, float] = (math.nan, math.nan)
    """The (1 - 2·alpha) scenario-clustered interval of ``pass_rate``."""


@dataclass(frozen=True)
class Guardrail:
    """One guardrail: the candidate's value against the incumbent's, within a limit."""

    name: str
    incumbent: float
    candidate: float
    limit: float
    passed: bool
    detail: str


@dataclass(frozen=True)
class CategoryRow:
    """Both roles' pass rates over one category, with scenario-clustered intervals, lift and Holm-adjusted p-value."""

    category: str
    n: int
    lift: float
    p_value: float
    incumbent_pass_rate: float | None
    incumbent_ci: tuple[float, float]
    candidate_pass_rate: float | None
    candidate_ci: tuple[float, float]
    p_holm: float

    def __getitem__(self, key: str) -> Any:
        """A value by its ``summary.json`` key, as when the rows were dicts: ``row['p_holm']``."""
        return _by_key(self, key)


@dataclass(frozen=True)
class ScenarioRole:
    """One role's trials of one paired scenario, with the unbiased pass^k and pass@k."""

    trials: int
    passes: int
    errors: int
    pass_rate: float
    stability: str
    k: int
    pass_hat_k: float | None
    pass_at_k: float | None

    def __getitem__(self, key: str) -> Any:
        """A value by its ``summary.json`` key, as when the rows were dicts: ``role["pass^2"]``."""
        named = {f"pass^{self.k}": self.pass_hat_k, f"pass@{self.k}": self.pass_at_k}
        return named[key] if key in named else _by_key(self, key)


@dataclass(frozen=True)
class ScenarioRow:
    """One paired scenario: where it is, how it changed, and both roles' trials."""

    id: str
    category: str
    critical: bool
    file: str
    line: int
    outcome: str
    incumbent: ScenarioRole
    candidate: ScenarioRole

    def role(self, name: str) -> ScenarioRole:
        """The incumbent's or the candidate's trials, by role name."""
        return self.candidate if name == "candidate" else self.incumbent

    def __getitem__(self, key: str) -> Any:
        """A value by its ``summary.json`` key, as when the rows were dicts: ``row['outcome']``."""
        return _by_key(self, key)


def _by_key(row: DataclassInstance, key: str) -> Any:
    """The field ``key`` of a row; KeyError when it has none."""
    if key not in {f.name for f in fields(row)}:
        raise KeyError(key)
    return getattr(row, key)


def role_stats(items: Sequence[ItemResult], spec: str = "", alpha: float = 0.05) -> RoleStats:
    """Pass rate with its scenario-clustered interval, errors, p95 latency and cost of one role."""
    trials = sum(i.trials for i in items)
    latencies = sorted(x for i in items for x in i.latencies)
    costs = [i.cost for i in items if i.cost is not None]
    rates = [i.pass_rate for i in items if i.trials]
    return RoleStats(
        spec=spec or next((i.model for i in items if i.model), ""),
        pass_rate=sum(rates) / len(rates) if rates else None,
        trial_pass_rate=sum(i.passes for i in items) / trials if trials else None,
        n=trials,
        passed=sum(i.passes for i in items),
        errors=sum(i.errors for i in items),
        error_rate=sum(i.errors for i in items) / trials if trials else None,
        scenarios=len(items),
        p95_latency_s=latencies[min(len(latencies) - 1, math.ceil(0.95 * len(latencies)) - 1)] if latencies else None,
        cost=sum(costs) if costs else None,
        tokens=sum(i.tokens for i in items),
        ci=stats.clustered_interval(rates, alpha),
    )


def differences(pairs: Sequence[tuple[ItemResult, ItemResult]]) -> stats.Differences:
    """The paired scenarios' differences in pass rate, on their lattice."""
    return stats.Differences.of((i.passes, i.trials, c.passes, c.trials) for i, c in pairs)


def paired_test(
    pairs: Sequence[tuple[ItemResult, ItemResult]], config: GateConfig, interval: bool = True
) -> stats.PairedTest:
    """The lattice score test of "lift > threshold" and, unless ``interval=False``, the interval it inverts to."""
    diffs = differences(pairs)
    p_value = stats.score_p(diffs, config.threshold)
    low, high = stats.score_interval(diffs, config.alpha) if interval else (math.nan, math.nan)
    return stats.PairedTest("score", diffs.mean, low, high, p_value, diffs.n)


@dataclass
class GateResult:
    """The verdict and every number behind it."""

    verdict: str
    reasons: list[str]
    incumbent: RoleStats
    candidate: RoleStats
    config: GateConfig
    test: stats.PairedTest | None = None
    n_paired: int = 0
    improvements: list[str] = field(default_factory=list)
    regressions: list[str] = field(default_factory=list)
    critical_regressions: list[str] = field(default_factory=list)
    minimum_detectable_lift: float | None = None
    discordance: float | None = None
    guardrails: list[Guardrail] = field(default_factory=list)
    categories: list[CategoryRow] = field(default_factory=list)
    scenarios: list[ScenarioRow] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """The selected scenario items (``id[role]``) that did not finish with recorded trials."""
    design: sequential.Design | None = None
    """A sequential gate's looks and where it stopped; None for the fixed design."""

    @property
    def complete(self) -> bool:
        """Whether every selected scenario item finished."""
        return not self.missing


def pair(items: Iterable[ItemResult]) -> list[tuple[ItemResult, ItemResult]]:
    """Eval-split (incumbent, candidate) pairs by scenario id, in catalog order (file, line, id).

    The order is fixed by the catalog, not by the order results arrive in (which differs
    under xdist and in junit files), because the bootstrap interval depends on it.
    """
    by_role: dict[str, dict[str, ItemResult]] = {"incumbent": {}, "candidate": {}}
    for item in items:
        if item.role in by_role and item.split == "eval":
            by_role[item.role][item.scenario] = item
    incumbent, candidate = by_role["incumbent"], by_role["candidate"]
    ordered = sorted(incumbent.values(), key=lambda i: (i.file, i.line, i.scenario))
    return [(i, candidate[i.scenario]) for i in ordered if i.scenario in candidate]


def decide(items: Iterable[ItemResult], config: GateConfig, specs: Mapping[str, str] | None = None) -> GateResult:
    """Pair the results and decide, with the reasons; results that are not counts fail closed (inconclusive)."""
    specs = specs or {}
    items = list(items)
    broken = [problem for item in items if (problem := invalid(item)) is not None]
    if broken:
        empty = role_stats([])
        reasons = [f"results that are not counts: {'; '.join(broken[:5])}"]
        return GateResult("inconclusive", reasons, empty, empty, config)
    pairs = pair(items)
    result = GateResult(
        verdict="inconclusive",
        reasons=[],
        config=config,
        n_paired=len(pairs),
        incumbent=role_stats([i for i, _ in pairs], specs.get("incumbent", ""), config.alpha),
        candidate=role_stats([c for _, c in pairs], specs.get("candidate", ""), config.alpha),
    )
    result.scenarios = [_scenario_row(i, c, config.k) for i, c in pairs]
    if not pairs:
        result.reasons.append("no scenario ran on both the incumbent and the candidate")
        return result
    result.improvements = [i.scenario for i, c in pairs if c.pass_rate > i.pass_rate]
    result.regressions = [i.scenario for i, c in pairs if c.pass_rate < i.pass_rate]
    result.critical_regressions = [i.scenario for i, c in pairs if i.critical and c.pass_rate < i.pass_rate]
    diffs = differences(pairs)
    result.discordance = diffs.second_moment
    result.minimum_detectable_lift = stats.detectable_lift(
        diffs.n,
        diffs.second_moment,
        config.threshold,
        config.alpha,
        single_trials=all(i.trials == 1 and c.trials == 1 for i, c in pairs),
    )
    for role, stat in (("incumbent", result.incumbent), ("candidate", result.candidate)):
        if stat.errors == stat.n:
            result.reasons.append(f"every {role} trial errored: nothing to compare")
    if len(pairs) < config.min_paired:
        result.reasons.append(f"only {len(pairs)} paired scenarios; the gate needs at least {config.min_paired}")
    if result.reasons:
        return result
    result.test = paired_test(pairs, config)
    numbers = (result.test.lift, result.test.p_value, result.test.ci_low, result.test.ci_high)
    if not all(math.isfinite(x) for x in numbers):
        result.reasons.append(f"the paired test gave a number that is not finite (lift, p, interval: {numbers})")
        return result
    result.categories = _categories(pairs, config)
    result.guardrails = _guardrails(result.incumbent, result.candidate, config)
    result.reasons = _failures(result)
    result.verdict = "fail" if result.reasons else "pass"
    if not result.reasons:
        result.reasons.append(_rule_text(result.test, config, cleared=True))
    return result


def decide_sequential(
    items: Iterable[ItemResult], ordered: Sequence[str], config: GateConfig, specs: Mapping[str, str] | None = None
) -> GateResult:
    """The sequential gate: the fixed rule at the deciding look's level, on that look's scenarios.

    ``ordered`` are the planned eval scenarios in run order (`sequential.order`). Results past
    the deciding look are left out. Without a decision (the run stopped early) it is inconclusive.
    """
    items = list(items)
    design = sequential.walk(items, ordered, config)
    if design.decided:
        used = set(ordered[: design.used])
        result = decide([i for i in items if i.scenario in used], sequential.at_look(config, design), specs)
    else:
        result = decide(items, config, specs)
        result.verdict = "inconclusive"
        result.reasons = [f"the run stopped before the gate decided: {design.describe()}"]
    result.design = design
    return result


def invalid(item: ItemResult) -> str | None:
    """What is wrong with a result's numbers (a NaN, more passes than trials, ...); `None` when nothing is."""
    counts = (item.trials, item.passes, item.errors, item.tokens, item.cached)
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in counts):
        return f"{item.scenario}[{item.role}]: counts {counts} are not whole numbers of at least 0"
    if item.passes > item.trials or item.errors > item.trials:
        return f"{item.scenario}[{item.role}]: {item.passes} passes and {item.errors} errors of {item.trials} trials"
    numbers = [item.score, *item.latencies, *([] if item.cost is None else [item.cost])]
    if any(isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x) or x < 0 for x in numbers):
        return f"{item.scenario}[{item.role}]: a score, latency or cost that is not a finite number of at least 0"
    return None


def require_complete(result: GateResult, missing: Sequence[ItemResult], why: str) -> GateResult:
    """Completeness is part of the verdict: with items that never finished, a run cannot pass.

    ``missing`` are the selected items without recorded trials (a crash, a lost worker, ``-x``,
    ``--maxfail``, Ctrl-C). The verdict becomes ``fail`` when a critical scenario is among them,
    else ``inconclusive`` unless it already is ``fail``; ``why`` says how the run ended.
    """
    if not missing:
        return result
    result.missing = sorted(f"{item.scenario}[{item.role}]" for item in missing)
    shown = ", ".join(result.missing[:5]) + (f", ... ({len(missing) - 5} more)" if len(missing) > 5 else "")
    critical = sorted({item.scenario for item in missing if item.critical})
    reasons = [f"{len(missing)} selected scenario item(s) did not finish ({why}): {shown}"]
    was_pass = result.verdict == "pass"
    if critical:
        reasons.append(f"critical scenario(s) did not finish: {', '.join(critical)}")
        result.verdict = "fail"
    elif was_pass:
        result.verdict = "inconclusive"
    result.reasons = reasons + ([] if was_pass else result.reasons)  # a pass's reasons no longer hold
    return result


def cut_by_budget(result: GateResult, missing: Sequence[ItemResult], why: str) -> GateResult:
    """A fixed gate whose budget ran out before every selected item ran is inconclusive: never pass, never fail.

    A cut-short catalog is not the one the rule was set for, and the items left out are no
    evidence of a regression (`require_complete` is for items that crashed or were lost).
    """
    result.missing = sorted(f"{item.scenario}[{item.role}]" for item in missing)
    result.verdict = "inconclusive"
    result.reasons = [
        f"{why}: {len(missing)} selected scenario item(s) did not run, and a fixed gate cut short decides "
        "nothing (a sequential gate, gate: {sequential: true}, stays valid when its budget runs out)"
    ]
    return result


def _rule_text(test: stats.PairedTest, config: GateConfig, cleared: bool) -> str:
    verb = "clears" if cleared else "does not clear"
    if config.mode == "superiority":
        rule = f"superiority (p < {config.alpha:g}, lift >= {config.min_lift:+.3f})"
    else:
        rule = f"non-inferiority within {config.margin:.3f} (p < {config.alpha:g})"
    return f"the candidate {verb} {rule}: lift {test.lift:+.3f}, p = {test.p_value:.4g}"


def _failures(result: GateResult) -> list[str]:
    assert result.test is not None
    config, test = result.config, result.test
    reasons = []
    if result.critical_regressions:
        reasons.append(f"critical scenario(s) regressed: {', '.join(result.critical_regressions)}")
    reasons += [f"guardrail {g.name} breached: {g.detail}" for g in result.guardrails if not g.passed]
    rejected = test.p_value < config.alpha
    if config.mode == "superiority":
        rejected = rejected and test.lift >= config.min_lift and test.lift > 0
    if not rejected:
        reasons.append(_rule_text(test, config, cleared=False))
    return reasons


def _guardrails(incumbent: RoleStats, candidate: RoleStats, config: GateConfig) -> list[Guardrail]:
    """Error rate, p95 latency and cost of the candidate against the incumbent's, within margins."""
    rows = []
    if config.max_error_rate_increase is not None and incumbent.error_rate is not None:
        limit = (incumbent.error_rate or 0.0) + config.max_error_rate_increase
        value = candidate.error_rate or 0.0
        rows.append(_guardrail("error_rate", incumbent.error_rate, value, limit, f"{value:.1%} > {limit:.1%}"))
    if config.max_latency_increase is not None and incumbent.p95_latency_s is not None:
        limit = incumbent.p95_latency_s * (1 + config.max_latency_increase) + config.latency_slack_s
        value = candidate.p95_latency_s or 0.0
        rows.append(_guardrail("p95_latency_s", incumbent.p95_latency_s, value, limit, f"{value:.3f}s > {limit:.3f}s"))
    if config.max_cost_increase is not None and incumbent.cost is not None and candidate.cost is not None:
        limit = incumbent.cost * (1 + config.max_cost_increase)
        rows.append(_guardrail("cost", incumbent.cost, candidate.cost, limit, f"{candidate.cost:.4f} > {limit:.4f}"))
    return rows


def _guardrail(name: str, incumbent: float, candidate: float, limit: float, detail: str) -> Guardrail:
    passed = candidate <= limit + 1e-12
    return Guardrail(name, incumbent, candidate, limit, passed, "" if passed else detail)


def _categories(pairs: Sequence[tuple[ItemResult, ItemResult]], config: GateConfig) -> list[CategoryRow]:
    """Per-category pass rates with scenario-clustered intervals, lift and Holm-adjusted p-values."""
    groups: dict[str, list[tuple[ItemResult, ItemResult]]] = {}
    for pair_ in pairs:
        groups.setdefault(pair_[0].category or "(none)", []).append(pair_)
    names = sorted(groups)
    tests = [paired_test(groups[name], config, interval=False) for name in names]
    rows = []
    for name, test, p_holm in zip(names, tests, stats.holm([t.p_value for t in tests]), strict=True):
        group = groups[name]
        (inc_rate, inc_ci), (cand_rate, cand_ci) = (
            _category_rate([p[index] for p in group], config.alpha) for index in (0, 1)
        )
        rows.append(
            CategoryRow(name, len(group), test.lift, test.p_value, inc_rate, inc_ci, cand_rate, cand_ci, p_holm)
        )
    return rows


def _category_rate(items: Sequence[ItemResult], alpha: float) -> tuple[float | None, tuple[float, float]]:
    """One role's mean per-scenario pass rate over a category, with its scenario-clustered interval.

    The scenario is the unit, as for the lift: trials of one scenario are not independent.
    """
    rates = [i.pass_rate for i in items if i.trials]
    return (sum(rates) / len(rates) if rates else None), stats.clustered_interval(rates, alpha)


def _scenario_row(incumbent: ItemResult, candidate: ItemResult, k: int) -> ScenarioRow:
    def role(item: ItemResult) -> ScenarioRole:
        return ScenarioRole(
            trials=item.trials,
            passes=item.passes,
            errors=item.errors,
            pass_rate=item.pass_rate,
            stability=item.stability,
            k=k,
            pass_hat_k=stats.pass_hat_k(item.passes, item.trials, k),
            pass_at_k=stats.pass_at_k(item.passes, item.trials, k),
        )

    change = candidate.pass_rate - incumbent.pass_rate
    return ScenarioRow(
        id=incumbent.scenario,
        category=incumbent.category,
        critical=incumbent.critical,
        file=incumbent.file,
        line=incumbent.line,
        outcome="improved" if change > 0 else "regressed" if change < 0 else "same",
        incumbent=role(incumbent),
        candidate=role(candidate),
    )

"""How the reports write numbers, intervals and names, shared by every renderer."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeGuard

from pytest_autoevolve.gate.decide import Guardrail, ScenarioRole, ScenarioRow
from pytest_autoevolve.gate.summary import GateSummary

ROLES = ("incumbent", "candidate")

LIST_CAP = 25

"""Scenario ids listed per section of report.md before "... and N more"."""

CATEGORY_CAP = 40

"""Categories shown in a table or chart before the rest are counted."""

DETAIL_CAP = 400

"""Scenarios whose trajectories report.html shows."""

TRIAL_CAP = 5

"""Trials per scenario and role shown in report.html."""

TEXT_CAP = 4000

"""Characters of one message, output or error shown in report.html."""

PASS_K_NOTE = (
    "pass^k: the chance that k trials of a scenario all pass; pass@k: the chance that at least one of k passes "
    "(both unbiased estimates from each scenario's trials, averaged over scenarios)."
)

TEST_NAMES = {"score": "paired score test (Tango; restricted MLE on the lattice)"}

VERDICT_ICONS = {"pass": "✅", "fail": "❌", "inconclusive": "⚠️"}

# --------------------------------------------------------------------------- shared pieces


@dataclass(frozen=True)
class RoleStability:
    """How many paired scenarios were stable-pass, stable-fail and flaky on one role, and the flaky ones."""

    counts: dict[str, int]
    flaky: list[ScenarioRow]


def statistics(gate: GateSummary, markdown: bool) -> list[tuple[str, str]]:
    """Label and value of the gate's numbers, for both reports."""
    bold = ("**", "**") if markdown else ("<b>", "</b>")
    if gate.mode == "non_inferiority":
        rule = f"non-inferiority (margin {pct(gate.thresholds.margin)})"
    else:
        rule = f"superiority (lift ≥ {pct(gate.thresholds.min_lift, signed=True)})"
    test_text = f"{TEST_NAMES.get(gate.test, gate.test)} ({gate.test})" if gate.test else "n/a (not run)"
    lift = pct(gate.lift, signed=True)
    return [
        ("lift (candidate - incumbent)", f"{bold[0]}{lift}{bold[1]}" if lift != "n/a" else lift),
        (f"{ci_level(gate)} confidence interval", interval(gate.ci_low, gate.ci_high, True)),
        ("p-value (one-sided)", p(gate.p_value)),
        ("test", test_text),
        ("alpha", f"{gate.alpha:g}"),
        ("mode", rule),
        ("paired scenarios", str(gate.n_paired)),
        ("minimum detectable lift (80% power, prospective)", pct(gate.minimum_detectable_lift)),
        ("design", f"{gate.design.describe()}; {gate.design.spent()}" if gate.design else "fixed: every scenario"),
    ]


def stability(rows: Sequence[ScenarioRow]) -> dict[str, RoleStability]:
    """Each role's stability counts over the paired scenarios, and its flaky scenarios."""
    out: dict[str, RoleStability] = {}
    for role in ROLES:
        counts = {"stable-pass": 0, "stable-fail": 0, "flaky": 0}
        for row in rows:
            counts[row.role(role).stability] += 1
        out[role] = RoleStability(counts, [row for row in rows if row.role(role).stability == "flaky"])
    return out


def repeated(rows: Sequence[ScenarioRow]) -> bool:
    """Whether any scenario ran more than one trial on a role (so flakiness, pass^k and pass@k can show)."""
    return any(row.role(role).trials > 1 for row in rows for role in ROLES)


def k_keys(rows: Sequence[ScenarioRow]) -> list[str]:
    """The pass^k and pass@k columns of the stability tables, pass^k first."""
    keys = {f"pass{kind}{row.role(role).k}" for row in rows for role in ROLES for kind in "^@"}
    return sorted(keys, key=lambda key: (key[4] != "^", key))


def k_value(stat: ScenarioRole, key: str) -> float | None:
    """The role's pass^k or pass@k named by ``key`` (None for another k)."""
    if key == f"pass^{stat.k}":
        return stat.pass_hat_k
    return stat.pass_at_k if key == f"pass@{stat.k}" else None


def mean_cell(rows: Sequence[ScenarioRow], role: str, key: str) -> str:
    """The mean of a pass^k or pass@k column over the scenarios that have it."""
    values = [v for v in (k_value(row.role(role), key) for row in rows) if finite(v)]
    if not values:
        return "n/a"
    mean = f"{sum(values) / len(values):.1%}"
    return mean if len(values) == len(rows) else f"{mean} ({len(values)} of {len(rows)} scenarios)"


def detail_order(rows: Sequence[ScenarioRow]) -> list[ScenarioRow]:
    """Regressions (critical first), improvements, unchanged with a failure, the rest; stable otherwise."""

    def key(row: ScenarioRow) -> tuple[int, int]:
        if row.outcome == "regressed":
            return 0, 0 if row.critical else 1
        if row.outcome == "improved":
            return 1, 0
        failing = not (all_passed(row.incumbent) and all_passed(row.candidate))
        return 2, 0 if failing else 1

    return sorted(rows, key=key)


def ordered_regressions(rows: Iterable[ScenarioRow]) -> list[ScenarioRow]:
    """The regressed scenarios, critical ones first."""
    regressed = [row for row in rows if row.outcome == "regressed"]
    return sorted(regressed, key=lambda row: not row.critical)


def all_passed(stat: ScenarioRole) -> bool:
    """Whether every trial of the role passed (and there was one)."""
    return stat.trials > 0 and stat.passes == stat.trials


def location(row: ScenarioRow) -> str:
    """``file:line`` of the scenario ("" when unknown)."""
    if not row.file:
        return ""
    return f"{row.file}:{row.line}" if row.line else row.file


def finite(value: object) -> TypeGuard[float]:
    """Whether ``value`` is a finite number (not None, NaN, infinite or a boolean)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def pct(value: float | None, signed: bool = False, digits: int = 1) -> str:
    """A share as a percentage ("n/a" when not a finite number)."""
    if not finite(value):
        return "n/a"
    if round(value * 100, digits) == 0:
        value = 0.0  # no "-0.0%"
    return f"{value:+.{digits}%}" if signed and value != 0 else f"{value:.{digits}%}"


def p(value: float | None) -> str:
    """A p-value to four significant digits."""
    return f"{value:.4g}" if finite(value) else "n/a"


def seconds(value: float | None) -> str:
    """A duration in seconds or milliseconds."""
    if not finite(value):
        return "n/a"
    if abs(value) >= 1:
        return f"{value:.2f} s"
    ms = value * 1000
    return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms" if ms >= 1 else f"{ms:.2f} ms"


def cost(value: float | None) -> str:
    """A cost to four decimals."""
    return f"{value:.4f}" if finite(value) else "n/a"


def interval(low: float | None, high: float | None, signed: bool = False) -> str:
    """An interval of shares as ``[low, high]`` percentages."""
    if not (finite(low) and finite(high)):
        return "n/a"
    return f"[{pct(low, signed)}, {pct(high, signed)}]"


def ci_text(ci: tuple[float, float]) -> str:
    """A muted interval for a table cell."""
    return f'<span class="muted">{interval(ci[0], ci[1])}</span>'


def ci_level(gate: GateSummary) -> str:
    """The confidence level of the lift's interval, from alpha (90% for alpha 0.05, one-sided)."""
    return f"{100 - 200 * float(gate.alpha):.6g}%" if finite(gate.alpha) else "two-sided"


def guardrail_value(guardrail: Guardrail, value: float) -> str:
    """A value of a guardrail in its unit: a share, seconds or a cost."""
    if guardrail.name == "error_rate":
        return pct(value)
    if guardrail.name == "p95_latency_s":
        return seconds(value)
    return cost(value)


def verdict_icon(verdict: str) -> str:
    """A check, a cross or an exclamation mark in a circle, drawn (emoji fonts are not everywhere)."""
    marks = {
        "pass": '<path d="M7 12.5l3.2 3.2L17 9" fill="none" stroke="currentColor" stroke-width="2.6"/>',
        "fail": '<path d="M8 8l8 8M16 8l-8 8" stroke="currentColor" stroke-width="2.6"/>',
    }
    mark = marks.get(
        verdict,
        '<path d="M12 6.5v7" stroke="currentColor" stroke-width="2.6"/>'
        '<circle cx="12" cy="17.2" r="1.5" fill="currentColor"/>',
    )
    return (
        '<svg viewBox="0 0 24 24" width="28" height="28" style="display:inline-block;vertical-align:-5px" '
        f'aria-hidden="true"><circle cx="12" cy="12" r="11" fill="none" stroke="currentColor" stroke-width="2"/>'
        f"{mark}</svg>"
    )


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clip(text: str, limit: int = TEXT_CAP) -> str:
    """``text`` cut to ``limit`` characters, saying how many more there were."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more characters)"

"""The gate's result as terminal lines (pytest's summary and ``autoevolve report``)."""

from __future__ import annotations

from pytest_autoevolve.gate.summary import CanaryRun, GateSummary
from pytest_autoevolve.report.format import ROLES, ci_level


def summary_lines(gate: GateSummary) -> list[str]:
    """The terminal summary of a gate result (also printed by ``autoevolve report``): numbers, then verdict."""
    return number_lines(gate) + verdict_lines(gate)


def verdict_lines(gate: GateSummary) -> list[str]:
    """The verdict with its reasons, one line each."""
    return [f"{gate.verdict}: {reason}" for reason in gate.reasons]


def canary_lines(canary: CanaryRun | None) -> list[str]:
    """What a canary run routed to the canary, first in the gate's block (nothing for an ordinary run)."""
    if canary is None:
        return []
    return [
        f"canary run: {canary.routed} of {canary.total} scenarios (share {canary.share:g}, seed {canary.seed}) "
        f"routed to the canary {canary.spec}, gated against the incumbent on that traffic; "
        f"{canary.total - canary.routed} deselected"
    ]


def number_lines(gate: GateSummary) -> list[str]:
    """Both roles' pass rates, the lift with its interval, the design, the power, what changed."""
    lines = []
    for role in ROLES:
        stat = gate.role(role)
        rate = f"{stat.pass_rate:.1%}" if stat.pass_rate is not None else "n/a"
        pooled = f"mean of {stat.scenarios} scenarios; " if stat.n != stat.scenarios else ""
        lines.append(
            f"{role:<10} {stat.spec:<28} pass rate {rate:>6}  "
            f"({pooled}{stat.passed}/{stat.n} trials, {stat.errors} errors)"
        )
    test = gate.paired
    if test is not None:
        lines.append(
            f"lift {test.lift:+.1%}  {ci_level(gate)} CI [{test.ci_low:+.1%}, "
            f"{test.ci_high:+.1%}]  p = {test.p_value:.4g}  ({test.test}, {gate.mode}, "
            f"alpha {gate.alpha:g}, {gate.n_paired} paired scenarios)"
        )
    if gate.design is not None:
        lines.append(f"{gate.design.describe()}; {gate.design.spent()}")
    if gate.minimum_detectable_lift is not None:
        lines.append(
            f"smallest lift this catalog detects with 80% power (prospective, at this discordance): "
            f"{gate.minimum_detectable_lift:.1%}"
        )
    for label, ids in (("regressions", gate.regressions), ("improvements", gate.improvements)):
        shown = ", ".join(ids[:10]) + (f", ... ({len(ids) - 10} more)" if len(ids) > 10 else "")
        lines.append(f"{label} ({len(ids)}): {shown or '-'}")
    return lines

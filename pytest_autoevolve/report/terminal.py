"""The gate's result as terminal lines (pytest's summary and ``autoevolve report``)."""

from __future__ import annotations

from pytest_autoevolve.gate.decide import GateResult


def summary_lines(result: GateResult) -> list[str]:
    """The terminal summary of a gate result (also printed by ``autoevolve report``)."""
    lines = []
    for role in ("incumbent", "candidate"):
        stat = getattr(result, role)
        rate = f"{stat.pass_rate:.1%}" if stat.pass_rate is not None else "n/a"
        lines.append(
            f"{role:<10} {stat.spec:<28} pass rate {rate:>6}  ({stat.passed}/{stat.n} trials, {stat.errors} errors)"
        )
    test = result.test
    if test is not None:
        lines.append(
            f"lift {test.lift:+.1%}  {100 - 200 * result.config.alpha:.0f}% CI [{test.ci_low:+.1%}, "
            f"{test.ci_high:+.1%}]  p = {test.p_value:.4g}  ({test.test}, {result.config.mode}, "
            f"alpha {result.config.alpha:g}, {result.n_paired} paired scenarios)"
        )
    if result.minimum_detectable_lift is not None:
        lines.append(f"smallest lift this catalog can detect (80% power): {result.minimum_detectable_lift:.1%}")
    for label, ids in (("regressions", result.regressions), ("improvements", result.improvements)):
        shown = ", ".join(ids[:10]) + (f", ... ({len(ids) - 10} more)" if len(ids) > 10 else "")
        lines.append(f"{label} ({len(ids)}): {shown or '-'}")
    lines += [f"{result.verdict}: {reason}" for reason in result.reasons]
    return lines

"""How the reports write numbers, intervals and names, shared by every renderer."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeGuard

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

TEST_NAMES = {"mcnemar_exact": "exact McNemar", "sign_flip": "sign-flip permutation"}

VERDICT_ICONS = {"pass": "✅", "fail": "❌", "inconclusive": "⚠️"}

# --------------------------------------------------------------------------- shared pieces


def _statistics(summary: Mapping[str, Any], markdown: bool) -> list[tuple[str, str]]:
    """Label and value of the gate's numbers, for both reports."""
    bold = ("**", "**") if markdown else ("<b>", "</b>")
    test = summary.get("test")
    thresholds = summary.get("thresholds") or {}
    mode = str(summary.get("mode", "superiority"))
    if mode == "non_inferiority":
        rule = f"non-inferiority (margin {_pct(thresholds.get('margin'))})"
    else:
        rule = f"superiority (lift ≥ {_pct(thresholds.get('min_lift', 0.0), signed=True)})"
    test_text = f"{TEST_NAMES.get(str(test), str(test))} ({test})" if test else "n/a (not run)"
    lift = _pct(summary.get("lift"), signed=True)
    return [
        ("lift (candidate - incumbent)", f"{bold[0]}{lift}{bold[1]}" if lift != "n/a" else lift),
        (f"{_ci_level(summary)} confidence interval", _interval(summary.get("ci_low"), summary.get("ci_high"), True)),
        ("p-value (one-sided)", _p(summary.get("p_value"))),
        ("test", test_text),
        ("alpha", f"{summary.get('alpha', 0.05):g}"),
        ("mode", rule),
        ("paired scenarios", str(summary.get("n_paired", 0))),
        ("minimum detectable lift (80% power)", _pct(summary.get("minimum_detectable_lift"))),
    ]


def _stability(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for role in ROLES:
        counts = {"stable-pass": 0, "stable-fail": 0, "flaky": 0}
        flaky = []
        for row in rows:
            kind = str((row.get(role) or {}).get("stability", ""))
            if kind in counts:
                counts[kind] += 1
            if kind == "flaky":
                flaky.append(row)
        out[role] = {"counts": counts, "flaky": flaky}
    return out


def _k_keys(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    keys = {key for row in rows for role in ROLES for key in (row.get(role) or {}) if key[:5] in ("pass^", "pass@")}
    return sorted(keys, key=lambda key: (key[4] != "^", key))


def _mean_cell(rows: Sequence[Mapping[str, Any]], role: str, key: str) -> str:
    found = [(row.get(role) or {}).get(key) for row in rows]
    values = [float(v) for v in found if _finite(v)]
    if not values:
        return "n/a"
    mean = f"{sum(values) / len(values):.1%}"
    return mean if len(values) == len(rows) else f"{mean} ({len(values)} of {len(rows)} scenarios)"


def _detail_order(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Regressions (critical first), improvements, unchanged with a failure, the rest; stable otherwise."""

    def key(row: Mapping[str, Any]) -> tuple[int, int]:
        outcome = row.get("outcome")
        if outcome == "regressed":
            return 0, 0 if row.get("critical") else 1
        if outcome == "improved":
            return 1, 0
        failing = not (_all_passed(row.get("incumbent")) and _all_passed(row.get("candidate")))
        return 2, 0 if failing else 1

    return sorted(rows, key=key)


def _ordered_regressions(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    regressed = [row for row in rows if row.get("outcome") == "regressed"]
    return sorted(regressed, key=lambda row: not row.get("critical"))


def _all_passed(role: Any) -> bool:
    return isinstance(role, Mapping) and int(role.get("trials") or 0) > 0 and role.get("passes") == role.get("trials")


def _location(row: Mapping[str, Any]) -> str:
    if not row.get("file"):
        return ""
    return f"{row['file']}:{row['line']}" if row.get("line") else str(row["file"])


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _pct(value: Any, signed: bool = False, digits: int = 1) -> str:
    if not _finite(value):
        return "n/a"
    if round(value * 100, digits) == 0:
        value = 0.0  # no "-0.0%"
    return f"{value:+.{digits}%}" if signed and value != 0 else f"{value:.{digits}%}"


def _p(value: Any) -> str:
    return f"{value:.4g}" if _finite(value) else "n/a"


def _seconds(value: Any) -> str:
    if not _finite(value):
        return "n/a"
    if abs(value) >= 1:
        return f"{value:.2f} s"
    ms = value * 1000
    return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms" if ms >= 1 else f"{ms:.2f} ms"


def _cost(value: Any) -> str:
    return f"{value:.4f}" if _finite(value) else "n/a"


def _interval(low: Any, high: Any, signed: bool = False) -> str:
    if not (_finite(low) and _finite(high)):
        return "n/a"
    return f"[{_pct(low, signed)}, {_pct(high, signed)}]"


def _ci_text(ci: Any) -> str:
    if isinstance(ci, Sequence) and len(ci) == 2:
        return f'<span class="muted">{_interval(ci[0], ci[1])}</span>'
    return ""


def _ci_level(summary: Mapping[str, Any]) -> str:
    alpha = summary.get("alpha")
    return f"{100 - 200 * float(alpha):g}%" if _finite(alpha) else "two-sided"


def _guardrail_value(guardrail: Mapping[str, Any], key: str) -> str:
    value = guardrail.get(key)
    name = guardrail.get("name")
    if name == "error_rate":
        return _pct(value)
    if name == "p95_latency_s":
        return _seconds(value)
    return _cost(value)


def _verdict_icon(verdict: str) -> str:
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


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clip(text: str, limit: int = TEXT_CAP) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more characters)"

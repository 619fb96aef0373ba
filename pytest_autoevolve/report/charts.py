"""The report's charts as inline SVG: the lift with its interval, and pass rates by category."""

from __future__ import annotations

import html
import math
from collections.abc import Iterable

from pytest_autoevolve.gate.decide import ScenarioRow
from pytest_autoevolve.gate.summary import GateSummary
from pytest_autoevolve.report.format import CATEGORY_CAP, ROLES, all_passed, finite, interval, pct, shorten

COLORS = {"incumbent": "#0072b2", "candidate": "#e69f00"}

VERDICT_COLORS = {"pass": "#15803d", "fail": "#b91c1c", "inconclusive": "#b45309"}

OUTCOME_COLORS = {
    "both pass": "#cbd5e1",
    "only incumbent": "#dc2626",
    "only candidate": "#16a34a",
    "both fail": "#475569",
}

_Rate = tuple[str, float | None, tuple[float, float]]

"""A role, its pass rate and the rate's scenario-clustered interval: one bar of the category chart."""


def lift_svg(gate: GateSummary, lift: float, low: float, high: float) -> str:
    """The lift and its interval [low, high] on an axis with zero and the rule's line (min_lift or -margin)."""
    if gate.mode == "non_inferiority":
        line, line_label = -float(gate.thresholds.margin), "-margin"
    else:
        line, line_label = float(gate.thresholds.min_lift), "min lift"
    values = [0.0, lift, low, high, line]
    lo, hi = min(values), max(values)
    span = max(hi - lo, 0.1)
    lo, hi = max(lo - 0.15 * span, -1.0), min(hi + 0.15 * span, 1.0)
    step = _tick_step(hi - lo)
    lo, hi = math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step
    width, left, right, axis_y = 560, 24, 536, 96

    def x(value: float) -> float:
        return left + (value - lo) / (hi - lo) * (right - left)

    color = VERDICT_COLORS.get(gate.verdict, "#374151")
    aria = f"lift {pct(lift, signed=True)} with interval {interval(low, high, signed=True)}"
    out = [f'<svg viewBox="0 0 {width} 140" width="{width}" height="140" role="img" aria-label="{aria}">']
    if hi > line:  # the side of the rule's line where a candidate clears it
        out.append(
            f'<rect x="{x(line):.1f}" y="26" width="{x(hi) - x(line):.1f}" height="{axis_y - 26}" '
            'fill="#16a34a" fill-opacity="0.07"/>'
        )
    for tick in _ticks(lo, hi, step):
        out.append(f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="26" y2="{axis_y + 4}" stroke="#e5e7eb"/>')
        text = pct(tick, signed=True, digits=0 if step >= 0.01 else 1)
        out.append(
            f'<text x="{x(tick):.1f}" y="{axis_y + 17}" font-size="11" text-anchor="middle" '
            f'fill="#4b5563">{text}</text>'
        )
    out.append(f'<line x1="{left}" x2="{right}" y1="{axis_y}" y2="{axis_y}" stroke="#9ca3af"/>')
    out.append(f'<line x1="{x(0):.1f}" x2="{x(0):.1f}" y1="20" y2="{axis_y}" stroke="#111827" stroke-width="1.5"/>')
    if abs(line) > 1e-12:
        out.append(
            f'<line x1="{x(line):.1f}" x2="{x(line):.1f}" y1="20" y2="{axis_y}" stroke="#15803d" '
            'stroke-width="1.5" stroke-dasharray="5 3"/>'
        )
        out.append(_svg_label(x(line), 14, f"{line_label} {pct(line, signed=True)}", width, fill="#15803d"))
        out.append(_svg_label(x(0), 14, "0", width, fill="#111827") if abs(x(line) - x(0)) > 60 else "")
    else:
        out.append(
            f'<line x1="{x(0):.1f}" x2="{x(0):.1f}" y1="20" y2="{axis_y}" stroke="#15803d" '
            'stroke-width="1.5" stroke-dasharray="5 3"/>'
        )
        out.append(_svg_label(x(0), 14, f"0 = {line_label}", width, fill="#15803d"))
    y = 60
    out.append(
        f'<line x1="{x(low):.1f}" x2="{x(high):.1f}" y1="{y}" y2="{y}" stroke="{color}" stroke-width="4" '
        'stroke-linecap="round"/>'
    )
    for end in (low, high):
        out.append(
            f'<line x1="{x(end):.1f}" x2="{x(end):.1f}" y1="{y - 9}" y2="{y + 9}" stroke="{color}" stroke-width="2"/>'
        )
    out.append(f'<circle cx="{x(lift):.1f}" cy="{y}" r="7" fill="{color}" stroke="#fff" stroke-width="2"/>')
    label = f"{pct(lift, signed=True)}  [{pct(low, signed=True)}, {pct(high, signed=True)}]"
    out.append(_svg_label(x(lift), y - 15, label, width, fill="#111827", size=13, bold=True))
    out.append(f'<text x="{left}" y="134" font-size="11" fill="#6b7280">← candidate worse</text>')
    out.append(f'<text x="{right}" y="134" font-size="11" fill="#6b7280" text-anchor="end">candidate better →</text>')
    out.append("</svg>")
    return "".join(out)


def paired_outcomes(rows: Iterable[ScenarioRow]) -> dict[str, int]:
    """Counts of both pass / only incumbent / only candidate / both fail (passed = every trial passed)."""
    counts = dict.fromkeys(OUTCOME_COLORS, 0)
    for row in rows:
        inc, cand = all_passed(row.incumbent), all_passed(row.candidate)
        key = "both pass" if inc and cand else "only incumbent" if inc else "only candidate" if cand else "both fail"
        counts[key] += 1
    return counts


def category_svg(gate: GateSummary) -> str:
    """Horizontal grouped bars: each category's pass rate for both roles, scenario-clustered intervals as error bars."""
    overall: list[_Rate] = []
    for role in ROLES:
        stat = gate.role(role)
        overall.append((role, stat.pass_rate, stat.ci))
    groups: list[tuple[str, int, list[_Rate]]] = [("all scenarios", gate.n_paired, overall)]
    for c in gate.categories[:CATEGORY_CAP]:
        rates: list[_Rate] = [
            ("incumbent", c.incumbent_pass_rate, c.incumbent_ci),
            ("candidate", c.candidate_pass_rate, c.candidate_ci),
        ]
        groups.append((c.category, c.n, rates))
    width, x0, x1, top, bar_h, group_h = 1000, 230, 900, 40, 14, 46
    height = top + len(groups) * group_h + 30

    def x(value: float) -> float:
        return x0 + max(0.0, min(1.0, value)) * (x1 - x0)

    out = [
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        'aria-label="pass rate by category for both roles, with intervals">'
    ]
    legend_x = x0
    for role in ROLES:
        spec = shorten(gate.role(role).spec, 34)
        out.append(f'<rect x="{legend_x}" y="10" width="12" height="12" rx="2" fill="{COLORS[role]}"/>')
        out.append(
            f'<text x="{legend_x + 17}" y="20" font-size="12" fill="#111827">{role} '
            f'<tspan fill="#6b7280">{html.escape(spec)}</tspan></text>'
        )
        legend_x += 330
    bottom = top + len(groups) * group_h
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        out.append(f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{top - 4}" y2="{bottom}" stroke="#e5e7eb"/>')
        out.append(
            f'<text x="{x(tick):.1f}" y="{bottom + 16}" font-size="11" text-anchor="middle" fill="#4b5563">'
            f"{tick:.0%}</text>"
        )
    out.append(f'<line x1="{x0}" x2="{x0}" y1="{top - 4}" y2="{bottom}" stroke="#9ca3af"/>')
    for index, (name, n, rates) in enumerate(groups):
        y = top + index * group_h
        if index % 2 == 0:
            out.append(f'<rect x="0" y="{y - 2}" width="{width}" height="{group_h}" fill="#f9fafb"/>')
        weight = ' font-weight="600"' if index == 0 else ""
        out.append(
            f'<text x="{x0 - 10}" y="{y + 17}" font-size="12.5" text-anchor="end" fill="#111827"{weight}>'
            f"<title>{html.escape(name)}</title>{html.escape(shorten(name, 28))}</text>"
        )
        out.append(
            f'<text x="{x0 - 10}" y="{y + 32}" font-size="11" text-anchor="end" fill="#6b7280">'
            f"{n} scenario{'s' if n != 1 else ''}</text>"
        )
        for offset, (role, rate, ci) in enumerate(rates):
            by = y + 4 + offset * (bar_h + 4)
            mid = by + bar_h / 2
            if not finite(rate):
                out.append(f'<text x="{x0 + 6}" y="{mid + 4:.1f}" font-size="11" fill="#6b7280">n/a</text>')
                continue
            tip = f"{name} · {role}: {pct(rate)}"
            has_ci = all(finite(v) for v in ci)
            if has_ci:
                tip += f" (scenario-clustered interval {interval(ci[0], ci[1])})"
            out.append(
                f'<rect x="{x0}" y="{by}" width="{x(rate) - x0:.1f}" height="{bar_h}" fill="{COLORS[role]}">'
                f"<title>{html.escape(tip)}</title></rect>"
            )
            end = x(rate)
            if has_ci:
                lo_x, hi_x = x(ci[0]), x(ci[1])
                end = max(end, hi_x)
                out.append(
                    f'<line x1="{lo_x:.1f}" x2="{hi_x:.1f}" y1="{mid:.1f}" y2="{mid:.1f}" stroke="#111827" '
                    'stroke-width="1.5"/>'
                )
                for cap in (lo_x, hi_x):
                    out.append(
                        f'<line x1="{cap:.1f}" x2="{cap:.1f}" y1="{mid - 5:.1f}" y2="{mid + 5:.1f}" '
                        'stroke="#111827" stroke-width="1.5"/>'
                    )
            out.append(f'<text x="{end + 6:.1f}" y="{mid + 4:.1f}" font-size="11" fill="#111827">{pct(rate)}</text>')
    out.append("</svg>")
    return "".join(out)


def _tick_step(span: float) -> float:
    for step in (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5):
        if span / step <= 8:
            return step
    return 0.5


def _ticks(lo: float, hi: float, step: float) -> list[float]:
    first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    return [round(i * step, 9) for i in range(first, last + 1)]


def _svg_label(x: float, y: float, text: str, width: int, fill: str, size: float = 11, bold: bool = False) -> str:
    """A text label centred on x, kept inside the chart's width."""
    estimate = len(text) * size * 0.58 / 2
    anchor, at = "middle", x
    if x - estimate < 4:
        anchor, at = "start", 4.0
    elif x + estimate > width - 4:
        anchor, at = "end", width - 4.0
    weight = ' font-weight="600"' if bold else ""
    return (
        f'<text x="{at:.1f}" y="{y}" font-size="{size}" text-anchor="{anchor}" fill="{fill}"{weight}>'
        f"{html.escape(text)}</text>"
    )


def alpha_hex(opacity: float) -> str:
    """An opacity as the two hex digits of an ``#rrggbbaa`` colour."""
    return f"{round(max(0.0, min(1.0, opacity)) * 255):02x}"

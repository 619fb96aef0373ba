"""The markdown report: for pull-request comments and ``$GITHUB_STEP_SUMMARY``."""

from __future__ import annotations

import re
from collections.abc import Sequence

from pytest_autoevolve.gate.decide import ScenarioRow
from pytest_autoevolve.gate.summary import RunSummary
from pytest_autoevolve.report.format import (
    CATEGORY_CAP,
    LIST_CAP,
    PASS_K_NOTE,
    ROLES,
    VERDICT_ICONS,
    cost,
    guardrail_value,
    k_keys,
    location,
    mean_cell,
    ordered_regressions,
    p,
    pct,
    repeated,
    seconds,
    stability,
    statistics,
)

# --------------------------------------------------------------------------- markdown


def render_markdown(summary: RunSummary) -> str:
    """The text of ``report.md``."""
    gate = summary.gate
    rows = gate.scenarios
    out = [f"## {VERDICT_ICONS.get(gate.verdict, '')} autoevolve gate: {gate.verdict.upper()}".replace("  ", " "), ""]
    out += [f"- {_md_text(reason)}" for reason in gate.reasons]
    out += [
        "",
        "| role | model | pass rate | trials passed | errors | p95 latency | cost |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for role in ROLES:
        stat = gate.role(role)
        out.append(
            f"| {role} | {_md_code(stat.spec)} | {pct(stat.pass_rate)} | {stat.passed}/{stat.n} "
            f"| {stat.errors} ({pct(stat.error_rate)}) | {seconds(stat.p95_latency_s)} | {cost(stat.cost)} |"
        )
    out += ["", "| statistic | value |", "| --- | --- |"]
    out += [f"| {label} | {value} |" for label, value in statistics(gate, markdown=True)]
    if gate.guardrails:
        out += [
            "",
            "### Guardrails",
            "",
            "| guardrail | incumbent | candidate | limit | status |",
            "| --- | ---: | ---: | ---: | --- |",
        ]
        for g in gate.guardrails:
            status = "ok" if g.passed else f"**breached** ({_md_text(g.detail)})"
            out.append(
                f"| {g.name} | {guardrail_value(g, g.incumbent)} | {guardrail_value(g, g.candidate)} "
                f"| {guardrail_value(g, g.limit)} | {status} |"
            )
    categories = gate.categories
    if categories:
        out += [
            "",
            "### Categories",
            "",
            "| category | scenarios | incumbent | candidate | lift | p | p (Holm) |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for c in categories[:CATEGORY_CAP]:
            out.append(
                f"| {_md_code(c.category)} | {c.n} | {pct(c.incumbent_pass_rate)} | {pct(c.candidate_pass_rate)} "
                f"| {pct(c.lift, signed=True)} | {p(c.p_value)} | {p(c.p_holm)} |"
            )
        if len(categories) > CATEGORY_CAP:
            out += ["", f"... and {len(categories) - CATEGORY_CAP} more categories (all in summary.json)."]
    regressed = ordered_regressions(rows)
    improved = [row for row in rows if row.outcome == "improved"]
    for title, listed in (("Regressions", regressed), ("Improvements", improved)):
        out += ["", f"### {title} ({len(listed)})", ""]
        if not listed:
            out.append("None.")
        out += [_md_scenario(row) for row in listed[:LIST_CAP]]
        if len(listed) > LIST_CAP:
            out.append(f"- ... and {len(listed) - LIST_CAP} more (all in report.html and summary.json)")
    out += ["", "### Stability", "", *_md_stability(rows)]
    out += ["", _md_footer(summary), ""]
    return "\n".join(out)


def _md_scenario(row: ScenarioRow) -> str:
    critical = " **critical**" if row.critical else ""
    where = f" · {_md_code(location(row))}" if row.file else ""
    category = f" · {_md_text(row.category)}" if row.category else ""
    return (
        f"- {_md_code(row.id)}{critical}{category}{where} · incumbent {row.incumbent.passes}/{row.incumbent.trials}"
        f" → candidate {row.candidate.passes}/{row.candidate.trials}"
    )


def _md_stability(rows: Sequence[ScenarioRow]) -> list[str]:
    if not rows:
        return ["No paired scenarios."]
    by_role = stability(rows)
    several = repeated(rows)
    header = "| role | stable-pass | stable-fail | flaky |"
    align = "| --- | ---: | ---: | ---: |"
    keys = k_keys(rows) if several else []
    header += "".join(f" mean {key} |" for key in keys)
    align += " ---: |" * len(keys)
    out = [header, align]
    for role in ROLES:
        counts = by_role[role].counts
        cells = f"| {role} | {counts['stable-pass']} | {counts['stable-fail']} | {counts['flaky']} |"
        cells += "".join(f" {mean_cell(rows, role, key)} |" for key in keys)
        out.append(cells)
    if not several:
        out += [
            "",
            "Each scenario ran once per role, so flakiness cannot show; repeats (`--autoevolve-repeats N`) "
            "give pass^k and pass@k.",
        ]
    elif keys:
        out += ["", PASS_K_NOTE]
    for role in ROLES:
        flaky = by_role[role].flaky
        if flaky:
            shown = ", ".join(_md_code(row.id) for row in flaky[:LIST_CAP])
            more = f" ... and {len(flaky) - LIST_CAP} more" if len(flaky) > LIST_CAP else ""
            out += ["", f"Flaky on the {role} ({len(flaky)}): {shown}{more}"]
    return out


def footer(summary: RunSummary) -> list[str]:
    """The run's provenance, for the foot of both reports: run id, commit, catalog, split, seed, canary, versions."""
    parts = [f"run {summary.run_id}"]
    if summary.git_commit:
        parts.append(f"commit {summary.git_commit[:12]}")
    if summary.catalog_sha256:
        parts.append(f"catalog {summary.catalog_sha256[:12]}")
    parts.append(f"split {summary.split}, seed {summary.seed}")
    if summary.canary is not None:
        canary = summary.canary
        parts.append(f"canary run: {canary.routed} of {canary.total} scenarios (share {canary.share:g})")
    if summary.versions:
        parts.append(", ".join(f"{name} {version}" for name, version in summary.versions.items()))
    return parts


def _md_footer(summary: RunSummary) -> str:
    return "<sub>" + _md_text(" · ".join(footer(summary))) + " · trajectories side by side in report.html</sub>"


def _md_code(text: str) -> str:
    """A code span that survives a table cell."""
    return "`" + text.replace("`", "'").replace("|", "\\|").replace("\n", " ") + "`"


def _md_text(text: str) -> str:
    """Plain text for Markdown: nothing read as an HTML tag, no table breaks."""
    return re.sub(r"<(?=[A-Za-z/!?])", "&lt;", text).replace("|", "\\|")

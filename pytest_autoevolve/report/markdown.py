"""The markdown report: for pull-request comments and ``$GITHUB_STEP_SUMMARY``."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_autoevolve.report.format import (
    CATEGORY_CAP,
    LIST_CAP,
    PASS_K_NOTE,
    ROLES,
    VERDICT_ICONS,
    _cost,
    _guardrail_value,
    _k_keys,
    _location,
    _mean_cell,
    _ordered_regressions,
    _p,
    _pct,
    _seconds,
    _stability,
    _statistics,
)

# --------------------------------------------------------------------------- markdown


def render_markdown(summary: dict[str, Any]) -> str:
    """The text of ``report.md``."""
    verdict = str(summary.get("verdict", "inconclusive"))
    rows: list[dict[str, Any]] = list(summary.get("scenarios") or [])
    out = [f"## {VERDICT_ICONS.get(verdict, '')} autoevolve gate: {verdict.upper()}".replace("  ", " "), ""]
    out += [f"- {_md_text(str(reason))}" for reason in summary.get("reasons") or []]
    out += [
        "",
        "| role | model | pass rate | trials passed | errors | p95 latency | cost |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for role in ROLES:
        stat = summary.get(role) or {}
        out.append(
            f"| {role} | {_md_code(str(stat.get('spec', '')))} | {_pct(stat.get('pass_rate'))} "
            f"| {stat.get('passed', 0)}/{stat.get('n', 0)} | {stat.get('errors', 0)} ({_pct(stat.get('error_rate'))}) "
            f"| {_seconds(stat.get('p95_latency_s'))} | {_cost(stat.get('cost'))} |"
        )
    out += ["", "| statistic | value |", "| --- | --- |"]
    out += [f"| {label} | {value} |" for label, value in _statistics(summary, markdown=True)]
    guardrails = summary.get("guardrails") or []
    if guardrails:
        out += [
            "",
            "### Guardrails",
            "",
            "| guardrail | incumbent | candidate | limit | status |",
            "| --- | ---: | ---: | ---: | --- |",
        ]
        for g in guardrails:
            status = "ok" if g.get("passed") else f"**breached** ({_md_text(str(g.get('detail', '')))})"
            out.append(
                f"| {g['name']} | {_guardrail_value(g, 'incumbent')} | {_guardrail_value(g, 'candidate')} "
                f"| {_guardrail_value(g, 'limit')} | {status} |"
            )
    categories = summary.get("categories") or []
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
                f"| {_md_code(str(c['category']))} | {c.get('n', 0)} | {_pct(c.get('incumbent_pass_rate'))} "
                f"| {_pct(c.get('candidate_pass_rate'))} | {_pct(c.get('lift'), signed=True)} "
                f"| {_p(c.get('p_value'))} | {_p(c.get('p_holm'))} |"
            )
        if len(categories) > CATEGORY_CAP:
            out += ["", f"... and {len(categories) - CATEGORY_CAP} more categories (all in summary.json)."]
    regressed = _ordered_regressions(rows)
    improved = [row for row in rows if row.get("outcome") == "improved"]
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


def _md_scenario(row: Mapping[str, Any]) -> str:
    inc, cand = row.get("incumbent") or {}, row.get("candidate") or {}
    critical = " **critical**" if row.get("critical") else ""
    where = f" · {_md_code(_location(row))}" if row.get("file") else ""
    category = f" · {_md_text(str(row['category']))}" if row.get("category") else ""
    return (
        f"- {_md_code(str(row['id']))}{critical}{category}{where} · incumbent {inc.get('passes')}/{inc.get('trials')}"
        f" → candidate {cand.get('passes')}/{cand.get('trials')}"
    )


def _md_stability(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    if not rows:
        return ["No paired scenarios."]
    stability = _stability(rows)
    repeated = any(int((row.get(role) or {}).get("trials") or 0) > 1 for row in rows for role in ROLES)
    header = "| role | stable-pass | stable-fail | flaky |"
    align = "| --- | ---: | ---: | ---: |"
    k_keys = _k_keys(rows) if repeated else []
    header += "".join(f" mean {key} |" for key in k_keys)
    align += " ---: |" * len(k_keys)
    out = [header, align]
    for role in ROLES:
        counts = stability[role]["counts"]
        cells = f"| {role} | {counts['stable-pass']} | {counts['stable-fail']} | {counts['flaky']} |"
        cells += "".join(f" {_mean_cell(rows, role, key)} |" for key in k_keys)
        out.append(cells)
    if not repeated:
        out += [
            "",
            "Each scenario ran once per role, so flakiness cannot show; repeats (`--autoevolve-repeats N`) "
            "give pass^k and pass@k.",
        ]
    elif k_keys:
        out += ["", PASS_K_NOTE]
    for role in ROLES:
        flaky = stability[role]["flaky"]
        if flaky:
            shown = ", ".join(_md_code(str(row["id"])) for row in flaky[:LIST_CAP])
            more = f" ... and {len(flaky) - LIST_CAP} more" if len(flaky) > LIST_CAP else ""
            out += ["", f"Flaky on the {role} ({len(flaky)}): {shown}{more}"]
    return out


def _footer(summary: Mapping[str, Any]) -> list[str]:
    parts = [f"run {summary.get('run_id', '?')}"]
    if summary.get("git_commit"):
        parts.append(f"commit {str(summary['git_commit'])[:12]}")
    if summary.get("catalog_sha256"):
        parts.append(f"catalog {str(summary['catalog_sha256'])[:12]}")
    parts.append(f"split {summary.get('split', 'eval')}, seed {summary.get('seed', 0)}")
    versions = summary.get("versions") or {}
    if versions:
        parts.append(", ".join(f"{name} {version}" for name, version in versions.items()))
    return parts


def _md_footer(summary: Mapping[str, Any]) -> str:
    return "<sub>" + _md_text(" · ".join(_footer(summary))) + " · trajectories side by side in report.html</sub>"


def _md_code(text: str) -> str:
    """A code span that survives a table cell."""
    return "`" + text.replace("`", "'").replace("|", "\\|").replace("\n", " ") + "`"


def _md_text(text: str) -> str:
    """Plain text for Markdown: nothing read as an HTML tag, no table breaks."""
    return re.sub(r"<(?=[A-Za-z/!?])", "&lt;", text).replace("|", "\\|")

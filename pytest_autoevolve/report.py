"""The run's reports: ``report.md`` and ``report.html``, and GitHub Actions output (DESIGN §7).

Both reports are built from the content of ``summary.json`` and the run's
``trajectories.jsonl``:

- ``report.md`` is short enough for a PR comment and ``$GITHUB_STEP_SUMMARY``: the verdict
  and its reasons, both roles, the lift with its interval and test, guardrails, categories,
  regressions and improvements by scenario id, and stability. Long lists are cut, saying
  how many more there are.
- ``report.html`` is one self-contained file that reads offline: inline CSS, inline SVG
  charts drawn here (pass rate by category with Wilson intervals, the paired outcomes, the
  lift with its interval against zero and the rule's line), no scripts and no external
  URLs, and each scenario's two trajectories side by side, regressions first.

`github_outputs` appends ``report.md`` to ``$GITHUB_STEP_SUMMARY`` and, under GitHub
Actions, returns ``::error`` workflow commands pointing at each regressed scenario's file
and line, plus one for the verdict.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeGuard

from pytest_autoevolve.gate import wilson
from pytest_autoevolve.trajectory import FormatError, Trajectory

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
ANNOTATION_CAP = 50
"""Regressions annotated under GitHub Actions (GitHub shows at most 50 annotations per job)."""

PASS_K_NOTE = (
    "pass^k: the chance that k trials of a scenario all pass; pass@k: the chance that at least one of k passes "
    "(both unbiased estimates from each scenario's trials, averaged over scenarios)."
)
TEST_NAMES = {"mcnemar_exact": "exact McNemar", "sign_flip": "sign-flip permutation"}
VERDICT_ICONS = {"pass": "✅", "fail": "❌", "inconclusive": "⚠️"}
COLORS = {"incumbent": "#0072b2", "candidate": "#e69f00"}
VERDICT_COLORS = {"pass": "#15803d", "fail": "#b91c1c", "inconclusive": "#b45309"}
OUTCOME_COLORS = {
    "both pass": "#cbd5e1",
    "only incumbent": "#dc2626",
    "only candidate": "#16a34a",
    "both fail": "#475569",
}


def write_reports(run_dir: Path, summary: dict[str, Any]) -> list[Path]:
    """Write ``report.md`` and ``report.html`` into ``run_dir``; return their paths."""
    rows: list[dict[str, Any]] = list(summary.get("scenarios") or [])
    shown = [row["id"] for row in _detail_order(rows)[:DETAIL_CAP]]
    trajectories, unreadable = load_trajectories(run_dir / "trajectories.jsonl", set(shown))
    markdown = run_dir / "report.md"
    page = run_dir / "report.html"
    _write_atomic(markdown, render_markdown(summary))
    _write_atomic(page, render_html(summary, trajectories, unreadable))
    return [markdown, page]


def load_trajectories(
    path: Path, scenario_ids: set[str], cap: int = TRIAL_CAP
) -> tuple[dict[tuple[str, str], list[Trajectory]], int]:
    """The incumbent's and candidate's trajectories of the given scenarios, at most ``cap`` per role.

    Returns them keyed by (scenario id, role), sorted by repeat, and the number of lines
    that could not be read (a report is still worth writing around them).
    """
    found: dict[tuple[str, str], list[Trajectory]] = {}
    unreadable = 0
    if not path.is_file():
        return found, 0
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if record.get("role") not in ROLES or record.get("scenario_id") not in scenario_ids:
                    continue
                trajectory = Trajectory.from_record(record)
            except (json.JSONDecodeError, FormatError, AttributeError, TypeError):
                unreadable += 1
                continue
            trials = found.setdefault((trajectory.scenario_id, trajectory.role), [])
            if len(trials) < cap:
                trials.append(trajectory)
    for trials in found.values():
        trials.sort(key=lambda t: t.repeat)
    return found, unreadable


def github_outputs(summary: dict[str, Any], report_md: Path, environ: Mapping[str, str]) -> list[str]:
    """Append the report to ``$GITHUB_STEP_SUMMARY``; under GitHub Actions return annotation lines.

    The lines are workflow commands for stdout: ``::error`` at the file and line of each
    regressed scenario (critical ones first, at most `ANNOTATION_CAP`), and a ``::notice``
    (pass) or ``::error`` (fail, inconclusive) for the verdict. A step summary that cannot
    be written is reported as a line too, rather than failing the run.
    """
    lines: list[str] = []
    actions = environ.get("GITHUB_ACTIONS") == "true"
    step_summary = environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        try:
            with open(step_summary, "a", encoding="utf-8") as handle:
                handle.write(report_md.read_text(encoding="utf-8").rstrip("\n") + "\n\n")
        except OSError as exc:
            message = f"autoevolve: could not append {report_md.name} to GITHUB_STEP_SUMMARY ({exc})"
            lines.append(f"::warning title=autoevolve::{_command_data(message)}" if actions else message)
    if not actions:
        return lines
    regressed = _ordered_regressions(summary.get("scenarios") or [])
    for row in regressed[:ANNOTATION_CAP]:
        props = []
        if row.get("file"):
            props.append(f"file={_command_property(str(row['file']))}")
            if row.get("line"):
                props.append(f"line={int(row['line'])}")
        critical = "critical " if row.get("critical") else ""
        title = f"autoevolve: {critical}regression in {row['id']}"
        props.append(f"title={_command_property(title)}")
        inc, cand = row.get("incumbent") or {}, row.get("candidate") or {}
        message = (
            f"{critical}scenario {row['id']} regressed: the incumbent passed {inc.get('passes')} of "
            f"{inc.get('trials')} trials, the candidate {cand.get('passes')} of {cand.get('trials')}"
        )
        lines.append(f"::error {','.join(props)}::{_command_data(message)}")
    if len(regressed) > ANNOTATION_CAP:
        more = f"{len(regressed) - ANNOTATION_CAP} more regressions are not annotated; see {report_md.name}"
        lines.append(f"::warning title=autoevolve::{_command_data(more)}")
    verdict = str(summary.get("verdict", "inconclusive"))
    title = _command_property(f"autoevolve gate: {verdict.upper()}")
    message = "; ".join(str(r) for r in summary.get("reasons") or []) or verdict
    if _finite(summary.get("lift")):
        message = f"lift {_pct(summary['lift'], signed=True)}, p = {_p(summary.get('p_value'))}: {message}"
    kind = "notice" if verdict == "pass" else "error"
    lines.append(f"::{kind} title={title}::{_command_data(message)}")
    return lines


# --------------------------------------------------------------------------- markdown


def render_markdown(summary: dict[str, Any]) -> str:
    """The text of ``report.md``."""
    verdict = str(summary.get("verdict", "inconclusive"))
    rows: list[dict[str, Any]] = list(summary.get("scenarios") or [])
    out = [f"## {VERDICT_ICONS.get(verdict, '')} autoevolve gate: {verdict.upper()}".replace("  ", " "), ""]
    out += [f"- {_md_text(str(reason))}" for reason in summary.get("reasons") or []]
    out += ["", "| role | model | pass rate | trials passed | errors | p95 latency | cost |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
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
        out += ["", "### Guardrails", "", "| guardrail | incumbent | candidate | limit | status |",
                "| --- | ---: | ---: | ---: | --- |"]  # fmt: skip
        for g in guardrails:
            status = "ok" if g.get("passed") else f"**breached** ({_md_text(str(g.get('detail', '')))})"
            out.append(
                f"| {g['name']} | {_guardrail_value(g, 'incumbent')} | {_guardrail_value(g, 'candidate')} "
                f"| {_guardrail_value(g, 'limit')} | {status} |"
            )
    categories = summary.get("categories") or []
    if categories:
        out += ["", "### Categories", "", "| category | scenarios | incumbent | candidate | lift | p | p (Holm) |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
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
        out += ["", "Each scenario ran once per role, so flakiness cannot show; repeats (`--autoevolve-repeats N`) "
                    "give pass^k and pass@k."]  # fmt: skip
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


# --------------------------------------------------------------------------- HTML


CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: #111827; background: #f3f4f6; }
main { max-width: 1200px; margin: 0 auto; padding: 16px 20px 40px; }
h1 { font-size: 26px; margin: 0 0 6px; }
h2 { font-size: 18px; margin: 0 0 10px; }
h3 { font-size: 15px; margin: 14px 0 6px; }
section, .card { background: #fff; border: 1px solid #e5e7eb; border-radius: 8px; padding: 14px 16px; margin: 14px 0; }
.verdict { color: #fff; border: 0; }
.verdict ul { margin: 6px 0 4px 18px; padding: 0; }
.verdict .meta { opacity: .85; font-size: 12px; margin: 4px 0 0; }
.grid { display: grid; grid-template-columns: 1.25fr 1fr; gap: 14px; background: none; border: 0; padding: 0; }
.grid .card { margin: 0; }
nav { font-size: 13px; margin: 8px 0 0; }
nav a { color: #fff; margin-right: 14px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #e5e7eb; vertical-align: top; }
th { font-weight: 600; background: #f9fafb; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font: 12.5px ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace; }
.muted { color: #6b7280; }
.caption { color: #4b5563; font-size: 12.5px; margin: 6px 0 0; }
.ok { color: #15803d; } .bad { color: #b91c1c; font-weight: 600; }
.swatch { display: inline-block; width: 11px; height: 11px; border-radius: 2px; margin-right: 5px;
          vertical-align: -1px; }
.outcomes td { text-align: center; font-size: 15px; padding: 10px; }
.outcomes td b { font-size: 22px; display: block; }
.badge { display: inline-block; border-radius: 10px; padding: 0 8px; font-size: 12px; font-weight: 600; color: #fff; }
.badge.regressed { background: #dc2626; } .badge.improved { background: #16a34a; }
.badge.same { background: #6b7280; } .badge.critical { background: #7f1d1d; }
details.scenario { border: 1px solid #e5e7eb; border-radius: 6px; margin: 6px 0; background: #fff; }
details.scenario > summary { cursor: pointer; padding: 7px 10px; list-style-position: inside; }
details.scenario[open] > summary { border-bottom: 1px solid #e5e7eb; background: #f9fafb; }
details.regressed { border-left: 4px solid #dc2626; } details.improved { border-left: 4px solid #16a34a; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 10px; padding: 10px; }
.side h4 { margin: 0 0 6px; font-size: 13px; }
.side.incumbent h4 { color: #0072b2; } .side.candidate h4 { color: #a16207; }
.trial { border: 1px solid #e5e7eb; border-radius: 6px; padding: 6px 8px; margin-bottom: 8px; }
.trial.passed { border-left: 4px solid #16a34a; } .trial.failed { border-left: 4px solid #dc2626; }
.trial .head { font-size: 12px; color: #4b5563; margin-bottom: 4px; }
.label { font-size: 11px; text-transform: uppercase; letter-spacing: .04em; color: #6b7280; margin-top: 6px; }
pre { margin: 2px 0; padding: 5px 7px; background: #f9fafb; border-radius: 4px; white-space: pre-wrap;
      word-break: break-word; font: 12px/1.4 ui-monospace, Menlo, Consolas, "DejaVu Sans Mono", monospace; }
pre.error { background: #fef2f2; color: #991b1b; }
.msg .who { font-size: 11px; color: #6b7280; }
ul.grades { margin: 2px 0; padding-left: 18px; }
svg { display: block; max-width: 100%; height: auto; }
svg text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
@media (max-width: 900px) { .grid, .pair { grid-template-columns: 1fr; } }
"""


def render_html(
    summary: dict[str, Any], trajectories: Mapping[tuple[str, str], Sequence[Trajectory]], unreadable: int = 0
) -> str:
    """The text of ``report.html``: one file, no scripts, nothing fetched."""
    verdict = str(summary.get("verdict", "inconclusive"))
    e = html.escape
    reasons = "".join(f"<li>{e(str(r))}</li>" for r in summary.get("reasons") or [])
    meta = [f"run {summary.get('run_id', '?')}", str(summary.get("created_at", ""))]
    if summary.get("git_commit"):
        meta.append(f"commit {str(summary['git_commit'])[:12]}")
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>autoevolve gate: {e(verdict.upper())} · {e(str(summary.get('run_id', '')))}</title>",
        f"<style>{CSS}</style></head><body><main>",
        f'<section class="verdict" style="background:{VERDICT_COLORS.get(verdict, "#374151")}">',
        f"<h1>{_verdict_icon(verdict)} autoevolve gate: {e(verdict.upper())}</h1>",
        f"<ul>{reasons}</ul>",
        f'<p class="meta">{e(" · ".join(m for m in meta if m))}</p>',
        '<nav><a href="#lift">lift</a><a href="#outcomes">paired outcomes</a>'
        '<a href="#categories">categories</a><a href="#guardrails">guardrails</a>'
        '<a href="#stability">stability</a><a href="#scenarios">scenarios</a></nav>',
        "</section>",
        _html_roles(summary),
        '<div class="grid">',
        f'<div class="card" id="lift"><h2>Lift (candidate &minus; incumbent)</h2>{_html_lift(summary)}</div>',
        f'<div class="card" id="outcomes"><h2>Paired outcomes</h2>{_html_outcomes(summary)}</div>',
        "</div>",
        f'<section id="categories"><h2>Pass rate by category</h2>{_html_categories(summary)}</section>',
        f'<section id="guardrails"><h2>Guardrails</h2>{_html_guardrails(summary)}</section>',
        f'<section id="stability"><h2>Stability</h2>{_html_stability(summary)}</section>',
        f'<section id="scenarios"><h2>Scenarios</h2>{_html_scenarios(summary, trajectories, unreadable)}</section>',
        f'<p class="caption">{e(" · ".join(_footer(summary)))}</p>',
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


def _html_roles(summary: Mapping[str, Any]) -> str:
    e = html.escape
    head = (
        "<tr><th>role</th><th>model</th><th class=num>pass rate</th><th class=num>95% Wilson interval</th>"
        "<th class=num>trials passed</th><th class=num>errors</th><th class=num>p95 latency</th>"
        "<th class=num>cost</th><th class=num>tokens</th></tr>"
    )
    body = []
    for role in ROLES:
        stat = summary.get(role) or {}
        n, passed = int(stat.get("n") or 0), int(stat.get("passed") or 0)
        low, high = wilson(passed, n)
        body.append(
            f'<tr><td><span class="swatch" style="background:{COLORS[role]}"></span>{role}</td>'
            f"<td><code>{e(str(stat.get('spec', '')))}</code></td>"
            f"<td class=num><b>{_pct(stat.get('pass_rate'))}</b></td>"
            f"<td class=num>{_interval(low, high)}</td><td class=num>{passed}/{n}</td>"
            f"<td class=num>{stat.get('errors', 0)} ({_pct(stat.get('error_rate'))})</td>"
            f"<td class=num>{_seconds(stat.get('p95_latency_s'))}</td><td class=num>{_cost(stat.get('cost'))}</td>"
            f"<td class=num>{stat.get('tokens', 0)}</td></tr>"
        )
    return f"<section><h2>Models</h2><table>{head}{''.join(body)}</table></section>"


def _html_lift(summary: Mapping[str, Any]) -> str:
    stats = "".join(
        f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in _statistics(summary, markdown=False)
    )
    table = f'<table style="margin-top:8px">{stats}</table>'
    lift, low, high = summary.get("lift"), summary.get("ci_low"), summary.get("ci_high")
    if not (_finite(lift) and _finite(low) and _finite(high)):
        note = "No lift was computed: the gate stopped before the paired test (see the reasons above)."
        return f'<p class="muted">{note}</p>{table}'
    return lift_svg(summary) + (
        f'<p class="caption">The dot is the lift, the bar its {_ci_level(summary)} confidence interval. '
        "The candidate clears the rule when the interval lies right of the dashed line and the one-sided "
        f"p-value is below alpha.</p>{table}"
    )


def lift_svg(summary: Mapping[str, Any]) -> str:
    """The lift and its interval on an axis with zero and the rule's line (min_lift or -margin)."""
    lift, low, high = float(summary["lift"]), float(summary["ci_low"]), float(summary["ci_high"])
    thresholds = summary.get("thresholds") or {}
    mode = summary.get("mode", "superiority")
    if mode == "non_inferiority":
        line, line_label = -float(thresholds.get("margin", 0.0)), "-margin"
    else:
        line, line_label = float(thresholds.get("min_lift", 0.0)), "min lift"
    values = [0.0, lift, low, high, line]
    lo, hi = min(values), max(values)
    span = max(hi - lo, 0.1)
    lo, hi = max(lo - 0.15 * span, -1.0), min(hi + 0.15 * span, 1.0)
    step = _tick_step(hi - lo)
    lo, hi = math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step
    width, left, right, axis_y = 560, 24, 536, 96

    def x(value: float) -> float:
        return left + (value - lo) / (hi - lo) * (right - left)

    color = VERDICT_COLORS.get(str(summary.get("verdict")), "#374151")
    aria = f"lift {_pct(lift, signed=True)} with interval {_interval(low, high, signed=True)}"
    out = [f'<svg viewBox="0 0 {width} 140" width="{width}" height="140" role="img" aria-label="{aria}">']
    if hi > line:  # the side of the rule's line where a candidate clears it
        out.append(f'<rect x="{x(line):.1f}" y="26" width="{x(hi) - x(line):.1f}" height="{axis_y - 26}" '
                   'fill="#16a34a" fill-opacity="0.07"/>')  # fmt: skip
    for tick in _ticks(lo, hi, step):
        out.append(f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="26" y2="{axis_y + 4}" stroke="#e5e7eb"/>')
        text = _pct(tick, signed=True, digits=0 if step >= 0.01 else 1)
        out.append(f'<text x="{x(tick):.1f}" y="{axis_y + 17}" font-size="11" text-anchor="middle" '
                   f'fill="#4b5563">{text}</text>')  # fmt: skip
    out.append(f'<line x1="{left}" x2="{right}" y1="{axis_y}" y2="{axis_y}" stroke="#9ca3af"/>')
    out.append(f'<line x1="{x(0):.1f}" x2="{x(0):.1f}" y1="20" y2="{axis_y}" stroke="#111827" stroke-width="1.5"/>')
    if abs(line) > 1e-12:
        out.append(f'<line x1="{x(line):.1f}" x2="{x(line):.1f}" y1="20" y2="{axis_y}" stroke="#15803d" '
                   'stroke-width="1.5" stroke-dasharray="5 3"/>')  # fmt: skip
        out.append(_svg_label(x(line), 14, f"{line_label} {_pct(line, signed=True)}", width, fill="#15803d"))
        out.append(_svg_label(x(0), 14, "0", width, fill="#111827") if abs(x(line) - x(0)) > 60 else "")
    else:
        out.append(f'<line x1="{x(0):.1f}" x2="{x(0):.1f}" y1="20" y2="{axis_y}" stroke="#15803d" '
                   'stroke-width="1.5" stroke-dasharray="5 3"/>')  # fmt: skip
        out.append(_svg_label(x(0), 14, f"0 = {line_label}", width, fill="#15803d"))
    y = 60
    out.append(f'<line x1="{x(low):.1f}" x2="{x(high):.1f}" y1="{y}" y2="{y}" stroke="{color}" stroke-width="4" '
               'stroke-linecap="round"/>')  # fmt: skip
    for end in (low, high):
        out.append(f'<line x1="{x(end):.1f}" x2="{x(end):.1f}" y1="{y - 9}" y2="{y + 9}" stroke="{color}" '
                   'stroke-width="2"/>')  # fmt: skip
    out.append(f'<circle cx="{x(lift):.1f}" cy="{y}" r="7" fill="{color}" stroke="#fff" stroke-width="2"/>')
    label = f"{_pct(lift, signed=True)}  [{_pct(low, signed=True)}, {_pct(high, signed=True)}]"
    out.append(_svg_label(x(lift), y - 15, label, width, fill="#111827", size=13, bold=True))
    out.append(f'<text x="{left}" y="134" font-size="11" fill="#6b7280">← candidate worse</text>')
    out.append(f'<text x="{right}" y="134" font-size="11" fill="#6b7280" text-anchor="end">candidate better →</text>')
    out.append("</svg>")
    return "".join(out)


def paired_outcomes(rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Counts of both pass / only incumbent / only candidate / both fail (passed = every trial passed)."""
    counts = dict.fromkeys(OUTCOME_COLORS, 0)
    for row in rows:
        inc, cand = _all_passed(row.get("incumbent")), _all_passed(row.get("candidate"))
        key = "both pass" if inc and cand else "only incumbent" if inc else "only candidate" if cand else "both fail"
        counts[key] += 1
    return counts


def _html_outcomes(summary: Mapping[str, Any]) -> str:
    rows: list[dict[str, Any]] = list(summary.get("scenarios") or [])
    if not rows:
        return '<p class="muted">No scenario ran on both roles.</p>'
    counts = paired_outcomes(rows)
    total = len(rows)

    def cell(key: str) -> str:
        share = counts[key] / total
        color = OUTCOME_COLORS[key]
        return (f'<td style="background:{color}{_alpha_hex(0.12 + 0.5 * share)}">'
                f"<b>{counts[key]}</b>{html.escape(key)}<br><span class=muted>{share:.0%}</span></td>")  # fmt: skip

    table = (
        '<table class="outcomes"><tr><th></th><th>candidate passes</th><th>candidate fails</th></tr>'
        f"<tr><th>incumbent passes</th>{cell('both pass')}{cell('only incumbent')}</tr>"
        f"<tr><th>incumbent fails</th>{cell('only candidate')}{cell('both fail')}</tr></table>"
    )
    bar = ['<svg viewBox="0 0 520 34" width="520" height="34" role="img" aria-label="paired outcome shares">']
    x = 0.0
    for key, color in OUTCOME_COLORS.items():
        w = counts[key] / total * 520
        if w <= 0:
            continue
        text_color = "#111827" if key == "both pass" else "#fff"
        bar.append(f'<rect x="{x:.1f}" y="4" width="{w:.1f}" height="26" fill="{color}"><title>{key}: '
                   f"{counts[key]}</title></rect>")  # fmt: skip
        if w > 28:
            bar.append(f'<text x="{x + w / 2:.1f}" y="22" font-size="12" text-anchor="middle" fill="{text_color}">'
                       f"{counts[key]}</text>")  # fmt: skip
        x += w
    bar.append("</svg>")
    outcome = {name: sum(1 for row in rows if row.get("outcome") == name) for name in ("improved", "same", "regressed")}
    legend = " ".join(
        f'<span class="swatch" style="background:{color}"></span>{html.escape(key)} &nbsp;'
        for key, color in OUTCOME_COLORS.items()
    )
    return (
        f'{table}<div style="margin-top:10px">{"".join(bar)}</div><p class="caption">{legend}</p>'
        f'<p class="caption">{total} paired scenarios; a scenario counts as passed when every trial passed. '
        f"By pass rate over trials (the gate's view): <b>{outcome['improved']}</b> improved, "
        f"<b>{outcome['same']}</b> unchanged, <b>{outcome['regressed']}</b> regressed.</p>"
    )


def category_svg(summary: Mapping[str, Any]) -> str:
    """Horizontal grouped bars: each category's pass rate for both roles, Wilson intervals as error bars."""
    groups: list[tuple[str, int, list[tuple[str, Any, Any]]]] = []
    overall = []
    for role in ROLES:
        stat = summary.get(role) or {}
        interval = wilson(int(stat.get("passed") or 0), int(stat.get("n") or 0))
        overall.append((role, stat.get("pass_rate"), list(interval)))
    groups.append(("all scenarios", int(summary.get("n_paired") or 0), overall))
    for c in (summary.get("categories") or [])[:CATEGORY_CAP]:
        rates = [(role, c.get(f"{role}_pass_rate"), c.get(f"{role}_ci")) for role in ROLES]
        groups.append((str(c["category"]), int(c.get("n") or 0), rates))
    width, x0, x1, top, bar_h, group_h = 1000, 230, 900, 40, 14, 46
    height = top + len(groups) * group_h + 30

    def x(value: float) -> float:
        return x0 + max(0.0, min(1.0, value)) * (x1 - x0)

    out = [f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
           'aria-label="pass rate by category for both roles, with 95% Wilson intervals">']  # fmt: skip
    legend_x = x0
    for role in ROLES:
        spec = _shorten(str((summary.get(role) or {}).get("spec", "")), 34)
        out.append(f'<rect x="{legend_x}" y="10" width="12" height="12" rx="2" fill="{COLORS[role]}"/>')
        out.append(f'<text x="{legend_x + 17}" y="20" font-size="12" fill="#111827">{role} '
                   f'<tspan fill="#6b7280">{html.escape(spec)}</tspan></text>')  # fmt: skip
        legend_x += 330
    bottom = top + len(groups) * group_h
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        out.append(f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{top - 4}" y2="{bottom}" stroke="#e5e7eb"/>')
        out.append(f'<text x="{x(tick):.1f}" y="{bottom + 16}" font-size="11" text-anchor="middle" fill="#4b5563">'
                   f"{tick:.0%}</text>")  # fmt: skip
    out.append(f'<line x1="{x0}" x2="{x0}" y1="{top - 4}" y2="{bottom}" stroke="#9ca3af"/>')
    for index, (name, n, rates) in enumerate(groups):
        y = top + index * group_h
        if index % 2 == 0:
            out.append(f'<rect x="0" y="{y - 2}" width="{width}" height="{group_h}" fill="#f9fafb"/>')
        weight = ' font-weight="600"' if index == 0 else ""
        out.append(f'<text x="{x0 - 10}" y="{y + 17}" font-size="12.5" text-anchor="end" fill="#111827"{weight}>'
                   f"<title>{html.escape(name)}</title>{html.escape(_shorten(name, 28))}</text>")  # fmt: skip
        out.append(f'<text x="{x0 - 10}" y="{y + 32}" font-size="11" text-anchor="end" fill="#6b7280">'
                   f"{n} scenario{'s' if n != 1 else ''}</text>")  # fmt: skip
        for offset, (role, rate, ci) in enumerate(rates):
            by = y + 4 + offset * (bar_h + 4)
            mid = by + bar_h / 2
            if not _finite(rate):
                out.append(f'<text x="{x0 + 6}" y="{mid + 4:.1f}" font-size="11" fill="#6b7280">n/a</text>')
                continue
            tip = f"{name} · {role}: {_pct(rate)}"
            has_ci = isinstance(ci, Sequence) and len(ci) == 2 and all(_finite(v) for v in ci)
            if has_ci:
                tip += f" (95% Wilson interval {_interval(ci[0], ci[1])})"
            out.append(f'<rect x="{x0}" y="{by}" width="{x(rate) - x0:.1f}" height="{bar_h}" fill="{COLORS[role]}">'
                       f"<title>{html.escape(tip)}</title></rect>")  # fmt: skip
            end = x(rate)
            if has_ci:
                lo_x, hi_x = x(ci[0]), x(ci[1])
                end = max(end, hi_x)
                out.append(f'<line x1="{lo_x:.1f}" x2="{hi_x:.1f}" y1="{mid:.1f}" y2="{mid:.1f}" stroke="#111827" '
                           'stroke-width="1.5"/>')  # fmt: skip
                for cap in (lo_x, hi_x):
                    out.append(f'<line x1="{cap:.1f}" x2="{cap:.1f}" y1="{mid - 5:.1f}" y2="{mid + 5:.1f}" '
                               'stroke="#111827" stroke-width="1.5"/>')  # fmt: skip
            out.append(f'<text x="{end + 6:.1f}" y="{mid + 4:.1f}" font-size="11" fill="#111827">{_pct(rate)}</text>')
    out.append("</svg>")
    return "".join(out)


def _html_categories(summary: Mapping[str, Any]) -> str:
    categories = summary.get("categories") or []
    chart = category_svg(summary)
    caption = ('<p class="caption">Bars: pass rate over all trials of the paired scenarios; error bars: 95% Wilson '
               "intervals.</p>")  # fmt: skip
    if not categories:
        return (chart + caption + '<p class="muted">No per-category results: the gate stopped before the paired '
                "test (see the reasons above).</p>")  # fmt: skip
    head = ("<tr><th>category</th><th class=num>scenarios</th><th class=num>incumbent</th><th class=num>candidate</th>"
            "<th class=num>lift</th><th class=num>p</th><th class=num>p (Holm)</th></tr>")  # fmt: skip
    body = "".join(
        f"<tr><td><code>{html.escape(str(c['category']))}</code></td><td class=num>{c.get('n', 0)}</td>"
        f"<td class=num>{_pct(c.get('incumbent_pass_rate'))} {_ci_text(c.get('incumbent_ci'))}</td>"
        f"<td class=num>{_pct(c.get('candidate_pass_rate'))} {_ci_text(c.get('candidate_ci'))}</td>"
        f"<td class=num>{_pct(c.get('lift'), signed=True)}</td><td class=num>{_p(c.get('p_value'))}</td>"
        f"<td class=num>{_p(c.get('p_holm'))}</td></tr>"
        for c in categories[:CATEGORY_CAP]
    )
    more = (f'<p class="caption">... and {len(categories) - CATEGORY_CAP} more categories (all in summary.json).</p>'
            if len(categories) > CATEGORY_CAP else "")  # fmt: skip
    return f"{chart}{caption}<table>{head}{body}</table>{more}"


def _html_guardrails(summary: Mapping[str, Any]) -> str:
    guardrails = summary.get("guardrails") or []
    if not guardrails:
        return '<p class="muted">No guardrail was checked (the gate stopped before them, or none is configured).</p>'
    head = ("<tr><th>guardrail</th><th class=num>incumbent</th><th class=num>candidate</th><th class=num>limit</th>"
            "<th>status</th></tr>")  # fmt: skip
    body = "".join(
        f"<tr><td>{html.escape(str(g['name']))}</td><td class=num>{_guardrail_value(g, 'incumbent')}</td>"
        f"<td class=num>{_guardrail_value(g, 'candidate')}</td><td class=num>{_guardrail_value(g, 'limit')}</td>"
        + _status_cell(g)
        + "</tr>"
        for g in guardrails
    )
    return f"<table>{head}{body}</table>"


def _status_cell(guardrail: Mapping[str, Any]) -> str:
    if guardrail.get("passed"):
        return "<td class=ok>ok</td>"
    return f"<td class=bad>breached: {html.escape(str(guardrail.get('detail')))}</td>"


def _html_stability(summary: Mapping[str, Any]) -> str:
    rows: list[dict[str, Any]] = list(summary.get("scenarios") or [])
    if not rows:
        return '<p class="muted">No paired scenarios.</p>'
    stability = _stability(rows)
    repeated = any(int((row.get(role) or {}).get("trials") or 0) > 1 for row in rows for role in ROLES)
    k_keys = _k_keys(rows) if repeated else []
    head = ("<tr><th>role</th><th class=num>stable-pass</th><th class=num>stable-fail</th><th class=num>flaky</th>"
            + "".join(f"<th class=num>mean {html.escape(k)}</th>" for k in k_keys) + "</tr>")  # fmt: skip
    body = ""
    for role in ROLES:
        counts = stability[role]["counts"]
        body += (f"<tr><td>{role}</td><td class=num>{counts['stable-pass']}</td><td class=num>"
                 f"{counts['stable-fail']}</td><td class=num>{counts['flaky']}</td>"
                 + "".join(f"<td class=num>{_mean_cell(rows, role, k)}</td>" for k in k_keys) + "</tr>")  # fmt: skip
    out = f"<table>{head}{body}</table>"
    if not repeated:
        out += ('<p class="caption">Each scenario ran once per role, so flakiness cannot show; repeats give pass^k '
                "and pass@k.</p>")  # fmt: skip
    elif k_keys:
        out += f'<p class="caption">{html.escape(PASS_K_NOTE)}</p>'
    for role in ROLES:
        flaky = stability[role]["flaky"]
        if flaky:
            items = ", ".join(
                f"<code>{html.escape(str(row['id']))}</code> ({row[role]['passes']}/{row[role]['trials']})"
                for row in flaky[:100]
            )
            more = f" ... and {len(flaky) - 100} more" if len(flaky) > 100 else ""
            out += f"<h3>Flaky on the {role} ({len(flaky)})</h3><p>{items}{more}</p>"
    return out


def _html_scenarios(
    summary: Mapping[str, Any], trajectories: Mapping[tuple[str, str], Sequence[Trajectory]], unreadable: int
) -> str:
    rows = _detail_order(list(summary.get("scenarios") or []))
    if not rows:
        return '<p class="muted">No scenario ran on both roles.</p>'
    specs = {role: str((summary.get(role) or {}).get("spec", "")) for role in ROLES}
    out = ['<p class="caption">Regressions first, then improvements, then unchanged scenarios that failed, then the '
           f"rest. Up to {TRIAL_CAP} trials per role are shown; every trial is in trajectories.jsonl.</p>"]  # fmt: skip
    if unreadable:
        out.append(f'<p class="bad">{unreadable} line(s) of trajectories.jsonl could not be read and are left out.</p>')
    for index, row in enumerate(rows[:DETAIL_CAP]):
        outcome = str(row.get("outcome", "same"))
        inc, cand = row.get("incumbent") or {}, row.get("candidate") or {}
        badges = f'<span class="badge {outcome}">{html.escape(outcome)}</span>'
        if row.get("critical"):
            badges += ' <span class="badge critical">critical</span>'
        where = " · ".join(x for x in (str(row.get("category") or ""), _location(row)) if x)
        opened = " open" if index == 0 and outcome == "regressed" else ""
        out.append(
            f'<details class="scenario {outcome}"{opened}><summary>{badges} <code><b>{html.escape(str(row["id"]))}'
            f'</b></code> <span class="muted">{html.escape(where)}</span> · incumbent {inc.get("passes")}/'
            f'{inc.get("trials")} → candidate {cand.get("passes")}/{cand.get("trials")}</summary><div class="pair">'
        )
        for role in ROLES:
            trials = trajectories.get((str(row["id"]), role), [])
            out.append(f'<div class="side {role}"><h4>{role} · <code>{html.escape(specs[role])}</code></h4>')
            if not trials:
                out.append('<p class="muted">No trajectory of this role was found in trajectories.jsonl.</p>')
            out += [_html_trial(t) for t in trials]
            total = int((row.get(role) or {}).get("trials") or 0)
            if total > len(trials) and trials:
                out.append(f'<p class="caption">{total - len(trials)} more trial(s) in trajectories.jsonl.</p>')
            out.append("</div>")
        out.append("</div></details>")
    if len(rows) > DETAIL_CAP:
        out.append(f'<p class="caption">{len(rows) - DETAIL_CAP} more scenarios are not shown here; their trials are '
                   "in trajectories.jsonl.</p>")  # fmt: skip
    return "".join(out)


def _html_trial(t: Trajectory) -> str:
    e = html.escape
    status = "passed" if t.passed else "failed"
    head = [f"trial {t.repeat}", f"seed {t.seed}", f"<b class={'ok' if t.passed else 'bad'}>{status}</b>",
            _seconds(t.latency_s)]  # fmt: skip
    if t.total_tokens is not None:
        head.append(f"{t.total_tokens} tokens")
    if t.cost is not None:
        head.append(f"cost {t.cost:.4f}")
    out = [f'<div class="trial {status}"><div class="head">{" · ".join(head)}</div>', '<div class="label">input</div>']
    messages = [m if isinstance(m, Mapping) else {"role": "?", "content": m} for m in t.messages]
    if messages and messages[-1].get("role") == "assistant" and messages[-1].get("content") == t.output:
        messages = messages[:-1]  # the reply is shown as the output below
    for message in messages:
        content = message.get("content")
        text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False, default=str)
        out.append(f'<div class="msg"><span class="who">{e(str(message.get("role", "?")))}</span>'
                   f"<pre>{e(_clip(text))}</pre></div>")  # fmt: skip
    if t.tool_calls:
        calls = json.dumps(t.tool_calls, ensure_ascii=False, indent=1, default=str)
        out.append(f'<div class="label">tool calls</div><pre>{e(_clip(calls))}</pre>')
    if t.error is None or t.output:
        out.append(f'<div class="label">output</div><pre>{e(_clip(t.output))}</pre>')
    if t.grades:
        grades = "".join(
            f"<li><span class={'ok' if g.passed else 'bad'}>{'✓' if g.passed else '✗'}</span> <b>{e(g.grader)}</b>: "
            f"{e(_clip(g.reason))}</li>"
            for g in t.grades
        )
        out.append(f'<div class="label">grades</div><ul class="grades">{grades}</ul>')
    if t.error is not None:
        out.append(f'<div class="label">error</div><pre class="error">{e(_clip(t.error))}</pre>')
    out.append("</div>")
    return "".join(out)


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
    return (f'<text x="{at:.1f}" y="{y}" font-size="{size}" text-anchor="{anchor}" fill="{fill}"{weight}>'
            f"{html.escape(text)}</text>")  # fmt: skip


def _verdict_icon(verdict: str) -> str:
    """A check, a cross or an exclamation mark in a circle, drawn (emoji fonts are not everywhere)."""
    marks = {
        "pass": '<path d="M7 12.5l3.2 3.2L17 9" fill="none" stroke="currentColor" stroke-width="2.6"/>',
        "fail": '<path d="M8 8l8 8M16 8l-8 8" stroke="currentColor" stroke-width="2.6"/>',
    }
    mark = marks.get(verdict, '<path d="M12 6.5v7" stroke="currentColor" stroke-width="2.6"/>'
                              '<circle cx="12" cy="17.2" r="1.5" fill="currentColor"/>')  # fmt: skip
    return (
        '<svg viewBox="0 0 24 24" width="28" height="28" style="display:inline-block;vertical-align:-5px" '
        f'aria-hidden="true"><circle cx="12" cy="12" r="11" fill="none" stroke="currentColor" stroke-width="2"/>'
        f"{mark}</svg>"
    )


def _alpha_hex(opacity: float) -> str:
    return f"{round(max(0.0, min(1.0, opacity)) * 255):02x}"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clip(text: str, limit: int = TEXT_CAP) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more characters)"


def _command_data(text: str) -> str:
    """Escape a workflow command's message."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _command_property(text: str) -> str:
    """Escape a workflow command's property value."""
    return _command_data(text).replace(":", "%3A").replace(",", "%2C")


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)

"""The HTML report: one self-contained page with charts, readable offline."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence

from pytest_autoevolve.gate.decide import Guardrail
from pytest_autoevolve.gate.summary import GateSummary, RunSummary
from pytest_autoevolve.records import Trajectory
from pytest_autoevolve.report.charts import (
    COLORS,
    OUTCOME_COLORS,
    VERDICT_COLORS,
    alpha_hex,
    category_svg,
    lift_svg,
    paired_outcomes,
)
from pytest_autoevolve.report.format import (
    CATEGORY_CAP,
    DETAIL_CAP,
    PASS_K_NOTE,
    ROLES,
    TRIAL_CAP,
    ci_level,
    ci_text,
    clip,
    cost,
    detail_order,
    finite,
    guardrail_value,
    interval,
    k_keys,
    location,
    mean_cell,
    p,
    pct,
    repeated,
    seconds,
    stability,
    statistics,
    verdict_icon,
)
from pytest_autoevolve.report.markdown import footer

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
.step { font-size: 12px; color: #374151; border-left: 3px solid #d1d5db; padding: 1px 6px; margin: 1px 0 4px; }
.step.worst { border-left-color: #dc2626; background: #fef2f2; }
svg { display: block; max-width: 100%; height: auto; }
svg text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
@media (max-width: 900px) { .grid, .pair { grid-template-columns: 1fr; } }
"""


def render_html(
    summary: RunSummary, trajectories: Mapping[tuple[str, str], Sequence[Trajectory]], unreadable: int = 0
) -> str:
    """The text of ``report.html``: one file, no scripts, nothing fetched."""
    gate = summary.gate
    verdict = gate.verdict
    e = html.escape
    reasons = "".join(f"<li>{e(r)}</li>" for r in gate.reasons)
    meta = [f"run {summary.run_id}", summary.created_at]
    if summary.git_commit:
        meta.append(f"commit {summary.git_commit[:12]}")
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>autoevolve gate: {e(verdict.upper())} · {e(summary.run_id)}</title>",
        f"<style>{CSS}</style></head><body><main>",
        f'<section class="verdict" style="background:{VERDICT_COLORS.get(verdict, "#374151")}">',
        f"<h1>{verdict_icon(verdict)} autoevolve gate: {e(verdict.upper())}</h1>",
        f"<ul>{reasons}</ul>",
        f'<p class="meta">{e(" · ".join(m for m in meta if m))}</p>',
        '<nav><a href="#lift">lift</a><a href="#outcomes">paired outcomes</a>'
        '<a href="#categories">categories</a><a href="#guardrails">guardrails</a>'
        '<a href="#stability">stability</a><a href="#scenarios">scenarios</a></nav>',
        "</section>",
        _html_roles(gate),
        '<div class="grid">',
        f'<div class="card" id="lift"><h2>Lift (candidate &minus; incumbent)</h2>{_html_lift(gate)}</div>',
        f'<div class="card" id="outcomes"><h2>Paired outcomes</h2>{_html_outcomes(gate)}</div>',
        "</div>",
        f'<section id="categories"><h2>Pass rate by category</h2>{_html_categories(gate)}</section>',
        f'<section id="guardrails"><h2>Guardrails</h2>{_html_guardrails(gate)}</section>',
        f'<section id="stability"><h2>Stability</h2>{_html_stability(gate)}</section>',
        f'<section id="scenarios"><h2>Scenarios</h2>{_html_scenarios(gate, trajectories, unreadable)}</section>',
        f'<p class="caption">{e(" · ".join(footer(summary)))}</p>',
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


def _html_roles(gate: GateSummary) -> str:
    e = html.escape
    head = (
        "<tr><th>role</th><th>model</th><th class=num>pass rate</th>"
        f"<th class=num>{ci_level(gate)} interval</th>"
        "<th class=num>trials passed</th><th class=num>errors</th><th class=num>p95 latency</th>"
        "<th class=num>cost</th><th class=num>tokens</th></tr>"
    )
    body = []
    for role in ROLES:
        stat = gate.role(role)
        low, high = stat.ci
        body.append(
            f'<tr><td><span class="swatch" style="background:{COLORS[role]}"></span>{role}</td>'
            f"<td><code>{e(stat.spec)}</code></td><td class=num><b>{pct(stat.pass_rate)}</b></td>"
            f"<td class=num>{interval(low, high)}</td><td class=num>{stat.passed}/{stat.n}</td>"
            f"<td class=num>{stat.errors} ({pct(stat.error_rate)})</td>"
            f"<td class=num>{seconds(stat.p95_latency_s)}</td><td class=num>{cost(stat.cost)}</td>"
            f"<td class=num>{stat.tokens}</td></tr>"
        )
    return f"<section><h2>Models</h2><table>{head}{''.join(body)}</table></section>"


def _html_lift(gate: GateSummary) -> str:
    numbers = "".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in statistics(gate, markdown=False))
    table = f'<table style="margin-top:8px">{numbers}</table>'
    lift, low, high = gate.lift, gate.ci_low, gate.ci_high
    if not (finite(lift) and finite(low) and finite(high)):
        note = "No lift was computed: the gate stopped before the paired test (see the reasons above)."
        return f'<p class="muted">{note}</p>{table}'
    return lift_svg(gate, lift, low, high) + (
        f'<p class="caption">The dot is the lift, the bar its {ci_level(gate)} confidence interval. '
        "The candidate clears the rule when the interval lies right of the dashed line and the one-sided "
        f"p-value is below alpha.</p>{table}"
    )


def _html_outcomes(gate: GateSummary) -> str:
    rows = gate.scenarios
    if not rows:
        return '<p class="muted">No scenario ran on both roles.</p>'
    counts = paired_outcomes(rows)
    total = len(rows)

    def cell(key: str) -> str:
        share = counts[key] / total
        color = OUTCOME_COLORS[key]
        return (
            f'<td style="background:{color}{alpha_hex(0.12 + 0.5 * share)}">'
            f"<b>{counts[key]}</b>{html.escape(key)}<br><span class=muted>{share:.0%}</span></td>"
        )

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
        bar.append(
            f'<rect x="{x:.1f}" y="4" width="{w:.1f}" height="26" fill="{color}"><title>{key}: '
            f"{counts[key]}</title></rect>"
        )
        if w > 28:
            bar.append(
                f'<text x="{x + w / 2:.1f}" y="22" font-size="12" text-anchor="middle" fill="{text_color}">'
                f"{counts[key]}</text>"
            )
        x += w
    bar.append("</svg>")
    outcome = {name: sum(1 for row in rows if row.outcome == name) for name in ("improved", "same", "regressed")}
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


def _html_categories(gate: GateSummary) -> str:
    categories = gate.categories
    chart = category_svg(gate)
    caption = (
        '<p class="caption">Bars: mean pass rate over the paired scenarios; error bars: '
        f"{ci_level(gate)} intervals clustered by scenario (trials of one scenario are not independent).</p>"
    )
    if not categories:
        return (
            chart + caption + '<p class="muted">No per-category results: the gate stopped before the paired '
            "test (see the reasons above).</p>"
        )
    head = (
        "<tr><th>category</th><th class=num>scenarios</th><th class=num>incumbent</th><th class=num>candidate</th>"
        "<th class=num>lift</th><th class=num>p</th><th class=num>p (Holm)</th></tr>"
    )
    body = "".join(
        f"<tr><td><code>{html.escape(c.category)}</code></td><td class=num>{c.n}</td>"
        f"<td class=num>{pct(c.incumbent_pass_rate)} {ci_text(c.incumbent_ci)}</td>"
        f"<td class=num>{pct(c.candidate_pass_rate)} {ci_text(c.candidate_ci)}</td>"
        f"<td class=num>{pct(c.lift, signed=True)}</td><td class=num>{p(c.p_value)}</td>"
        f"<td class=num>{p(c.p_holm)}</td></tr>"
        for c in categories[:CATEGORY_CAP]
    )
    more = (
        f'<p class="caption">... and {len(categories) - CATEGORY_CAP} more categories (all in summary.json).</p>'
        if len(categories) > CATEGORY_CAP
        else ""
    )
    return f"{chart}{caption}<table>{head}{body}</table>{more}"


def _html_guardrails(gate: GateSummary) -> str:
    guardrails = gate.guardrails
    if not guardrails:
        return '<p class="muted">No guardrail was checked (the gate stopped before them, or none is configured).</p>'
    head = (
        "<tr><th>guardrail</th><th class=num>incumbent</th><th class=num>candidate</th><th class=num>limit</th>"
        "<th>status</th></tr>"
    )
    body = "".join(
        f"<tr><td>{html.escape(g.name)}</td><td class=num>{guardrail_value(g, g.incumbent)}</td>"
        f"<td class=num>{guardrail_value(g, g.candidate)}</td><td class=num>{guardrail_value(g, g.limit)}</td>"
        + _status_cell(g)
        + "</tr>"
        for g in guardrails
    )
    return f"<table>{head}{body}</table>"


def _status_cell(guardrail: Guardrail) -> str:
    if guardrail.passed:
        return "<td class=ok>ok</td>"
    return f"<td class=bad>breached: {html.escape(guardrail.detail)}</td>"


def _html_stability(gate: GateSummary) -> str:
    rows = gate.scenarios
    if not rows:
        return '<p class="muted">No paired scenarios.</p>'
    by_role = stability(rows)
    several = repeated(rows)
    keys = k_keys(rows) if several else []
    head = (
        "<tr><th>role</th><th class=num>stable-pass</th><th class=num>stable-fail</th><th class=num>flaky</th>"
        + "".join(f"<th class=num>mean {html.escape(k)}</th>" for k in keys)
        + "</tr>"
    )
    body = ""
    for role in ROLES:
        counts = by_role[role].counts
        body += (
            f"<tr><td>{role}</td><td class=num>{counts['stable-pass']}</td><td class=num>"
            f"{counts['stable-fail']}</td><td class=num>{counts['flaky']}</td>"
            + "".join(f"<td class=num>{mean_cell(rows, role, k)}</td>" for k in keys)
            + "</tr>"
        )
    out = f"<table>{head}{body}</table>"
    if not several:
        out += (
            '<p class="caption">Each scenario ran once per role, so flakiness cannot show; repeats give pass^k '
            "and pass@k.</p>"
        )
    elif keys:
        out += f'<p class="caption">{html.escape(PASS_K_NOTE)}</p>'
    for role in ROLES:
        flaky = by_role[role].flaky
        if flaky:
            items = ", ".join(
                f"<code>{html.escape(row.id)}</code> ({row.role(role).passes}/{row.role(role).trials})"
                for row in flaky[:100]
            )
            more = f" ... and {len(flaky) - 100} more" if len(flaky) > 100 else ""
            out += f"<h3>Flaky on the {role} ({len(flaky)})</h3><p>{items}{more}</p>"
    return out


def _html_scenarios(
    gate: GateSummary, trajectories: Mapping[tuple[str, str], Sequence[Trajectory]], unreadable: int
) -> str:
    rows = detail_order(gate.scenarios)
    if not rows:
        return '<p class="muted">No scenario ran on both roles.</p>'
    specs = {role: gate.role(role).spec for role in ROLES}
    out = [
        '<p class="caption">Regressions first, then improvements, then unchanged scenarios that failed, then the '
        f"rest. Up to {TRIAL_CAP} trials per role are shown; every trial is in trajectories.jsonl.</p>"
    ]
    if unreadable:
        out.append(f'<p class="bad">{unreadable} line(s) of trajectories.jsonl could not be read and are left out.</p>')
    for index, row in enumerate(rows[:DETAIL_CAP]):
        outcome = row.outcome
        inc, cand = row.incumbent, row.candidate
        badges = f'<span class="badge {outcome}">{html.escape(outcome)}</span>'
        if row.critical:
            badges += ' <span class="badge critical">critical</span>'
        where = " · ".join(x for x in (row.category, location(row)) if x)
        opened = " open" if index == 0 and outcome == "regressed" else ""
        out.append(
            f'<details class="scenario {outcome}"{opened}><summary>{badges} <code><b>{html.escape(row.id)}'
            f'</b></code> <span class="muted">{html.escape(where)}</span> · incumbent {inc.passes}/'
            f'{inc.trials} → candidate {cand.passes}/{cand.trials}</summary><div class="pair">'
        )
        for role in ROLES:
            trials = trajectories.get((row.id, role), [])
            out.append(f'<div class="side {role}"><h4>{role} · <code>{html.escape(specs[role])}</code></h4>')
            if not trials:
                out.append('<p class="muted">No trajectory of this role was found in trajectories.jsonl.</p>')
            out += [_html_trial(t) for t in trials]
            total = row.role(role).trials
            if total > len(trials) and trials:
                out.append(f'<p class="caption">{total - len(trials)} more trial(s) in trajectories.jsonl.</p>')
            out.append("</div>")
        out.append("</div></details>")
    if len(rows) > DETAIL_CAP:
        out.append(
            f'<p class="caption">{len(rows) - DETAIL_CAP} more scenarios are not shown here; their trials are '
            "in trajectories.jsonl.</p>"
        )
    return "".join(out)


def _html_trial(t: Trajectory) -> str:
    e = html.escape
    status = "passed" if t.passed else "failed"
    head = [
        f"trial {t.repeat}",
        f"seed {t.seed}",
        f"<b class={'ok' if t.passed else 'bad'}>{status}</b>",
        seconds(t.latency_s),
    ]
    if t.total_tokens is not None:
        head.append(f"{t.total_tokens} tokens")
    if t.cost is not None:
        head.append(f"cost {t.cost:.4f}")
    out = [f'<div class="trial {status}"><div class="head">{" · ".join(head)}</div>', '<div class="label">input</div>']
    messages = [m if isinstance(m, Mapping) else {"role": "?", "content": m} for m in t.messages]
    if messages and messages[-1].get("role") == "assistant" and messages[-1].get("content") == t.output:
        messages = messages[:-1]  # the reply is shown as the output below
    notes = _step_notes(t)
    for index, message in enumerate(messages):
        content = message.get("content")
        text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False, default=str)
        out.append(
            f'<div class="msg"><span class="who">{e(str(message.get("role", "?")))}</span>'
            f"<pre>{e(clip(text))}</pre>{notes.get(index, '')}</div>"
        )
    if t.tool_calls:
        calls = json.dumps(t.tool_calls, ensure_ascii=False, indent=1, default=str)
        out.append(f'<div class="label">tool calls</div><pre>{e(clip(calls))}</pre>')
    if t.error is None or t.output:
        reply = notes.get(len(messages), "") if len(messages) < len(t.messages) else ""
        out.append(f'<div class="label">output</div><pre>{e(clip(t.output))}</pre>{reply}')
    if t.grades:
        grades = "".join(
            f"<li><span class={'ok' if g.passed else 'bad'}>{'✓' if g.passed else '✗'}</span> <b>{e(g.grader)}</b>: "
            f"{e(clip(g.reason))}</li>"
            for g in t.grades
        )
        out.append(f'<div class="label">grades</div><ul class="grades">{grades}</ul>')
    if t.error is not None:
        out.append(f'<div class="label">error</div><pre class="error">{e(clip(t.error))}</pre>')
    out.append("</div>")
    return "".join(out)


def _step_score(step: Mapping[str, object]) -> float:
    score = step.get("score")
    return float(score) if isinstance(score, int | float) else 0.0


def _step_notes(t: Trajectory) -> dict[int, str]:
    """The step scores of the trial's `step_critic` grades as HTML by message index, the worst step marked."""
    e = html.escape
    notes: dict[int, str] = {}
    for grade in t.grades:
        steps = [s for s in grade.steps or [] if isinstance(s, Mapping) and isinstance(s.get("index"), int)]
        if not steps:
            continue
        worst = min(steps, key=_step_score)
        uneven = _step_score(worst) < max(_step_score(s) for s in steps)
        for step in steps:
            marked = uneven and step is worst
            confidence = step.get("confidence")
            sure = f" · confidence {confidence:.2g}" if isinstance(confidence, int | float) else ""
            notes[step["index"]] = notes.get(step["index"], "") + (
                f'<div class="step{" worst" if marked else ""}">{"<b>worst step</b> · " if marked else ""}'
                f"{e(grade.grader)} <b>{_step_score(step):.2f}</b>{sure}: {e(clip(str(step.get('reason', ''))))}"
                "</div>"
            )
    return notes

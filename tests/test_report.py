"""report.md, report.html, $GITHUB_STEP_SUMMARY and ::error annotations from real runs."""

from __future__ import annotations

import html
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_autoevolve.report.format import LIST_CAP
from pytest_autoevolve.report.github import github_outputs
from tests.support.runs import read_run, run_dirs

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "screenshot_report.py"
TRICKY = '<script>alert("x")</script> & <b>bold</b>'

GATE_AGENTS = """
def incumbent(messages, scenario):
    return "wrong" if scenario.id.startswith("up-") else scenario.expected

def candidate(messages, scenario):
    return "wrong" if scenario.id.startswith("down-") else scenario.expected

def flaky(messages, scenario, repeat):
    if scenario.id.startswith("down-") or (scenario.id.startswith("up-") and repeat % 2):
        return "wrong"
    return scenario.expected
"""


def catalog() -> str:
    """12 unchanged scenarios, 4 the candidate fixes (up-*), 2 it breaks (down-*; down-1 is critical)."""
    lines = ["scenarios:"]
    for n in range(12):
        text = TRICKY if n == 0 else f"same {n}"
        lines += [
            f"  - id: same-{n}",
            f"    input: {json.dumps(text)}",
            f"    expected: {json.dumps(text)}",
            "    category: math",
        ]
    for n in range(1, 5):
        lines += [f"  - id: up-{n}", f'    input: "up {n}"', '    expected: "ok"', "    category: math"]
    lines += ["  - id: down-1", '    input: "log in"', '    expected: "ok"', "    category: text", "    critical: true"]
    lines += ["  - id: down-2", '    input: "spell"', '    expected: "ok"', "    category: text"]
    return "\n".join(lines) + "\n"


def q_catalog(count: int) -> str:
    """Scenarios q-0.. that the answer agent passes and the echo agent fails."""
    lines = ["scenarios:"] + [f"  - id: q-{n}\n    input: 'q {n}'\n    expected: 'a {n}'" for n in range(count)]
    return "\n".join(lines) + "\n"


def line_of(path: Path, scenario: str) -> int:
    """The 1-based line of a scenario's ``- id:`` entry."""
    text = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(text, start=1) if line.strip() == f"- id: {scenario}")


def no_latency_guardrail(pytester) -> None:
    """Python models answer in microseconds, so one scheduler hiccup on a loaded machine would breach it."""
    pytester.makefile(".yaml", autoevolve="gate:\n  max_latency_increase: null\n")


@pytest.fixture
def gate_run(pytester, write_scenarios):
    """Run the catalog with the given candidate; return (result, run folder, summary, catalog path)."""
    path = write_scenarios(catalog())
    no_latency_guardrail(pytester)
    pytester.makepyfile(gate_agents=GATE_AGENTS)
    pytester.syspathinsert()

    def run(candidate: str = "candidate", *extra: str):
        result = pytester.runpytest(
            "--autoevolve",
            "--autoevolve-incumbent",
            "python:gate_agents:incumbent",
            "--autoevolve-candidate",
            f"python:gate_agents:{candidate}",
            "-p",
            "no:cacheprovider",
            *extra,
        )
        _, summary = read_run(pytester.path)
        run_dir = run_dirs(pytester.path)[0]
        return result, run_dir, summary, path

    return run


def test_report_md_shows_verdict_lift_regressions_and_categories(gate_run):
    result, run_dir, summary, path = gate_run()
    assert result.ret == 1
    assert summary["verdict"] == "fail"
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    assert md.startswith("## ❌ autoevolve gate: FAIL\n")
    assert "- critical scenario(s) regressed: down-1" in md
    assert "| lift (candidate - incumbent) | **+11.1%** |" in md  # (4 fixed - 2 broken) / 18
    assert f"| 90% confidence interval | [{summary['ci_low']:+.1%}, {summary['ci_high']:+.1%}] |" in md
    assert f"| p-value (one-sided) | {summary['p_value']:.4g} |" in md
    assert "| test | paired score test (Tango; restricted MLE on the lattice) (score) |" in md
    assert "| paired scenarios | 18 |" in md
    assert f"| minimum detectable lift (80% power, prospective) | {summary['minimum_detectable_lift']:.1%} |" in md
    assert "| incumbent | `python:gate_agents:incumbent` | 77.8% | 14/18 | 0 (0.0%) |" in md
    assert "| candidate | `python:gate_agents:candidate` | 88.9% | 16/18 | 0 (0.0%) |" in md
    regressions = md.split("### Regressions (2)\n", 1)[1].split("###", 1)[0]
    first, second = [line for line in regressions.splitlines() if line.startswith("- ")]
    assert first.startswith("- `down-1` **critical** · text")
    assert f"`scenarios/demo.yaml:{line_of(path, 'down-1')}`" in first
    assert "incumbent 1/1 → candidate 0/1" in first
    assert second.startswith("- `down-2` · text") and "**critical**" not in second
    assert "### Improvements (4)" in md and "- `up-3` · math" in md
    assert "| `math` | 16 | 75.0% | 100.0% | +25.0% |" in md
    assert "| `text` | 2 | 100.0% | 0.0% | -100.0% |" in md
    assert "| error_rate | 0.0% | 0.0% | 5.0% | ok |" in md
    assert "| candidate | 16 | 2 | 0 |" in md  # stability: stable-pass, stable-fail, flaky
    assert "<script>" not in md
    result.stdout.fnmatch_lines(
        ["report:       .autoevolve/runs/*/report.md", "html report:  .autoevolve/runs/*/report.html"]
    )
    assert not [line for line in result.outlines if line.startswith("::")]  # not on GitHub Actions


def test_report_html_is_self_contained_with_charts_and_side_by_side_trajectories(gate_run):
    _, run_dir, summary, _ = gate_run()
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>")
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "<link" not in page and "@import" not in page
    links = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", page)
    assert links and all(link.startswith("#") for link in links)
    assert page.count("<svg") >= 4  # verdict icon, lift, paired outcomes, categories
    # (a) pass rate by category, both roles, scenario-clustered intervals as error bars
    math_ci = summary["categories"][0]["incumbent_ci"]
    assert f"math · incumbent: 75.0% (scenario-clustered interval [{math_ci[0]:.1%}, {math_ci[1]:.1%}])" in page
    assert "text · candidate: 0.0%" in page
    # (b) the paired outcome table
    for count, label in ((12, "both pass"), (2, "only incumbent"), (4, "only candidate"), (0, "both fail")):
        assert re.search(rf"<b>{count}</b>{label}<br>", page), label
    # (c) the lift with its interval
    assert 'aria-label="lift +11.1% with interval' in page and "0 = min lift" in page
    # (d) trajectories side by side, regressions first, everything escaped
    details = re.findall(r'<details class="scenario (\w+)"( open)?><summary>.*?<b>([\w.-]+)</b>', page)
    assert [d[2] for d in details[:2]] == ["down-1", "down-2"]
    assert details[0][1] == " open"
    assert {d[0] for d in details[2:6]} == {"improved"}
    down = page.split("<b>down-1</b>", 1)[1].split("</details>", 1)[0]
    incumbent, candidate = down.split('<div class="side candidate">')
    assert '<div class="side incumbent">' in incumbent and "passed" in incumbent
    assert "<pre>log in</pre>" in incumbent and "<pre>ok</pre>" in incumbent
    assert "<pre>wrong</pre>" in candidate
    assert html.escape("expected 'ok', got 'wrong'") in candidate
    assert TRICKY not in page and html.escape(TRICKY) in page


def test_inconclusive_run_still_writes_both_reports(pytester, write_scenarios, agents):
    write_scenarios("scenarios:\n  - id: a\n    input: x\n    expected: x\n  - id: b\n    input: y\n    expected: y\n")
    result = pytester.runpytest(
        "--autoevolve",
        "--autoevolve-incumbent",
        "python:toyagents:echo",
        "--autoevolve-candidate",
        "python:toyagents:boom",
    )
    assert result.ret == 1
    _, summary = read_run(pytester.path)
    assert summary["verdict"] == "inconclusive"
    assert summary["test"] is None and summary["lift"] is None and summary["categories"] == []
    run_dir = run_dirs(pytester.path)[0]
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    assert md.startswith("## ⚠️ autoevolve gate: INCONCLUSIVE")
    assert "- every candidate trial errored: nothing to compare" in md
    assert "| lift (candidate - incumbent) | n/a |" in md and "| test | n/a (not run) |" in md
    assert "### Categories" not in md
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "No lift was computed" in page and "No per-category results" in page
    assert "RuntimeError: model exploded" in page
    assert "<svg" in page


def test_repeats_show_flaky_scenarios_and_pass_hat_k(gate_run):
    _, run_dir, _, _ = gate_run("flaky", "--autoevolve-repeats", "4")
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    assert "| role | stable-pass | stable-fail | flaky | mean pass^2 | mean pass@2 |" in md
    # candidate: 12 scenarios always pass (pass^2 1), 4 pass half (1/6), 2 never (0): (12 + 4/6) / 18
    assert "| candidate | 12 | 2 | 4 | 70.4% |" in md
    assert "Flaky on the candidate (4): `up-1`, `up-2`, `up-3`, `up-4`" in md
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "Flaky on the candidate (4)" in page
    assert page.count('<div class="trial ') == 18 * 2 * 4


def test_long_lists_are_cut_with_a_count(pytester, write_scenarios, agents):
    write_scenarios(q_catalog(60))
    pytester.runpytest(
        "--autoevolve",
        "--autoevolve-incumbent",
        "python:toyagents:answer",
        "--autoevolve-candidate",
        "python:toyagents:echo",
    )
    run_dir = run_dirs(pytester.path)[0]
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    section = md.split("### Regressions (60)\n", 1)[1].split("###", 1)[0]
    assert len([line for line in section.splitlines() if line.startswith("- `q-")]) == LIST_CAP
    assert f"- ... and {60 - LIST_CAP} more" in section


def test_step_summary_is_appended_and_regressions_are_annotated(gate_run, monkeypatch, tmp_path):
    step_summary = tmp_path / "step_summary.md"
    step_summary.write_text("earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    result, run_dir, _, path = gate_run()
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    assert step_summary.read_text(encoding="utf-8") == "earlier step\n" + md.rstrip("\n") + "\n\n"
    commands = [line for line in result.outlines if line.startswith("::")]
    assert commands == [
        f"::error file=scenarios/demo.yaml,line={line_of(path, 'down-1')},title=autoevolve%3A critical regression "
        "in down-1::critical scenario down-1 regressed: the incumbent passed 1 of 1 trials, the candidate 0 of 1",
        f"::error file=scenarios/demo.yaml,line={line_of(path, 'down-2')},title=autoevolve%3A regression in down-2"
        "::scenario down-2 regressed: the incumbent passed 1 of 1 trials, the candidate 0 of 1",
        commands[2],
    ]
    assert commands[2].startswith("::error title=autoevolve gate%3A FAIL::lift +11.1%25, p = ")
    assert "critical scenario(s) regressed: down-1" in commands[2]


def test_a_passing_gate_is_a_notice(pytester, write_scenarios, agents, monkeypatch):
    write_scenarios(q_catalog(12))
    no_latency_guardrail(pytester)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    result = pytester.runpytest(
        "--autoevolve",
        "--autoevolve-incumbent",
        "python:toyagents:echo",
        "--autoevolve-candidate",
        "python:toyagents:answer",
    )
    assert result.ret == 0
    commands = [line for line in result.outlines if line.startswith("::")]
    assert len(commands) == 1
    assert commands[0].startswith("::notice title=autoevolve gate%3A PASS::lift +100.0%25, p = 0.000347")


def test_an_unwritable_step_summary_is_reported_not_raised(tmp_path):
    report = tmp_path / "report.md"
    report.write_text("## report\n", encoding="utf-8")
    summary = {"verdict": "pass", "reasons": ["fine, 100%"], "lift": 0.25, "p_value": 0.01, "scenarios": []}
    lines = github_outputs(summary, report, {"GITHUB_STEP_SUMMARY": str(tmp_path), "GITHUB_ACTIONS": "true"})
    assert lines[0].startswith("::warning title=autoevolve::autoevolve: could not append report.md")
    assert lines[1] == "::notice title=autoevolve gate%3A PASS::lift +25.0%25, p = 0.01: fine, 100%25"
    assert github_outputs(summary, report, {}) == []


def test_report_md_is_the_same_under_xdist(gate_run, pytester):
    def stable_lines(run_dir: Path) -> list[str]:  # leave out timings and the run id
        text = (run_dir / "report.md").read_text(encoding="utf-8")
        return [line for line in text.splitlines() if not re.search(r"\d ms \||\d s \||<sub>", line)]

    _, serial_dir, _, _ = gate_run()
    serial = stable_lines(serial_dir)
    shutil.rmtree(pytester.path / ".autoevolve" / "runs")
    result = pytester.runpytest_subprocess(
        "--autoevolve",
        "--autoevolve-incumbent",
        "python:gate_agents:incumbent",
        "--autoevolve-candidate",
        "python:gate_agents:candidate",
        "-p",
        "no:cacheprovider",
        "-n",
        "2",
    )
    assert result.ret == 1
    parallel_dir = run_dirs(pytester.path)[0]
    assert stable_lines(parallel_dir) == serial
    assert len(serial) > 40
    assert "<b>down-1</b>" in (parallel_dir / "report.html").read_text(encoding="utf-8")


def load_script():
    """scripts/screenshot_report.py as a module."""
    spec = importlib.util.spec_from_file_location("screenshot_report", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_report_html_renders_its_charts_in_headless_chromium(gate_run, tmp_path):
    script = load_script()
    browser = script.find_browser() or next((p for p in ["/usr/bin/chromium"] if Path(p).exists()), None)
    if browser is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no Chromium is installed: .ci/run installs it (apt-get install chromium)")
        pytest.skip("no Chromium installed (apt-get install chromium)")
    _, run_dir, _, _ = gate_run()
    png = tmp_path / "report.png"
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            str(run_dir / "report.html"),
            "--out",
            str(png),
            "--browser",
            browser,
            "--width",
            "1280",
            "--height",
            "2000",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert png.stat().st_size > 20_000
    image = script.decode_png(png.read_bytes())
    assert image[:2] == (1280, 2000)
    stats = script.pixel_stats(image)
    assert stats["colours"] > 100  # text, charts and tables, not a blank page
    assert stats["incumbent"] > 2000 and stats["candidate"] > 2000  # both roles' bars were painted
    assert f"incumbent-coloured pixels {stats['incumbent']}" in done.stdout

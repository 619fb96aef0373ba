"""The fine-tune loop: promote and rollback with history, improve end to end (training itself: test_training.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_autoevolve.gate.decide import decide
from pytest_autoevolve.gate.results import ItemResult
from pytest_autoevolve.gate.summary import CacheStats, GateSummary, RunSummary
from pytest_autoevolve.loops import finetune, project, promotion
from pytest_autoevolve.settings import GateConfig
from tests.support.projects import copy_catalog


def write_summary(path: Path, verdict: str, incumbent: str, candidate: str) -> Path:
    """A real summary.json of a gate between the two specs whose numbers give ``verdict``."""
    good = verdict == "pass"  # the candidate passes all 12 scenarios, or 2 where the incumbent passes 4
    items = [ItemResult(f"s{n}", "incumbent", 1, int(n % 3 == 0), line=n) for n in range(12)]
    items += [ItemResult(f"s{n}", "candidate", 1, int(good or (n % 3 == 0 and n < 6)), line=n) for n in range(12)]
    result = decide(items, GateConfig(), {"incumbent": incumbent, "candidate": candidate})
    assert result.verdict == verdict, result.reasons
    summary = RunSummary(
        run_id="r",
        created_at="2026-12-03T00:00:00+00:00",
        gate=GateSummary.from_result(result),
        split="eval",
        seed=0,
        repeats=1,
        judge=None,
        cache=CacheStats("off", 0, 24),
        catalog_sha256="0" * 64,
        git_commit=None,
        versions={},
    )
    path.write_text(json.dumps(summary.to_json()))
    return path


def test_promote_needs_a_passing_gate_of_that_pair_and_rollback_restores(tmp_path):
    project.update_config(tmp_path, {"incumbent": "tiny", "candidate": "tiny+adapter=models/v1"})
    failing = write_summary(tmp_path / "fail.json", "fail", "tiny", "tiny+adapter=models/v1")
    with pytest.raises(project.FineTuneError, match="the gate said 'fail'"):
        promotion.promote(tmp_path, failing)
    other_pair = write_summary(tmp_path / "other.json", "pass", "tiny", "tiny+adapter=models/v0")
    with pytest.raises(project.FineTuneError, match="refusing"):
        promotion.promote(tmp_path, other_pair)
    passing = write_summary(tmp_path / "pass.json", "pass", "tiny", "tiny+adapter=models/v1")
    edited = tmp_path / "edited.json"
    edited.write_text(failing.read_text().replace('"verdict": "fail"', '"verdict": "pass"'))
    with pytest.raises(project.FineTuneError, match="says pass but its numbers give 'fail'"):
        promotion.promote(tmp_path, edited)
    cut_short = tmp_path / "cut.json"
    cut_short.write_text(passing.read_text().replace('"complete": true', '"complete": false'))
    with pytest.raises(project.FineTuneError, match="the run was not complete"):
        promotion.promote(tmp_path, cut_short)
    garbage = tmp_path / "garbage.json"
    garbage.write_text("<html>not a summary</html>")
    with pytest.raises(project.FineTuneError, match=r"garbage\.json: not an autoevolve summary"):
        promotion.promote(tmp_path, garbage)
    entry = promotion.promote(tmp_path, passing)
    assert (entry["previous"], entry["incumbent"], entry["override"]) == ("tiny", "tiny+adapter=models/v1", False)
    promoted = "tiny+adapter=models/v1"
    assert project.read_config(tmp_path) == {"incumbent": promoted, "candidate": promoted}
    assert entry["changes"] == [f"incumbent: tiny -> {promoted}"]  # the candidate already was it
    assert len(entry["gate_summary_sha256"]) == 64

    project.update_config(tmp_path, {"candidate": "tiny+adapter=models/v2"})
    forced = promotion.promote(tmp_path, None, force=True, reason="hotfix")
    assert forced["override"] and forced["reason"] == "hotfix"
    assert promotion.rollback(tmp_path)["incumbent"] == "tiny+adapter=models/v1"
    assert promotion.rollback(tmp_path)["incumbent"] == "tiny"
    with pytest.raises(project.FineTuneError, match="nothing to roll back"):
        promotion.rollback(tmp_path)
    assert [e["action"] for e in promotion.history(tmp_path)] == ["promote", "promote", "rollback", "rollback"]
    with (tmp_path / promotion.HISTORY_FILE).open("a") as handle:
        handle.write("{not json\n")
    with pytest.raises(project.FineTuneError, match=r"autoevolve-history.jsonl:5: not a promotion history entry"):
        promotion.rollback(tmp_path)


def test_cli_promote_and_rollback(tmp_path, monkeypatch, capsys):
    from pytest_autoevolve.cli import main

    monkeypatch.chdir(tmp_path)
    project.update_config(tmp_path, {"incumbent": "tiny", "candidate": "tiny+adapter=m"})
    assert main(["promote"]) == 2
    assert "refusing to promote" in capsys.readouterr().err
    assert main(["promote", "--force", "--reason", "manual"]) == 0
    assert main(["rollback"]) == 0
    assert project.read_config(tmp_path)["incumbent"] == "tiny"


# tmp_path, not pytester: its sys.modules snapshot would unload torch, which cannot load twice in a process
def test_improve_end_to_end_on_part_of_the_demo(tmp_path):
    copy_catalog(tmp_path / "scenarios")
    config = "# the deployed model\nincumbent: tiny   # comments stay\n"
    (tmp_path / "autoevolve.yaml").write_text(config)
    results = finetune.improve(tmp_path, rounds=1, k=2, progress=lambda _: None)
    (result,) = results
    dataset = tmp_path / result.dataset
    manifest = json.loads((dataset / "manifest.json").read_text())
    train_ids = set(manifest["scenarios"]["train"]) | set(manifest["scenarios"]["val"])
    assert train_ids and all(i.startswith("train-") for i in train_ids)
    adapter = tmp_path / result.model
    assert (adapter / "adapter_model.safetensors").is_file()
    summary = json.loads((tmp_path / result.summary).read_text())
    assert summary["candidate"]["spec"] == f"tiny+adapter={result.model}"
    assert result.verdict == summary["verdict"]
    written = (tmp_path / "autoevolve.yaml").read_text()
    if result.promoted:  # only a promotion changes the config, its comments kept
        assert result.verdict == "pass" and written.startswith("# the deployed model\n")
        assert f"incumbent: {result.candidate} # comments stay\ncandidate: {result.candidate}\n" in written
    else:
        assert written == config and result.changes == []


def test_dry_run_trains_nothing(tmp_path):
    copy_catalog(tmp_path / "scenarios")
    (result,) = finetune.improve(tmp_path, dry_run=True, k=1, progress=lambda _: None)
    assert result.model == "" and result.examples > 0
    assert not (tmp_path / "finetune" / "models").exists()


def test_fixture_runs_a_small_cycle(pytester):
    copy_catalog(pytester.path / "scenarios")
    pytester.makepyfile(
        test_cycle="""
        import json
        from pathlib import Path

        def test_cycle(autoevolve_finetune):
            run = autoevolve_finetune.sample("tiny", k=1)
            dataset = autoevolve_finetune.curate([run], spec="tiny", min_examples=5)
            lines = (dataset / "train.jsonl").read_text().splitlines()
            assert lines and all(json.loads(line)["messages"][-1]["role"] == "assistant" for line in lines)
            candidate = autoevolve_finetune.train(dataset, epochs=1)
            assert candidate.startswith("tiny+adapter=finetune/models/v1")
            summary = autoevolve_finetune.gate("tiny", candidate)
            assert summary["verdict"] in ("pass", "fail", "inconclusive")
            assert summary["n_paired"] == 140
        """
    )
    result = pytester.runpytest_subprocess("test_cycle.py", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)

"""``autoevolve init``: the starter files, never overwriting, and a project that runs as written."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from pytest_autoevolve.catalog.loader import load_catalog
from pytest_autoevolve.cli import main, scaffold
from pytest_autoevolve.graders.builtin import default_registry
from pytest_autoevolve.loops.proposers import SpaceProposer
from pytest_autoevolve.providers.base import parse_spec
from pytest_autoevolve.settings import GateConfig, load_settings
from tests.support.runs import read_run

REPO = Path(__file__).resolve().parents[1]
STARTERS = ["autoevolve.yaml", "scenarios/example.yaml", "evolve-space.yaml"]
WORKFLOWS = [f".github/workflows/{name}" for name in scaffold.WORKFLOWS]


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_init_writes_the_starter_files_into_an_empty_folder(tmp_path, capsys):
    project = tmp_path / "new" / "project"  # created, with its parents; no git repository needed
    assert main(["init", str(project)]) == 0
    assert files_under(project) == sorted(STARTERS + WORKFLOWS)
    for relative, text in scaffold.files().items():
        assert (project / relative).read_text(encoding="utf-8") == text
    out = capsys.readouterr().out
    for relative in STARTERS + WORKFLOWS:
        assert f"written     {project / relative}\n" in out
    assert "pytest --autoevolve" in out and f"cd {project}" in out
    assert "autoevolve-gate-verdict" in out
    assert "autoevolve improve --dry-run" in out and "add `split: train` scenarios" in out


def test_init_defaults_to_the_current_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["init", "--no-workflows"]) == 0
    assert files_under(tmp_path) == sorted(STARTERS)
    out = capsys.readouterr().out
    assert "written     autoevolve.yaml\n" in out and "\n  cd " not in out
    assert "autoevolve-gate-verdict" not in out


def test_init_never_overwrites_without_force(tmp_path, capsys):
    assert main(["init", str(tmp_path)]) == 0
    config = tmp_path / "autoevolve.yaml"
    config.write_text("candidate: openai:gpt-4o-mini\n", encoding="utf-8")
    (tmp_path / "evolve-space.yaml").unlink()
    capsys.readouterr()
    assert main(["init", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert config.read_text(encoding="utf-8") == "candidate: openai:gpt-4o-mini\n"
    assert f"skipped     {config}  (exists; --force overwrites it)" in out
    assert f"written     {tmp_path / 'evolve-space.yaml'}\n" in out  # a missing one is written again
    assert out.count("skipped") == len(STARTERS + WORKFLOWS) - 1
    assert main(["init", "--force", str(tmp_path)]) == 0
    assert f"overwritten {config}\n" in capsys.readouterr().out
    assert config.read_text(encoding="utf-8") == scaffold.template("autoevolve.yaml")


def test_no_workflows_writes_no_github_folder(tmp_path):
    assert main(["init", "--no-workflows", str(tmp_path)]) == 0
    assert files_under(tmp_path) == sorted(STARTERS)
    assert not (tmp_path / ".github").exists()


def test_init_refuses_a_file_as_the_project_folder(tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("x", encoding="utf-8")
    assert main(["init", str(target)]) == 2
    assert "is a file, expected a folder" in capsys.readouterr().err


def test_init_help_shows_an_example(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["init", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--force" in out and "--no-workflows" in out
    assert "example: autoevolve init my-project" in out


# --- the starter files are valid -------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    scaffold.scaffold(tmp_path, workflows=False)
    return tmp_path


def test_example_scenarios_validate_with_eval_and_train_splits(project, monkeypatch, capsys):
    monkeypatch.chdir(project)
    assert main(["scenarios"]) == 0
    assert capsys.readouterr().out.startswith("19 scenarios: 12 eval, 7 train")
    catalog = load_catalog([project / "scenarios"], default_registry(), project)
    eval_split, train_split = catalog.split("eval"), catalog.split("train")
    assert len(eval_split) >= GateConfig().min_paired  # enough to pair, so the gate can decide
    assert not {s.input for s in eval_split} & {s.input for s in train_split}
    assert any(s.critical for s in eval_split)


def test_starter_config_is_valid_and_shows_the_gate_defaults(project):
    settings = load_settings(project)
    assert (settings.incumbent, settings.candidate, settings.repeats) == ("tiny", "tiny", 1)
    assert settings.gate == GateConfig()
    written_gate = yaml.safe_load((project / "autoevolve.yaml").read_text(encoding="utf-8"))["gate"]
    assert written_gate == {k: v for k, v in dataclasses.asdict(GateConfig()).items() if k != "seed"}
    written = yaml.safe_load((project / "autoevolve.yaml").read_text(encoding="utf-8"))
    assert {k for k in written if k != "gate"} <= {f.name for f in dataclasses.fields(type(settings))}


def test_evolve_space_walks_tiny_candidates(project):
    proposer = SpaceProposer(project / "evolve-space.yaml")
    assert {(p.target, p.key) for p in proposer.points} == {("autoevolve.yaml", "candidate")}
    assert len(proposer.points) >= 2
    assert {parse_spec(p.value).provider for p in proposer.points} == {"tiny"}


def test_templates_ship_in_the_wheel(tmp_path):
    pytest.importorskip("setuptools")
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(
        REPO / "pytest_autoevolve", source / "pytest_autoevolve", ignore=shutil.ignore_patterns("__pycache__", "tiny")
    )
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-build-isolation",
        "--no-deps",
        "-q",
        str(source),
        "-w",
        str(tmp_path / "dist"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = REPO / "pytest_autoevolve" / "templates"
    for path in templates.rglob("*"):
        if path.is_file():
            assert f"pytest_autoevolve/templates/{path.relative_to(templates).as_posix()}" in names


# --- the scaffolded project runs -------------------------------------------------------------


def test_pytest_autoevolve_runs_in_the_scaffolded_project(pytester):
    assert main(["init", str(pytester.path)]) == 0
    result = pytester.runpytest_subprocess("--autoevolve", "-p", "no:cacheprovider")
    # tiny against itself: no lift, so the gate fails (exit status 1) but the run is complete
    assert result.ret == 1, result.stdout.str()
    result.stdout.fnmatch_lines(["*= autoevolve gate: FAIL =*", "incumbent*tiny*pass rate*", "summary:*summary.json"])
    trajectories, summary = read_run(pytester.path)
    assert summary["verdict"] == "fail" and summary["n_paired"] == 12
    assert summary["incumbent"]["pass_rate"] == summary["candidate"]["pass_rate"]
    assert 0 < summary["incumbent"]["pass_rate"] < 1  # tiny partly solves the examples
    assert len(trajectories) == 24 and all(t["error"] is None for t in trajectories)

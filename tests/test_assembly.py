"""One way to assemble graders and providers: pytest, the command line and the loops see the same ones."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_autoevolve.files import TrajectoryWriter
from pytest_autoevolve.gate.decide import decide
from pytest_autoevolve.loops.evolve import compare, role_items
from pytest_autoevolve.records import Trajectory
from pytest_autoevolve.settings import GateConfig

CATALOG = """
scenarios:
  - id: judged
    input: "say hi"
    expect:
      - llm_judge: "The reply greets the user."
  - id: local
    input: "say hi"
    expect:
      - shouts: 2
  - id: installed
    input: "say hi"
    expect:
      - starts_with: "h"
"""

CONFTEST = """
from pytest_autoevolve.graders import Grade


def pytest_autoevolve_add_graders(registry):
    def shouts(value, folder):
        def check(output, trajectory, scenario):
            return Grade("shouts", output.count("!") >= value, 1.0, "counted")
        return check
    registry.register("shouts", shouts)
"""

PLUGIN = """
from pytest_autoevolve.graders import Grade


def starts_with(value, folder):
    def check(output, trajectory, scenario):
        return Grade("starts_with", output.startswith(value), 1.0, "checked")
    return check


def pytest_autoevolve_add_graders(registry):
    registry.register("starts_with", starts_with)
"""


def installed_plugin(site: Path) -> dict[str, str]:
    """A pytest plugin installed as a distribution (a pytest11 entry point), on PYTHONPATH."""
    site.mkdir(parents=True)
    (site / "greeting_graders.py").write_text(PLUGIN, encoding="utf-8")
    info = site / "greeting_graders-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: greeting-graders\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[pytest11]\ngreeting = greeting_graders\n", encoding="utf-8")
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def test_cli_knows_every_grader_pytest_knows(tmp_path):
    project = tmp_path / "project"
    (project / "scenarios").mkdir(parents=True)
    (project / "scenarios" / "greet.yaml").write_text(CATALOG, encoding="utf-8")
    (project / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    (project / "autoevolve.yaml").write_text("judge: tiny\n", encoding="utf-8")
    env = installed_plugin(tmp_path / "site")
    command = [sys.executable, "-m", "pytest_autoevolve.cli", "scenarios", "--list"]
    listed = subprocess.run(command, capture_output=True, text=True, cwd=project, env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert "3 scenarios: 3 eval" in listed.stdout
    assert [line.split()[1] for line in listed.stdout.splitlines()[:3]] == ["judged", "local", "installed"]
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--autoevolve", "--collect-only", "-q", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        cwd=project,
        env=env,
        timeout=120,
    )
    assert collected.returncode == 0, collected.stdout + collected.stderr
    assert "6 tests collected" in collected.stdout


def test_cli_names_an_unknown_grader_as_pytest_does(tmp_path):
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "greet.yaml").write_text(CATALOG, encoding="utf-8")
    (tmp_path / "autoevolve.yaml").write_text("judge: tiny\n", encoding="utf-8")
    command = [sys.executable, "-m", "pytest_autoevolve.cli", "scenarios"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith("autoevolve scenarios: scenarios/greet.yaml:")
    assert "unknown grader 'shouts'" in done.stderr


def write_run(path: Path, role: str, passed: list[bool]) -> None:
    writer = TrajectoryWriter(path)
    for index, ok in enumerate(passed):
        messages = [{"role": "user", "content": f"q{index}"}]
        writer.append(Trajectory(f"s{index}", role, "python:agent:answer", messages, 0, 0, passed=ok, score=float(ok)))


def test_evolve_scoring_uses_the_gate_table_of_pyproject(tmp_path):
    gate = {"mode": "non_inferiority", "margin": 0.3, "min_paired": 3}
    (tmp_path / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [tool.autoevolve.gate]
            mode = "non_inferiority"
            margin = 0.3
            min_paired = 3
            """
        ),
        encoding="utf-8",
    )
    best, new = tmp_path / "best.jsonl", tmp_path / "new.jsonl"
    write_run(best, "candidate", [True] * 8 + [False] * 4)
    write_run(new, "candidate", [True] * 6 + [False] * 6)
    score = compare(tmp_path, best, new, seed=0)
    items = role_items(best, "incumbent") + role_items(new, "candidate")
    expected, default = decide(items, GateConfig.from_mapping(gate)), decide(items, GateConfig())
    assert expected.test is not None and default.test is not None
    assert score.p_value == expected.test.p_value
    assert score.p_value != default.test.p_value


def test_a_provider_without_its_libraries_says_what_to_install():
    from pytest_autoevolve.providers.base import ModelSpecError
    from pytest_autoevolve.providers.registry import requires

    with pytest.raises(ModelSpecError, match=r"needs no_such_module_xyz: pip install 'pytest-autoevolve\[train\]'"):
        requires("hf", "no_such_module_xyz", extra="train")

"""An oracle: the test computes every number of a run itself; summary.json, report.md, junit and
``autoevolve report --json`` must agree with it to the digit."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from fractions import Fraction
from statistics import NormalDist

import pytest
from junitparser import JUnitXml, Properties

from tests.support.runs import read_run, run_dirs

CATALOG = """
defaults: {category: math}
scenarios:
  - id: m-{{n}}
    input: "m {{n}}"
    expected: "{{n}}"
    repeats: 3
    vars: {n: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}
  - id: t-{{k}}
    input: "t {{k}}"
    expected: "T{{k}}"
    category: text
    vars: {k: [1, 2, 3, 4, 5, 6]}
  - id: t-crit
    input: "t 7"
    expected: "T7"
    category: text
    critical: true
  - id: train-1
    input: "m 99"
    expected: "99"
    split: train
"""

AGENTS = """
def _ask(messages):
    kind, number = messages[-1]["content"].split()
    return kind, int(number)

def incumbent(messages, repeat):
    kind, n = _ask(messages)
    if kind == "m":
        return str(n) if n % 3 == 0 or (n % 3 == 1 and repeat == 0) else "x"
    return f"T{n}" if n <= 4 or n == 7 else "x"

def candidate(messages, repeat):
    kind, n = _ask(messages)
    if kind == "m":
        if n == 10 and repeat == 1:
            raise RuntimeError("flaky backend")
        return str(n) if n % 3 != 2 or repeat == 2 else "x"
    return f"T{n}" if n >= 2 else "x"
"""


def truth(role: str, kind: str, n: int, repeat: int) -> str:
    """What the oracle knows each agent does: "pass", "fail" or "error"."""
    if role == "incumbent":
        if kind == "m":
            return "pass" if n % 3 == 0 or (n % 3 == 1 and repeat == 0) else "fail"
        return "pass" if n <= 4 or n == 7 else "fail"
    if kind == "m":
        if n == 10 and repeat == 1:
            return "error"
        return "pass" if n % 3 != 2 or repeat == 2 else "fail"
    return "pass" if n >= 2 else "fail"


SCENARIOS = [(f"m-{n}", "math", "m", n, 3) for n in range(1, 11)] + [
    *((f"t-{k}", "text", "t", k, 1) for k in range(1, 7)),
    ("t-crit", "text", "t", 7, 1),
]


def score_p(diffs: list[Fraction], lattice: list[Fraction]) -> float:
    """The score test of "lift > 0", computed apart from the plugin: golden-section search of the dual.

    The restricted MLE of the differences' distribution with mean 0 weighs value v by
    share / (1 + lam * v), lam maximising sum(log(1 + lam * v)) over the observed values; the
    observed ones here include both ends of the lattice, so the weights need no extra mass.
    """
    n, values = len(diffs), [float(d) for d in diffs]
    assert min(values) == float(lattice[0]) and max(values) == float(lattice[-1])
    low, high = -1 / max(values) + 1e-12, -1 / min(values) - 1e-12
    golden = (math.sqrt(5) - 1) / 2

    def dual(lam: float) -> float:
        return sum(math.log1p(lam * v) for v in values)

    for _ in range(200):
        left, right = high - golden * (high - low), low + golden * (high - low)
        low, high = (left, high) if dual(left) < dual(right) else (low, right)
    lam = (low + high) / 2
    variance = sum(v * v / (1 + lam * v) for v in values) / n
    step = float(min(b - a for a, b in itertools.pairwise(lattice)))
    z = (sum(values) / n - 0.25 * step / n) * math.sqrt(n / variance)  # a quarter-step continuity correction
    return 1 - NormalDist().cdf(z)


def oracle() -> dict[str, object]:
    """Every number of the run, computed from `truth` with exact fractions."""
    per: dict[tuple[str, str], tuple[int, int, int]] = {}
    for sid, _, kind, n, repeats in SCENARIOS:
        for role in ("incumbent", "candidate"):
            outcomes = [truth(role, kind, n, r) for r in range(repeats)]
            per[sid, role] = (repeats, outcomes.count("pass"), outcomes.count("error"))
    rate = {key: Fraction(passes, trials) for key, (trials, passes, _) in per.items()}
    diffs = {sid: rate[sid, "candidate"] - rate[sid, "incumbent"] for sid, *_ in SCENARIOS}
    lift = sum(diffs.values(), Fraction(0)) / len(diffs)
    lattice = sorted(
        {Fraction(a, r) - Fraction(b, r) for *_, r in SCENARIOS for a in range(r + 1) for b in range(r + 1)}
    )
    p_value = score_p(list(diffs.values()), lattice)

    def role_numbers(role: str) -> dict[str, object]:
        trials = sum(per[sid, role][0] for sid, *_ in SCENARIOS)
        passes = sum(per[sid, role][1] for sid, *_ in SCENARIOS)
        errors = sum(per[sid, role][2] for sid, *_ in SCENARIOS)
        mean = sum((rate[sid, role] for sid, *_ in SCENARIOS), Fraction(0)) / len(SCENARIOS)
        return {"pass_rate": mean, "n": trials, "passed": passes, "errors": errors, "scenarios": len(SCENARIOS)}

    categories = {}
    for name in ("math", "text"):
        ids = [sid for sid, category, *_ in SCENARIOS if category == name]
        means = {
            role: sum((rate[sid, role] for sid in ids), Fraction(0)) / len(ids) for role in ("incumbent", "candidate")
        }
        categories[name] = {"n": len(ids), "lift": means["candidate"] - means["incumbent"], **means}
    return {
        "per": per,
        "lift": lift,
        "p_value": p_value,
        "n_paired": len(SCENARIOS),
        "incumbent": role_numbers("incumbent"),
        "candidate": role_numbers("candidate"),
        "regressions": sorted(sid for sid, d in diffs.items() if d < 0),
        "improvements": sorted(sid for sid, d in diffs.items() if d > 0),
        "categories": categories,
        "verdict": "pass" if p_value < 0.05 and lift > 0 else "fail",
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, dict[str, object], object]:
    """One real run of the catalog, as a user starts it, with junit."""
    project = tmp_path_factory.mktemp("oracle")
    (project / "scenarios").mkdir()
    (project / "scenarios" / "mixed.yaml").write_text(CATALOG, encoding="utf-8")
    (project / "oracle_agents.py").write_text(AGENTS, encoding="utf-8")
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--autoevolve",
        "--autoevolve-incumbent",
        "python:oracle_agents:incumbent",
        "--autoevolve-candidate",
        "python:oracle_agents:candidate",
        "--junitxml=junit.xml",
        "-p",
        "no:cacheprovider",
        "-q",
    ]
    done = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=300)
    return project, oracle(), done


def test_the_verdict_and_exit_status(run):
    project, truth_, done = run
    _, summary = read_run(project)
    assert summary["verdict"] == truth_["verdict"] == "pass"
    assert done.returncode == 0, done.stdout[-2000:]
    assert "autoevolve gate: PASS" in done.stdout


def test_summary_json_equals_the_oracle(run):
    project, truth_, _ = run
    _, summary = read_run(project)
    assert summary["lift"] == pytest.approx(float(truth_["lift"]), abs=1e-12)
    assert summary["p_value"] == pytest.approx(float(truth_["p_value"]), abs=1e-7)
    assert summary["n_paired"] == truth_["n_paired"]
    assert sorted(summary["regressions"]) == truth_["regressions"]
    assert sorted(summary["improvements"]) == truth_["improvements"]
    assert summary["critical_regressions"] == []
    assert summary["complete"] is True
    for role in ("incumbent", "candidate"):
        want = truth_[role]
        got = summary[role]
        assert got["pass_rate"] == pytest.approx(float(want["pass_rate"]), abs=1e-12)
        assert (got["n"], got["passed"], got["errors"], got["scenarios"]) == (
            want["n"],
            want["passed"],
            want["errors"],
            want["scenarios"],
        )
    categories = {row["category"]: row for row in summary["categories"]}
    for name, want in truth_["categories"].items():
        got = categories[name]
        assert got["n"] == want["n"]
        assert got["lift"] == pytest.approx(float(want["lift"]), abs=1e-12)
        assert got["incumbent_pass_rate"] == pytest.approx(float(want["incumbent"]), abs=1e-12)
        assert got["candidate_pass_rate"] == pytest.approx(float(want["candidate"]), abs=1e-12)
    rows = {row["id"]: row for row in summary["scenarios"]}
    for (sid, role), (trials, passes, errors) in truth_["per"].items():
        assert (rows[sid][role]["trials"], rows[sid][role]["passes"], rows[sid][role]["errors"]) == (
            trials,
            passes,
            errors,
        )
    assert "train-1" not in rows


def test_report_md_shows_the_oracle_numbers(run):
    project, truth_, _ = run
    (folder,) = run_dirs(project)
    report = (folder / "report.md").read_text(encoding="utf-8")
    for role in ("incumbent", "candidate"):
        want = truth_[role]
        assert f"| {float(want['pass_rate']):.1%} | {want['passed']}/{want['n']} | {want['errors']} " in report
    assert f"{float(truth_['lift']):+.1%}" in report
    for sid in truth_["regressions"]:
        assert sid in report


def test_junit_and_autoevolve_report_agree(run):
    project, truth_, _ = run
    xml = JUnitXml.fromfile(str(project / "junit.xml"))
    suite = next(iter(xml))
    glob = {p.name: p.value for p in suite.properties()}
    assert float(glob["autoevolve_lift"]) == pytest.approx(float(truth_["lift"]), abs=1e-9)
    assert float(glob["autoevolve_p_value"]) == pytest.approx(float(truth_["p_value"]), abs=1e-7)
    assert (glob["autoevolve_verdict"], int(glob["autoevolve_n_paired"])) == ("pass", truth_["n_paired"])
    seen = {}
    for case in suite:
        element = case.child(Properties)
        props = {p.name: p.value for p in element} if element is not None else {}
        if props.get("autoevolve") == "scenario":
            seen[props["scenario"], props["role"]] = (int(props["trials"]), int(props["passes"]), int(props["errors"]))
    assert seen == truth_["per"]
    command = [sys.executable, "-m", "pytest_autoevolve.cli", "report", "junit.xml", "--json"]
    done = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    reported = json.loads(done.stdout)
    _, summary = read_run(project)
    for key in ("verdict", "lift", "p_value", "n_paired", "regressions", "improvements", "incumbent", "candidate"):
        assert reported[key] == summary[key], key

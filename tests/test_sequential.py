"""The sequential gate and the run budget: real pytest runs that stop once decided, or once spent."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET

import pytest

from pytest_autoevolve.gate import sequential
from pytest_autoevolve.gate.results import ItemResult
from pytest_autoevolve.settings import GateConfig
from tests.support.agents import SAY_AGENTS
from tests.support.runs import read_run

SCENARIOS = 400


@pytest.fixture
def say_project(pytester: pytest.Pytester) -> pytest.Pytester:
    """400 scenarios "say N" -> "N" (say-7 critical) and the ``say`` agents; no latency guardrail."""
    rows = "\n".join(f"      - {{n: {i}}}" for i in range(SCENARIOS))
    entry = '  - id: say-{{n}}\n    input: "say {{n}}"\n    expected: "{{n}}"\n    vars:\n'
    critical = '  - id: crit\n    input: "say 0"\n    expected: "0"\n    critical: true\n'
    pytester.makefile(".yaml", **{"scenarios/say": f"scenarios:\n{critical}{entry}{rows}\n"})
    pytester.makepyfile(say=SAY_AGENTS)
    pytester.makefile(".yaml", autoevolve="gate:\n  max_latency_increase: null\n")
    return pytester


def run(pytester: pytest.Pytester, incumbent: str, candidate: str, *args: str) -> pytest.RunResult:
    return pytester.runpytest(
        "--autoevolve", "--autoevolve-incumbent", f"python:say:{incumbent}",
        "--autoevolve-candidate", f"python:say:{candidate}", "--junitxml=run.xml", *args,
    )  # fmt: skip


def skipped(pytester: pytest.Pytester) -> list[str]:
    """The messages of the junit file's skipped test cases."""
    root = ET.parse(pytester.path / "run.xml").getroot()
    return [s.get("message", "") for s in root.iter("skipped")]


def test_a_clearly_better_candidate_passes_early_and_the_rest_is_skipped(say_project):
    result = run(say_project, "half", "strong", "--autoevolve-sequential")
    _, summary = read_run(say_project.path)
    design = summary["design"]
    assert result.ret == 0 and summary["verdict"] == "pass"
    assert design["boundary"] == "efficacy" and design["planned"] == SCENARIOS + 1
    assert design["trials"] <= 0.6 * design["planned_trials"]
    assert summary["n_paired"] == design["taken"][-1]["scenarios"] < SCENARIOS
    assert summary["alpha"] == pytest.approx(design["taken"][-1]["nominal"]) and summary["alpha"] < 0.05
    notes = skipped(say_project)
    assert len(notes) == 2 * (SCENARIOS + 1) - design["trials"]
    assert all(note.startswith("not needed: sequential gate") for note in notes)
    text = result.stdout.str()
    look = f"decided at look {len(design['taken'])} of 10, {design['taken'][-1]['scenarios']} of {SCENARIOS + 1}"
    assert look in text and "planned trials (" in text
    # the cache replays the run to the same verdict, at the same look
    again = run(say_project, "half", "strong", "--autoevolve-sequential")
    assert again.ret == 0 and look in again.stdout.str()


def test_an_equal_candidate_never_passes(say_project):
    result = run(say_project, "half", "half", "--autoevolve-sequential")
    _, summary = read_run(say_project.path)
    assert result.ret == 1 and summary["verdict"] == "fail"
    assert summary["design"]["boundary"] == "final"


def test_a_clearly_worse_candidate_fails_early(say_project):
    result = run(say_project, "strong", "worse", "--autoevolve-sequential")
    _, summary = read_run(say_project.path)
    assert result.ret == 1 and summary["verdict"] == "fail"
    assert summary["design"]["boundary"] in ("futility", "critical")
    assert summary["design"]["trials"] < 0.3 * summary["design"]["planned_trials"]


def test_xdist_workers_stop_on_the_controllers_decision(say_project):
    result = run(say_project, "half", "strong", "--autoevolve-sequential", "-n", "2")
    _, summary = read_run(say_project.path)
    assert result.ret == 0 and summary["verdict"] == "pass"
    assert summary["design"]["boundary"] == "efficacy"
    assert summary["design"]["trials"] <= 0.6 * summary["design"]["planned_trials"]


def test_concurrent_trials_stay_close_to_the_decision(say_project):
    result = run(say_project, "half", "strong", "--autoevolve-sequential", "--autoevolve-concurrency", "4")
    _, summary = read_run(say_project.path)
    assert result.ret == 0 and summary["design"]["boundary"] == "efficacy"
    # prefetching runs a few trials ahead of the items, never the whole catalog
    assert summary["design"]["trials"] <= 0.3 * summary["design"]["planned_trials"]


def test_a_fixed_gate_cut_by_its_budget_is_inconclusive_even_with_a_critical_scenario_unrun(say_project):
    result = run(say_project, "half", "breaks_critical", "--autoevolve-budget", "calls=60")
    _, summary = read_run(say_project.path)
    assert summary["verdict"] == "inconclusive" and result.ret == 1
    assert "the budget of 60 calls is spent" in summary["reasons"][0]
    assert summary["complete"] is False
    assert summary["incumbent"]["n"] + summary["candidate"]["n"] <= 62
    assert all(note.startswith("not run: the budget of 60 calls") for note in skipped(say_project))


def test_a_sequential_gate_decided_within_its_budget_keeps_its_verdict(say_project):
    result = run(say_project, "half", "strong", "--autoevolve-sequential", "--autoevolve-budget", "calls=400")
    _, summary = read_run(say_project.path)
    assert result.ret == 0 and summary["verdict"] == "pass"


def test_bad_budget_settings_are_refused():
    with pytest.raises(Exception, match="gate budget calls is a whole number above 0"):
        GateConfig.from_mapping({"budget": {"calls": 0}})
    with pytest.raises(Exception, match="unknown gate budget key"):
        GateConfig.from_mapping({"budget": {"dollars": 3}})


def _items(scenarios: int, incumbent: float, candidate: float, seed: int) -> list[ItemResult]:
    rng = random.Random(seed)
    made = []
    for index in range(scenarios):
        p = rng.random()
        for role, rate in (("incumbent", incumbent), ("candidate", candidate)):
            made.append(ItemResult(f"s{index}", role, 1, int(rng.random() < min(1.0, p * rate * 2))))
    return made


def test_looks_are_fixed_before_any_result_and_the_order_is_seeded():
    assert sequential.look_sizes(400, 5) == [80, 160, 240, 320, 400]
    assert GateConfig().looks == 10
    assert sequential.look_sizes(3, 5) == [1, 2, 3]
    ids = [f"s{i}" for i in range(50)]
    assert sequential.order(ids, 1) == sequential.order(reversed(ids), 1) != sequential.order(ids, 2)


def test_a_look_not_yet_complete_decides_nothing():
    config = GateConfig(sequential=True, min_paired=1)
    items = _items(100, 0.5, 0.5, seed=0)
    ordered = sequential.order((f"s{i}" for i in range(100)), 0)
    partial = [i for i in items if i.scenario not in ordered[:10]]
    assert sequential.walk(partial, ordered, config).taken == ()

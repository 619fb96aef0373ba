"""`autoevolve plan`: the catalog size the gate needs for a lift, from real recorded runs and from a discordance."""

from __future__ import annotations

import json
import random
from collections import defaultdict

import pytest

from pytest_autoevolve.cli import app as cli
from pytest_autoevolve.gate.stats import Differences, power, score_p
from tests.support.runs import read_jsonl, run_dirs

# 20 scenarios "say N" -> "N".
NUMBERS = """
scenarios:
  - id: q-{{n}}
    input: "say {{n}}"
    expected: "{{n}}"
    vars:
      n: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
"""

# A steady model right on the even numbers, and a wobbly one right on multiples of 3 and on half the
# trial seeds: they disagree both between scenarios and from trial to trial. Every call reports usage.
PLAN_AGENTS = """
def _reply(n, right):
    usage = {"prompt_tokens": 10, "completion_tokens": 2}
    return {"output": str(n) if right else "?", "usage": usage, "cost": 0.002}

def _n(messages):
    return int(messages[-1]["content"].split()[-1])

def steady(messages):
    n = _n(messages)
    return _reply(n, n % 2 == 0)

def wobbly(messages, seed):
    n = _n(messages)
    return _reply(n, n % 3 == 0 or seed % 2 == 0)
"""

CALL_TOKENS, CALL_COST = 12, 0.002


@pytest.fixture
def project(pytester, write_scenarios):
    """The "say N" catalog and the `plan_agents` models."""
    write_scenarios(NUMBERS)
    pytester.makepyfile(plan_agents=PLAN_AGENTS)
    pytester.syspathinsert()
    return pytester


def record(pytester, repeats):
    """One ``pytest --autoevolve`` run of steady against wobbly; its run folder."""
    pytester.runpytest(
        "--autoevolve",
        "--autoevolve-incumbent=python:plan_agents:steady",
        "--autoevolve-candidate=python:plan_agents:wobbly",
        f"--autoevolve-repeats={repeats}",
        "-p",
        "no:cacheprovider",
    )
    (run,) = run_dirs(pytester.path)
    return run


def plan(capsys, *argv):
    """``autoevolve plan ARGV`` in-process: (exit status, stdout, stderr)."""
    capsys.readouterr()  # drop what earlier pytester runs echoed
    status = cli.main(["plan", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def plan_json(capsys, *argv):
    """The ``--json`` plan, checked to succeed."""
    status, out, err = plan(capsys, *argv, "--json")
    assert (status, err) == (0, "")
    return json.loads(out)


def by_hand(run):
    """Between and within, computed from the trajectories: per scenario and role, passes and trials."""
    counts = defaultdict(lambda: [0, 0])
    for trial in read_jsonl(run / "trajectories.jsonl"):
        counts[trial["scenario_id"], trial["role"]][0] += trial["passed"]
        counts[trial["scenario_id"], trial["role"]][1] += 1
    between, within = [], []
    for scenario in {s for s, _ in counts}:
        (ip, it), (cp, ct) = counts[scenario, "incumbent"], counts[scenario, "candidate"]
        var_i, var_c = ip / it * (1 - ip / it) * it / (it - 1), cp / ct * (1 - cp / ct) * ct / (ct - 1)
        between.append((cp / ct - ip / it) ** 2 - var_i / it - var_c / ct)
        within.append(var_i + var_c)
    return max(0.0, sum(between) / len(between)), sum(within) / len(within)


def simulated_power(n, discordance, lift, alpha, catalogs=400, seed=1):
    """The gate's real score test on ``catalogs`` simulated one-trial catalogs of ``n`` scenarios: the share passed.

    Each scenario is discordant with probability ``discordance``; a discordant one is an improvement
    with probability (1 + lift / discordance) / 2, so the true lift is ``lift``.
    """
    rng = random.Random(seed)
    better = (1 + lift / discordance) / 2
    passed = 0
    for _ in range(catalogs):
        pairs = []
        for _ in range(n):
            if rng.random() < discordance:
                pairs.append((0, 1, 1, 1) if rng.random() < better else (1, 1, 0, 1))
            else:
                pairs.append((1, 1, 1, 1))
        diffs = Differences.of(pairs)
        passed += score_p(diffs, 0.0) < alpha and diffs.mean > 0
    return passed / catalogs


def test_plan_of_a_repeated_run(project, capsys):
    run = record(project, repeats=3)
    data = plan_json(capsys, str(run), "--lift", "0.1")
    between, within = by_hand(run)
    assert data["source"]["paired"] == 20 and data["source"]["trials"] == 3
    assert (data["between"], data["within"]) == (pytest.approx(between), pytest.approx(within))
    assert within > 0 and data["notes"] == []
    assert (data["alpha"], data["threshold"], data["power"]) == (0.05, 0.0, 0.8)
    assert data["usage"] == {"tokens": CALL_TOKENS, "cost": pytest.approx(CALL_COST)}
    designs = {d["repeats"]: d for d in data["designs"]}
    assert sorted(designs) == [1, 3, 5]
    for r, design in designs.items():
        n, moment = design["scenarios"], design["second_moment"]
        assert moment == pytest.approx(between + within / r)
        assert power(n, moment, 0.1) >= 0.8 > power(n - 1, moment, 0.1)  # the smallest such catalog
        assert design["calls"] == 2 * n * r
        assert design["tokens"] == design["calls"] * CALL_TOKENS
        assert design["cost"] == pytest.approx(design["calls"] * CALL_COST)
    assert designs[1]["scenarios"] > designs[3]["scenarios"] > designs[5]["scenarios"]  # repeats cut the noise
    assert data["cheapest"] == min(designs.values(), key=lambda d: d["calls"])["repeats"]

    # the planned one-trial catalog has its power when the gate's own test runs on simulated catalogs
    assert simulated_power(designs[1]["scenarios"], designs[1]["second_moment"], 0.1, 0.05) == pytest.approx(
        0.8, abs=0.07
    )

    sizes = [plan_json(capsys, str(run), "--lift", lift)["designs"][0]["scenarios"] for lift in ("0.05", "0.1", "0.2")]
    assert sizes[0] > sizes[1] > sizes[2]  # a larger lift needs fewer scenarios

    status, out, err = plan(capsys, str(run / "trajectories.jsonl"), "--lift", "0.1", "--repeats", "1,3")
    assert (status, err) == (0, "")
    pytest.LineMatcher(out.splitlines()).fnmatch_lines(
        [
            "autoevolve plan: lift +0.100 over threshold +0.000, power 80%, alpha 0.05 (one-sided)",
            "from *trajectories.jsonl: 20 paired scenarios, 3 trials per role",
            f"second moment of the differences: between {between:.4f} + within {within:.4f} / r",
            "repeats   moment  scenarios  power      calls       tokens       cost",
            f"      1*{designs[1]['scenarios']:,}*{designs[1]['calls']:,}*{int(designs[1]['tokens']):,}*",
            f"      3*{designs[3]['scenarios']:,}*{designs[3]['calls']:,}*",
            "cheapest in calls: * repeat(s) x * scenarios = * calls",
            "assumption: the normal approximation of the gate's score test*prospective*",
        ]
    )


def test_plan_of_a_single_trial_run(project, capsys):
    run = record(project, repeats=1)
    data = plan_json(capsys, str(run), "--lift", "0.1")
    assert data["source"]["trials"] == 1
    assert data["within"] is None and data["between"] == data["source"]["discordance"]
    assert [d["second_moment"] for d in data["designs"]] == [data["between"]] * 3
    assert len({d["scenarios"] for d in data["designs"]}) == 1  # repeats only cost
    assert data["cheapest"] == 1
    status, out, _ = plan(capsys, str(run), "--lift", "0.1")
    assert status == 0
    assert "at any r (not separated)" in out
    assert "note: one trial per role recorded: the variance within scenarios cannot be separated" in out


@pytest.mark.parametrize(("discordance", "lift"), [(0.2, 0.1), (0.5, 0.15)])
def test_plan_from_a_discordance(capsys, discordance, lift):
    data = plan_json(capsys, "--discordance", str(discordance), "--lift", str(lift), "--repeats", "1")
    (design,) = data["designs"]
    n = design["scenarios"]
    assert power(n, discordance, lift) >= 0.8 > power(n - 1, discordance, lift)
    assert design["tokens"] is None and design["cost"] is None  # no run, no usage
    assert simulated_power(n, discordance, lift, 0.05) == pytest.approx(0.8, abs=0.07)


def test_plan_with_a_within_part(capsys):
    data = plan_json(capsys, "--discordance", "0.3", "--within", "0.2", "--lift", "0.05", "--repeats", "4,1,2")
    assert [d["repeats"] for d in data["designs"]] == [1, 2, 4]
    assert [d["second_moment"] for d in data["designs"]] == pytest.approx([0.3, 0.2, 0.15])
    assert data["designs"][0]["scenarios"] > data["designs"][1]["scenarios"] > data["designs"][2]["scenarios"]


def test_plan_takes_the_gate_config(pytester, capsys):
    pytester.makepyprojecttoml(
        "[tool.autoevolve.gate]\nmode = 'non_inferiority'\nmargin = 0.05\nalpha = 0.1\nmin_paired = 500\n"
    )
    data = plan_json(capsys, "--discordance", "0.2", "--lift", "0")
    assert (data["alpha"], data["threshold"], data["min_paired"]) == (0.1, -0.05, 500)
    assert {d["scenarios"] for d in data["designs"]} == {500}  # fewer paired scenarios are inconclusive
    assert any("min_paired = 500" in note for note in data["notes"])
    data = plan_json(capsys, "--discordance", "0.2", "--lift", "0.1", "--alpha", "0.05", "--threshold", "0.02")
    assert (data["alpha"], data["threshold"]) == (0.05, 0.02)


def test_plan_not_reachable(capsys):
    status, out, _ = plan(capsys, "--discordance", "1", "--lift", "0.0001", "--repeats", "1")
    assert status == 0
    assert "not reachable" in out and "no design reaches 80% power within 1,000,000 scenarios" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["missing-run", "--lift", "0.1"], "no such run: missing-run (give a run folder such as *"),
        (["--discordance", "0.3", "--lift", "0"], "--lift 0 must exceed the threshold 0: *"),
        (["--discordance", "0.3", "--lift", "1.5"], "--lift is a difference of pass rates, in (-1, 1], got 1.5"),
        (["--discordance", "0.1", "--lift", "0.2"], "--lift 0.2 needs the models to disagree on at least 0.2 *"),
        (["--discordance", "0.3", "--within", "0.4", "--lift", "0.1"], "--within is part of --discordance: *"),
        (["--lift", "0.1"], "give a recorded run (RUN) or --discordance D, not both and not neither"),
        (["scenarios", "--lift", "0.1"], "scenarios: no trajectories.jsonl *"),
    ],
)
def test_plan_errors(pytester, capsys, argv, message):
    (pytester.path / "scenarios").mkdir()
    status, out, err = plan(capsys, *argv)
    assert (status, out) == (2, "")
    assert len(err.splitlines()) == 1
    pytest.LineMatcher(err.splitlines()).fnmatch_lines([f"autoevolve plan: {message}"])

"""The run's artifacts: trajectories.jsonl, summary.json and the artifacts folder (DESIGN §7)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime

import pytest

from pytest_autoevolve.errors import FormatError
from pytest_autoevolve.files import read_trajectories
from pytest_autoevolve.records import FORMAT_VERSION, Grade, Trajectory
from pytest_autoevolve.run.runner import trial_seed
from tests.support.runs import fixture_trials, read_run, run_dirs

# A user's agent with tools and costs, to see every field of a trajectory filled in.
TOOL_AGENT = """
def calc(messages, seed, repeat):
    return {
        "output": "46",
        "tool_calls": [{"name": "add", "arguments": {"a": 12, "b": 34}, "result": 46}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 1},
        "cost": 0.25,
    }
"""

RECORD_FIELDS = {
    "format_version",
    "run_id",
    "scenario_id",
    "role",
    "model",
    "messages",
    "tool_calls",
    "output",
    "grades",
    "score",
    "passed",
    "latency_s",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost",
    "error",
    "seed",
    "repeat",
    "started_at",
    "finished_at",
}

ADD = """
scenarios:
  - id: add-2-digit
    input: "add 12+34="
    expected: "46"
    expect:
      - contains: "4"
      - regex: "^\\\\d+$"
"""


# A run of the echo agent as the incumbent and the answer agent as the candidate.
ECHO_VS_ANSWER = (
    "--autoevolve",
    "--autoevolve-incumbent",
    "python:toyagents:echo",
    "--autoevolve-candidate",
    "python:toyagents:answer",
)


def test_record_has_every_field(pytester, write_scenarios, agents):
    write_scenarios(ADD)
    pytester.makepyfile(toolagent=TOOL_AGENT)
    result = pytester.runpytest(
        "--autoevolve",
        "--autoevolve-incumbent",
        "python:toyagents:echo",
        "--autoevolve-candidate",
        "python:toolagent:calc",
    )
    result.assert_outcomes(passed=1, failed=1)
    trajectories, summary = read_run(pytester.path)
    assert len(trajectories) == 2
    run_id = run_dirs(pytester.path)[0].name
    for record in trajectories:
        assert not RECORD_FIELDS - set(record)
        assert record["format_version"] == FORMAT_VERSION
        assert record["run_id"] == run_id == summary["run_id"]
        assert record["scenario_id"] == "add-2-digit"
        started = datetime.fromisoformat(record["started_at"])
        finished = datetime.fromisoformat(record["finished_at"])
        assert started.tzinfo is not None and started <= finished
        assert isinstance(record["latency_s"], float) and record["latency_s"] >= 0
        assert record["repeat"] == 0
        assert record["error"] is None
        assert [g["grader"] for g in record["grades"]] == ["equals", "contains", "regex"]
        for grade in record["grades"]:
            assert set(grade) == {"grader", "passed", "score", "reason"}
            assert isinstance(grade["reason"], str) and grade["reason"]

    candidate = next(t for t in trajectories if t["role"] == "candidate")
    assert candidate["model"] == "python:toolagent:calc"
    assert candidate["messages"] == [
        {"role": "user", "content": "add 12+34="},
        {"role": "assistant", "content": "46"},
    ]
    assert candidate["output"] == "46"
    assert candidate["tool_calls"] == [{"name": "add", "arguments": {"a": 12, "b": 34}, "result": 46}]
    assert candidate["passed"] is True and candidate["score"] == 1.0
    assert all(g["passed"] and g["score"] == 1.0 for g in candidate["grades"])
    assert (candidate["prompt_tokens"], candidate["completion_tokens"], candidate["total_tokens"]) == (9, 1, 10)
    assert candidate["cost"] == 0.25

    incumbent = next(t for t in trajectories if t["role"] == "incumbent")
    assert incumbent["model"] == "python:toyagents:echo"
    assert incumbent["output"] == "add 12+34="
    assert incumbent["passed"] is False
    assert incumbent["score"] == pytest.approx(1 / 3)
    equals = incumbent["grades"][0]
    assert (equals["passed"], equals["score"]) == (False, 0.0)
    assert equals["reason"] == "expected '46', got 'add 12+34='"
    assert (incumbent["prompt_tokens"], incumbent["completion_tokens"], incumbent["total_tokens"]) == (None,) * 3
    assert incumbent["cost"] is None
    assert incumbent["tool_calls"] == []


def test_error_is_recorded(pytester, write_scenarios, agents):
    write_scenarios(ADD)
    result = pytester.runpytest(
        "--autoevolve",
        "--autoevolve-incumbent",
        "python:toyagents:boom",
        "--autoevolve-candidate",
        "python:toyagents:answer",
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*: 0/1 passed: *error RuntimeError: model exploded"])
    trajectories, summary = read_run(pytester.path)
    boom = next(t for t in trajectories if t["role"] == "incumbent")
    assert boom["error"] == "RuntimeError: model exploded"
    assert (boom["passed"], boom["score"], boom["grades"], boom["output"]) == (False, 0.0, [], "")
    assert summary["incumbent"]["errors"] == 1
    assert summary["candidate"]["errors"] == 0


def test_timeout_is_recorded(pytester, write_scenarios, agents):
    write_scenarios(
        """
        scenarios:
          - id: too-slow
            input: "x"
            expected: "late"
            timeout_s: 0.2
        """
    )
    started = time.monotonic()
    result = pytester.runpytest(
        "--autoevolve",
        "--autoevolve-incumbent",
        "python:toyagents:slow",
        "--autoevolve-candidate",
        "python:toyagents:slow",
    )
    assert time.monotonic() - started < 4  # the 5 s agent is abandoned, not waited for
    result.assert_outcomes(failed=2)
    trajectories, _ = read_run(pytester.path)
    assert [t["error"] for t in trajectories] == ["TimeoutError: the model did not answer within timeout_s=0.2"] * 2


SECRET_SPEC = "python:toyagents:echo+api_key=SECRET+temperature=0"


def test_spec_secrets_never_reach_artifacts(pytester, write_scenarios, agents):
    write_scenarios(ADD)
    pytester.makepyfile(
        test_fixture_model=f"""
        def test_by_spec(autoevolve_model, autoevolve_catalog):
            handle = autoevolve_model({SECRET_SPEC!r})
            assert handle.spec == "python:toyagents:echo+temperature=0"
            trajectory = handle.run(autoevolve_catalog["add-2-digit"])
            assert "SECRET" not in repr(trajectory)
        """
    )
    result = pytester.runpytest(
        "--autoevolve",
        "--autoevolve-incumbent",
        SECRET_SPEC,
        "--autoevolve-candidate",
        "python:toyagents:answer",
        "--junitxml=junit.xml",
        "-v",
        "scenarios",
        "test_fixture_model.py",
    )
    result.assert_outcomes(passed=2, failed=1)
    assert "SECRET" not in result.stdout.str()
    gated, summary = read_run(pytester.path)
    assert len(gated) == 2  # the fixture's trial is kept apart from the gated run's records
    trajectories = gated + fixture_trials(pytester.path)
    assert len(trajectories) == 3
    assert {t["model"] for t in trajectories if t["role"] != "candidate"} == {"python:toyagents:echo+temperature=0"}
    assert {t["role"] for t in trajectories} == {"incumbent", "candidate", "python:toyagents:echo+temperature=0"}
    assert summary["incumbent"]["spec"] == "python:toyagents:echo+temperature=0"
    files = [p for p in (pytester.path / ".autoevolve").rglob("*") if p.is_file()]
    assert len(files) >= 3
    for path in [*files, pytester.path / "junit.xml"]:
        assert "SECRET" not in path.read_text(encoding="utf-8"), path


REPEATED = """
scenarios:
  - id: a
    input: "a"
    expected: "a"
    repeats: 3
  - id: b
    input: "b"
    expected: "b"
    repeats: 3
"""


def seeds_of(trajectories):
    return {(t["scenario_id"], t["role"], t["repeat"]): t["seed"] for t in trajectories}


def test_seeds_pair_up_and_follow_the_base_seed(pytester, write_scenarios, agents):
    write_scenarios(REPEATED)
    pytester.runpytest(*ECHO_VS_ANSWER, "--autoevolve-artifacts", "base0").assert_outcomes(passed=4)
    pytester.runpytest(*ECHO_VS_ANSWER, "--autoevolve-artifacts", "base0-again").assert_outcomes(passed=4)
    pytester.runpytest(*ECHO_VS_ANSWER, "--autoevolve-artifacts", "base9", "--autoevolve-seed", "9").assert_outcomes(
        passed=4
    )
    first = seeds_of(read_run(pytester.path, "base0")[0])
    again = seeds_of(read_run(pytester.path, "base0-again")[0])
    nine = seeds_of(read_run(pytester.path, "base9")[0])
    assert len(first) == 2 * 2 * 3
    assert first == again  # reproducible run to run
    for scenario in "ab":
        for repeat in range(3):
            assert first[scenario, "incumbent", repeat] == first[scenario, "candidate", repeat]
            assert first[scenario, "incumbent", repeat] == trial_seed(0, scenario, repeat)
            assert nine[scenario, "candidate", repeat] == trial_seed(9, scenario, repeat)
        assert len({first[scenario, "incumbent", repeat] for repeat in range(3)}) == 3
    assert first["a", "incumbent", 0] != first["b", "incumbent", 0]
    assert set(first.values()).isdisjoint(nine.values())


def test_summary_per_role_and_written_atomically(pytester, write_scenarios, agents):
    write_scenarios(
        """
        scenarios:
          - id: s1
            input: "s1"
            expected: "s1"
          - id: s2
            input: "s2"
            expected: "two"
          - id: s3
            input: "s3"
            expected: "s3"
            repeats: 2
        """
    )
    result = pytester.runpytest(
        "--autoevolve",
        "--autoevolve-incumbent",
        "python:toyagents:echo",
        "--autoevolve-candidate",
        "python:toyagents:boom",
    )
    result.assert_outcomes(passed=2, failed=4)
    _, summary = read_run(pytester.path)
    assert summary["format_version"] == 4  # 2: complete and missing joined the summary; 3: the design; 4: canary
    assert summary["trajectory_format_version"] == FORMAT_VERSION
    incumbent, candidate = summary["incumbent"], summary["candidate"]
    assert incumbent["spec"] == "python:toyagents:echo"
    assert (incumbent["n"], incumbent["errors"]) == (4, 0)
    assert incumbent["pass_rate"] == pytest.approx(2 / 3)  # the mean of the scenarios' pass rates, like the lift
    assert incumbent["trial_pass_rate"] == pytest.approx(0.75)  # 3 of 4 trials, pooled
    assert candidate["spec"] == "python:toyagents:boom"
    assert (candidate["n"], candidate["errors"], candidate["pass_rate"]) == (4, 4, 0.0)
    run_dir = run_dirs(pytester.path)[0]
    assert {"summary.json", "trajectories.jsonl"} <= {p.name for p in run_dir.iterdir()}
    assert not [p for p in (pytester.path / ".autoevolve").rglob("*") if p.name.endswith(".tmp")]
    result.stdout.fnmatch_lines(
        [
            "*incumbent*python:toyagents:echo*66.7%*(mean of 3 scenarios; 3/4 trials*",
            "*candidate*python:toyagents:boom*0.0%*",
            f"*.autoevolve/runs/{run_dir.name}/trajectories.jsonl*",
        ]
    )


def test_each_run_gets_its_own_folder(pytester, write_scenarios, agents):
    write_scenarios(ADD)
    args = (
        "--autoevolve",
        "--autoevolve-incumbent",
        "python:toyagents:answer",
        "--autoevolve-candidate",
        "python:toyagents:answer",
    )
    pytester.runpytest(*args).assert_outcomes(passed=2)
    pytester.runpytest(*args).assert_outcomes(passed=2)
    runs = run_dirs(pytester.path)
    assert len(runs) == 2
    for run in runs:
        lines = (run / "trajectories.jsonl").read_text(encoding="utf-8").splitlines()
        assert {json.loads(line)["run_id"] for line in lines} == {run.name}
        assert json.loads((run / "summary.json").read_text(encoding="utf-8"))["run_id"] == run.name


def test_artifacts_folder_is_gitignored(pytester, write_scenarios, agents):
    write_scenarios(ADD)
    pytester.runpytest(*ECHO_VS_ANSWER).assert_outcomes(passed=1, failed=1)
    ignore = pytester.path / ".autoevolve" / ".gitignore"
    lines = ignore.read_text(encoding="utf-8").splitlines()
    assert "*" in lines


def test_existing_gitignore_is_kept(pytester, write_scenarios, agents):
    write_scenarios(ADD)
    folder = pytester.mkdir(".autoevolve")
    (folder / ".gitignore").write_text("runs/\n", encoding="utf-8")
    pytester.runpytest(*ECHO_VS_ANSWER).assert_outcomes(passed=1, failed=1)
    assert (folder / ".gitignore").read_text(encoding="utf-8") == "runs/\n"


def test_artifacts_option_and_setting(pytester, write_scenarios, agents):
    write_scenarios(ADD)
    result = pytester.runpytest(*ECHO_VS_ANSWER, "--autoevolve-artifacts", "out/gate")
    result.assert_outcomes(passed=1, failed=1)
    assert not (pytester.path / ".autoevolve").exists()
    assert (pytester.path / "out" / "gate" / ".gitignore").is_file()
    trajectories, summary = read_run(pytester.path, "out/gate")
    assert len(trajectories) == 2 and summary["candidate"]["pass_rate"] == 1.0
    result.stdout.fnmatch_lines(["*out/gate/runs/*/trajectories.jsonl*"])

    pytester.makepyprojecttoml('[tool.autoevolve]\nartifacts = "from-config"\n')
    pytester.runpytest(*ECHO_VS_ANSWER).assert_outcomes(passed=1, failed=1)
    assert len(read_run(pytester.path, "from-config")[0]) == 2
    assert not (pytester.path / ".autoevolve").exists()


SLOW_AGENT = """
import time

def slow(messages):
    time.sleep(0.15)
    return messages[-1]["content"]
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_interrupted_run_leaves_only_complete_lines(pytester, write_scenarios, sig):
    write_scenarios(
        "scenarios:\n"
        + "".join(f"  - id: s{i}\n    input: 'hello {i}'\n    expected: 'hello {i}'\n" for i in range(40))
    )
    pytester.makepyfile(slowagent=SLOW_AGENT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--autoevolve",
            "--autoevolve-incumbent",
            "python:slowagent:slow",
            "--autoevolve-candidate",
            "python:slowagent:slow",
        ],
        cwd=pytester.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as in a terminal, even under nohup
    )
    path = None
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            runs = list((pytester.path / ".autoevolve" / "runs").glob("*/trajectories.jsonl"))
            if runs and runs[0].read_bytes().count(b"\n") >= 3:
                path = runs[0]
                break
            time.sleep(0.02)
        assert process.poll() is None, "the run ended before it could be interrupted"
        assert path is not None, "no trajectories within 30 s"
        process.send_signal(sig)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    if sig == signal.SIGINT:
        assert process.returncode == 2, output.decode()  # pytest.ExitCode.INTERRUPTED
        assert b"KeyboardInterrupt" in output
    else:
        assert process.returncode == -signal.SIGKILL
    data = path.read_bytes()
    assert data.endswith(b"\n")
    lines = data.decode("utf-8").splitlines()
    assert 3 <= len(lines) < 80
    records = [json.loads(line) for line in lines]
    assert all(r["output"] == r["scenario_id"].replace("s", "hello ") for r in records)
    assert len(list(read_trajectories(path))) == len(lines)


def make_trajectory(**changes):
    values = {
        "scenario_id": "add-2-digit",
        "role": "candidate",
        "model": "python:toyagents:answer",
        "messages": [{"role": "user", "content": "add 12+34="}, {"role": "assistant", "content": "46"}],
        "seed": 1234,
        "repeat": 2,
        "output": "46",
        "tool_calls": [{"name": "add", "arguments": {"a": 12, "b": 34}, "result": 46}],
        "grades": [Grade("equals", True, 1.0, "output equals '46'"), Grade("regex", False, 0.0, "/x/ did not match")],
        "score": 0.5,
        "passed": False,
        "latency_s": 0.012,
        "prompt_tokens": 7,
        "completion_tokens": 1,
        "cost": 0.01,
        "started_at": "2025-01-01T00:00:00.000+00:00",
        "finished_at": "2025-01-01T00:00:00.012+00:00",
        "run_id": "20250101T000000Z-abcdef",
        "scenario_file": "scenarios/demo.yaml",
        "category": "arithmetic",
    }
    values.update(changes)
    return Trajectory(**values)


def test_record_round_trip():
    trajectory = make_trajectory()
    record = trajectory.to_record()
    assert record["format_version"] == FORMAT_VERSION
    assert record["total_tokens"] == 8
    assert record["grades"][1] == {"grader": "regex", "passed": False, "score": 0.0, "reason": "/x/ did not match"}
    back = Trajectory.from_record(json.loads(json.dumps(record)))
    assert back == trajectory
    assert isinstance(back.grades[0], Grade)


def test_file_round_trip(tmp_path):
    from pytest_autoevolve.files import TrajectoryWriter

    path = tmp_path / "runs" / "r" / "trajectories.jsonl"
    writer = TrajectoryWriter(path)
    written = [make_trajectory(repeat=i, error=None if i else "RuntimeError: x", output="ünïcode") for i in range(3)]
    for trajectory in written:
        writer.append(trajectory)
    assert list(read_trajectories(path)) == written
    assert len(path.read_text(encoding="utf-8").splitlines()) == 3


def test_read_trajectories_of_a_real_run(pytester, write_scenarios, agents):
    write_scenarios(ADD)
    pytester.runpytest(*ECHO_VS_ANSWER).assert_outcomes(passed=1, failed=1)
    path = run_dirs(pytester.path)[0] / "trajectories.jsonl"
    trajectories = list(read_trajectories(path))
    assert [t.role for t in trajectories] == ["incumbent", "candidate"]
    assert [t.passed for t in trajectories] == [False, True]
    assert [t.to_record() for t in trajectories] == [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_read_trajectories_rejects_other_format_versions(tmp_path, version):
    record = make_trajectory().to_record()
    if version is None:
        del record["format_version"]
    else:
        record["format_version"] = version
    path = tmp_path / "trajectories.jsonl"
    path.write_text(json.dumps(make_trajectory().to_record()) + "\n" + json.dumps(record) + "\n", encoding="utf-8")
    with pytest.raises(FormatError, match=rf"trajectories.jsonl:2: trajectory format_version {version!r}"):
        list(read_trajectories(path))
    with pytest.raises(FormatError, match=f"format_version {version!r}; this version reads {FORMAT_VERSION}"):
        Trajectory.from_record(record)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("[1, 2]", "a trajectory is a JSON object, got list"),
        ('"text"', "a trajectory is a JSON object, got str"),
        ('{"format_version": 1, "scenario_id": "a"}', "not a complete trajectory record"),
        (
            '{"format_version": 1, "scenario_id": "a", "role": "r", "model": "m", "messages": [], "seed": 1, '
            '"repeat": 0, "grades": [{"grader": "x"}]}',
            "not a complete trajectory record",
        ),
    ],
)
def test_read_trajectories_rejects_records_that_are_no_trajectory(tmp_path, line, message):
    path = tmp_path / "trajectories.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(FormatError, match=f"trajectories.jsonl:1: {message}"):
        list(read_trajectories(path))


def test_from_record_skips_keys_it_does_not_know():
    record = {**make_trajectory().to_record(), "added_later": {"x": 1}}
    assert Trajectory.from_record(record) == make_trajectory()


def test_read_trajectories_rejects_a_torn_line(tmp_path):
    path = tmp_path / "trajectories.jsonl"
    line = json.dumps(make_trajectory().to_record())
    path.write_text(line + "\n" + line[:40] + "\n", encoding="utf-8")
    with pytest.raises(FormatError, match=r"trajectories.jsonl:2: not a JSON trajectory"):
        list(read_trajectories(path))


def test_read_trajectories_skips_blank_lines(tmp_path):
    path = tmp_path / "trajectories.jsonl"
    line = json.dumps(make_trajectory().to_record())
    path.write_text(f"{line}\n\n{line}\n", encoding="utf-8")
    assert len(list(read_trajectories(path))) == 2


def _xdist_entry(i):
    question, answer = (str(i), str(i)) if i % 3 == 0 else (f"add {i}+{i}=", str(2 * i))
    return f"  - id: x{i}\n    input: '{question}'\n    expected: '{answer}'\n    repeats: 2\n"


# echo passes only where the input is the answer (x0, x3, x6); answer passes every scenario
XDIST_CATALOG = "scenarios:\n" + "".join(_xdist_entry(i) for i in range(8))


def test_xdist_writes_one_run_like_a_serial_run(pytester, write_scenarios, agents):
    write_scenarios(XDIST_CATALOG)
    serial = pytester.runpytest(*ECHO_VS_ANSWER, "--autoevolve-artifacts", "serial")
    serial.assert_outcomes(passed=8 + 3, failed=8 - 3)
    parallel = pytester.runpytest(*ECHO_VS_ANSWER, "--autoevolve-artifacts", "parallel", "-n", "2")
    parallel.assert_outcomes(passed=8 + 3, failed=8 - 3)
    parallel.stdout.fnmatch_lines(["*2 workers*"])
    serial_trajectories, serial_summary = read_run(pytester.path, "serial")
    parallel_trajectories, parallel_summary = read_run(pytester.path, "parallel")  # asserts a single run folder
    assert len(parallel_trajectories) == len(serial_trajectories) == 8 * 2 * 2
    run_id = run_dirs(pytester.path, "parallel")[0].name
    assert {t["run_id"] for t in parallel_trajectories} == {run_id} == {parallel_summary["run_id"]}
    for role in ("incumbent", "candidate"):
        for key in ("spec", "pass_rate", "n", "errors"):
            assert parallel_summary[role][key] == serial_summary[role][key], (role, key)
    assert parallel_summary["candidate"]["pass_rate"] == 1.0
    assert parallel_summary["incumbent"]["pass_rate"] == 3 / 8
    assert parallel_summary["incumbent"]["n"] == parallel_summary["candidate"]["n"] == 16
    assert seeds_of(parallel_trajectories) == seeds_of(serial_trajectories)
    assert not [p for p in (pytester.path / "parallel").rglob("*") if p.name.endswith(".tmp")]


WAITING_AGENT = """
import json, os, time

def answer(messages, scenario):
    started = time.monotonic()
    time.sleep(0.2)
    with open("calls.log", "a") as log:
        log.write(json.dumps([os.getpid(), scenario.id, started, time.monotonic()]) + "\\n")
    return scenario.expected
"""


def test_each_xdist_worker_starts_the_trials_queued_for_it(pytester, write_scenarios):
    write_scenarios("scenarios:\n" + "".join(f"  - {{id: s{i}, input: q{i}, expected: a{i}}}\n" for i in range(16)))
    pytester.makepyfile(waitingagent=WAITING_AGENT)
    pytester.syspathinsert()
    spec = "python:waitingagent:answer"
    roles = ("--autoevolve-incumbent", spec, "--autoevolve-candidate", spec, "--autoevolve-cache", "off")
    result = pytester.runpytest("--autoevolve", *roles, "--autoevolve-concurrency", "8", "-n", "2")
    result.assert_outcomes(passed=32)
    calls = [json.loads(line) for line in (pytester.path / "calls.log").read_text().splitlines()]
    assert len(calls) == 32 and len({pid for pid, *_ in calls}) == 2
    overlapping = [
        (a, b) for a in calls for b in calls if a[0] == b[0] and a[1] != b[1] and a[2] < b[2] < a[3]
    ]  # a worker runs several scenarios' trials at once, not one item after another
    assert overlapping

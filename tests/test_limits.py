"""Bounded work and files that stay whole: a hostile catalog, a huge reply or a full disk cannot hang or tear a run."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from pytest_autoevolve.catalog.loader import load_file
from pytest_autoevolve.errors import ArtifactWriteError, ScenarioError
from pytest_autoevolve.files import TrajectoryWriter, read_trajectories, write_json_atomic
from pytest_autoevolve.graders.builtin import default_registry
from pytest_autoevolve.providers.base import Reply
from pytest_autoevolve.records import Trajectory
from pytest_autoevolve.run.cache import ResponseCache
from pytest_autoevolve.settings import Limits
from tests.support.runs import read_run, run_models

BOMB = """
a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
scenarios:
  - id: "q-{{n}}"
    input: "{{n}}"
    vars: {n: *g}
"""

BILLION = "scenarios:\n  - id: q-{{a}}-{{b}}-{{c}}\n    input: hi\n    vars:\n" + "".join(
    f"      {name}: [{', '.join(str(i) for i in range(1000))}]\n" for name in "abc"
)


def write(folder: Path, text: str) -> Path:
    path = folder / "demo.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_an_alias_bomb_is_refused_at_once(tmp_path):
    started = time.perf_counter()
    with pytest.raises(ScenarioError, match=r"expands to more than 200000 values .*limits.max_yaml_nodes"):
        load_file(write(tmp_path, BOMB), default_registry())
    assert time.perf_counter() - started < 2


def test_a_vars_product_is_capped_and_the_cap_is_a_setting(tmp_path):
    with pytest.raises(ScenarioError, match=r"key 'vars'.*expands to 1000000000 scenarios, over limits"):
        load_file(write(tmp_path, BILLION), default_registry())
    small = "scenarios: [{id: 'q-{{n}}', input: hi, expected: hi, vars: {n: [1, 2, 3, 4, 5, 6]}}]"
    with pytest.raises(ScenarioError, match=r"expands to 6 scenarios, over limits\.max_scenarios_per_entry=5"):
        load_file(write(tmp_path, small), default_registry(), limits=Limits(max_scenarios_per_entry=5))
    assert len(load_file(write(tmp_path, small), default_registry(), limits=Limits(max_scenarios_per_entry=6))) == 6


def test_a_file_over_the_size_limit_is_refused(tmp_path):
    path = write(tmp_path, "scenarios: [{id: q, input: hi, expected: hi}]\n" + "#" * 2000)
    with pytest.raises(ScenarioError, match=r"has 2\d\d\d bytes, over limits.max_file_bytes=1000"):
        load_file(path, default_registry(), limits=Limits(max_file_bytes=1000))


HOSTILE = """
scenarios:
  - id: nested
    input: text
    expect: [{regex: "^(a+)+$"}]
  - id: backtracking
    input: text
    expect: [{regex: "^(a|a)+$"}]
  - id: remote-schema
    input: json
    expect:
      - json_schema: {"$ref": "http://127.0.0.1:9/schema.json"}
  - id: huge
    input: huge
    expected: "no"
"""

AGENT = """
def answer(messages):
    asked = messages[-1]["content"]
    if asked == "huge":
        return "y" * 10_000_000
    return "a" * 40 + "!" if asked == "text" else '"json"'
"""


def test_hostile_graders_and_a_huge_reply_end_as_bounded_trial_results(pytester):
    (pytester.path / "scenarios").mkdir()
    (pytester.path / "scenarios" / "hostile.yaml").write_text(HOSTILE, encoding="utf-8")
    (pytester.path / "autoevolve.yaml").write_text("limits: {max_output_chars: 1000}\n", encoding="utf-8")
    pytester.makepyfile(hostile_agent=AGENT)
    pytester.syspathinsert()
    started = time.perf_counter()
    result = run_models(pytester, "--junitxml=junit.xml", model="python:hostile_agent:answer")
    assert time.perf_counter() - started < 30
    result.assert_outcomes(failed=8)
    trajectories, _ = read_run(pytester.path)
    errors = {t["scenario_id"]: t["error"] or "" for t in trajectories}
    assert errors["nested"] == ""  # a plain fail: the engine does not backtrack on it
    assert errors["backtracking"].startswith("GradingError: regex: /^(a|a)+$/ ran past 2 s")
    assert "is not inside it (remote schemas are not fetched)" in errors["remote-schema"]
    huge = next(t for t in trajectories if t["scenario_id"] == "huge")
    assert huge["output"].startswith("y" * 1000 + "…[9999000 more characters cut at limits.max_output_chars]")
    assert len(result.stdout.str()) < 60_000
    assert (pytester.path / "junit.xml").stat().st_size < 60_000


def trajectory(n: int) -> Trajectory:
    return Trajectory(f"s{n}", "candidate", "m", [{"role": "user", "content": "hi"}], 0, 0, output="ok")


def test_a_full_disk_leaves_whole_lines_and_stops_the_run(tmp_path, monkeypatch):
    path = tmp_path / "trajectories.jsonl"
    writer = TrajectoryWriter(path)
    writer.append(trajectory(1))
    import pytest_autoevolve.files as files

    real_write = files.os.write

    def half(fd: int, data: bytes) -> int:
        return real_write(fd, data[: len(data) // 2])  # the disk took half the line

    monkeypatch.setattr(files.os, "write", half)
    with pytest.raises(ArtifactWriteError, match=r"cannot record a trajectory: only \d+ of \d+ bytes were written"):
        writer.append(trajectory(2))
    monkeypatch.setattr(files.os, "write", real_write)
    assert [t.scenario_id for t in read_trajectories(path)] == ["s1"]


def test_json_is_strict_and_a_failed_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    write_json_atomic(path, {"lift": float("nan"), "rows": [{"p": float("inf")}], "n": 3})
    assert json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(name)) == {
        "lift": None,
        "rows": [{"p": None}],
        "n": 3,
        "nonfinite": ["lift", "rows[0].p"],
    }

    def full(*args: object, **kwargs: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(ArtifactWriteError, match="No space left on device"):
        write_json_atomic(tmp_path / "other.json", {"n": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_torn_foreign_and_tampered_cache_entries_are_misses(tmp_path):
    cache = ResponseCache(tmp_path, "models")
    key, other = ResponseCache.key("m", [], [], 0, 0), ResponseCache.key("m", [], [], 0, 1)
    cache.put(key, Reply("ok", prompt_tokens=3), 0.5)
    assert cache.get(key) == (Reply("ok", prompt_tokens=3), 0.5)
    stored = cache.folder / key[:2] / f"{key}.json"
    entry = json.loads(stored.read_text())
    foreign = cache.folder / other[:2] / f"{other}.json"
    foreign.parent.mkdir(parents=True, exist_ok=True)
    foreign.write_text(stored.read_text())  # copied under another key
    assert cache.get(other) is None
    for tampered in ({**entry, "reply": {**entry["reply"], "output": 7}}, {**entry, "latency_s": "fast"}):
        stored.write_text(json.dumps(tampered))
        assert cache.get(key) is None
    stored.write_text(stored.read_text()[:20])  # torn
    assert cache.get(key) is None
    assert cache.rejected == 4


def test_a_python_grader_that_never_returns_makes_the_trial_an_error(pytester, monkeypatch):
    import pytest_autoevolve.graders.builtin as builtin

    monkeypatch.setattr(builtin, "GRADER_TIMEOUT_S", 0.5)
    (pytester.path / "scenarios").mkdir()
    catalog = "scenarios: [{id: q, input: hi, expect: [{python: stuck:grade}]}]\n"
    (pytester.path / "scenarios" / "stuck.yaml").write_text(catalog, encoding="utf-8")
    pytester.makepyfile(
        stuck="import time\n\ndef grade(output, trajectory, scenario):\n    time.sleep(3600)\n",
        stuck_agent="def answer(messages):\n    return 'hi'\n",
    )
    pytester.syspathinsert()
    started = time.perf_counter()
    run_models(pytester, model="python:stuck_agent:answer").assert_outcomes(failed=2)
    assert time.perf_counter() - started < 10
    trajectories, _ = read_run(pytester.path)
    error = "GradingError: python: grader stuck:grade did not answer within timeout_s=0.5"
    assert [t["error"] for t in trajectories] == [error, error]

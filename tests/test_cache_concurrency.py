"""The response cache, concurrency with results identical to serial, batched hf generation, llm_judge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_autoevolve.providers.base import ModelRequest, Reply
from pytest_autoevolve.run.cache import ResponseCache
from tests.support.projects import REPO, copy_catalog
from tests.support.runs import read_jsonl, read_run, run_dirs

COUNTING = """
import os, random, time

CALLS = os.environ["CALLS_FILE"]

def answer(messages, seed, repeat):
    with open(CALLS, "a") as handle:
        handle.write("x")
    time.sleep(0.01)
    text = messages[-1]["content"]
    return {"output": f"{text.split()[-1]}-{random.Random(seed).randint(0, 9)}-{repeat}",
            "usage": {"prompt_tokens": 2, "completion_tokens": 1}}
"""

CATALOG = """
scenarios:
  - id: say-{{n}}
    input: "say {{n}}"
    expect:
      - regex: "^{{n}}-"
    repeats: 3
    vars:
      n: [1, 2, 3, 4, 5, 6, 7, 8]
"""


def calls(path: Path) -> int:
    return len(path.read_text()) if path.exists() else 0


@pytest.fixture
def counting(pytester, write_scenarios, monkeypatch, tmp_path_factory):
    write_scenarios(CATALOG)
    pytester.makepyfile(counting=COUNTING)
    pytester.syspathinsert()
    calls_file = tmp_path_factory.mktemp("calls") / "calls.txt"  # outside the project: not one of the agent's inputs
    monkeypatch.setenv("CALLS_FILE", str(calls_file))
    return calls_file


def args(*extra: str) -> list[str]:
    spec = "python:counting:answer"
    return ["--autoevolve", "--autoevolve-incumbent", spec, "--autoevolve-candidate", spec, *extra]


def outputs(run: Path) -> dict[tuple[str, str, int], str]:
    records = read_jsonl(run / "trajectories.jsonl")
    return {(r["scenario_id"], r["role"], r["repeat"]): r["output"] for r in records}


def test_rerun_is_served_from_the_cache_without_a_model_call(pytester, counting):
    pytester.runpytest_subprocess(*args())
    first_calls = calls(counting)
    assert first_calls == 8 * 3  # one role's calls; the other role has the same fingerprint and key
    pytester.runpytest_subprocess(*args())
    assert calls(counting) == first_calls
    first, second = run_dirs(pytester.path)
    assert outputs(first) == outputs(second)
    records = read_jsonl(second / "trajectories.jsonl")
    assert all(r["cached"] for r in records)
    summary = json.loads((second / "summary.json").read_text())
    assert summary["cache"] == {"mode": "readwrite", "hits": 48, "model_calls": 0}


def test_repeats_are_never_served_each_others_answers(pytester, counting):
    pytester.runpytest_subprocess(*args())
    pytester.runpytest_subprocess(*args())
    answers = outputs(run_dirs(pytester.path)[-1])
    for n in range(1, 9):
        by_repeat = {answers[(f"say-{n}", "candidate", r)] for r in range(3)}
        assert len(by_repeat) == 3  # each repeat keeps its own answer


@pytest.mark.parametrize("mode", ["off", "write", "read"])
def test_cache_modes(pytester, counting, mode):
    for _ in range(2):  # off and write never read, read finds nothing stored: every trial calls the model
        before = calls(counting)
        pytester.runpytest_subprocess(*args("--autoevolve-cache", mode))
        assert calls(counting) - before == 48
    if mode == "write":
        before = calls(counting)
        pytester.runpytest_subprocess(*args("--autoevolve-cache", "read"))
        assert calls(counting) == before  # read uses what write stored


def test_editing_the_agent_misses_the_cache(pytester, counting):
    pytester.runpytest_subprocess(*args())
    before = calls(counting)
    (pytester.path / "counting.py").write_text(COUNTING + "\n# edited\n")
    pytester.runpytest_subprocess(*args())
    assert calls(counting) - before == 24


def test_concurrent_run_matches_a_serial_run(pytester, counting):
    pytester.runpytest_subprocess(*args("--autoevolve-cache", "off"))
    pytester.runpytest_subprocess(*args("--autoevolve-cache", "off", "--autoevolve-concurrency", "8"))
    serial, concurrent = run_dirs(pytester.path)
    assert outputs(serial) == outputs(concurrent)
    keys = ("verdict", "lift", "p_value", "n_paired", "incumbent", "candidate")
    first = json.loads((serial / "summary.json").read_text())
    second = json.loads((concurrent / "summary.json").read_text())
    for role in ("incumbent", "candidate"):
        for summary in (first, second):
            summary[role].pop("p95_latency_s")
    assert {k: first[k] for k in keys} == {k: second[k] for k in keys}


def test_cache_entries_are_complete_json(tmp_path):
    cache = ResponseCache(tmp_path, "models")
    key = cache.key("m#1", [{"role": "user", "content": "hi"}], [], seed=1, repeat=0)
    assert key != cache.key("m#1", [{"role": "user", "content": "hi"}], [], seed=1, repeat=1)
    assert cache.get(key) is None
    cache.put(key, Reply(output="hello", prompt_tokens=1), 0.25)
    reply, latency = cache.get(key)
    assert (reply.output, reply.prompt_tokens, latency) == ("hello", 1, 0.25)
    assert not list(tmp_path.rglob("*.tmp"))


def test_concurrent_tiny_run_equals_a_serial_one(pytester):
    copy_catalog(pytester.path)
    common = ["--autoevolve", "strings.yaml", "--autoevolve-cache", "off", "-k", "incumbent"]
    pytester.runpytest_subprocess(*common)
    pytester.runpytest_subprocess(*common, "--autoevolve-concurrency", "16")
    serial, batched = run_dirs(pytester.path)
    assert outputs(serial) == outputs(batched)
    assert len(outputs(serial)) == 140


def test_concurrent_greedy_calls_share_generate_calls_and_answer_as_alone():
    from concurrent.futures import ThreadPoolExecutor

    from pytest_autoevolve.providers.base import ModelSpec
    from pytest_autoevolve.providers.hf import HFModel
    from pytest_autoevolve.tiny import TINY_DIR

    model = HFModel.load(ModelSpec("hf", str(TINY_DIR), {"batch_size": 8}), REPO)
    prompts = [f"reverse {w}" for w in ("abc", "hello", "stop", "flow", "tram", "pots", "zyx", "kite", "lamp", "moon")]
    alone = [model.generate(ModelRequest([{"role": "user", "content": p}], 0, 0)) for p in prompts]
    assert set(model._batcher.batches) == {1}
    with ThreadPoolExecutor(10) as pool:
        together = list(
            pool.map(lambda p: model.generate(ModelRequest([{"role": "user", "content": p}], 0, 0)), prompts)
        )
    assert [r.output for r in together] == [r.output for r in alone]
    assert [r.completion_tokens for r in together] == [r.completion_tokens for r in alone]
    assert max(model._batcher.batches) > 1
    assert max(model._batcher.batches) <= 8


JUDGE = """
import json

def judge(messages):
    prompt = messages[-1]["content"]
    response = prompt.split("Response to grade:\\n", 1)[1]
    good = "please" in response
    return json.dumps({"reasoning": "polite" if good else "rude", "score": 1.0 if good else 0.0})

def polite(messages):
    return "yes please"

def rude(messages):
    return "no"
"""


def test_llm_judge_grades_with_the_configured_judge(pytester, write_scenarios):
    write_scenarios(
        """
        scenarios:
          - id: ask
            input: "may I?"
            expect:
              - llm_judge: "The answer must be polite."
        """
    )
    pytester.makepyfile(judging=JUDGE)
    pytester.syspathinsert()
    pytester.makefile(".yaml", autoevolve='judge: "python:judging:judge"\n')
    result = pytester.runpytest(
        "--autoevolve",
        "--autoevolve-incumbent",
        "python:judging:rude",
        "--autoevolve-candidate",
        "python:judging:polite",
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*[[]llm_judge: judge python:judging:judge: FAIL (score 0): rude[]]"])
    trajectories, summary = read_run(pytester.path)
    grades = {t["role"]: t["grades"][0] for t in trajectories}
    assert grades["candidate"]["passed"] and "polite" in grades["candidate"]["reason"]
    assert summary["judge"] == "python:judging:judge"
    judge_cache = list((pytester.path / ".autoevolve" / "cache" / "judge").rglob("*.json"))
    assert len(judge_cache) == 2


def test_llm_judge_without_a_judge_is_a_collection_error(pytester, write_scenarios):
    write_scenarios("scenarios:\n  - id: ask\n    input: x\n    expect:\n      - llm_judge: be nice\n")
    result = pytester.runpytest("--autoevolve")
    result.stdout.fnmatch_lines(["*scenario 'ask': key 'expect?0?.llm_judge': *needs a judge model*"])

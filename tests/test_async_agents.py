"""Async agents, graders and tools: awaited on one shared event loop, with timeouts that cancel."""

from __future__ import annotations

import pytest

from tests.support.runs import read_run, run_models

CATALOG = "scenarios:\n" + "".join(
    f"  - {{id: q-{n}, input: 'say {n}', expected: '{n}', expect: [{{python: async_bits:check}}]}}\n" for n in range(12)
)
ASYNC_BITS = r"""
import asyncio
import threading

async def answer(messages, seed):
    with open("loops.txt", "a") as seen:  # which loop and thread ran each trial
        seen.write(f"{id(asyncio.get_running_loop())} {threading.current_thread().name}\n")
    await asyncio.sleep(0.01)
    return {"output": messages[-1]["content"].split()[-1], "usage": {"total_tokens": 3}}

def returns_a_coroutine(messages):
    return answer(messages, 0)

async def check(output, trajectory, scenario):
    await asyncio.sleep(0)
    return output == scenario.expected, "async check"

async def never(messages):
    await asyncio.sleep(3600)
"""


@pytest.fixture
def project(pytester):
    (pytester.path / "scenarios").mkdir()
    (pytester.path / "scenarios" / "say.yaml").write_text(CATALOG, encoding="utf-8")
    pytester.makepyfile(async_bits=ASYNC_BITS)
    pytester.syspathinsert()
    return pytester


@pytest.mark.parametrize("concurrency", ["1", "8"])
def test_async_agents_and_graders_run_on_one_loop(project, concurrency):
    result = run_models(
        project, "--autoevolve-concurrency", concurrency, "--autoevolve-cache", "off", model="python:async_bits:answer"
    )
    result.assert_outcomes(passed=24)
    trajectories, _ = read_run(project.path)
    assert all(t["passed"] and t["total_tokens"] == 3 for t in trajectories)
    assert all(t["grades"][1]["reason"] == "async check" for t in trajectories)
    seen = [line.split() for line in (project.path / "loops.txt").read_text().splitlines()]
    assert len(seen) == 24 and len({loop for loop, _ in seen}) == 1
    assert {thread for _, thread in seen} == {"autoevolve-loop"}


def test_a_sync_agent_returning_a_coroutine_is_awaited(project):
    run_models(project, "--autoevolve-cache", "off", model="python:async_bits:returns_a_coroutine").assert_outcomes(
        passed=24
    )


def test_an_async_agent_that_never_finishes_is_a_timed_out_trial(project):
    (project.path / "scenarios" / "say.yaml").write_text(
        "scenarios: [{id: slow, input: hi, expected: hi, timeout_s: 0.3}]\n", encoding="utf-8"
    )
    result = run_models(project, model="python:async_bits:never")
    result.assert_outcomes(failed=2)
    trajectories, _ = read_run(project.path)
    assert [t["error"][:12] for t in trajectories] == ["TimeoutError"] * 2

"""Model calls on the shared event loop: the in-flight limit per endpoint adapts to 429s, within rpm and tpm.

Against a real local server (tests/support/fake_openai.py) that answers 429 above a few requests at
once: every trial of a concurrent run still ends correct, and garbage is never a pass.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from pytest_autoevolve.providers._http import AdaptiveLimit, TokenBudget
from pytest_autoevolve.providers.base import ModelRequest, parse_spec
from pytest_autoevolve.providers.openai import OpenAIModel
from pytest_autoevolve.providers.registry import default_registry
from tests.support.fake_openai import Answer, Request, completion, error, fake_openai
from tests.support.runs import read_run

ALLOWED = 3
"""Requests the crowded server serves at once; more get a 429."""


class Crowded:
    """A responder that answers ``say N`` with ``N`` after 30 ms, and 429 when more than `ALLOWED` are in flight."""

    def __init__(self, throttle: Callable[[], Answer]) -> None:
        self.throttle = throttle
        self.lock = threading.Lock()
        self.active = self.peak = self.throttled = 0

    def __call__(self, request: Request, seen: int) -> Answer | dict[str, Any]:
        with self.lock:
            self.active += 1
            crowded = self.active > ALLOWED
            self.throttled += crowded
            self.peak = max(self.peak, self.active)
        try:
            if crowded:
                return self.throttle()
            time.sleep(0.03)
            if request.user == "garbage":
                return Answer(body='{"choices": [{"message": {"content": "ok"')
            return completion(request.user.split()[-1])
        finally:
            with self.lock:
                self.active -= 1


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-async-calls")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return "sk-test-async-calls"


def model(url: str, **params: Any) -> OpenAIModel:
    created = default_registry().create(parse_spec({"spec": "openai:m", "base_url": url, **params}), Path.cwd())
    assert isinstance(created, OpenAIModel)
    return created


def ask(agent: OpenAIModel, text: str) -> str:
    return agent.generate(ModelRequest([{"role": "user", "content": text}], 1, 0)).output


@pytest.mark.parametrize(
    "throttle",
    [
        lambda: error(429, "Too many requests", {"retry-after-ms": "40"}, "requests"),
        lambda: error(429, "Too many requests"),  # no Retry-After: the call backs off on its own
    ],
    ids=["retry-after", "backoff"],
)
def test_a_crowded_endpoint_every_trial_correct_and_garbage_never_passes(pytester, api_key, throttle):
    scenarios = "".join(f"  - {{id: say-{n}, input: 'say {n}', expected: '{n}'}}\n" for n in range(30))
    garbage = "  - {id: garbage, input: garbage, expected: ok}\n"
    pytester.makefile(".yaml", **{"scenarios/crowd": "scenarios:\n" + scenarios + garbage})
    crowded = Crowded(throttle)
    with fake_openai(crowded) as server:
        common = {"base_url": server.url, "backoff_s": 0.02, "max_backoff_s": 0.2, "max_retries": 6}
        models = {"a": {"spec": "openai:model-a", **common}, "b": {"spec": "openai:model-b", **common}}
        (pytester.path / "autoevolve.yaml").write_text(json.dumps({"models": models}), encoding="utf-8")
        args = ["--autoevolve-incumbent", "a", "--autoevolve-candidate", "b", "--autoevolve-cache", "off"]
        pytester.runpytest("--autoevolve", *args, "--autoevolve-concurrency", "16", "-p", "no:cacheprovider")
    trials, summary = read_run(pytester.path)
    assert len(trials) == 62
    for trial in trials:
        if trial["scenario_id"] == "garbage":
            assert trial["passed"] is False and "the response is not valid JSON" in trial["error"]
        else:
            assert trial["error"] is None and trial["passed"] is True, trial["error"]
            assert trial["output"] == trial["scenario_id"].removeprefix("say-")
    assert summary["incumbent"]["passed"] == summary["candidate"]["passed"] == 30
    # the limit came down: a fixed 16 in flight would draw 13 refusals a wave, hundreds in all
    assert 0 < crowded.throttled < 60, crowded.throttled


def test_concurrency_bounds_the_calls_in_flight_to_one_endpoint(api_key, monkeypatch):
    monkeypatch.setattr(AdaptiveLimit, "concurrency", 2)
    crowded = Crowded(lambda: completion("unreached"))
    with fake_openai(crowded) as server:
        first, second = model(server.url), model(server.url, temperature=0.5)  # one endpoint, one limit
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda n: ask((first, second)[n % 2], f"say {n}"), range(24)))
    assert answers == [str(n) for n in range(24)]
    assert crowded.peak == 2 and crowded.throttled == 0


def run_limit(steps: Callable[[AdaptiveLimit], Any], ceiling: int = 8) -> AdaptiveLimit:
    limit = AdaptiveLimit(ceiling)
    asyncio.run(steps(limit))
    return limit


def test_a_429_halves_the_limit_once_per_wave_and_successes_grow_it_back():
    async def steps(limit: AdaptiveLimit) -> None:
        waves = [await limit.acquire() for _ in range(8)]
        assert limit.active == 8
        for wave in waves[:4]:  # four refusals of the same wave: one cut, from the 8 in flight to 4
            limit.release(wave, 429)
        assert (limit.limit, limit.wave) == (4, 1)
        for wave in waves[4:]:
            limit.release(wave, 200)
        late = await limit.acquire()
        limit.release(late, 429)  # a call of the new wave cuts again: from the 1 in flight
        assert limit.limit == 1
        for _ in range(3):  # one more allowed after `limit` successes in a row: 1 -> 2 takes 1, 2 -> 3 takes 2
            limit.release(await limit.acquire(), 200)
        assert limit.limit == 3
        for _ in range(100):
            limit.release(await limit.acquire(), 200)
        assert limit.limit == 8  # never past the ceiling

    run_limit(steps)


def test_waiters_get_slots_in_order_and_a_retry_after_pauses_new_calls():
    async def steps(limit: AdaptiveLimit) -> None:
        order: list[int] = []

        async def call(n: int) -> None:
            wave = await limit.acquire()
            order.append(n)
            await asyncio.sleep(0.01)
            limit.release(wave, 200)

        await asyncio.gather(*(call(n) for n in range(6)))
        assert order == list(range(6)) and limit.active == 0
        limit.release(await limit.acquire(), 429, retry_after=0.2)
        started = time.monotonic()
        limit.release(await limit.acquire(), 200)
        assert time.monotonic() - started >= 0.15
        limit.release(await limit.acquire(), 429, retry_after=3600)  # past MAX_RETRY_AFTER_S: the call fails, no pause
        started = time.monotonic()
        limit.release(await limit.acquire(), 200)
        assert time.monotonic() - started < 0.1

    run_limit(steps, ceiling=2)


def test_a_cancelled_waiter_leaves_no_slot_taken():
    async def steps(limit: AdaptiveLimit) -> None:
        held = await limit.acquire()
        waiting = asyncio.ensure_future(limit.acquire())
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        limit.release(held, 200)
        assert limit.active == 0
        limit.release(await asyncio.wait_for(limit.acquire(), 1), 200)

    run_limit(steps, ceiling=1)


def test_token_budget_spaces_calls_by_the_tokens_they_used():
    now = [0.0]
    budget = TokenBudget(600, clock=lambda: now[0])  # 10 tokens a second
    assert budget.wait_s() == 0.0
    budget.spend(25)
    assert budget.wait_s() == pytest.approx(2.5)
    now[0] += 1.0
    assert budget.wait_s() == pytest.approx(1.5)
    now[0] += 10.0  # paid off; nothing is saved up for a burst
    assert budget.wait_s() == 0.0
    budget.spend(5)
    assert budget.wait_s() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="positive"):
        TokenBudget(0)


def test_tpm_paces_calls_to_the_endpoint(api_key):
    with fake_openai(lambda request, seen: completion("ok", prompt_tokens=8, completion_tokens=2)) as server:
        agent = model(server.url, tpm=1200)  # 20 tokens a second: a 10-token call every 0.5 s
        assert agent.budget is model(server.url, tpm=1200).budget is not None
        for _ in range(3):
            ask(agent, "x")
    arrivals = [r.at for r in server.requests]
    assert arrivals[2] - arrivals[0] >= 2 * 0.5 - 0.05


def test_without_aiohttp_the_openai_library_carries_the_calls(api_key, monkeypatch):
    found = importlib.util.find_spec

    def without_aiohttp(name: str, *rest: Any) -> Any:
        return None if name == "aiohttp" else found(name, *rest)

    monkeypatch.setattr(importlib.util, "find_spec", without_aiohttp)
    answers = iter([error(503, "busy", {"retry-after-ms": "10"}), completion("ok")])
    with fake_openai(lambda request, seen: next(answers)) as server:
        agent = model(server.url)
        assert type(agent.transport).__name__ == "_LibraryTransport"
        assert ask(agent, "x") == "ok"
    assert len(server.requests) == 2 and server.requests[0].headers["authorization"] == f"Bearer {api_key}"

"""The run core against the physical limit: ``pytest --autoevolve`` vs a bare aiohttp client, same calls.

A local OpenAI-compatible server (aiohttp, in its own process) answers every chat completion
after 50 ms. In one run, side by side, each a whole process timed from its start:

- the yardstick: a bare aiohttp client process making the 400 chat calls at concurrency 32;
- the floor for a pytest plugin: a hand-written pytest whose session fixture makes the same calls
  with bare aiohttp, then checks them in 400 trivial items;
- ``pytest --autoevolve`` on a 200-scenario catalog x 2 roles (400 calls) at concurrency 32, cache off;
- the ratios, ours at concurrency 1/8/32/64, and the CPU each spends per call.

Each figure is the median of ``--repeat`` alternating runs (default 3; the range is shown).

    python benchmarks/bench_async.py [--repeat N] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from catalogs import write_say_catalog

SCENARIOS = 200
CALLS = SCENARIOS * 2
LATENCY_S = 0.05
CONCURRENCY = 32

BARE_CLIENT = """
import asyncio, json, sys
import aiohttp

async def main(url, calls, concurrency):
    limit = asyncio.Semaphore(concurrency)
    headers = {"Authorization": "Bearer bench"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async def one(n):
            body = {"model": "bench", "messages": [{"role": "user", "content": f"say {n}"}]}
            async with limit, session.post(url + "/chat/completions", json=body) as response:
                reply = json.loads(await response.read())
            return reply["choices"][0]["message"]["content"] == str(n)
        results = await asyncio.gather(*(one(n % 200) for n in range(calls)))
    assert all(results), "wrong answers"

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""

HAND_WRITTEN = """
import asyncio, json, os
import aiohttp
import pytest

URL = os.environ["OPENAI_BASE_URL"]

async def calls():
    limit = asyncio.Semaphore(32)
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer bench"}) as session:
        async def one(role, n):
            body = {"model": role, "messages": [{"role": "user", "content": f"say {n}"}]}
            async with limit, session.post(URL + "/chat/completions", json=body) as response:
                return json.loads(await response.read())["choices"][0]["message"]["content"]
        keys = [(role, n) for n in range(200) for role in ("incumbent", "candidate")]
        return dict(zip(keys, await asyncio.gather(*(one(*k) for k in keys))))

@pytest.fixture(scope="session")
def answers():
    return asyncio.run(calls())

@pytest.mark.parametrize("role", ["incumbent", "candidate"])
@pytest.mark.parametrize("n", range(200))
def test_item(answers, n, role):
    assert answers[(role, n)].strip() == str(n)
"""


def serve(port_file: str) -> None:
    """The 50 ms endpoint: an aiohttp server that answers ``say N`` with ``N``."""
    from aiohttp import web

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        await asyncio.sleep(LATENCY_S)
        answer = body["messages"][-1]["content"].split()[-1]
        message = {"role": "assistant", "content": answer}
        return web.json_response(
            {
                "id": "c",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
            }
        )

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port = runner.addresses[0][1]
        Path(port_file).write_text(str(port))
        await asyncio.Event().wait()

    asyncio.run(main())


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of a whole process (CPU: user + system of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):
        raise SystemExit(f"benchmark run failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def ours(concurrency: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--autoevolve",
        "--autoevolve-cache",
        "off",
        "--autoevolve-incumbent",
        "openai:bench-a",
        "--autoevolve-candidate",
        "openai:bench-b",
        "--autoevolve-concurrency",
        str(concurrency),
    ]


def check_run(folder: Path) -> None:
    """Every trial of the latest run passed: the benchmark measures correct runs only."""
    latest = max((folder / ".autoevolve" / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    trials = [json.loads(line) for line in (latest / "trajectories.jsonl").read_text().splitlines()]
    bad = [t for t in trials if not t["passed"]]
    if len(trials) != CALLS or bad:
        raise SystemExit(f"{len(trials)} trials, {len(bad)} not passed: {bad[:1]}")


def median_range(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="skip concurrency 1")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        port_file = folder / "port"
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file)])
        try:
            while not port_file.exists() or not port_file.read_text():
                time.sleep(0.02)
            measure(folder, f"http://127.0.0.1:{port_file.read_text()}/v1", args.repeat, args.quick)
        finally:
            server.terminate()
            server.wait()


def measure(folder: Path, url: str, repeat: int, quick: bool) -> None:
    env = {**os.environ, "OPENAI_BASE_URL": url, "OPENAI_API_KEY": "bench", "PYTHONDONTWRITEBYTECODE": "0"}
    write_say_catalog(folder, SCENARIOS)
    plain = folder / "plain"
    plain.mkdir()
    (plain / "test_calls.py").write_text(HAND_WRITTEN)
    (folder / "bare.py").write_text(BARE_CLIENT)
    kinds: dict[str, Callable[[], tuple[float, float]]] = {
        "bare": lambda: timed([sys.executable, "bare.py", url, str(CALLS), str(CONCURRENCY)], folder, env),
        "hand": lambda: timed([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], plain, env),
        "ours": lambda: timed(ours(CONCURRENCY), folder, env),
    }
    for run in kinds.values():  # warm the file cache and the bytecode
        run()
    check_run(folder)
    times: dict[str, list[tuple[float, float]]] = {kind: [] for kind in kinds}
    for _ in range(repeat):
        for kind, run in kinds.items():
            times[kind].append(run())
    walls = {kind: [w for w, _ in values] for kind, values in times.items()}
    cpus = {kind: statistics.median(c for _, c in values) for kind, values in times.items()}
    bare, hand, mine = (statistics.median(walls[k]) for k in ("bare", "hand", "ours"))
    print(f"{CALLS} chat calls, concurrency {CONCURRENCY}, endpoint answering after {LATENCY_S * 1000:.0f} ms")
    print(f"  bare aiohttp client process     {median_range(walls['bare'])}, CPU {cpus['bare']:.2f} s")
    print(f"  hand-written pytest + aiohttp   {median_range(walls['hand'])}, CPU {cpus['hand']:.2f} s")
    print(f"  pytest --autoevolve             {median_range(walls['ours'])}, CPU {cpus['ours']:.2f} s")
    print(f"  ours / bare aiohttp: {mine / bare:.2f}x (target <= 1.6x); ours / hand-written: {mine / hand:.2f}x")
    print(
        f"  CPU per call: bare {cpus['bare'] / CALLS * 1000:.2f} ms, hand-written {cpus['hand'] / CALLS * 1000:.2f} ms,"
        f" ours {cpus['ours'] / CALLS * 1000:.2f} ms (whole processes, start-up included)"
    )
    levels = (8, 32, 64) if quick else (1, 8, 32, 64)
    for concurrency in levels:
        runs = [timed(ours(concurrency), folder, env) for _ in range(1 if concurrency == 1 else repeat)]
        check_run(folder)
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(
            f"  ours at concurrency {concurrency:>2}: {median_range([w for w, _ in runs])}, "
            f"{CALLS / wall:.0f} calls/s, CPU per trial {cpu / CALLS * 1000:.2f} ms"
        )


if __name__ == "__main__":
    main()

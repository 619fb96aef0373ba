"""``pytest -n 2`` against a serial run, on a CPU-bound and an I/O-bound ``python:`` model; shards against one run.

CPU-bound: the model burns about 20 ms of CPU per call, 200 scenarios x 2 roles = 400 trials (2
cores: at most 2x), beside plain pytest-xdist on 400 tests of the same 20 ms (the floor xdist
itself allows). I/O-bound: the model waits 50 ms per call, 200 scenarios x 2 roles at
``--autoevolve-concurrency 16``. Shards: the I/O-bound catalog as two ``--autoevolve-shard`` runs,
one after the other, merged by ``autoevolve report``. Prints the wall times (medians of 3
alternating runs, with their range), the ratios, and whether every run reached the same verdict
and numbers.

    python benchmarks/bench_xdist.py
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from catalogs import write_say_catalog

AGENTS = """
import time

def burn(messages):
    end = time.process_time() + 0.02
    total = 0
    while time.process_time() < end:
        total += sum(range(1000))
    return messages[-1]["content"].split()[-1]

def wait(messages):
    time.sleep(0.05)
    return messages[-1]["content"].split()[-1]
"""
NUMBERS = ("verdict", "n_paired", "p_value", "lift")
REPEATS = 3
"""Runs of each kind, alternating; the medians are compared."""
PLAIN_TESTS = """
import time

import pytest


@pytest.mark.parametrize("n", range(400))
def test_burn(n):
    end = time.process_time() + 0.02
    while time.process_time() < end:
        sum(range(1000))
"""


def plain_xdist() -> tuple[list[float], list[float]]:
    """Wall seconds of plain pytest on 400 tests of 20 ms of CPU, serial and with ``-n 2``, alternating."""
    times: tuple[list[float], list[float]] = ([], [])
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "test_burn.py").write_text(PLAIN_TESTS)
        for _ in range(REPEATS):
            for kind, extra in enumerate(([], ["-n", "2"])):
                started = time.perf_counter()
                command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:autoevolve"]
                subprocess.run([*command, *extra], cwd=tmp, capture_output=True, check=False)
                times[kind].append(time.perf_counter() - started)
    return times


def pytest_run(folder: Path, agent: str, extra: list[str]) -> tuple[float, dict[str, object]]:
    """Wall seconds of one ``pytest --autoevolve`` run and its summary's numbers (or the merged ones)."""
    spec = f"python:agents_bench:{agent}"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--autoevolve"]
    command += ["--autoevolve-cache", "off", "--autoevolve-incumbent", spec, "--autoevolve-candidate", spec]
    started = time.perf_counter()
    subprocess.run([*command, *extra], cwd=folder, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    newest = max((folder / ".autoevolve" / "runs").glob("*/summary.json"), key=lambda p: p.stat().st_mtime)
    summary = json.loads(newest.read_text())
    return elapsed, {key: summary[key] for key in NUMBERS}


def sharded(folder: Path, agent: str, extra: list[str], shards: int) -> tuple[float, dict[str, object]]:
    """Wall seconds of ``shards`` shard runs one after the other plus their merge, and the merged numbers."""
    started = time.perf_counter()
    files = []
    for index in range(1, shards + 1):
        junit = folder / f"shard-{index}.xml"
        pytest_run(folder, agent, [*extra, "--autoevolve-shard", f"{index}/{shards}", f"--junitxml={junit}"])
        files.append(str(junit))
    autoevolve = str(Path(sys.executable).with_name("autoevolve"))
    merged = subprocess.run([autoevolve, "report", *files, "--json"], cwd=folder, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    summary = json.loads(merged.stdout)
    return elapsed, {key: summary[key] for key in NUMBERS}


def runs(folder: Path, agent: str, extra: list[str]) -> tuple[list[float], list[float], list[dict[str, object]]]:
    """``REPEATS`` serial and ``-n 2`` runs, alternating: their wall seconds, and every run's numbers."""
    serial: list[float] = []
    parallel: list[float] = []
    numbers = []
    for _ in range(REPEATS):
        for times, more in ((serial, []), (parallel, ["-n", "2"])):
            elapsed, found = pytest_run(folder, agent, [*extra, *more])
            times.append(elapsed)
            numbers.append(found)
    return serial, parallel, numbers


def shown(seconds: list[float]) -> str:
    return f"{statistics.median(seconds):.2f} s ({min(seconds):.2f}-{max(seconds):.2f})"


def main() -> None:
    serial, parallel = plain_xdist()
    ratio = statistics.median(serial) / statistics.median(parallel)
    print(f"plain pytest, 400 tests x 20 ms of CPU: serial {shown(serial)}, -n 2 {shown(parallel)}: {ratio:.2f}x")
    for agent, scenarios, extra in (("burn", 200, []), ("wait", 200, ["--autoevolve-concurrency", "16"])):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            write_say_catalog(folder, scenarios)
            (folder / "agents_bench.py").write_text(AGENTS)
            kind = "CPU-bound (20 ms of CPU a call)" if agent == "burn" else "I/O-bound (50 ms wait, concurrency 16)"
            serial, parallel, numbers = runs(folder, agent, extra)
            same = "same verdict and numbers" if all(n == numbers[0] for n in numbers) else f"DIFFERENT: {numbers}"
            ratio = statistics.median(serial) / statistics.median(parallel)
            print(f"{kind}, {scenarios} scenarios x 2 roles: serial {shown(serial)}")
            print(f"  -n 2: {shown(parallel)}, {ratio:.2f}x serial ({same} in all {2 * REPEATS} runs)")
            if agent == "wait":
                merged = sharded(folder, agent, extra, 2)
                same = "same verdict and numbers" if merged[1] == numbers[0] else f"DIFFERENT: {merged[1]}"
                ratio = statistics.median(serial) / merged[0]
                print(f"  2 shards one after the other + merge: {merged[0]:.2f} s, {ratio:.2f}x serial ({same})")


if __name__ == "__main__":
    main()

"""The plugin's cost per scenario item against a plain parametrized pytest test.

Both suites have the same number of items and an instant answer: the autoevolve side
runs YAML scenarios on a ``python:`` model (graded, recorded to trajectories.jsonl),
the plain side a parametrized test that asserts the same thing. Each is run at two
sizes in fresh processes; the per-item cost is the slope between the sizes, so fixed
start-up costs cancel.

    python benchmarks/bench_overhead.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from catalogs import write_say_catalog

SIZES = (200, 2000)  # items per run (scenarios x 2 roles for autoevolve)
AGENT = "def answer(messages):\n    return messages[-1]['content'].split()[-1]\n"
PLAIN = """
import pytest

def answer(messages):
    return messages[-1]['content'].split()[-1]

@pytest.mark.parametrize("n", range({count}))
def test_item(n):
    assert answer([{{"role": "user", "content": f"say {{n}}"}}]).strip() == str(n)
"""


def _catalog(folder: Path, scenarios: int) -> None:
    write_say_catalog(folder, scenarios)
    (folder / "agent.py").write_text(AGENT)


def _run(folder: Path, args: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - started
    # with --autoevolve the exit status is the gate's (same model on both sides: no lift, status 1)
    if done.returncode not in (0, 1) or " failed" in done.stdout:
        raise SystemExit(f"benchmark run failed:\n{done.stdout[-2000:]}")
    return elapsed


def main() -> None:
    timings: dict[str, dict[int, float]] = {"autoevolve": {}, "plain": {}}
    for items in SIZES:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            _catalog(folder, items // 2)
            spec = "python:agent:answer"
            timings["autoevolve"][items] = _run(
                folder,
                [
                    "--autoevolve",
                    "--autoevolve-cache",
                    "off",
                    "--autoevolve-incumbent",
                    spec,
                    "--autoevolve-candidate",
                    spec,
                ],
            )
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "test_plain.py").write_text(PLAIN.format(count=items))
            timings["plain"][items] = _run(Path(tmp), [])
    small, large = SIZES
    slope = {k: (v[large] - v[small]) / (large - small) * 1000 for k, v in timings.items()}
    for kind, values in timings.items():
        runs = ", ".join(f"{n} items {t:.2f} s" for n, t in values.items())
        print(f"{kind:<11} {runs}; per item {slope[kind]:.3f} ms")
    print(f"per-item cost ratio (autoevolve / plain): {slope['autoevolve'] / slope['plain']:.2f}x")
    print(f"whole-run ratio at {large} items:         {timings['autoevolve'][large] / timings['plain'][large]:.2f}x")


if __name__ == "__main__":
    main()

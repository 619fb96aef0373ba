"""``pytest -n 2`` against a serial run on a CPU-bound ``python:`` model.

The model burns about 20 ms of CPU per call; 100 scenarios x 2 roles. Prints both wall
times and the speed-up (2 cores: at most 2x), and checks both runs reached the same verdict.

    python benchmarks/bench_xdist.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from catalogs import write_say_catalog

SCENARIOS = 100
AGENT = """
import time

def answer(messages):
    end = time.process_time() + 0.02
    total = 0
    while time.process_time() < end:
        total += sum(range(1000))
    return messages[-1]["content"].split()[-1]
"""


def run(folder: Path, extra: list[str]) -> tuple[float, str]:
    spec = "python:agent:answer"
    started = time.perf_counter()
    roles = ["--autoevolve-incumbent", spec, "--autoevolve-candidate", spec]
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--autoevolve",
        "--autoevolve-cache",
        "off",
    ]
    subprocess.run([*command, *roles, *extra], cwd=folder, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    summaries = sorted((folder / ".autoevolve" / "runs").glob("*/summary.json"))
    return elapsed, json.loads(summaries[-1].read_text())["verdict"]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_say_catalog(folder, SCENARIOS)
        (folder / "agent.py").write_text(AGENT)
        serial, serial_verdict = run(folder, [])
        parallel, parallel_verdict = run(folder, ["-n", "2"])
    print(f"serial: {serial:.2f} s (verdict {serial_verdict});  -n 2: {parallel:.2f} s (verdict {parallel_verdict})")
    print(f"speed-up with -n 2: {serial / parallel:.2f}x")


if __name__ == "__main__":
    main()

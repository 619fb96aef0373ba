"""Import cost of the plugin when ``--autoevolve`` is off.

Runs ``import pytest`` with and without ``import pytest_autoevolve.plugin`` in fresh
interpreters, many times, and prints the median difference, plus the modules the plugin
import adds (none of torch, transformers, yaml, openai may appear).

    python benchmarks/bench_import.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

RUNS = 21
HEAVY = ("torch", "transformers", "peft", "openai", "yaml", "git", "junitparser", "jsonschema")


def _time(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - started


def _added_modules() -> list[str]:
    probe = (
        "import sys, pytest; before = set(sys.modules); import pytest_autoevolve.plugin; "
        "print('\\n'.join(sorted(set(sys.modules) - before)))"
    )
    return subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout.split()


def main() -> None:
    base, plugin = [], []
    for _ in range(RUNS):
        base.append(_time("import pytest"))
        plugin.append(_time("import pytest; import pytest_autoevolve.plugin"))
    added = _added_modules()
    heavy = [m for m in added if m.split(".")[0] in HEAVY]
    base_ms, plugin_ms = statistics.median(base) * 1000, statistics.median(plugin) * 1000
    print(f"import pytest:                        {base_ms:7.1f} ms (median of {RUNS})")
    print(f"import pytest + pytest_autoevolve:    {plugin_ms:7.1f} ms")
    print(f"plugin import cost:                   {plugin_ms - base_ms:7.1f} ms")
    print(f"ratio (with plugin / without):        {plugin_ms / base_ms:7.3f}")
    print(f"modules the plugin adds: {len(added)}: {', '.join(added)}")
    print(f"heavy modules imported: {heavy or 'none'}")


if __name__ == "__main__":
    main()

"""Gate computation time on a large catalog: 10,000 scenarios x 5 repeats per role.

Prints the time of the whole decision (sign-flip test, bootstrap interval, categories,
guardrails, per-scenario rows) and its ratio to the time of the run's own bookkeeping
(building the item results), so the gate's cost can be judged against the catalog size.

    python benchmarks/bench_gate.py
"""

from __future__ import annotations

import random
import time

from pytest_autoevolve.gate.decide import decide
from pytest_autoevolve.gate.results import ItemResult
from pytest_autoevolve.settings import GateConfig

SCENARIOS, REPEATS = 10_000, 5


def make_items(seed: int = 0) -> list[ItemResult]:
    rng = random.Random(seed)
    items = []
    for index in range(SCENARIOS):
        difficulty = rng.uniform(0.1, 0.9)
        for role, boost in (("incumbent", 0.0), ("candidate", 0.02)):
            passes = sum(rng.random() < difficulty + boost for _ in range(REPEATS))
            items.append(
                ItemResult(
                    f"s{index}",
                    role,
                    REPEATS,
                    passes,
                    category=f"c{index % 8}",
                    latencies=[rng.uniform(0.01, 0.05) for _ in range(REPEATS)],
                )
            )
    return items


def main() -> None:
    started = time.perf_counter()
    items = make_items()
    built = time.perf_counter() - started
    started = time.perf_counter()
    result = decide(items, GateConfig())
    gated = time.perf_counter() - started
    assert result.test is not None
    print(f"{SCENARIOS} scenarios x {REPEATS} repeats x 2 roles = {SCENARIOS * REPEATS * 2} trials")
    print(f"building item results: {built:.2f} s")
    print(
        f"gate decision:         {gated:.2f} s  ({result.test.test}, verdict {result.verdict}, "
        f"lift {result.test.lift:+.4f}, p {result.test.p_value:.4g})"
    )
    print(f"gate / bookkeeping ratio: {gated / built:.2f}x;  gate time per scenario: {gated / SCENARIOS * 1e6:.0f} us")


if __name__ == "__main__":
    main()

"""A catalog the benchmarks share: ``say-N`` scenarios whose right answer is N."""

from __future__ import annotations

from pathlib import Path


def write_say_catalog(folder: Path, scenarios: int) -> None:
    """Write ``scenarios/bench.yaml`` with ``scenarios`` entries expanded from one `vars` list."""
    rows = "\n".join(f"      - {{n: {i}}}" for i in range(scenarios))
    entry = '  - id: say-{{n}}\n    input: "say {{n}}"\n    expected: "{{n}}"\n    vars:\n'
    (folder / "scenarios").mkdir()
    (folder / "scenarios" / "bench.yaml").write_text(f"scenarios:\n{entry}{rows}\n")

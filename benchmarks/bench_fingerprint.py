"""What a never-stale cache key costs: a ``python:`` agent's fingerprint over a 1,000-file git project.

1. The fingerprint of the agent (every file git keeps, less scenarios, artifacts and docs, plus the
   modules it imports): cold (no digests stored: every file read and hashed) and warm (an unchanged
   project: ``git ls-files`` and one ``stat`` per file against the stored digests), median of runs.
2. ``pytest --autoevolve`` on that project, two agents that each take LATENCY_S per answer (a hosted
   chat model): the first run, then the cached re-run (zero model calls): wall times and their ratio.

    python benchmarks/bench_fingerprint.py
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

from pytest_autoevolve.providers.base import CachePolicy, parse_spec
from pytest_autoevolve.providers.python import PythonModel
from pytest_autoevolve.run.fingerprint import ProjectKeys
from pytest_autoevolve.settings import Settings

FILES = 1000
SCENARIOS = 50
LATENCY_S = 0.5
HELPERS = 40
AGENT = """
import json
import time
from pathlib import Path

from agent import {imports}

ROOT = Path(__file__).resolve().parents[1]


def _answer(messages):
    time.sleep({latency})
    (ROOT / "prompts" / "system-0.txt").read_text()
    return messages[-1]["content"].split()[-1]


def answer_a(messages):
    return _answer(messages)


def answer_b(messages):
    return _answer(messages)
"""


def write_project(root: Path) -> int:
    """A git project of FILES files: the agent package, prompts, data, docs and the scenarios; committed."""
    write_say_catalog(root, SCENARIOS)
    files = {"agent/__init__.py": "", "README.md": "# bench\n", ".gitignore": "__pycache__/\n"}
    imports = ", ".join(f"helper_{i}" for i in range(HELPERS))
    files["agent/main.py"] = AGENT.format(imports=imports, latency=LATENCY_S)
    files.update({f"agent/helper_{i}.py": f"VALUE = {i}\n" * 20 for i in range(HELPERS)})
    files.update({f"prompts/system-{i}.txt": f"You are assistant {i}.\n" * 10 for i in range(50)})
    files.update({f"docs/page-{i}.md": f"# Page {i}\n" * 30 for i in range(50)})
    data = FILES - len(files) - 2  # the scenario catalog and autoevolve.yaml are two of the files
    files.update({f"data/item-{i}.json": json.dumps({"id": i, "text": "x" * 2000}) for i in range(data)})
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text, encoding="utf-8")
    (root / "autoevolve.yaml").write_text(
        "incumbent: python:agent.main:answer_a\ncandidate: python:agent.main:answer_b\n", encoding="utf-8"
    )
    for command in (["init", "-q"], ["add", "-A"], ["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "s"]):
        subprocess.run(["git", *command], cwd=root, check=True)
    return int(subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True).stdout.count("\n"))


def fingerprint_ms(root: Path, model: PythonModel) -> float:
    """One run's fingerprint of ``model`` (a fresh `ProjectKeys`, as each run makes), in milliseconds."""
    keys = ProjectKeys.of(root, Settings())
    started = time.perf_counter()
    keys.key(model, CachePolicy())
    return (time.perf_counter() - started) * 1000


def run(root: Path) -> tuple[float, int]:
    """A ``pytest --autoevolve`` run's wall time and model calls."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--autoevolve"],
        cwd=root,
        capture_output=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    summary = sorted((root / ".autoevolve" / "runs").iterdir())[-1] / "summary.json"
    return elapsed, int(json.loads(summary.read_text())["cache"]["model_calls"])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tracked = write_project(root)
        time.sleep(2.1)  # past the window in which a just-written file is hashed again every time
        sys.path.insert(0, str(root))
        model = PythonModel(parse_spec("python:agent.main:answer_a"), root)
        cold = fingerprint_ms(root, model)
        warm = statistics.median(fingerprint_ms(root, model) for _ in range(20))
        print(f"fingerprint of a python: agent, git project of {tracked} files: cold {cold:.1f} ms, warm {warm:.1f} ms")
        first, first_calls = run(root)
        cached, cached_calls = run(root)
        print(
            f"pytest --autoevolve, {SCENARIOS} scenarios x 2 agents at {LATENCY_S * 1000:.0f} ms/answer: first run "
            f"{first:.2f} s ({first_calls} model calls), cached re-run {cached:.2f} s ({cached_calls} model calls) "
            f"-> {first / cached:.1f}x faster"
        )


if __name__ == "__main__":
    main()

"""The one way the loops run the catalog: ``pytest --autoevolve`` in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from pytest_autoevolve.loops.project import FineTuneError


def run_pytest(
    root: Path,
    args: list[str],
    artifacts: str = ".autoevolve",
    *,
    capture: bool = True,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[int, Path | None]:
    """Run ``pytest --autoevolve ARGS`` in ``root``; the exit status and the run folder it made.

    With ``capture=False`` pytest's output goes to this process's terminal as it runs; a run
    past ``timeout`` seconds is killed (FineTuneError). ``env`` replaces this process's environment.
    """
    runs = root / artifacts / "runs"
    before = set(runs.iterdir()) if runs.is_dir() else set()
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--autoevolve",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--autoevolve-artifacts={artifacts}",
        *args,
    ]
    try:
        done = subprocess.run(
            command, cwd=root, env=env, capture_output=capture, text=True, check=False, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise FineTuneError(f"pytest {' '.join(args)} was stopped: over its time budget of {timeout:g}s") from None
    made = sorted(set(runs.iterdir()) - before) if runs.is_dir() else []
    if done.returncode in (2, 3, 4):
        shown = f":\n{done.stdout[-3000:]}" if capture else " (its output is above)"
        raise FineTuneError(f"pytest {' '.join(args)} failed with status {done.returncode}{shown}")
    return done.returncode, made[-1] if made else None

"""Running a training job: in this process, or data-parallel in N processes launched through accelerate.

``--processes N`` runs ``accelerate launch --multi_gpu --num_processes N -m pytest_autoevolve.loops.training``
with the job's options: one process per GPU on a GPU machine, and on a CPU-only one N processes
that synchronize their gradients over gloo. The same entry point runs under a user's own
``accelerate launch`` configuration (several nodes, FSDP, DeepSpeed); see the README.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from pytest_autoevolve.loops.project import FineTuneError
from pytest_autoevolve.loops.training.base import MANIFEST, Job
from pytest_autoevolve.loops.training.options import settings_argv

ENTRY_POINT = "pytest_autoevolve.loops.training"

PREFIX = "autoevolve train: "


def train(job: Job, *, processes: int = 1, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Train ``job``; its training manifest. One process trains here; more are launched through accelerate."""
    if processes < 1:
        raise FineTuneError(f"--processes is at least 1, got {processes}")
    if processes == 1 or "LOCAL_RANK" in os.environ:  # alone, or already one of a launcher's processes
        return run_method(job, say)
    check_processes(processes)
    launch(job, processes, say)
    return dict(json.loads((job.out / MANIFEST).read_text(encoding="utf-8")))


def run_method(job: Job, say: Callable[[str], None]) -> dict[str, Any]:
    """Train ``job`` in this process with its method's trainer."""
    if job.method == "sft":
        from pytest_autoevolve.loops.training.sft import train_sft

        return train_sft(job, say)
    if job.method == "dpo":
        from pytest_autoevolve.loops.training.dpo import train_dpo

        return train_dpo(job, say)
    from pytest_autoevolve.loops.training.grpo import train_grpo

    return train_grpo(job, say)


def check_processes(processes: int) -> None:
    """`FineTuneError` when the machine has fewer GPUs (or, without one, CPU cores) than ``processes``."""
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    have, what = (gpus, "GPUs") if gpus else (len(os.sched_getaffinity(0)), "CPU cores and no GPU")
    if processes > have:
        raise FineTuneError(
            f"--processes {processes} is more than this machine allows: it has {have} {what}; "
            f"use --processes {have} or fewer, or launch on several machines with your own accelerate config"
        )


def command(job: Job, processes: int) -> list[str]:
    """The ``accelerate launch`` command line that trains ``job`` in ``processes`` processes."""
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes)]
    launcher += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", ENTRY_POINT]
    data = [str(job.data)] if job.data is not None else []
    job_options = ["--method", job.method, "--base", job.base_name, "--out", str(job.out)]
    return [*launcher, *data, *job_options, *settings_argv(job.settings)]


def launch(job: Job, processes: int, say: Callable[[str], None]) -> None:
    """Run the launcher, passing the main process's progress lines on; `FineTuneError` with its error when it fails."""
    with tempfile.TemporaryFile("w+", encoding="utf-8") as errors:
        with subprocess.Popen(command(job, processes), stdout=subprocess.PIPE, stderr=errors, text=True) as child:
            assert child.stdout is not None
            for line in child.stdout:
                say(line.rstrip("\n"))
        if child.returncode != 0:
            errors.seek(0)
            raise FineTuneError(f"training in {processes} processes failed: {_cause(errors.read())}")


def _cause(stderr: str) -> str:
    """The training's own error line from the launcher's output, else its last lines."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    ours = [line.removeprefix(PREFIX) for line in lines if line.startswith(PREFIX)]
    return ours[0] if ours else " / ".join(lines[-3:]) or "no error output"

"""The ``replay:`` provider: a model that answers every trial with one recorded in an earlier run.

``replay:PATH/trajectories.jsonl`` stands for whatever produced that file: each trial returns
the recorded output, messages, tool calls, usage, cost and latency of the same scenario and
repeat, and a recorded error is that trial's error again. The graders of the current catalog
grade the replayed answers, so a stored run pairs with a fresh one exactly as a live model
would. ``autoevolve ci gate`` replays the base commit's run as the incumbent this way. A
``meta.json`` beside the file may name what was recorded (``{"spec": ...}``) for the reports.
"""

from __future__ import annotations

import json
from pathlib import Path

from pytest_autoevolve.errors import FormatError
from pytest_autoevolve.files import read_trajectories
from pytest_autoevolve.providers.base import ModelRequest, ModelSpec, ModelSpecError, Reply, TrialError
from pytest_autoevolve.records import Trajectory


class ReplayModel:
    """Recorded trials by scenario id and repeat; ``+role=NAME`` picks one role of a two-role run."""

    untraced = True
    """It runs none of the user's code but a scenario's tools: a trial without tools emits no span to capture."""

    answers_whole_trials = True
    """A recorded multi-turn trial answers with its whole conversation at once."""

    def __init__(self, spec: ModelSpec, root: Path) -> None:
        if not spec.target:
            raise ModelSpecError("replay spec needs a trajectories file: 'replay:PATH/trajectories.jsonl'")
        path = Path(spec.target) if Path(spec.target).is_absolute() else root / spec.target
        if not path.is_file():
            raise ModelSpecError(f"replay: no trajectories file {spec.target}")
        try:
            recorded = list(read_trajectories(path))
        except FormatError as exc:
            raise ModelSpecError(f"replay: {exc}") from None
        role = spec.params.get("role")
        roles = sorted({t.role for t in recorded})
        if role is None and len(roles) > 1:
            raise ModelSpecError(
                f"replay: {spec.target} records {' and '.join(roles)} trials; name one with "
                f"'replay:{spec.target}+role=ROLE' (each trial would otherwise get whichever role came last)"
            )
        if role is not None and role not in roles:
            raise ModelSpecError(f"replay: {spec.target} has no {role!r} trials; it records {', '.join(roles)}")
        self.trials: dict[tuple[str, int], Trajectory] = {
            (t.scenario_id, t.repeat): t for t in recorded if role is None or t.role == role
        }
        meta = path.with_name("meta.json")
        described = json.loads(meta.read_text(encoding="utf-8")).get("spec") if meta.is_file() else None
        self.spec = str(described) if described else spec.display
        self.path = spec.target

    def generate(self, request: ModelRequest) -> Reply:
        """The recorded answer of this scenario and repeat; its recorded error, raised again."""
        trial = self.trials.get((request.scenario_id, request.repeat))
        if trial is None:
            raise TrialError(f"{self.path} has no recorded trial of {request.scenario_id!r}, repeat {request.repeat}")
        reply = Reply(
            output=trial.output,
            messages=trial.messages,
            tool_calls=trial.tool_calls,
            prompt_tokens=trial.prompt_tokens,
            completion_tokens=trial.completion_tokens,
            cost=trial.cost,
            turns=trial.turns,
            latency_s=trial.latency_s,
        )
        if trial.error is not None:
            raise TrialError(f"recorded: {trial.error}", reply)
        return reply

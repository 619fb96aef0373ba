"""Online RL with TRL's `GRPOTrainer`: the reward of a completion is its scenario's graded score.

The prompts are the catalog's ``train`` split (single-turn scenarios without tools; the leakage
guard refuses eval prompts); each completion is graded by the scenario's own graders, exactly as
the gate grades a trial (`pytest_autoevolve.run.runner.grade`). A grader that errors gives the
completion reward 0, and the first few such errors are shown. ``--max-steps`` and
``--max-seconds`` bound the run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_autoevolve.loops.project import FineTuneError, project_catalog
from pytest_autoevolve.loops.training.base import (
    Job,
    Progress,
    check_device,
    finish,
    fit,
    load_base,
    lora_config,
    partial_folder,
    trainer_options,
)
from pytest_autoevolve.records import Scenario, Trajectory

SHOWN_ERRORS = 5


def train_prompts(root: Path) -> tuple[list[Scenario], int]:
    """The train-split scenarios GRPO can prompt, and how many train scenarios it leaves out (conversations, tools)."""
    from pytest_autoevolve.loops.dataset import check_leakage

    catalog = project_catalog(root)
    train = [s for s in catalog if s.split == "train"]
    usable = [s for s in train if not (s.turns or s.user or s.tools)]
    if not usable:
        raise FineTuneError(
            f"no train-split prompts to learn from in {root}: GRPO samples answers to single-turn scenarios "
            "without tools marked `split: train`; add some"
        )
    check_leakage(((s.id, list(s.messages)) for s in usable), catalog)
    return usable, len(train) - len(usable)


class GradedReward:
    """The reward function: each completion graded by its scenario's graders (an erroring grader: reward 0)."""

    def __init__(self, scenarios: list[Scenario], model: str, say: Callable[[str], None]) -> None:
        self.__name__ = "graded_score"
        self.scenarios = {s.id: s for s in scenarios}
        self.model, self.say = model, say
        self.errors: Counter[str] = Counter()

    def __call__(self, completions: list[Any], scenario_id: list[str], **_: Any) -> list[float]:
        """One reward per completion."""
        return [
            self.score(self.scenarios[sid], _text(completion))
            for completion, sid in zip(completions, scenario_id, strict=True)
        ]

    def score(self, scenario: Scenario, output: str) -> float:
        """The graded score of ``output``; 0 when a grader errored."""
        from pytest_autoevolve.run.runner import grade

        messages = [dict(m) for m in scenario.messages] + [{"role": "assistant", "content": output}]
        trajectory = Trajectory(scenario.id, "candidate", self.model, messages, 0, 0, output=output, split="train")
        grade(trajectory, scenario)
        broken = [g for g in trajectory.grades if g.reason.startswith("grader raised")]
        if trajectory.error is None and not broken:
            return float(trajectory.score)
        why = trajectory.error or f"{broken[0].grader}: {broken[0].reason}"
        self.errors[scenario.id] += 1
        if sum(self.errors.values()) <= SHOWN_ERRORS:
            self.say(f"reward 0 for a completion of {scenario.id}: the grader errored: {why}")
        return 0.0


def positions_from_mask(model: Any) -> None:
    """Give ``model`` position ids from the attention mask when a call has none.

    GRPO left-pads prompts and scores them without position ids: a model with absolute positions
    (GPT-2, ``tiny``) would then be trained at other positions than it sampled at.
    """

    def hook(_: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        mask, ids = kwargs.get("attention_mask"), kwargs.get("input_ids")
        if kwargs.get("position_ids") is None and mask is not None and ids is not None and mask.shape == ids.shape:
            kwargs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)
        return args, kwargs

    model.register_forward_pre_hook(hook, with_kwargs=True)


def _text(completion: Any) -> str:
    """A completion's text, conversational (a list with the assistant message) or plain."""
    if isinstance(completion, list):
        return str(completion[-1].get("content") or "") if completion else ""
    return str(completion)


def train_grpo(job: Job, say: Callable[[str], None]) -> dict[str, Any]:
    """Train the adapter on the train split of the project at ``job.data``; the training manifest."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    assert job.data is not None
    device = check_device(job.settings)
    if job.settings.batch_size % job.settings.generations:
        raise FineTuneError(
            f"--batch-size {job.settings.batch_size} is not a multiple of --generations {job.settings.generations}: "
            "each step scores whole groups of completions of one prompt"
        )
    scenarios, left_out = train_prompts(job.data)
    model, tokenizer = load_base(job, device)
    positions_from_mask(model)
    work, progress = partial_folder(job.out), Progress(job.settings, say)
    reward = GradedReward(scenarios, job.base_name, say)
    every = max(1, job.settings.max_steps // 8) if job.settings.max_steps > 0 else 10
    options = trainer_options(job, work, device, evaluate=False)
    options |= {"logging_strategy": "steps", "logging_steps": every, "save_strategy": "steps", "save_steps": every}
    config = GRPOConfig(
        **options,
        num_generations=job.settings.generations,
        max_completion_length=job.settings.max_completion_tokens,
        beta=job.settings.beta,
        temperature=1.0,
        disable_dropout=True,
    )
    rows = [{"prompt": [dict(m) for m in s.messages], "scenario_id": s.id} for s in scenarios]
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[reward],
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=lora_config(model, job.settings),
        callbacks=[progress.callback],
    )
    fit(trainer, work, say)
    details = {
        "dataset": None,
        "prompts": len(rows),
        "left_out_scenarios": left_out,
        "reward": "the scenario's graded score (the gate's graders); 0 when a grader errored",
        "grader_errors": dict(reward.errors),
    }
    return finish(job, trainer, work, details, progress)

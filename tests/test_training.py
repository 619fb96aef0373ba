"""Training on TRL + accelerate: SFT with a masked prompt and resume, several processes, DPO pairs, GRPO on graders."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from pytest_autoevolve.catalog.loader import load_catalog
from pytest_autoevolve.files import TrajectoryWriter
from pytest_autoevolve.loops.examples import DatasetError
from pytest_autoevolve.loops.pairs import curate_pairs
from pytest_autoevolve.loops.project import FineTuneError
from pytest_autoevolve.loops.training import MANIFEST, Job, TrainSettings, train
from pytest_autoevolve.loops.training.base import Progress, partial_folder
from pytest_autoevolve.loops.training.launch import check_processes
from pytest_autoevolve.loops.training.sft import sft_trainer
from pytest_autoevolve.run.registries import project_registries
from pytest_autoevolve.settings import load_settings
from pytest_autoevolve.tiny import TINY_DIR
from tests.support.projects import copy_catalog

WORDS = ["stop", "flow", "tram", "kite", "lamp", "moon", "road", "ship", "frog", "wind"]

FAST = TrainSettings(epochs=2, batch_size=4, seed=1)


def chat(prompt: str, reply: str) -> str:
    return json.dumps({"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}]})


def small_dataset(folder: Path) -> Path:
    """Eight training and two validation examples of reversing a word."""
    folder.mkdir(parents=True)
    lines = [chat(f"reverse {w}", w[::-1]) for w in WORDS]
    (folder / "train.jsonl").write_text("\n".join(lines[:8]) + "\n")
    (folder / "val.jsonl").write_text("\n".join(lines[8:]) + "\n")
    (folder / "manifest.json").write_text(json.dumps({"sha256": "abc"}))
    return folder


def job(method: str, data: Path | None, out: Path, settings: TrainSettings = FAST, base: Path = TINY_DIR) -> Job:
    return Job(method, data, base, out, "tiny", settings)


def test_sft_scores_the_reply_and_end_of_turn_only(tmp_path):
    trainer, details = sft_trainer(job("sft", small_dataset(tmp_path / "d"), tmp_path / "a"), Progress(FAST, print))
    row = trainer.train_dataset[0]
    scored = [i for i, label in zip(row["input_ids"], row["labels"], strict=True) if label != -100]
    assert trainer.processing_class.decode(scored) == "pots<|end|>"
    assert trainer.processing_class.decode(row["input_ids"]) == "<|user|>reverse stop<|end|><|assistant|>pots<|end|>"
    assert details == {"dataset": str(tmp_path / "d"), "dataset_sha256": "abc", "examples": 8, "val_examples": 2}


def test_sft_writes_an_adapter_with_its_manifest_and_resumes_after_a_failure(tmp_path):
    from peft import PeftConfig

    data = small_dataset(tmp_path / "data")
    lines: list[str] = []
    whole = train(job("sft", data, tmp_path / "whole", dataclasses.replace(FAST, epochs=3)), say=lines.append)
    assert [line.split("  ")[0] for line in lines] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert "eval_loss" in lines[0]
    assert {p.name for p in (tmp_path / "whole").iterdir()} == {
        "adapter_config.json",
        "adapter_model.safetensors",
        MANIFEST,
    }
    assert PeftConfig.from_pretrained(tmp_path / "whole").base_model_name_or_path == "tiny"
    assert whole["method"] == "sft" and whole["dataset_sha256"] == "abc" and whole["examples"] == 8
    assert {"torch", "transformers", "peft", "trl", "accelerate"} <= set(whole["versions"])
    assert len(whole["curves"]["loss"]) == len(whole["curves"]["eval_loss"]) == 3
    assert json.loads((tmp_path / "whole" / MANIFEST).read_text())["curves"] == whole["curves"]

    class Stop(Exception):
        pass

    def interrupt(line: str) -> None:
        if line.startswith("epoch 2/"):
            raise Stop

    resumed_out = tmp_path / "resumed"
    with pytest.raises(Stop):
        train(job("sft", data, resumed_out, dataclasses.replace(FAST, epochs=3)), say=interrupt)
    assert not resumed_out.exists()  # nothing that looks finished
    assert (partial_folder(resumed_out) / "checkpoint-4").is_dir()
    lines.clear()
    resumed = train(job("sft", data, resumed_out, dataclasses.replace(FAST, epochs=3)), say=lines.append)
    assert lines[0] == "resuming from checkpoint-4" and lines[1].startswith("epoch 3/3")
    assert resumed["curves"]["loss"][-1] == pytest.approx(whole["curves"]["loss"][-1], abs=1e-3)
    assert not partial_folder(resumed_out).exists() and (resumed_out / MANIFEST).is_file()


def test_max_seconds_stops_at_a_step(tmp_path):
    result = train(
        job("sft", small_dataset(tmp_path / "d"), tmp_path / "a", dataclasses.replace(FAST, max_seconds=1e-3))
    )
    assert result["stopped_by_time"] and result["steps"] == 1 and (tmp_path / "a" / MANIFEST).is_file()


def test_two_processes_through_accelerate(tmp_path):
    data = small_dataset(tmp_path / "data")
    one = train(job("sft", data, tmp_path / "one"))
    lines: list[str] = []
    timed = dataclasses.replace(FAST, max_seconds=600.0)  # the processes agree on the time at every step
    two = train(job("sft", data, tmp_path / "two", timed), processes=2, say=lines.append)
    assert two["processes"] == 2 and one["processes"] == 1
    assert [line.split("  ")[0] for line in lines[:2]] == ["epoch 1/2", "epoch 2/2"]
    assert two["steps"] == one["steps"]  # the processes share each step's examples out
    assert abs(two["curves"]["eval_loss"][-1] - one["curves"]["eval_loss"][-1]) < 0.3
    assert (tmp_path / "two" / "adapter_model.safetensors").is_file()


def test_too_many_processes_a_base_without_chat_template_and_gpu_options_on_cpu(tmp_path):
    with pytest.raises(FineTuneError, match=r"--processes 4096 is more than this machine allows: it has \d+ CPU cores"):
        check_processes(4096)
    with pytest.raises(FineTuneError, match="at least 1"):
        train(job("sft", tmp_path, tmp_path / "x"), processes=0)
    plain = Path(shutil.copytree(TINY_DIR, tmp_path / "plain"))
    (plain / "chat_template.jinja").unlink()
    data = small_dataset(tmp_path / "data")
    with pytest.raises(FineTuneError, match="the base tiny has no chat template"):
        train(job("sft", data, tmp_path / "out", base=plain))
    with pytest.raises(FineTuneError, match="--batch-size 10 is not a multiple of --generations 4"):
        train(job("grpo", tmp_path, tmp_path / "out", dataclasses.replace(FAST, batch_size=10, generations=4)))
    with pytest.raises(FineTuneError, match="--qlora need a CUDA GPU"):
        train(job("sft", data, tmp_path / "out", dataclasses.replace(FAST, qlora=True)))
    assert not (tmp_path / "out").exists() and not partial_folder(tmp_path / "out").exists()


def demo_project(root: Path) -> Path:
    """The shipped strings catalog, with tiny as the incumbent."""
    copy_catalog(root / "scenarios")
    (root / "autoevolve.yaml").write_text("incumbent: tiny\n")
    return root


def sampled_run(root: Path, right: int, wrong: int) -> tuple[Path, object]:
    """A sampling run of the train split: ``right`` correct and ``wrong`` wrong answers per scenario, graded."""
    from pytest_autoevolve.records import Trajectory
    from pytest_autoevolve.run.runner import grade

    catalog = load_catalog([root / "scenarios"], project_registries(root, load_settings(root)).graders, root)
    writer = TrajectoryWriter(root / "runs" / "r1" / "trajectories.jsonl")
    for scenario in catalog.split("train"):
        answers = [scenario.expected] * right + [f"{scenario.expected}{n}x" for n in range(wrong)]
        for repeat, output in enumerate(answers):
            messages = [*map(dict, scenario.messages), {"role": "assistant", "content": output}]
            trajectory = Trajectory(scenario.id, "candidate", "tiny", messages, 0, repeat, output=output, split="train")
            trajectory.run_id = "r1"
            grade(trajectory, scenario)
            writer.append(trajectory)
    return root / "runs" / "r1", catalog


def test_pairs_curation_and_dpo(tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    root = demo_project(tmp_path)
    run, catalog = sampled_run(root, right=1, wrong=2)
    pairs = curate_pairs([run], catalog, root / "pairs", per_scenario=2, model_spec="tiny")
    rows = [json.loads(line) for line in (pairs.path / "train.jsonl").read_text().splitlines()]
    train_ids = {s.id for s in catalog.split("train")}
    assert pairs.train + pairs.val == 2 * len(train_ids) and pairs.val > 0
    first = rows[0]
    assert first["prompt"][0]["role"] == "user" and first["chosen"][0]["content"] != first["rejected"][0]["content"]
    manifest = pairs.manifest
    assert manifest["format"] == "trl-preference" and manifest["leakage_check"]["passed"]
    assert set(manifest["scenarios"]["train"]) | set(manifest["scenarios"]["val"]) == train_ids
    assert {"scenario_id", "run_id", "chosen_repeat", "rejected_repeat"} <= set(manifest["examples"]["train"][0])

    few = dataclasses.replace(FAST, epochs=1, max_steps=3, batch_size=8, learning_rate=1e-3)
    result = train(job("dpo", pairs.path, tmp_path / "dpo", few))
    assert result["method"] == "dpo" and result["steps"] == 3 and "rewards/accuracies" in result["curves"]
    base = AutoModelForCausalLM.from_pretrained(TINY_DIR)
    assert isinstance(PeftModel.from_pretrained(base, tmp_path / "dpo"), PeftModel)


def test_pairs_need_both_answers_and_enough_scenarios(tmp_path):
    root = demo_project(tmp_path)
    run, catalog = sampled_run(root, right=2, wrong=0)
    with pytest.raises(DatasetError, match="too few preference pairs: 0, 20 needed"):
        curate_pairs([run], catalog, root / "pairs")
    sft_data = small_dataset(tmp_path / "sft")
    with pytest.raises(FineTuneError, match="line 1 has no rejected answer: DPO trains on preference pairs"):
        train(job("dpo", sft_data, tmp_path / "out"))
    only = root / "only"
    (only / "scenarios").mkdir(parents=True)
    (only / "scenarios" / "strings.yaml").write_text(
        'scenarios:\n  - {id: a, input: "upper ab", expected: "AB", split: train}\n'
    )
    (only / "autoevolve.yaml").write_text("incumbent: tiny\n")
    one_run, one_catalog = sampled_run(only, right=1, wrong=1)
    with pytest.raises(DatasetError, match="too few scenarios to split into train and val"):
        curate_pairs([one_run], one_catalog, only / "pairs", min_pairs=1)
    assert not (only / "pairs").exists() or not any((only / "pairs").iterdir())


GRADERS = """
def broken(output, trajectory, scenario):
    raise RuntimeError("grader bug")
"""


def test_grpo_rewards_with_the_catalogs_graders(tmp_path, monkeypatch):
    root = tmp_path
    (root / "scenarios").mkdir()
    (root / "scenarios" / "train.yaml").write_text(
        "defaults: {split: train}\n"
        "scenarios:\n"
        '  - {id: up-ab, input: "upper ab", expected: "AB"}\n'
        '  - {id: up-cd, input: "upper cd", expected: "CD"}\n'
        '  - {id: bad, input: "upper ef", expect: [{python: "graders:broken"}]}\n'
        '  - {id: eval-1, input: "upper gh", expected: "GH", split: eval}\n'
    )
    (root / "graders.py").write_text(GRADERS)
    monkeypatch.syspath_prepend(str(root))
    lines: list[str] = []
    settings = dataclasses.replace(FAST, max_steps=2, batch_size=12, generations=4, max_completion_tokens=4)
    result = train(job("grpo", root, tmp_path / "grpo", settings), say=lines.append)
    assert result["method"] == "grpo" and result["steps"] == 2 and result["prompts"] == 3
    assert result["grader_errors"]["bad"] > 0 and "reward" in result["curves"]
    assert any(line.startswith("reward 0 for a completion of bad: the grader errored") for line in lines)
    assert (tmp_path / "grpo" / "adapter_model.safetensors").is_file()


def test_cli_trains_dpo_and_refuses_without_pairs(tmp_path, monkeypatch, capsys):
    from pytest_autoevolve.cli import main

    root = demo_project(tmp_path)
    monkeypatch.chdir(root)
    run, _ = sampled_run(root, right=1, wrong=1)
    assert main(["finetune", "curate", str(run), "--pairs", "--model", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "preference pairs" in out and "written to finetune/pairs/v1-" in out
    pairs = next((root / "finetune" / "pairs").iterdir())
    argv = ["finetune", "train", str(pairs), "--method", "dpo", "--max-steps", "2", "--batch-size", "4"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "adapter written to finetune/models/v1 (dpo, 2 steps)" in out
    assert "candidate: (not set) -> tiny+adapter=finetune/models/v1" in out
    assert json.loads((root / "finetune/models/v1" / MANIFEST).read_text())["method"] == "dpo"
    assert main(["finetune", "train", "finetune/pairs", "--method", "dpo"]) == 2
    assert (
        "no train.jsonl there: curate pairs first (autoevolve finetune curate RUN --pairs)" in capsys.readouterr().err
    )
    assert main(["finetune", "train", str(pairs), "--processes", "4096"]) == 2
    assert "--processes 4096 is more than this machine allows" in capsys.readouterr().err

"""The embedded `tiny` model: loadable, reproducible, and only partly right on the demo."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pytest_autoevolve.catalog.loader import load_catalog
from pytest_autoevolve.graders.builtin import default_registry
from pytest_autoevolve.providers.base import ModelRequest
from pytest_autoevolve.tiny import TINY_DIR, demo
from pytest_autoevolve.tiny.train import HYPERPARAMETERS, solve, train
from tests.support.projects import REPO, copy_catalog
from tests.support.runs import read_run


def test_shipped_folder_loads_with_auto_classes():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(TINY_DIR)
    model = AutoModelForCausalLM.from_pretrained(TINY_DIR)
    parameters = sum(p.numel() for p in model.parameters())
    assert 100_000 < parameters < 1_000_000
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "upper cat"}], add_generation_prompt=True, tokenize=False
    )
    assert prompt == "<|user|>upper cat<|end|><|assistant|>"
    assert solve(TINY_DIR, ["upper cat"]) == ["CAT"]


def test_catalog_files_are_the_generated_ones():
    for name in ("arithmetic.yaml", "strings.yaml"):
        assert (REPO / "scenarios" / name).read_text(encoding="utf-8") == demo.catalog_text(name)


def test_demo_splits_are_large_and_disjoint():
    catalog = load_catalog([REPO / "scenarios"], default_registry(), REPO)
    eval_split, train_split = catalog.split("eval"), catalog.split("train")
    assert len(eval_split) >= 200
    assert len(train_split) >= 500
    assert not {s.input for s in eval_split} & {s.input for s in train_split}


def test_main_command_runs_the_shipped_catalog_on_tiny(pytester):
    shutil.copytree(REPO / "scenarios", pytester.path / "scenarios")
    result = pytester.runpytest_subprocess("--autoevolve", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*= autoevolve gate: *", "incumbent*tiny*pass rate*", "candidate*tiny*pass rate*"])
    trajectories, summary = read_run(pytester.path)
    catalog = load_catalog([REPO / "scenarios"], default_registry(), REPO)
    trials = sum(s.repeats or 1 for s in catalog.split("eval"))
    assert summary["incumbent"]["n"] == summary["candidate"]["n"] == trials
    rate = summary["incumbent"]["pass_rate"]
    assert 0.25 <= rate <= 0.70, rate
    assert summary["candidate"]["pass_rate"] == rate
    assert all(t["error"] is None for t in trajectories)


def test_training_script_reproduces_the_shipped_model(tmp_path):
    """The script rebuilds a model like the shipped one: same settings, loss curve and skill.

    Floating-point kernels differ between processors, so a rebuild on another machine matches
    the shipped loss curve closely rather than to the last digit; on one machine it is exact
    (the next test).
    """
    manifest = train(tmp_path / "model", log_every=0)
    shipped = json.loads((TINY_DIR / "training_manifest.json").read_text(encoding="utf-8"))
    assert manifest["hyperparameters"] == HYPERPARAMETERS == shipped["hyperparameters"]
    assert manifest["loss_every_100_steps"] == pytest.approx(shipped["loss_every_100_steps"], rel=0.06)
    problems = demo.splits()[0]
    rebuilt = solve(tmp_path / "model", [p.prompt for p in problems])
    accuracy = sum(got == p.answer for got, p in zip(rebuilt, problems, strict=True)) / len(problems)
    assert 0.35 <= accuracy <= 0.70, accuracy


def test_training_is_deterministic_on_one_machine(tmp_path):
    short = {"steps": 30, "warmup_steps": 5}
    first = train(tmp_path / "a", short, log_every=0)
    again = train(tmp_path / "b", short, log_every=0)
    assert first["loss_every_100_steps"] == again["loss_every_100_steps"]
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()


def test_sampling_is_reproducible_by_seed(pytester):
    copy_catalog(pytester.path)

    def outputs(seed: int) -> list[str]:
        for run in (pytester.path / ".autoevolve" / "runs").glob("*"):
            shutil.rmtree(run)
        args = ["-k", "candidate and reverse", "--autoevolve-seed", str(seed)]
        pytester.runpytest_subprocess(
            "--autoevolve", "strings.yaml", *args, "--autoevolve-candidate", "tiny+temperature=1.5"
        )
        trajectories, _ = read_run(pytester.path)
        return [t["output"] for t in sorted(trajectories, key=lambda t: t["scenario_id"])]

    first, again, other = outputs(1), outputs(1), outputs(2)
    assert first == again
    assert first != other


def test_votes_return_the_most_frequent_of_n_samples():
    from pytest_autoevolve.providers.base import ModelSpecError, Reply, parse_spec
    from pytest_autoevolve.providers.hf import HFModel, majority
    from pytest_autoevolve.records import Scenario

    replies = [Reply("b ", completion_tokens=2), Reply("a"), Reply("b", completion_tokens=1), Reply("a")]
    assert majority(replies).output == "b " and majority(replies).completion_tokens == 3  # tie: the first
    model = HFModel.load(parse_spec("hf:" + str(TINY_DIR) + "+votes=5"), Path.cwd())
    single = HFModel.load(parse_spec("hf:" + str(TINY_DIR) + "+temperature=0.7"), Path.cwd())
    messages = [{"role": "user", "content": "reverse abcd"}]
    scenario = Scenario(id="v", messages=tuple(messages), graders=(), path="<test>")
    voted = model.generate(ModelRequest.for_trial(messages, scenario, 3, 0))
    one = single.generate(ModelRequest.for_trial(messages, scenario, 3, 0))
    assert voted.completion_tokens is not None and one.completion_tokens is not None
    assert voted.completion_tokens > 2 * one.completion_tokens  # five samples were drawn
    assert voted.output == model.generate(ModelRequest.for_trial(messages, scenario, 3, 0)).output  # seeded
    with pytest.raises(ModelSpecError, match="votes"):
        HFModel.load(parse_spec("hf:" + str(TINY_DIR) + "+votes=0"), Path.cwd())

"""`hf:PATH+adapter=DIR`: a PEFT LoRA adapter loaded unmerged on a local model."""

from __future__ import annotations

from pathlib import Path

from pytest_autoevolve.tiny import TINY_DIR
from tests.support.projects import copy_catalog
from tests.support.runs import read_run


def make_adapter(folder: Path, seed: int) -> Path:
    """A LoRA adapter on `tiny` whose weights are random, so it changes what the model says."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(TINY_DIR)
    config = LoraConfig(r=4, lora_alpha=64, target_modules=["c_attn"], fan_in_fan_out=True, init_lora_weights=False)
    model = get_peft_model(base, config)
    model.save_pretrained(folder)
    return folder


def test_adapter_is_loaded_and_changes_the_answers(pytester, tmp_path):
    adapter = make_adapter(tmp_path / "adapter", seed=3)
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in adapter.iterdir()}
    copy_catalog(pytester.path)
    result = pytester.runpytest_subprocess(
        "--autoevolve",
        "strings.yaml",
        "--autoevolve-incumbent",
        "tiny",
        "--autoevolve-candidate",
        f"hf:{TINY_DIR}+adapter={adapter}",
    )
    result.stdout.fnmatch_lines(["*candidate*hf:*adapter=*pass rate*"])
    trajectories, summary = read_run(pytester.path)
    assert all(t["error"] is None for t in trajectories)
    outputs = {}
    for t in trajectories:
        outputs.setdefault(t["scenario_id"], {})[t["role"]] = t["output"]
    assert any(o["incumbent"] != o["candidate"] for o in outputs.values())
    assert summary["candidate"]["spec"].endswith(f"+adapter={adapter}")
    assert summary["cache"]["hits"] == 0  # the adapter's files are part of the fingerprint: no answer is shared


def test_missing_adapter_folder_is_every_trials_error(pytester, tmp_path):
    copy_catalog(pytester.path)
    pytester.runpytest_subprocess(
        "--autoevolve",
        "strings.yaml",
        "-k",
        "candidate and upper-b",
        "--autoevolve-candidate",
        f"hf:{TINY_DIR}+adapter={tmp_path / 'nowhere'}",
    )
    trajectories, _ = read_run(pytester.path)
    errors = [t["error"] for t in trajectories]
    assert errors and all("not found" in e for e in errors)

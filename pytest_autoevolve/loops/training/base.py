"""What the three training methods share: settings, the base model, the Trainer's arguments, progress, the result.

A run trains in ``.<out>.partial/`` beside the adapter folder: Trainer checkpoints go there, a
rerun resumes from the last one, and only a finished run is renamed to ``out``, so a failed
run leaves no adapter that looks finished.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from pytest_autoevolve.files import write_json_atomic
from pytest_autoevolve.loops.project import FineTuneError

MANIFEST = "training_manifest.json"

METHODS = ("sft", "dpo", "grpo")

LIBRARIES = ("torch", "transformers", "peft", "trl", "accelerate")

KNOWN_TARGETS = (
    "c_attn",
    "c_proj",
    "c_fc",
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)


@dataclass(frozen=True)
class TrainSettings:
    """Hyperparameters of one LoRA run; CPU-friendly defaults for small models."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    learning_rate: float = 3e-3
    epochs: int = 12
    batch_size: int = 32
    """Examples per optimizer step (before accumulation), shared out among the processes."""
    grad_accum: int = 1
    seed: int = 0
    target_modules: tuple[str, ...] = ()
    max_steps: int = -1
    """Stop after this many optimizer steps (-1: run every epoch)."""
    max_seconds: float = 0.0
    """Stop at the first step past this many seconds (0: no limit)."""
    beta: float = 0.1
    """DPO: how far the adapter may move from the reference; GRPO: the KL weight."""
    generations: int = 8
    """GRPO: completions sampled per prompt."""
    max_completion_tokens: int = 16
    """GRPO: the longest sampled completion."""
    gradient_checkpointing: bool = False
    qlora: bool = False
    """Load the base in 4-bit (bitsandbytes) under the adapter: GPUs only."""


@dataclass(frozen=True)
class Job:
    """One training run: the method, the data, the base and where the adapter goes."""

    method: str
    data: Path | None
    """The dataset folder (sft), the pairs folder (dpo), or the project root whose train split is prompted (grpo)."""
    base: Path
    out: Path
    base_name: str
    settings: TrainSettings


def base_of(spec: str) -> tuple[Path, str]:
    """The local base model folder of a spec and the spec prefix adapters attach to."""
    from pytest_autoevolve.providers.base import parse_spec
    from pytest_autoevolve.tiny import TINY_DIR

    parsed = parse_spec(spec)
    if parsed.provider == "tiny":
        return TINY_DIR, "tiny"
    if parsed.provider == "hf":
        return Path(parsed.target), f"hf:{parsed.target}"
    raise FineTuneError(
        f"local LoRA training needs a tiny or hf: base, got {spec!r}: pass --base hf:PATH, "
        "or --backend openai --base MODEL for a hosted fine-tune"
    )


def next_version(root: Path, prefix: str = "v") -> Path:
    """``root/v<N>`` with N one past the highest existing version."""
    numbers = [
        int(p.name[len(prefix) :].split("-")[0])
        for p in root.glob(f"{prefix}*")
        if p.is_dir() and p.name[len(prefix) :].split("-")[0].isdigit()
    ]
    return root / f"{prefix}{max(numbers, default=0) + 1}"


def partial_folder(out: Path) -> Path:
    """Where a run into ``out`` trains and keeps its checkpoints until it finishes."""
    return out.with_name(f".{out.name}.partial")


def last_checkpoint(work: Path) -> str | None:
    """The newest Trainer checkpoint under ``work``, to resume from; None when there is none."""
    numbers = [int(p.name.split("-")[1]) for p in work.glob("checkpoint-*") if p.name.split("-")[1].isdigit()]
    return str(work / f"checkpoint-{max(numbers)}") if numbers else None


def is_main_process() -> bool:
    """Whether this is the process that writes results (rank 0, or the only one)."""
    return int(os.environ.get("RANK", "0")) == 0


def check_device(settings: TrainSettings) -> str:
    """``cuda`` or ``cpu``; `FineTuneError` for a GPU-only option on a machine without one."""
    import torch

    quiet_libraries()
    if torch.cuda.is_available():
        return "cuda"
    wanted = [name for name in ("gradient_checkpointing", "qlora") if getattr(settings, name)]
    if wanted:
        options = " and ".join(f"--{name.replace('_', '-')}" for name in wanted)
        raise FineTuneError(f"{options} need a CUDA GPU and this machine has none: train without them on the CPU")
    return "cpu"


def load_base(job: Job, device: str) -> tuple[Any, Any]:
    """The base model and its tokenizer; `FineTuneError` when the tokenizer has no chat template."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(job.base, local_files_only=True)
    if not getattr(tokenizer, "chat_template", None):
        raise FineTuneError(
            f"the base {job.base_name} has no chat template: training formats examples as chat turns; "
            "use a chat (instruct) model, or add a chat_template to its tokenizer_config.json"
        )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    options: dict[str, Any] = {"local_files_only": True, "dtype": _dtype(device)}
    if job.settings.qlora:
        from transformers import BitsAndBytesConfig

        options["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=options["dtype"]
        )
    model = AutoModelForCausalLM.from_pretrained(job.base, **options)
    if job.settings.qlora:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, job.settings.gradient_checkpointing)
    return model, tokenizer


def _dtype(device: str) -> Any:
    """bfloat16 where the GPU has it, float16 on an older GPU, float32 on the CPU."""
    import torch

    if device != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def lora_config(model: Any, settings: TrainSettings) -> Any:
    """The LoRA configuration: the attention and MLP projections the base has, unless named."""
    from peft import LoraConfig

    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = list(settings.target_modules) or [n for n in KNOWN_TARGETS if n in names]
    return LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=targets,
        fan_in_fan_out=model.config.model_type == "gpt2",
        task_type="CAUSAL_LM",
    )


def trainer_options(job: Job, work: Path, device: str, *, evaluate: bool) -> dict[str, Any]:
    """The `TrainingArguments` every method uses: seeded, per-epoch checkpoints, mixed precision where it helps."""
    import torch

    settings, half = job.settings, _dtype(device)
    per_process = max(1, settings.batch_size // int(os.environ.get("WORLD_SIZE", "1")))  # the same steps in N processes
    return {
        "output_dir": str(work),
        "seed": settings.seed,
        "data_seed": settings.seed,
        "learning_rate": settings.learning_rate,
        "lr_scheduler_type": "constant",
        "num_train_epochs": settings.epochs,
        "max_steps": settings.max_steps,
        "per_device_train_batch_size": per_process,
        "per_device_eval_batch_size": per_process,
        "gradient_accumulation_steps": settings.grad_accum,
        _checkpointing_option(): settings.gradient_checkpointing,
        "bf16": half == torch.bfloat16,
        "fp16": half == torch.float16,
        "use_cpu": device == "cpu",
        "logging_strategy": "epoch",
        "save_strategy": "epoch",
        "eval_strategy": "epoch" if evaluate else "no",
        "save_total_limit": 1,
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "ddp_find_unused_parameters": False,
    }


def _checkpointing_option() -> str:
    """The `TrainingArguments` name of gradient checkpointing (transformers 5 renamed it)."""
    from transformers import TrainingArguments

    fields = TrainingArguments.__dataclass_fields__
    return "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"


def quiet_libraries() -> None:
    """Keep the libraries' progress bars, notices and deprecation warnings out of the progress lines."""
    import warnings

    import datasets
    from transformers.utils import logging

    datasets.disable_progress_bars()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*(is_)?gradient_checkpointing.* is deprecated", category=FutureWarning)


class Progress:
    """A Trainer callback: loss curves, one progress line per epoch (main process), and the time limit."""

    def __init__(self, settings: TrainSettings, say: Callable[[str], None]) -> None:
        from transformers import TrainerCallback

        self.settings, self.say = settings, say
        self.curves: dict[str, list[float]] = {}
        self.started = time.perf_counter()
        self.train_seconds = 0.0
        """The Trainer's own time of its training loop (without loading and data preparation)."""
        self.stopped_by_time = False
        parent = self

        class Callback(TrainerCallback):  # type: ignore[misc]
            def on_log(
                self, args: Any, state: Any, control: Any, logs: Mapping[str, float] | None = None, **_: Any
            ) -> None:
                parent.record(logs or {})

            def on_save(self, args: Any, state: Any, control: Any, **_: Any) -> None:
                parent.report(state)

            def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
                if parent.settings.max_seconds and parent.out_of_time(args.device):
                    parent.stopped_by_time = control.should_training_stop = True

        self.callback = Callback()

    def out_of_time(self, device: Any) -> bool:
        """Whether ``max_seconds`` are spent, as every process agrees (they stop at the same step)."""
        late = time.perf_counter() - self.started > self.settings.max_seconds
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return late
        import torch

        flag = torch.tensor([int(late)], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def record(self, logs: Mapping[str, float]) -> None:
        """Keep each logged loss and reward on its curve, and the training loop's time."""
        self.train_seconds = float(logs.get("train_runtime", self.train_seconds))
        for key in ("loss", "eval_loss", "reward", "rewards/accuracies", "eval_rewards/accuracies"):
            if key in logs:
                self.curves.setdefault(key, []).append(round(float(logs[key]), 5))

    def report(self, state: Any) -> None:
        """One line for the epoch or step just saved."""
        if not state.is_world_process_zero:
            return
        shown = "  ".join(f"{key} {values[-1]:.3g}" for key, values in self.curves.items())
        where = f"epoch {round(state.epoch or 0)}/{self.settings.epochs}" if self.settings.max_steps < 0 else ""
        where = where or f"step {state.global_step}/{self.settings.max_steps}"
        self.say(f"{where}  {shown}  {time.perf_counter() - self.started:.0f}s")


def lora_trainer(
    trainer_class: Any,
    job: Job,
    model: Any,
    tokenizer: Any,
    config: Any,
    data: tuple[list[Any], list[Any]],
    progress: Progress,
) -> Any:
    """A TRL trainer of a LoRA adapter on ``data`` (train rows, and val rows evaluated when there are any)."""
    from datasets import Dataset

    train, val = data
    return trainer_class(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(train),
        eval_dataset=Dataset.from_list(val) if val else None,
        processing_class=tokenizer,
        peft_config=lora_config(model, job.settings),
        callbacks=[progress.callback],
    )


def fit(trainer: Any, work: Path, say: Callable[[str], None]) -> None:
    """Train, resuming from the last checkpoint in ``work``; the Trainer's own log printing left out."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    trainer.create_model_card = _no_model_card  # TRL renders one each checkpoint; the manifest says what was trained
    resume = last_checkpoint(work)
    if resume:
        say(f"resuming from {Path(resume).name}")
    trainer.train(resume_from_checkpoint=resume)


def _no_model_card(*_args: Any, **_options: Any) -> None:
    """In place of TRL's model card (a template rendered at each checkpoint): nothing."""


def versions() -> dict[str, str]:
    """The installed versions of the training libraries."""
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def finish(job: Job, trainer: Any, work: Path, details: Mapping[str, Any], progress: Progress) -> dict[str, Any]:
    """Save the adapter and manifest into ``work/adapter``, rename it to ``out``; the manifest."""
    adapter = work / "adapter"
    model = trainer.model
    for config in model.peft_config.values():
        config.base_model_name_or_path = job.base_name
    manifest = {
        "format_version": 1,
        "method": job.method,
        "base_model": job.base_name,
        **details,
        "hyperparameters": {
            **asdict(job.settings),
            "target_modules": sorted(next(iter(model.peft_config.values())).target_modules),
        },
        "device": str(trainer.args.device.type),
        "processes": trainer.args.world_size,
        "steps": trainer.state.global_step,
        "stopped_by_time": progress.stopped_by_time,
        "seconds": round(time.perf_counter() - progress.started, 1),
        "train_seconds": round(progress.train_seconds, 2),
        "versions": versions(),
        "curves": progress.curves,
        "loss_per_epoch": progress.curves.get("loss", []),
    }
    if not trainer.is_world_process_zero():
        return manifest
    model.save_pretrained(adapter, save_embedding_layers=False)  # LoRA leaves the embeddings alone
    (adapter / "README.md").unlink(missing_ok=True)  # peft's model card template: nothing of ours in it
    write_json_atomic(adapter / MANIFEST, manifest)
    if job.out.exists():
        raise FineTuneError(f"{job.out} appeared while training: the adapter stays in {adapter}")
    os.rename(adapter, job.out)
    shutil.rmtree(work, ignore_errors=True)
    return manifest


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file; `FineTuneError` naming the line that is not one."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise FineTuneError(f"{path}:{number}: not JSON: {exc}") from None
        if not isinstance(row, dict):
            raise FineTuneError(f"{path}:{number}: a line is a JSON object")
        rows.append(row)
    return rows


def dataset_provenance(folder: Path) -> dict[str, Any]:
    """The dataset's folder and sha256 from its ``manifest.json``, for the training manifest."""
    path = folder / "manifest.json"
    provenance = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return {"dataset": shown(folder), "dataset_sha256": provenance.get("sha256") or provenance.get("dataset_sha256")}


def shown(path: Path) -> str:
    """``path`` relative to the working folder when inside it: no machine path in what is written or said."""
    absolute = path.resolve()
    return str(absolute.relative_to(Path.cwd())) if absolute.is_relative_to(Path.cwd()) else str(path)

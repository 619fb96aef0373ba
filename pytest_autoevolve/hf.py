"""Local transformers models, optionally with a PEFT LoRA adapter (`hf:` and `tiny`).

torch, transformers and peft are imported here only, when such a model is first used.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pytest_autoevolve.models import GENERATION_KEYS, ModelSpec, ModelSpecError, Reply

if TYPE_CHECKING:
    from pytest_autoevolve.scenarios import Scenario

HF_KEYS = ("adapter", "device", *GENERATION_KEYS)


class HFModel:
    """A causal LM loaded with `AutoModelForCausalLM`, answering with its chat template."""

    _loaded: ClassVar[dict[tuple[str, str, str], tuple[Any, Any]]] = {}
    _load_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, spec: ModelSpec, model: Any, tokenizer: Any, display: str) -> None:
        self.spec = display
        self.model, self.tokenizer = model, tokenizer
        self.temperature = float(spec.params.get("temperature", 0.0))
        self.top_p = float(spec.params.get("top_p", 1.0))
        self.max_new_tokens = int(spec.params.get("max_new_tokens", 32))
        self._generate_lock = threading.Lock()

    @classmethod
    def load(cls, spec: ModelSpec, root: Path, display: str | None = None) -> HFModel:
        """Load (once per process) the model and tokenizer ``spec`` names."""
        unknown = set(spec.params) - set(HF_KEYS)
        if unknown:
            raise ModelSpecError(f"unknown parameter(s) {', '.join(sorted(unknown))}; allowed: {', '.join(HF_KEYS)}")
        path = _resolve(spec.target, root)
        adapter = _resolve(str(spec.params["adapter"]), root) if spec.params.get("adapter") else ""
        device = str(spec.params.get("device") or _default_device())
        key = (path, adapter, device)
        with cls._load_lock:
            if key not in cls._loaded:
                cls._loaded[key] = _load(path, adapter, device)
        model, tokenizer = cls._loaded[key]
        return cls(spec, model, tokenizer, display or spec.display)

    def generate(self, messages: list[dict[str, Any]], *, scenario: Scenario, seed: int, repeat: int) -> Reply:
        """Greedy by default; with a temperature, sampling seeded by the trial's seed."""
        import torch

        prompt = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        batch = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(self.model.device)
        options: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "pad_token_id": self.tokenizer.pad_token_id}
        if self.temperature > 0:
            options.update(do_sample=True, temperature=self.temperature, top_p=self.top_p)
        else:
            options.update(do_sample=False)
        with self._generate_lock, torch.no_grad():
            if self.temperature > 0:
                torch.manual_seed(seed)
            output = self.model.generate(**batch, **options)
        new_tokens = output[0, batch["input_ids"].shape[1] :]
        text = self.tokenizer.decode(new_tokens, skip_special_tokens=True)
        return Reply(output=text, prompt_tokens=int(batch["input_ids"].shape[1]), completion_tokens=len(new_tokens))


def _resolve(target: str, root: Path) -> str:
    """A local path relative to the project root when it exists there, else as given."""
    candidate = Path(target).expanduser()
    if not candidate.is_absolute() and (root / candidate).exists():
        return str(root / candidate)
    if candidate.exists():
        return str(candidate)
    raise ModelSpecError(f"model folder {target!r} not found (models are loaded from local folders, offline)")


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _load(path: str, adapter: str, device: str) -> tuple[Any, Any]:
    """Model and tokenizer from local folders, the adapter applied unmerged."""
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ModelSpecError(
            f"local models need the training extra: pip install 'pytest-autoevolve[train]' ({exc})"
        ) from exc
    from transformers.utils import logging

    logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter, local_files_only=True)
    model.to(device)
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer

"""Local transformers models, optionally with a PEFT LoRA adapter (`hf:` and `tiny`).

torch, transformers and peft are imported here only, when such a model is first used.
"""

from __future__ import annotations

import queue
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pytest_autoevolve.files import fingerprint_files
from pytest_autoevolve.providers.base import GENERATION_KEYS, ModelRequest, ModelSpec, ModelSpecError, Reply

if TYPE_CHECKING:
    pass

HF_KEYS = ("adapter", "device", "batch_size", "votes", *GENERATION_KEYS)
VOTE_TEMPERATURE = 0.7
"""The sampling temperature of self-consistency votes when the spec sets none."""


class HFModel:
    """A causal LM loaded with `AutoModelForCausalLM`, answering with its chat template."""

    untraced = True
    """It runs none of the user's code but a scenario's tools: a trial without tools emits no span to capture."""

    _loaded: ClassVar[dict[tuple[str, str, str], tuple[Any, Any]]] = {}
    _load_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, spec: ModelSpec, model: Any, tokenizer: Any, display: str) -> None:
        self.spec = display
        self.model, self.tokenizer = model, tokenizer
        self.temperature = float(spec.params.get("temperature", 0.0))
        self.top_p = float(spec.params.get("top_p", 1.0))
        self.max_new_tokens = int(spec.params.get("max_new_tokens", 32))
        self.votes = int(spec.params.get("votes", 1))
        if self.votes < 1:
            raise ModelSpecError(f"votes is a whole number of at least 1, got {self.votes}")
        if self.votes > 1 and "temperature" not in spec.params:
            self.temperature = VOTE_TEMPERATURE
        self._generate_lock = threading.Lock()
        self._batcher = _Batcher(self._generate, int(spec.params.get("batch_size", 32)))
        self.fingerprint = ""

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
        loaded = cls(spec, model, tokenizer, display or spec.display)
        files = fingerprint_files(path, *([adapter] if adapter else []))
        loaded.fingerprint = (
            f"hf:{path}+{adapter}#{files}:{loaded.temperature}:{loaded.top_p}:{loaded.max_new_tokens}:{loaded.votes}"
        )
        return loaded

    def generate(self, request: ModelRequest) -> Reply:
        """Greedy by default, batched with concurrent calls; with a temperature, sampling seeded by the trial.

        With ``votes=N`` (self-consistency) N answers are sampled and the most frequent one is returned.
        """
        prompt = self.tokenizer.apply_chat_template(request.messages, add_generation_prompt=True, tokenize=False)
        seed = request.seed
        if self.votes > 1:
            with self._generate_lock:
                return majority(self._generate([prompt] * self.votes, seed))
        if self.temperature > 0:
            with self._generate_lock:
                return self._generate([prompt], seed)[0]
        return self._batcher.submit(prompt)

    def _generate(self, prompts: list[str], seed: int | None = None) -> list[Reply]:
        """One `generate` call over left-padded prompts; each row cut at its end-of-turn token."""
        import torch

        batch = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        batch = batch.to(self.model.device)
        options: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "pad_token_id": self.tokenizer.pad_token_id}
        if seed is not None:
            options.update(do_sample=True, temperature=self.temperature, top_p=self.top_p)
            torch.manual_seed(seed)
        else:
            options.update(do_sample=False)
        with torch.no_grad():
            output = self.model.generate(**batch, **options)
        width = batch["input_ids"].shape[1]
        replies = []
        for row, mask in zip(output, batch["attention_mask"], strict=True):
            tokens = row[width:].tolist()
            if self.tokenizer.eos_token_id in tokens:
                tokens = tokens[: tokens.index(self.tokenizer.eos_token_id) + 1]
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            replies.append(Reply(output=text, prompt_tokens=int(mask.sum()), completion_tokens=len(tokens)))
        return replies


def majority(replies: list[Reply]) -> Reply:
    """The most frequent answer (stripped; ties go to the first sampled), with the usage of every sample."""
    counts: dict[str, int] = {}
    for reply in replies:
        counts[reply.output.strip()] = counts.get(reply.output.strip(), 0) + 1
    winner = max(counts, key=lambda answer: counts[answer])  # max keeps the first of equal counts
    chosen = next(reply for reply in replies if reply.output.strip() == winner)
    return Reply(
        output=chosen.output,
        prompt_tokens=sum(r.prompt_tokens or 0 for r in replies),
        completion_tokens=sum(r.completion_tokens or 0 for r in replies),
    )


class _Batcher:
    """Runs greedy requests from many threads as batches on one model instance.

    A request waits only for the batch in flight: whatever queued meanwhile (up to
    ``max_batch``) goes into the next `generate` call, so serial callers pay nothing.
    """

    def __init__(self, generate: Callable[[list[str]], list[Reply]], max_batch: int = 32) -> None:
        self.generate, self.max_batch = generate, max_batch
        self.queue: queue.Queue[tuple[str, Future[Reply]]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.batches: list[int] = []

    def submit(self, prompt: str) -> Reply:
        """Queue one prompt and wait for its reply."""
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, daemon=True, name="autoevolve-hf-batcher")
                self._thread.start()
        future: Future[Reply] = Future()
        self.queue.put((prompt, future))
        return future.result()

    def _loop(self) -> None:
        while True:
            batch = [self.queue.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            self.batches.append(len(batch))
            try:
                replies = self.generate([prompt for prompt, _ in batch])
            except Exception as exc:  # every waiting trial records the failure
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for (_, future), reply in zip(batch, replies, strict=True):
                future.set_result(reply)


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

        with warnings.catch_warnings():  # peft asks transformers 5 for a renamed attribute; nothing to act on
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
            model = PeftModel.from_pretrained(model, adapter, local_files_only=True)
    model.to(device)
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return model, tokenizer

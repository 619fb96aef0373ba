"""A local server of the OpenAI (or Azure OpenAI) Files and Fine-tuning APIs for tests, with scripted job lifecycles.

Real HTTP on 127.0.0.1 (``ThreadingHTTPServer`` in a thread), the JSON shapes the ``openai`` client
parses, and the checks the real service makes (paths shown for OpenAI; with ``azure=True`` see below):

- ``POST /v1/files`` (multipart ``file`` and ``purpose``): a ``fine-tune`` file must be ``.jsonl`` whose
  every line is a chat example (``messages`` with valid roles and contents, at least one assistant
  turn), or every line a preference example (``input.messages``, ``preferred_output`` and
  ``non_preferred_output`` assistant messages); anything else is a 400 ``invalid_request_error`` naming
  the line. ``GET /v1/files/{id}`` and ``GET /v1/files/{id}/content`` serve what was stored.
- ``POST /v1/fine_tuning/jobs``: a known base model (or the model of a succeeded job), existing
  ``fine-tune`` files, a ``supervised`` or ``dpo`` method with its known hyperparameters (``beta`` for DPO), a
  suffix of at most 64 characters, metadata of at most 16 string pairs. A file of the wrong kind for the
  method (chat for DPO, preference for supervised) fails validation. ``closed=True``: a service that takes no
  new jobs (403).
- ``GET /v1/fine_tuning/jobs/{id}`` advances the job one status per poll along its `JobScript`:
  ``validating_files`` → ``queued`` → ``running`` → ``succeeded`` (``fine_tuned_model``
  ``ft:<base>:<suffix>:<id>``, ``trained_tokens`` counted from the file times the epochs) or a scripted
  ``failed`` (``error`` ``{code, message, param}``) or ``cancelled``; ``stall`` stays ``running``. A
  training file with fewer than ``min_examples`` examples fails validation, as on the real service.
- ``GET /v1/fine_tuning/jobs/{id}/events`` lists events newest first, paged by ``after`` and ``limit``;
  ``POST /v1/fine_tuning/jobs/{id}/cancel`` cancels a job that has not ended; ``GET /v1/fine_tuning/jobs``
  lists jobs newest first, paged by ``after`` and ``limit``.

Every request needs a bearer key; with ``api_key`` set, another key is a 401 that echoes the key in full
(the real service masks most of it), so tests can check that the client side redacts it. `inject` makes
the next matching requests answer with scripted errors, instead of being served or (``handled=True``) after
being served: an answer lost after the work was done. Every request is kept in ``requests``.

Azure OpenAI (``azure=True``; the endpoint is ``server.root``): the same API under ``/openai/...`` with an
``api-version`` query parameter (missing: 400 ``MissingApiVersionParameter``; unknown: 404 ``Resource not
found``, as Azure answers), the key in an ``api-key`` header (Azure's 401 otherwise), ``/openai/deployments/...``
serving no fine-tuning (404), files imported a while (``pending``, then ``processed`` on the next read; a job on
a file not yet processed is a 400), Azure's base model names, fine-tuned models named
``<base>.ft-<job hex>[-<suffix>]``, and ``method`` (hence DPO) and ``metadata`` only from
`AZURE_METHOD_VERSIONS` on: an older version refuses them as unrecognized arguments.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.fake_openai import Answer, Request, error, json_body, send_answer
from tests.support.local_server import LocalServer

DEFAULT_MODELS = (
    "gpt-4o-mini-2024-07-18",
    "gpt-4o-2024-08-06",
    "gpt-4.1-2025-04-14",
    "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano-2025-04-14",
    "gpt-3.5-turbo-0125",
    "babbage-002",
    "davinci-002",
)
AZURE_MODELS = (
    "gpt-4o-mini-2024-07-18",
    "gpt-4o-2024-08-06",
    "gpt-4.1-2025-04-14",
    "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano-2025-04-14",
    "gpt-35-turbo-0125",
)
AZURE_API_VERSIONS = ("2024-10-21", "2025-02-01-preview", "2025-04-01-preview")
AZURE_METHOD_VERSIONS = ("2025-02-01-preview", "2025-04-01-preview")
"""The API versions that take ``method`` (supervised or dpo) and ``metadata``; older ones refuse those arguments."""
AZURE_UNAUTHORIZED = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an "
    "active subscription and use a correct regional API endpoint for your resource."
)
CLOSED_MESSAGE = "Fine-tuning is no longer available: new fine-tuning jobs can no longer be created."
ROLES = ("system", "developer", "user", "assistant", "tool")
HYPERPARAMETERS = {
    "supervised": ("n_epochs", "batch_size", "learning_rate_multiplier"),
    "dpo": ("n_epochs", "batch_size", "learning_rate_multiplier", "beta"),
}
AUTO_RESOLVED = {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.8, "beta": 0.1}
"""What ``auto`` (or an absent hyperparameter) becomes when the job starts running."""
TOKEN = re.compile(r"\w+|[^\w\s]")
MESSAGE_OVERHEAD_TOKENS = 4
SUFFIX = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def example_tokens(example: dict[str, Any]) -> int:
    """The tokens one chat or preference example counts for: a rough word/punctuation count plus a per-message
    overhead."""
    total = 0
    for message in _messages(example):
        text = message.get("content") or ""
        if isinstance(text, list):
            text = " ".join(str(p.get("text", "")) for p in text if isinstance(p, dict))
        total += MESSAGE_OVERHEAD_TOKENS + len(TOKEN.findall(str(text)))
        for call in message.get("tool_calls") or []:
            total += len(TOKEN.findall(json.dumps(call.get("function", {}))))
    return total


def _messages(example: dict[str, Any]) -> list[dict[str, Any]]:
    """Every message of a chat example, or of a preference example's input and both outputs."""
    if "messages" in example:
        return list(example["messages"])
    return [*example["input"]["messages"], *example["preferred_output"], *example["non_preferred_output"]]


@dataclass
class JobScript:
    """How the next jobs go, poll by poll, after ``validating_files``."""

    outcome: str = "succeeded"
    """``succeeded``, ``failed``, ``cancelled`` (ended on the service's side) or ``stall`` (runs forever)."""
    queued_polls: int = 1
    running_polls: int = 2
    events_per_poll: int = 1
    """Metrics events (training steps) logged between two polls while running."""
    fail_in: str = "running"
    """Where a ``failed`` job fails: ``validating_files`` or ``running``."""
    error_code: str = "server_error"
    error_message: str = "The job failed due to an internal error."
    error_param: str | None = None

    def plan(self) -> list[str]:
        """The statuses the job reports on its successive polls (the last one then stays)."""
        if self.outcome == "failed" and self.fail_in == "validating_files":
            return ["failed"]
        steps = ["queued"] * self.queued_polls
        if self.outcome == "stall":
            return [*steps, "running"]
        if self.outcome not in ("succeeded", "failed", "cancelled"):
            raise ValueError(f"unknown outcome {self.outcome!r}")
        return [*steps, *["running"] * self.running_polls, self.outcome]


@dataclass
class StoredFile:
    """An uploaded file."""

    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int
    examples: list[dict[str, Any]] = field(default_factory=list)
    kind: str = "chat"
    """``chat`` or ``preference``: the format of every example."""
    status: str = "processed"

    def record(self) -> dict[str, Any]:
        """The ``file`` object."""
        return {
            "object": "file",
            "id": self.id,
            "purpose": self.purpose,
            "filename": self.filename,
            "bytes": len(self.content),
            "created_at": self.created_at,
            "expires_at": None,
            "status": self.status,
            "status_details": None,
        }


@dataclass
class Job:
    """A fine-tuning job: its API object, what is left of its plan, its events (oldest first)."""

    record: dict[str, Any]
    plan: list[str]
    script: JobScript
    events: list[dict[str, Any]] = field(default_factory=list)
    polls: int = 0
    step: int = 0
    running_seen: int = 0
    requested: dict[str, Any] = field(default_factory=dict)


class FakeFineTune(LocalServer):
    """The server: ``with FakeFineTune() as server: ... server.url ...``; ``script`` applies to new jobs."""

    def __init__(
        self,
        script: JobScript | None = None,
        *,
        models: Sequence[str] | None = None,
        api_key: str | None = None,
        min_examples: int = 10,
        organization: str = "org-fake",
        azure: bool = False,
        closed: bool = False,
    ) -> None:
        self.script = script or JobScript()
        self.azure = azure
        self.models = list(models or (AZURE_MODELS if azure else DEFAULT_MODELS))
        self.api_key = api_key
        self.min_examples = min_examples
        self.organization = organization
        self.closed = closed
        """Take no new jobs: every creation is a 403."""
        self.requests: list[Request] = []
        self.files: dict[str, StoredFile] = {}
        self.jobs: dict[str, Job] = {}
        self._faults: list[tuple[str, re.Pattern[str], list[Answer], bool]] = []
        self._lock = threading.RLock()
        self._serve(self._handler(), "fake-finetune")

    @property
    def endpoint(self) -> str:
        """The Azure OpenAI endpoint: ``http://127.0.0.1:PORT`` (the API lives under ``/openai``)."""
        return self.root

    def inject(self, method: str, path: str, *answers: Answer, handled: bool = False) -> None:
        """The next requests of ``method`` whose path matches the regex ``path`` get ``answers``, in order.

        ``handled``: each such request is served first (a job is created, ...), then its answer is replaced.
        """
        with self._lock:
            self._faults.append((method.upper(), re.compile(path), list(answers), handled))

    def routed(self, method: str, path: str) -> list[Request]:
        """The requests of ``method`` whose path fully matches the regex ``path``."""
        pattern = re.compile(path)
        with self._lock:
            return [r for r in self.requests if r.method == method and pattern.fullmatch(r.path)]

    # --- the API -------------------------------------------------------------------------------

    def handle(self, request: Request, raw: bytes, content_type: str) -> Answer:
        """Answer one request (after recording it)."""
        with self._lock:
            self.requests.append(request)
            fault: Answer | None = None
            for method, pattern, answers, handled in self._faults:
                if method == request.method and answers and pattern.search(request.path):
                    fault = answers.pop(0)
                    if not handled:
                        return fault
                    break
            answer = self._serve_request(request, raw, content_type)
            return fault or answer

    def _serve_request(self, request: Request, raw: bytes, content_type: str) -> Answer:
        refused = self._authenticate(request)
        if refused is not None:
            return refused
        route, refused = self._route(request)
        if refused is not None:
            return refused
        if request.method == "POST" and route == "/files":
            return self._upload(request, raw, content_type)
        if request.method == "GET" and (match := re.fullmatch(r"/files/([^/]+)(/content)?", route)):
            return self._file(match.group(1), bool(match.group(2)))
        if request.method == "POST" and route == "/fine_tuning/jobs":
            return self._create(request.body, request.query)
        if request.method == "GET" and route == "/fine_tuning/jobs":
            return self._list(request.query)
        if request.method == "GET" and (match := re.fullmatch(r"/fine_tuning/jobs/([^/]+)", route)):
            return self._retrieve(match.group(1))
        if request.method == "GET" and (match := re.fullmatch(r"/fine_tuning/jobs/([^/]+)/events", route)):
            return self._events(match.group(1), request.query)
        if request.method == "POST" and (match := re.fullmatch(r"/fine_tuning/jobs/([^/]+)/cancel", route)):
            return self._cancel(match.group(1))
        return self._not_found(request)

    def _route(self, request: Request) -> tuple[str, Answer | None]:
        """The path after the API's prefix (``/v1`` or ``/openai``), or the answer to a request outside it."""
        path = request.path.rstrip("/")
        prefix = "/openai" if self.azure else "/v1"
        if not path.startswith(prefix + "/") or path.startswith("/openai/deployments/"):
            return "", self._not_found(request)
        if self.azure:
            version = request.query.get("api-version", [""])[0]
            if not version:
                message = "The api-version query parameter (?api-version=) is required for all requests."
                return "", _error(400, message, None, "MissingApiVersionParameter")
            if version not in AZURE_API_VERSIONS:
                return "", _azure_not_found()
        return path.removeprefix(prefix), None

    def _not_found(self, request: Request) -> Answer:
        if self.azure:
            return _azure_not_found()
        return error(404, f"Invalid URL ({request.method} {request.path})", kind="invalid_request_error")

    def _authenticate(self, request: Request) -> Answer | None:
        if self.azure:
            key = request.headers.get("api-key", "")
            if not key or (self.api_key is not None and key != self.api_key):
                return _error(401, AZURE_UNAUTHORIZED, None, "401")
            return None
        header = request.headers.get("authorization", "")
        key = header[7:] if header.lower().startswith("bearer ") else ""
        if not key:
            return _error(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization "
                "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                None,
                None,
            )
        if self.api_key is not None and key != self.api_key:
            return _error(
                401,
                f"Incorrect API key provided: {key}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                None,
                "invalid_api_key",
            )
        return None

    def _upload(self, request: Request, raw: bytes, content_type: str) -> Answer:
        try:
            fields = _multipart(raw, content_type)
        except ValueError as exc:
            return _error(400, f"Could not parse multipart form: {exc}", None, None)
        purpose = fields.get("purpose")
        upload = fields.get("file")
        if not isinstance(purpose, tuple) or purpose[0] is not None:
            return _error(400, "Missing required parameter: 'purpose'.", "purpose", None)
        if not isinstance(upload, tuple) or upload[0] is None:
            return _error(400, "Missing required parameter: 'file'.", "file", None)
        purpose_text = purpose[1].decode("utf-8", "replace")
        filename, content = upload
        request.body.update({"purpose": purpose_text, "filename": filename, "bytes": len(content)})
        allowed = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
        if purpose_text not in allowed:
            return _error(400, f"'{purpose_text}' is not one of {list(allowed)} - 'purpose'", "purpose", None)
        examples: list[dict[str, Any]] = []
        kind = "chat"
        if purpose_text == "fine-tune":
            if not filename.endswith(".jsonl"):
                return _error(
                    400, "Invalid file format for Fine-Tuning API. Must be .jsonl", "file", "invalid_file_format"
                )
            try:
                kind, examples = _examples(content)
            except ValueError as exc:
                return _error(400, f"Invalid file format for Fine-Tuning API. {exc}", "file", "invalid_file_format")
        status = "pending" if self.azure else "processed"  # Azure imports a file a while
        stored = StoredFile(self._id("file"), filename, purpose_text, content, int(time.time()), examples, kind, status)
        self.files[stored.id] = stored
        return Answer(body=stored.record())

    def _file(self, file_id: str, content: bool) -> Answer:
        stored = self.files.get(file_id)
        if stored is None:
            return _error(404, f"No such File object: {file_id}", "id", None)
        answer = Answer(body=stored.content) if content else Answer(body=stored.record())
        stored.status = "processed"
        return answer

    def _create(self, body: Any, query: dict[str, list[str]]) -> Answer:
        if self.closed:
            return _error(403, CLOSED_MESSAGE, None, "fine_tuning_unavailable")
        if not isinstance(body, dict):
            return _error(400, "The request body is not a JSON object.", None, None)
        if self.azure and query["api-version"][0] not in AZURE_METHOD_VERSIONS:
            for name in ("method", "metadata"):
                if name in body:
                    return _error(400, f"Unrecognized request argument supplied: {name}", None, "invalidPayload")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return _error(400, "Missing required parameter: 'model'.", "model", None)
        if model not in self.models and not any(j.record["fine_tuned_model"] == model for j in self.jobs.values()):
            return _error(
                400,
                f"Model {model} is not available for fine-tuning or does not exist.",
                "model",
                "model_not_available",
            )
        files = {}
        for name in ("training_file", "validation_file"):
            file_id = body.get(name)
            if file_id is None and name == "validation_file":
                continue
            stored = self.files.get(file_id) if isinstance(file_id, str) else None
            if stored is None:
                return _error(400, f"invalid {name}: {file_id}", name, None)
            if stored.purpose != "fine-tune":
                return _error(400, f"File {file_id} has purpose {stored.purpose!r}, not 'fine-tune'.", name, None)
            if stored.status != "processed":
                return _error(400, f"File {file_id} is not ready yet: its status is {stored.status}.", name, None)
            files[name] = stored
        suffix = body.get("suffix")
        if suffix is not None and (not isinstance(suffix, str) or not SUFFIX.match(suffix)):
            return _error(400, "suffix must be 1 to 64 letters, digits, '-' or '_'.", "suffix", None)
        metadata = body.get("metadata")
        if metadata is not None and (
            not isinstance(metadata, dict)
            or len(metadata) > 16
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
        ):
            return _error(400, "metadata is at most 16 string keys with string values.", "metadata", None)
        method = body.get("method") or {"type": "supervised"}
        kind = method.get("type") if isinstance(method, dict) else method
        if not isinstance(method, dict) or kind not in HYPERPARAMETERS:
            return _error(400, f"Invalid value for 'method.type': {kind!r}.", "method.type", None)
        given = method.get(kind) or {}
        hyper = dict(body.get("hyperparameters") or {}) | dict(given.get("hyperparameters") or {})
        for name, value in hyper.items():
            if name not in HYPERPARAMETERS[kind]:
                return _error(
                    400,
                    f"Unknown parameter: 'method.{kind}.hyperparameters.{name}'.",
                    f"method.{kind}.hyperparameters.{name}",
                    "unknown_parameter",
                )
            if value != "auto" and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0):
                return _error(400, f"Invalid value for {name}: {value!r}", f"hyperparameters.{name}", None)
        hyper = {name: hyper.get(name, "auto") for name in HYPERPARAMETERS[kind]}
        job_id = self._id("ftjob")
        record = {
            "object": "fine_tuning.job",
            "id": job_id,
            "model": model,
            "created_at": int(time.time()),
            "finished_at": None,
            "fine_tuned_model": None,
            "organization_id": self.organization,
            "result_files": [],
            "status": "validating_files",
            "validation_file": body.get("validation_file"),
            "training_file": body["training_file"],
            "hyperparameters": dict(hyper),
            "trained_tokens": None,
            "error": None,
            "user_provided_suffix": suffix,
            "seed": body.get("seed") or 42,
            "estimated_finish": None,
            "integrations": [],
            "metadata": metadata,
            "method": {"type": kind, kind: {"hyperparameters": dict(hyper)}},
        }
        job = Job(record, self.script.plan(), self.script, requested=dict(body))
        training = files["training_file"]
        wanted = "preference" if kind == "dpo" else "chat"
        if any(stored.kind != wanted for stored in files.values()):
            job.plan = ["failed"]
            job.script = JobScript(
                "failed",
                fail_in="validating_files",
                error_code="invalid_training_file",
                error_param="training_file",
                error_message=f"The {kind} method needs {wanted} examples; the file holds {training.kind} examples.",
            )
        elif len(training.examples) < self.min_examples:
            job.plan = ["failed"]
            job.script = JobScript(
                "failed",
                fail_in="validating_files",
                error_code="invalid_n_examples",
                error_param="training_file",
                error_message=f"Training file has {len(training.examples)} example(s), but "
                f"must have at least {self.min_examples} examples",
            )
        self.jobs[job_id] = job
        self._event(job, f"Created fine-tuning job: {job_id}")
        for name, stored in files.items():
            self._event(job, f"Validating {name.replace('_file', '')} file: {stored.id}")
        return Answer(body=dict(record))

    def _retrieve(self, job_id: str) -> Answer:
        job = self.jobs.get(job_id)
        if job is None:
            return _error(404, f"Could not find fine-tune: {job_id}", "fine_tune_id", "fine_tune_not_found")
        job.polls += 1
        if job.plan:
            self._advance(job, job.plan.pop(0))
        return Answer(body=dict(job.record))

    def _advance(self, job: Job, status: str) -> None:
        record = job.record
        previous = record["status"]
        script = job.script
        if status == "running":
            job.running_seen += 1
        if status == previous:
            if status == "running" and job.plan:  # a training step while there is more to do
                self._step(job)
            return
        record["status"] = status
        if status == "queued":
            self._event(job, "Files validated, moving job to queued state")
        elif status == "running":
            resolved = {k: (AUTO_RESOLVED[k] if v == "auto" else v) for k, v in record["hyperparameters"].items()}
            record["hyperparameters"] = resolved
            kind = record["method"]["type"]
            record["method"][kind]["hyperparameters"] = dict(resolved)
            self._event(job, "Fine-tuning job started")
            if job.plan:
                self._step(job)
        elif status == "succeeded":
            tokens = self.trained_tokens(job)
            job.step = self._total_steps(job)
            record["fine_tuned_model"] = self._model_name(record)
            results = StoredFile(
                self._id("file"), "step_metrics.csv", "fine-tune-results", b"step,train_loss\n", int(time.time())
            )
            self.files[results.id] = results
            record.update(trained_tokens=tokens, finished_at=int(time.time()), result_files=[results.id])
            self._event(job, f"New fine-tuned model created: {record['fine_tuned_model']}")
            self._event(job, "The job has successfully completed")
        elif status == "failed":
            record["error"] = {"code": script.error_code, "message": script.error_message, "param": script.error_param}
            record["finished_at"] = int(time.time())
            self._event(job, script.error_message, level="error")
        elif status == "cancelled":
            record["finished_at"] = int(time.time())
            self._event(job, "Fine-tuning job cancelled")

    def _step(self, job: Job) -> None:
        """The metrics events of the steps trained since the last poll (``events_per_poll`` of them at most)."""
        total = self._total_steps(job)
        target = min(total, math.ceil(total * job.running_seen / max(job.script.running_polls, 1)))
        start, count = job.step, max(job.script.events_per_poll, 1)
        steps = sorted({start + math.ceil((target - start) * (i + 1) / count) for i in range(count)} - {start})
        for step in steps or [min(start + 1, total)]:
            job.step = step
            loss = round(2.5 * 0.99 ** (step - 1), 4)
            self._event(
                job,
                f"Step {step}/{total}: training loss={loss:.4f}",
                kind="metrics",
                data={"step": step, "total_steps": total, "train_loss": loss},
            )

    def _model_name(self, record: dict[str, Any]) -> str:
        """``ft:<base>:<suffix>:<short id>`` (OpenAI) or ``<base>.ft-<job hex>[-<suffix>]`` (Azure)."""
        suffix, hexa = record["user_provided_suffix"], record["id"].removeprefix("ftjob-")
        if self.azure:
            return f"{record['model']}.ft-{hexa}" + (f"-{suffix}" if suffix else "")
        return f"ft:{record['model']}:{suffix or ''}:{hexa[:8]}"

    def _id(self, prefix: str) -> str:
        """A new object id: 24 hex digits after the prefix (OpenAI), 32 (Azure)."""
        return f"{prefix}-{uuid.uuid4().hex[: 32 if self.azure else 24]}"

    def _list(self, query: dict[str, list[str]]) -> Answer:
        jobs = [j.record for j in sorted(self.jobs.values(), key=lambda j: j.record["created_at"], reverse=True)]
        after = query.get("after", [None])[0]
        if after is not None:
            ids = [j["id"] for j in jobs]
            jobs = jobs[ids.index(after) + 1 :] if after in ids else []
        limit = max(1, min(int(query.get("limit", ["20"])[0]), 100))
        page = [dict(j) for j in jobs[:limit]]
        return Answer(body={"object": "list", "data": page, "has_more": len(jobs) > limit})

    def _total_steps(self, job: Job) -> int:
        hyper = {k: (AUTO_RESOLVED[k] if v == "auto" else v) for k, v in job.record["hyperparameters"].items()}
        examples = len(self.files[job.record["training_file"]].examples)
        return max(1, math.ceil(examples / int(hyper["batch_size"]))) * int(hyper["n_epochs"])

    def trained_tokens(self, job: Job) -> int:
        """The tokens a job trains on: its training file's examples, once per epoch."""
        hyper = job.record["hyperparameters"]
        epochs = AUTO_RESOLVED["n_epochs"] if hyper["n_epochs"] == "auto" else int(hyper["n_epochs"])
        return sum(example_tokens(e) for e in self.files[job.record["training_file"]].examples) * epochs

    def _events(self, job_id: str, query: dict[str, list[str]]) -> Answer:
        job = self.jobs.get(job_id)
        if job is None:
            return _error(404, f"Could not find fine-tune: {job_id}", "fine_tune_id", "fine_tune_not_found")
        try:
            limit = int(query.get("limit", ["20"])[0])
        except ValueError:
            return _error(400, "Invalid value for 'limit': must be an integer.", "limit", None)
        newest_first = list(reversed(job.events))
        after = query.get("after", [None])[0]
        if after is not None:
            ids = [e["id"] for e in newest_first]
            if after not in ids:
                return _error(400, f"Invalid 'after' event id: {after}", "after", None)
            newest_first = newest_first[ids.index(after) + 1 :]
        page = newest_first[: max(1, min(limit, 100))]
        return Answer(body={"object": "list", "data": page, "has_more": len(newest_first) > len(page)})

    def _cancel(self, job_id: str) -> Answer:
        job = self.jobs.get(job_id)
        if job is None:
            return _error(404, f"Could not find fine-tune: {job_id}", "fine_tune_id", "fine_tune_not_found")
        if job.record["status"] in ("succeeded", "failed", "cancelled"):
            return _error(400, f"Job has already completed with status {job.record['status']}.", None, None)
        job.plan = []
        self._advance(job, "cancelled")
        return Answer(body=dict(job.record))

    def _event(
        self, job: Job, message: str, *, level: str = "info", kind: str = "message", data: dict[str, Any] | None = None
    ) -> None:
        job.events.append(
            {
                "object": "fine_tuning.job.event",
                "id": self._id("ftevent"),
                "created_at": int(time.time()),
                "level": level,
                "message": message,
                "data": data or {},
                "type": kind,
            }
        )

    # --- HTTP ----------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out at once, not 40 ms apart

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_DELETE(self) -> None:
                self._serve("DELETE")

            def _serve(self, method: str) -> None:
                arrived = time.monotonic()
                raw = self._body()
                content_type = self.headers.get("content-type") or ""
                body = {} if "multipart/form-data" in content_type else json_body(raw)
                request = Request.received(self, method, body, arrived)
                self._send(server.handle(request, raw, content_type))

            def _body(self) -> bytes:
                if (self.headers.get("transfer-encoding") or "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("content-length") or 0)
                return self.rfile.read(length) if length else b""

            def _send(self, answer: Answer) -> None:
                send_answer(self, answer, bytes_type="application/octet-stream")

        return Handler


@contextmanager
def fake_finetune(script: JobScript | None = None, **options: Any) -> Iterator[FakeFineTune]:
    """A started `FakeFineTune`, shut down afterwards."""
    with FakeFineTune(script, **options) as server:
        yield server


def _error(status: int, message: str, param: str | None, code: str | None) -> Answer:
    kind = "invalid_request_error"
    return Answer(status=status, body={"error": {"message": message, "type": kind, "param": param, "code": code}})


def _azure_not_found() -> Answer:
    return _error(404, "Resource not found", None, "404")


def _multipart(raw: bytes, content_type: str) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a ``multipart/form-data`` body: name → (filename or None, content)."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if "multipart/form-data" not in content_type or not match:
        raise ValueError(f"expected multipart/form-data with a boundary, got {content_type!r}")
    delimiter = b"--" + match.group(1).encode("latin-1")
    fields: dict[str, tuple[str | None, bytes]] = {}
    sections = raw.split(delimiter)
    if len(sections) < 3 or not sections[-1].startswith(b"--"):
        raise ValueError("the body does not end with the closing boundary")
    for section in sections[1:-1]:
        if not section.startswith(b"\r\n") or not section.endswith(b"\r\n"):
            raise ValueError("a part is not framed by CRLF")
        head, sep, content = section[2:-2].partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("a part has no header/content separator")
        headers = {}
        for line in head.decode("utf-8").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        name_match = re.search(r'(?:^|;)\s*name="([^"]*)"', disposition)
        if not disposition.startswith("form-data") or not name_match:
            raise ValueError(f"a part has no form-data name: {disposition!r}")
        file_match = re.search(r'filename="([^"]*)"', disposition)
        fields[name_match.group(1)] = (file_match.group(1) if file_match else None, content)
    return fields


def _examples(content: bytes) -> tuple[str, list[dict[str, Any]]]:
    """A fine-tuning file's kind (``chat`` or ``preference``, from its first line) and its examples, each line
    checked as the service checks it; `ValueError` names the line."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"The file is not UTF-8: {exc}") from None
    examples: list[dict[str, Any]] = []
    kind = "chat"
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"Line {number}"
        try:
            example = json.loads(line)
        except ValueError:
            raise ValueError(f"{where} is not valid JSON.") from None
        if not examples and isinstance(example, dict) and "input" in example and "messages" not in example:
            kind = "preference"
        if kind == "preference":
            _check_preference(example, where)
        else:
            _check_chat(example, where)
        examples.append(example)
    if not examples:
        raise ValueError("The file has no examples.")
    return kind, examples


def _check_chat(example: Any, where: str) -> None:
    if not isinstance(example, dict) or not isinstance(example.get("messages"), list) or not example["messages"]:
        raise ValueError(f"{where}, key 'messages': every example needs a non-empty list of messages.")
    tools = example.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise ValueError(f"{where}, key 'tools': must be a list.")
    _check_messages(example["messages"], where)
    if not any(m["role"] == "assistant" for m in example["messages"]):
        raise ValueError(f"{where}: every example needs at least one assistant message.")


def _check_preference(example: Any, where: str) -> None:
    given = example.get("input") if isinstance(example, dict) else None
    if not isinstance(given, dict) or not isinstance(given.get("messages"), list) or not given["messages"]:
        raise ValueError(f"{where}, key 'input.messages': every preference example needs a non-empty list of messages.")
    _check_messages(given["messages"], where)
    for key in ("preferred_output", "non_preferred_output"):
        output = example.get(key)
        if not isinstance(output, list) or len(output) != 1:
            raise ValueError(f"{where}, key '{key}': must be a list of exactly one assistant message.")
        _check_messages(output, f"{where}, key '{key}'")
        if output[0]["role"] != "assistant":
            raise ValueError(f"{where}, key '{key}': the output is an assistant message.")


def _check_messages(messages: list[Any], where: str) -> None:
    for position, message in enumerate(messages, 1):
        at = f"{where}, message {position}"
        if not isinstance(message, dict):
            raise ValueError(f"{at}: a message is an object.")
        if message.get("role") not in ROLES:
            raise ValueError(f"{at}: invalid role {message.get('role')!r}; expected one of {list(ROLES)}.")
        content_value = message.get("content")
        calls = message.get("tool_calls")
        if content_value is None and not (message["role"] == "assistant" and calls):
            raise ValueError(f"{at}: missing 'content'.")
        if content_value is not None and not isinstance(content_value, str | list):
            raise ValueError(f"{at}, key 'content': must be a string or a list of content parts.")
        if calls is not None and (message["role"] != "assistant" or not isinstance(calls, list)):
            raise ValueError(f"{at}, key 'tool_calls': only assistant messages have a list of tool calls.")
        if message["role"] == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise ValueError(f"{at}: a tool message needs a 'tool_call_id'.")
        if "weight" in message and message["weight"] not in (0, 1):
            raise ValueError(f"{at}, key 'weight': must be 0 or 1.")

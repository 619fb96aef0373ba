"""Hosted fine-tuning (``autoevolve finetune train --backend openai|azure``): OpenAI and Azure OpenAI.

`submit_fine_tune` uploads the curated ``train.jsonl`` (and ``val.jsonl``) with purpose ``fine-tune``, waits
until the service has processed the files, creates a job with the ``supervised`` or ``dpo`` method, and polls it
through ``validating_files``, ``queued`` and ``running`` to a terminal state (``succeeded``, ``failed``,
``cancelled``), showing every new job event once, oldest first. The wait between polls starts at
``poll_interval_s``, doubles while the status stays the same, is capped at ``max_poll_interval_s`` and starts
over when the status changes. A DPO dataset is a pairs file (``prompt``, ``chosen``, ``rejected``), converted to
the services' preference format (`preference_jsonl`). Azure OpenAI (`AzureTarget`) takes its endpoint and
api-version from settings or ``$AZURE_OPENAI_ENDPOINT`` / ``$OPENAI_API_VERSION``, its key from
``$AZURE_OPENAI_API_KEY``.

Every call retries on its own (connection errors, timeouts, 408, 429 honouring ``Retry-After``, 5xx) with
exponential backoff; the client's own retries are off. A job creation that failed in transit may still have
created the job: before creating again, the job is looked up by the request id it carries in its metadata (or
by its freshly uploaded training file) and reused, so a retry never makes a second job. What goes wrong is a
`HostedFineTuneError` with a message fit for a user: the service refusing a file or a job (4xx: the service's
own message; for OpenAI, a refused job names the end of its self-serve fine-tuning), the service unavailable
(after the retries), a job that ended ``failed`` or ``cancelled`` (the job's error), or a job that did not
finish within ``timeout_s`` (its id, after a best-effort cancel). Ctrl-C while polling offers to cancel the job
(asked on a terminal; otherwise the command that cancels it is shown) and goes on as `KeyboardInterrupt`. The
API key is never shown: its value is redacted from every message, event and error.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pytest_autoevolve.errors import LoopError
from pytest_autoevolve.providers._http import (
    AZURE_KEY_ENV,
    DEFAULT_KEY_ENV,
    ERROR_PREFIX,
    MAX_RETRY_AFTER_S,
    Redactor,
    public_url,
    retry_after_seconds,
    url_secrets,
)

__all__ = [
    "ACTIVE_STATUSES",
    "METHODS",
    "TERMINAL_STATUSES",
    "AzureTarget",
    "HostedFineTuneError",
    "HostedJob",
    "ask_on_tty",
    "preference_jsonl",
    "submit_fine_tune",
]

ACTIVE_STATUSES = ("validating_files", "queued", "running")
TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")
METHODS = ("supervised", "dpo")
EVENTS_PAGE = 100
"""Events asked for per request; older pages are fetched only while every event on a page is new."""
MAX_EVENT_PAGES = 20
JOBS_PAGE = 50
"""Newest jobs searched for the one a failed creation may have made."""
REQUEST_KEY = "autoevolve_request"
"""The job metadata key holding the client's request id (the duplicate-job guard)."""
FILE_FAILED = ("error", "failed", "deleted")
OPENAI_CLOSING = (
    "OpenAI's self-serve fine-tuning takes no new jobs from 6 January 2027: fine-tune on Azure OpenAI "
    "(--backend azure) or locally (--backend lora) instead"
)
_T = TypeVar("_T")


@dataclass(frozen=True)
class AzureTarget:
    """The Azure OpenAI resource to fine-tune on; what is None comes from the standard variables."""

    endpoint: str | None = None
    """``https://RESOURCE.openai.azure.com``; default ``$AZURE_OPENAI_ENDPOINT``."""
    api_version: str | None = None
    """Default ``$OPENAI_API_VERSION``; DPO needs a version that knows the ``method`` parameter."""
    api_key_env: str | None = None
    """The variable holding the key; default ``AZURE_OPENAI_API_KEY``."""

    @classmethod
    def of(cls, spec: Any, models: Mapping[str, Any], **given: str | None) -> AzureTarget:
        """The resource of ``spec`` (e.g. the incumbent) when it is an Azure ``openai:`` model, ``given`` on top.

        ``given``: ``endpoint``, ``api_version``, ``api_key_env``; None keeps the model's (or the default).
        """
        from pytest_autoevolve.providers.base import parse_spec

        parsed = parse_spec(spec, models)
        own: dict[str, Any] = {}
        if parsed.provider == "openai" and parsed.params.get("azure") is True:
            keys = {"endpoint": "azure_endpoint", "api_version": "api_version", "api_key_env": "api_key_env"}
            own = {name: parsed.params.get(key) for name, key in keys.items()}
        merged = {**own, **{k: v for k, v in given.items() if v is not None}}
        return cls(**{k: str(v) for k, v in merged.items() if v is not None})

    def resolved(self) -> tuple[str, str]:
        """(endpoint, api_version), or a `HostedFineTuneError` naming what is missing and where to set it."""
        endpoint = self.endpoint or os.environ.get("AZURE_OPENAI_ENDPOINT", "")
        version = self.api_version or os.environ.get("OPENAI_API_VERSION", "")
        missing = [
            what
            for what, value in (
                ("an endpoint (azure_endpoint, or $AZURE_OPENAI_ENDPOINT)", endpoint),
                ("an API version (api_version, or $OPENAI_API_VERSION)", version),
            )
            if not value
        ]
        if missing:
            raise HostedFineTuneError(f"Azure OpenAI fine-tuning needs {' and '.join(missing)}")
        return endpoint, version

    def candidate(self, deployment: str) -> dict[str, Any]:
        """The model mapping of a fine-tuned model served as ``deployment`` on this resource."""
        mapping: dict[str, Any] = {"spec": f"openai:{deployment}", "azure": True}
        for key, value in (
            ("azure_endpoint", self.endpoint),
            ("api_version", self.api_version),
            ("api_key_env", self.api_key_env),
        ):
            if value:
                mapping[key] = value
        return mapping


@dataclass
class HostedJob:
    """A hosted fine-tuning job as it stood when `submit_fine_tune` returned (or gave up)."""

    job_id: str
    status: str
    """One of `ACTIVE_STATUSES` or `TERMINAL_STATUSES`."""
    fine_tuned_model: str | None
    """The new model's id (``ft:...``) once the job succeeded: the candidate to gate."""
    trained_tokens: int | None
    events: list[dict[str, Any]] = field(default_factory=list)
    """The job's events, oldest first: ``id``, ``created_at``, ``level``, ``message``, ``type``, ``data``."""
    error: str | None = None
    """The service's reason for a failed job (``code: message``), or why the wait ended."""
    base_model: str = ""
    training_file: str = ""
    """The uploaded training file's id."""
    validation_file: str | None = None
    statuses: list[str] = field(default_factory=list)
    """Every status seen, in order, each once per change."""
    method: str = "supervised"
    """One of `METHODS`."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe copy, for a training manifest."""
        return asdict(self)


class HostedFineTuneError(LoopError):
    """Hosted fine-tuning did not produce a model; ``job`` is the job as last seen, when one was created."""

    def __init__(self, message: str, job: HostedJob | None = None) -> None:
        super().__init__(message)
        self.job = job


class _Refused(Exception):
    """The service answered 4xx: another attempt would not help."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


class _Unavailable(Exception):
    """Connection errors, timeouts or 5xx through every retry."""


class _Service:
    """Calls to the service with retries, errors made readable and secrets redacted."""

    def __init__(
        self,
        client: Any,
        redactor: Redactor,
        *,
        max_retries: int,
        retry_backoff_s: float,
        max_retry_backoff_s: float,
        sleep: Callable[[float], None],
        key_env: str,
        api_version: str | None,
    ) -> None:
        self.client = client
        self.redactor = redactor
        self.max_retries = max_retries
        self.retry_backoff_s = retry_backoff_s
        self.max_retry_backoff_s = max_retry_backoff_s
        self.sleep = sleep
        self.key_env = key_env
        self.api_version = api_version
        """Set for Azure OpenAI."""
        self.url = public_url(str(client.base_url)).rstrip("/")

    def call(
        self,
        what: str,
        action: Callable[[], _T],
        *,
        retries: int | None = None,
        recover: Callable[[], _T | None] | None = None,
    ) -> _T:
        """``action()``, retried when the failure is transient; `_Refused` or `_Unavailable` otherwise.

        Before each retry, ``recover()`` (when given) may return what the failed attempt achieved after all.
        """
        import openai

        attempts = (self.max_retries if retries is None else retries) + 1
        last = ""
        for attempt in range(1, attempts + 1):
            retry_after: float | None = None
            try:
                found = recover() if recover is not None and attempt > 1 else None
                return found if found is not None else action()
            except openai.APITimeoutError:
                last = "no answer in time"
            except openai.APIConnectionError as exc:
                cause = f" ({type(exc.__cause__).__name__}: {exc.__cause__})" if exc.__cause__ else ""
                last = f"connection error: {exc}{cause}"
            except openai.APIStatusError as exc:
                status = exc.status_code
                detail = self._detail(exc)
                transient = status in (408, 429) or status >= 500
                if not transient or exc.code == "insufficient_quota":  # no quota: waiting does not help
                    raise _Refused(status, self.redactor.text(detail)) from None
                last = detail
                retry_after = retry_after_seconds(exc.response.headers)
                if retry_after is not None and retry_after > MAX_RETRY_AFTER_S:
                    break
            last = self.redactor.text(last)
            if attempt == attempts:
                break
            if retry_after is None:
                retry_after = min(self.retry_backoff_s * 2 ** (attempt - 1), self.max_retry_backoff_s)
            self.sleep(retry_after)
        raise _Unavailable(
            f"the fine-tuning service at {self.url} is unavailable: {what} failed after {attempt} attempt(s); "
            f"last error: {last}"
        )

    def cancel_command(self, job_id: str) -> str:
        """A shell command that cancels ``job_id``, the key read from its variable, never written out."""
        if self.api_version is None:
            url, header = f"{self.url}/fine_tuning/jobs/{job_id}/cancel", f"Authorization: Bearer ${self.key_env}"
        else:
            url = f"{self.url}/fine_tuning/jobs/{job_id}/cancel?api-version={self.api_version}"
            header = f"api-key: ${self.key_env}"
        return f'curl -X POST "{url}" -H "{header}"'

    @staticmethod
    def _detail(exc: Any) -> str:
        """``HTTP 400 (invalid_request_error, param training_file): the service's message``."""
        body = exc.body if isinstance(exc.body, Mapping) else {}
        message = body.get("message") if isinstance(body.get("message"), str) else None
        if not message:
            message = ERROR_PREFIX.sub("", str(exc.message))
        tags = [str(t) for t in (body.get("code") or body.get("type"),) if t]
        if body.get("param"):
            tags.append(f"param {body['param']}")
        label = f" ({', '.join(tags)})" if tags else ""
        message = message if len(message) <= 1000 else message[:1000] + "..."
        return f"HTTP {exc.status_code}{label}: {message}"


def submit_fine_tune(
    train_file: Path,
    val_file: Path | None,
    base_model: str,
    *,
    method: str = "supervised",
    suffix: str | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    base_url: str | None = None,
    azure: AzureTarget | None = None,
    api_key_env: str | None = None,
    poll_interval_s: float = 10.0,
    max_poll_interval_s: float = 60.0,
    timeout_s: float = 7200.0,
    progress: Callable[[str], None] = print,
    confirm: Callable[[str], bool | None] | None = None,
    max_retries: int = 4,
    retry_backoff_s: float = 1.0,
    max_retry_backoff_s: float = 30.0,
    request_timeout_s: float = 120.0,
    sleep: Callable[[float], None] = time.sleep,
) -> HostedJob:
    """Upload the dataset, fine-tune ``base_model`` on the service and wait for the job to end.

    ``method`` is ``supervised`` (chat examples) or ``dpo`` (a pairs file, see `preference_jsonl`).
    ``hyperparameters`` (``n_epochs``, ``batch_size``, ``learning_rate_multiplier``, and ``beta`` for DPO;
    ``auto`` or absent lets the service choose) go into the method. The service is Azure OpenAI when ``azure``
    is given, else OpenAI at ``base_url`` (default ``$OPENAI_BASE_URL``, else the OpenAI API); the key is read
    from ``$api_key_env`` (default ``AZURE_OPENAI_API_KEY`` or ``OPENAI_API_KEY``). ``timeout_s`` bounds the
    wait for the files to be processed and, from the job's creation, the job. On Ctrl-C while polling,
    ``confirm(question)`` says whether to cancel the job (None: cannot ask; the default asks on a terminal).
    Returns the succeeded job; every other ending is a `HostedFineTuneError`.
    """
    for name, value in (("poll_interval_s", poll_interval_s), ("timeout_s", timeout_s)):
        if not value > 0:
            raise ValueError(f"{name} is a number of seconds greater than 0, got {value!r}")
    if max_poll_interval_s < poll_interval_s:
        raise ValueError(f"max_poll_interval_s ({max_poll_interval_s:g}) is less than poll_interval_s")
    if method not in METHODS:
        raise HostedFineTuneError(f"hosted fine-tuning methods are {', '.join(METHODS)}, got {method!r}")
    if base_url and azure is not None:
        raise ValueError("give base_url (OpenAI) or azure (Azure OpenAI), not both")
    if not base_model:
        raise HostedFineTuneError("hosted fine-tuning needs a base model name (e.g. gpt-4o-mini-2024-07-18)")
    uploads = _contents(train_file, val_file, method)
    key_env = api_key_env or (DEFAULT_KEY_ENV if azure is None else azure.api_key_env or AZURE_KEY_ENV)
    key = os.environ.get(key_env, "")
    if not key:
        raise HostedFineTuneError(
            f"hosted fine-tuning needs an API key in ${key_env} (set api_key_env to read another variable)"
        )
    endpoint, version = azure.resolved() if azure is not None else (base_url, None)
    redactor = Redactor([key, *url_secrets(endpoint)])
    say = _say(progress, redactor)
    service = _Service(
        _client(key, endpoint, version, request_timeout_s, redactor),
        redactor,
        max_retries=max_retries,
        retry_backoff_s=retry_backoff_s,
        max_retry_backoff_s=max_retry_backoff_s,
        sleep=sleep,
        key_env=key_env,
        api_version=version,
    )
    deadline = time.monotonic() + timeout_s
    file_ids = {
        role: _upload(service, role, name, content, say, (poll_interval_s, max_poll_interval_s, deadline))
        for role, (name, content) in uploads.items()
    }
    created = _create(service, base_model, method, file_ids, suffix, hyperparameters, say)
    job = HostedJob(
        job_id=created.id,
        status=created.status,
        fine_tuned_model=None,
        trained_tokens=None,
        base_model=base_model,
        training_file=file_ids["training"],
        validation_file=file_ids.get("validation"),
        statuses=[created.status],
        method=method,
    )
    say(f"created fine-tuning job {job.job_id} ({method}) on {base_model}: {job.status}")
    timing = (poll_interval_s, max_poll_interval_s, timeout_s)
    _wait(service, job, created, say, confirm or ask_on_tty, timing)
    return job


def _contents(train_file: Path, val_file: Path | None, method: str) -> dict[str, tuple[str, bytes]]:
    """What to upload per role (``training``, ``validation``): the file's name and its bytes, DPO pairs converted."""
    files = [("training", Path(train_file))] + ([("validation", Path(val_file))] if val_file is not None else [])
    contents = {}
    for role, path in files:
        if not path.is_file():
            raise HostedFineTuneError(f"the {role} file {path} does not exist")
        if path.stat().st_size == 0:
            raise HostedFineTuneError(f"the {role} file {path} is empty: nothing to fine-tune on")
        contents[role] = (path.name, preference_jsonl(path) if method == "dpo" else path.read_bytes())
    return contents


def _client(key: str, endpoint: str | None, api_version: str | None, timeout_s: float, redactor: Redactor) -> Any:
    """An OpenAI client (``api_version`` None) or an Azure OpenAI one, without retries of its own."""
    try:
        import openai

        if api_version is None:
            return openai.OpenAI(api_key=key, base_url=endpoint, max_retries=0, timeout=timeout_s)
        return openai.AzureOpenAI(
            api_key=key, azure_endpoint=str(endpoint), api_version=api_version, max_retries=0, timeout=timeout_s
        )
    except Exception as exc:  # the client refuses its configuration
        raise HostedFineTuneError(redactor.text(f"cannot make an OpenAI client: {exc}")) from None


def _upload(
    service: _Service,
    role: str,
    name: str,
    content: bytes,
    say: Callable[[str], None],
    timing: tuple[float, float, float],
) -> str:
    """Upload one file and wait until the service has processed it (Azure takes a while to import one); its id."""
    client = service.client
    uploaded = _submit_step(
        service,
        f"uploading {name}",
        f"the fine-tuning service refused the {role} file {name}",
        functools.partial(client.files.create, file=(name, content, "application/jsonl"), purpose="fine-tune"),
    )
    say(f"uploaded {role} file {name} ({len(content)} bytes) as {uploaded.id}")
    interval, cap, deadline = timing
    status = uploaded.status
    while status not in ("processed", None):
        if status in FILE_FAILED:
            why = f": {uploaded.status_details}" if uploaded.status_details else ""
            raise HostedFineTuneError(
                service.redactor.text(f"the service could not import the {role} file {name}{why}")
            )
        if time.monotonic() >= deadline:
            raise HostedFineTuneError(f"the {role} file {name} ({uploaded.id}) was not processed in time: {status}")
        service.sleep(interval)
        interval = min(interval * 2, cap)
        uploaded = _submit_step(
            service,
            f"checking file {uploaded.id}",
            f"the service lost the {role} file {name}",
            functools.partial(client.files.retrieve, uploaded.id),
        )
        status = uploaded.status
    return str(uploaded.id)


def _create(
    service: _Service,
    base_model: str,
    method: str,
    file_ids: Mapping[str, str],
    suffix: str | None,
    hyperparameters: Mapping[str, Any] | None,
    say: Callable[[str], None],
) -> Any:
    """Create the job; a creation lost in transit is found again, never made twice.

    The lost job is known by the request id in its metadata, or by its training file, uploaded for it alone.
    Azure gets ``method`` only for DPO and no metadata: older API versions refuse both arguments.
    """
    client, azure = service.client, service.api_version is not None
    request = uuid.uuid4().hex
    options: dict[str, Any] = {"model": base_model, "training_file": file_ids["training"]}
    if not azure:
        options["metadata"] = {REQUEST_KEY: request}
    if method == "dpo" or not azure:
        options["method"] = {"type": method, method: {"hyperparameters": dict(hyperparameters or {})}}
    elif hyperparameters:
        options["hyperparameters"] = dict(hyperparameters)
    if "validation" in file_ids:
        options["validation_file"] = file_ids["validation"]
    if suffix:
        options["suffix"] = suffix

    def made_already() -> Any:
        page = client.fine_tuning.jobs.list(limit=JOBS_PAGE)
        for job in page.data or []:
            if (job.metadata or {}).get(REQUEST_KEY) == request or job.training_file == file_ids["training"]:
                say(f"the job the failed attempt created is {job.id}: using it, not creating another")
                return job
        return None

    return _submit_step(
        service,
        "creating the fine-tuning job",
        f"the fine-tuning service refused to create a {method} job on {base_model}"
        + (f" (api-version {service.api_version})" if azure else ""),
        lambda: client.fine_tuning.jobs.create(**options),
        recover=made_already,
        closing=not azure,
    )


def _wait(
    service: _Service,
    job: HostedJob,
    remote: Any,
    say: Callable[[str], None],
    confirm: Callable[[str], bool | None],
    timing: tuple[float, float, float],
) -> None:
    """Poll ``job`` to a terminal state, updating it in place; raise unless it succeeded."""
    client, redactor = service.client, service.redactor
    poll_interval_s, max_poll_interval_s, timeout_s = timing
    sleep = service.sleep
    deadline = time.monotonic() + timeout_s
    interval = poll_interval_s
    seen: set[str] = set()
    try:
        while True:
            for event in _new_events(service, job.job_id, seen):
                job.events.append(event)
                level = "" if event["level"] == "info" else f"{event['level']}: "
                say(f"{job.job_id} {level}{event['message']}")
            if job.status in TERMINAL_STATUSES:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                _give_up(service, job, say, timeout_s)
            sleep(min(interval, left))
            remote = service.call(f"checking job {job.job_id}", lambda: client.fine_tuning.jobs.retrieve(job.job_id))
            if remote.status != job.status:
                job.status = remote.status
                job.statuses.append(remote.status)
                say(f"{job.job_id}: {remote.status}")
                interval = poll_interval_s
            else:
                interval = min(interval * 2, max_poll_interval_s)
    except KeyboardInterrupt:
        _interrupted(service, job, say, confirm)
        raise
    except (_Refused, _Unavailable) as exc:
        job.error = str(exc)
        raise HostedFineTuneError(
            f"lost track of fine-tuning job {job.job_id} (last status {job.status}; it may still be running on "
            f"the service): {exc}",
            job,
        ) from None
    job.fine_tuned_model = remote.fine_tuned_model
    job.trained_tokens = remote.trained_tokens
    if remote.error is not None and (remote.error.code or remote.error.message):
        code = f"{remote.error.code}: " if remote.error.code else ""
        job.error = redactor.text(f"{code}{remote.error.message}")
    if job.status == "succeeded":
        if not job.fine_tuned_model:
            job.error = "the job succeeded without a fine_tuned_model"
            raise HostedFineTuneError(f"fine-tuning job {job.job_id} succeeded but names no fine-tuned model", job)
        say(f"fine-tuned model {job.fine_tuned_model} is ready (job {job.job_id}, {job.trained_tokens} trained tokens)")
        return
    if job.status == "failed":
        raise HostedFineTuneError(
            f"fine-tuning job {job.job_id} failed: {job.error or 'the service gave no reason'}", job
        )
    reason = f": {job.error}" if job.error else ""
    raise HostedFineTuneError(f"fine-tuning job {job.job_id} was cancelled{reason}", job)


def _give_up(service: _Service, job: HostedJob, say: Callable[[str], None], timeout_s: float) -> None:
    """The job ran past ``timeout_s``: cancel it, best effort, and raise."""
    before = job.status
    outcome = _cancel(service, job)
    job.error = f"timed out after {timeout_s:g}s"
    say(f"{job.job_id}: not finished within {timeout_s:g}s, {outcome}")
    raise HostedFineTuneError(
        f"fine-tuning job {job.job_id} did not finish within timeout_s={timeout_s:g} (last status {before}); {outcome}",
        job,
    )


def _cancel(service: _Service, job: HostedJob) -> str:
    """Cancel ``job``, best effort (one retry), updating its status; what happened, in words."""
    try:
        cancelled = service.call(
            f"cancelling job {job.job_id}", lambda: service.client.fine_tuning.jobs.cancel(job.job_id), retries=1
        )
    except (_Refused, _Unavailable) as exc:
        return f"could not cancel it ({exc}); cancel it yourself: {service.cancel_command(job.job_id)}"
    if cancelled.status != job.status:
        job.status = cancelled.status
        job.statuses.append(cancelled.status)
    return f"cancelled it (status {cancelled.status})"


def _interrupted(
    service: _Service, job: HostedJob, say: Callable[[str], None], confirm: Callable[[str], bool | None]
) -> None:
    """Ctrl-C while polling: cancel the job if the user says so; otherwise say how to cancel it later."""
    answer = confirm(f"cancel fine-tuning job {job.job_id} (status {job.status})?")
    if answer:
        say(f"fine-tuning job {job.job_id}: {_cancel(service, job)}")
        return
    say(
        f"fine-tuning job {job.job_id} goes on running on the service (status {job.status}); "
        f"to cancel it: {service.cancel_command(job.job_id)}"
    )


def ask_on_tty(question: str) -> bool | None:
    """Ask ``question`` (y/N) on a terminal; None when stdin or stdout is no terminal."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return None
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except (EOFError, KeyboardInterrupt):  # a second Ctrl-C is a no
        return False


def _new_events(service: _Service, job_id: str, seen: set[str]) -> list[dict[str, Any]]:
    """The job's events not in ``seen``, oldest first (the service lists them newest first)."""
    client, redactor = service.client, service.redactor
    fresh: list[dict[str, Any]] = []
    after: str | None = None
    for _ in range(MAX_EVENT_PAGES):
        options: dict[str, Any] = {"limit": EVENTS_PAGE}
        if after is not None:
            options["after"] = after
        page = service.call(
            f"listing the events of job {job_id}",
            functools.partial(client.fine_tuning.jobs.list_events, job_id, **options),
        )
        data = list(page.data or [])
        reached_seen = False
        for event in data:
            if event.id in seen:
                reached_seen = True
                break
            fresh.append(
                {
                    "id": event.id,
                    "created_at": event.created_at,
                    "level": event.level,
                    "message": redactor.text(str(event.message)),
                    "type": event.type,
                    "data": redactor.data(event.data),
                }
            )
        if reached_seen or not data or not page.has_more:
            break
        after = data[-1].id
    seen.update(e["id"] for e in fresh)
    fresh.reverse()
    return fresh


def _say(progress: Callable[[str], None], redactor: Redactor) -> Callable[[str], None]:
    def say(message: str) -> None:
        progress(redactor.text(message))

    return say


def _submit_step(
    service: _Service,
    what: str,
    refused: str,
    action: Callable[[], Any],
    *,
    recover: Callable[[], Any] | None = None,
    closing: bool = False,
) -> Any:
    """One call before a job exists: a refusal or an unavailable service ends the submission, said plainly.

    ``closing``: a refusal (403, 404, 410) names the end of OpenAI's self-serve fine-tuning.
    """
    try:
        return service.call(what, action, recover=recover)
    except _Refused as exc:
        hint = f" (check the key in ${service.key_env} and its permissions)" if exc.status in (401, 403) else ""
        if exc.status == 404 and service.api_version is not None:
            hint = f" (check the endpoint {service.url} and the api-version {service.api_version})"
        if closing and exc.status in (403, 404, 410):
            hint += f". {OPENAI_CLOSING}"
        raise HostedFineTuneError(f"{refused}: {exc}{hint}") from None
    except _Unavailable as exc:
        raise HostedFineTuneError(str(exc)) from None


def preference_jsonl(path: Path) -> bytes:
    """A pairs file in the services' preference (DPO) format: ``input``, ``preferred_output``, ``non_preferred_output``.

    A row is ``{prompt, chosen, rejected}``: ``prompt`` a list of messages (or a user message's text),
    ``chosen`` and ``rejected`` the assistant's text (or a list of assistant messages). Rows already in the
    services' format pass unchanged. A row that is neither is a `HostedFineTuneError` naming its line.
    """
    lines = []
    text = path.read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path.name}, line {number}"
        try:
            row = json.loads(line)
        except ValueError:
            raise HostedFineTuneError(f"{where}: not a JSON object") from None
        lines.append(json.dumps(_preference(row, where), ensure_ascii=False))
    if not lines:
        raise HostedFineTuneError(f"{path} holds no preference pairs")
    return ("\n".join(lines) + "\n").encode("utf-8")


def _preference(row: Any, where: str) -> dict[str, Any]:
    if isinstance(row, dict) and {"input", "preferred_output", "non_preferred_output"} <= set(row):
        return row
    if not isinstance(row, dict) or not {"prompt", "chosen", "rejected"} <= set(row):
        keys = sorted(row) if isinstance(row, dict) else type(row).__name__
        raise HostedFineTuneError(
            f"{where}: a preference pair has prompt, chosen and rejected (or input, preferred_output and "
            f"non_preferred_output), got {keys}"
        )
    prompt = row["prompt"]
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise HostedFineTuneError(f"{where}: prompt is a list of messages or a user message's text")
    answers = {key: _answer(row[key], key, where) for key in ("chosen", "rejected")}
    if answers["chosen"] == answers["rejected"]:
        raise HostedFineTuneError(f"{where}: chosen and rejected are the same answer: nothing to prefer")
    return {
        "input": {"messages": messages},
        "preferred_output": answers["chosen"],
        "non_preferred_output": answers["rejected"],
    }


def _answer(value: Any, key: str, where: str) -> list[dict[str, Any]]:
    """``chosen`` or ``rejected`` as a list of assistant messages."""
    if isinstance(value, str) and value.strip():
        return [{"role": "assistant", "content": value}]
    if isinstance(value, list) and value and all(isinstance(m, dict) and m.get("role") == "assistant" for m in value):
        return value
    raise HostedFineTuneError(f"{where}: no {key} answer (a non-empty text or a list of assistant messages)")

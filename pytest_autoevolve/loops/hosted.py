"""Hosted fine-tuning (``autoevolve finetune train --backend openai``) through the OpenAI fine-tuning API.

`submit_fine_tune` uploads the curated ``train.jsonl`` (and ``val.jsonl``) with purpose ``fine-tune``,
creates a job with the supervised method, and polls it through ``validating_files``, ``queued`` and
``running`` to a terminal state (``succeeded``, ``failed``, ``cancelled``), showing every new job event
once, oldest first. The wait between polls starts at ``poll_interval_s``, doubles while the status stays
the same, is capped at ``max_poll_interval_s`` and starts over when the status changes.

Every call retries on its own (connection errors, timeouts, 408, 429 honouring ``Retry-After``, 5xx) with
exponential backoff; the client's own retries are off. What goes wrong is a `HostedFineTuneError` with a
message fit for a user: the service refusing a file or a job (4xx: the service's own message), the service
unavailable (after the retries), a job that ended ``failed`` or ``cancelled`` (the job's error), or a job
that did not finish within ``timeout_s`` (its id, after a best-effort cancel). The API key is never shown:
its value is redacted from every message, event and error.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pytest_autoevolve.errors import LoopError
from pytest_autoevolve.providers._http import (
    DEFAULT_KEY_ENV,
    ERROR_PREFIX,
    MAX_RETRY_AFTER_S,
    Redactor,
    public_url,
    retry_after_seconds,
)

__all__ = ["ACTIVE_STATUSES", "TERMINAL_STATUSES", "HostedFineTuneError", "HostedJob", "submit_fine_tune"]

ACTIVE_STATUSES = ("validating_files", "queued", "running")
TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")
EVENTS_PAGE = 100
"""Events asked for per request; older pages are fetched only while every event on a page is new."""
MAX_EVENT_PAGES = 20
_T = TypeVar("_T")


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
    ) -> None:
        self.client = client
        self.redactor = redactor
        self.max_retries = max_retries
        self.retry_backoff_s = retry_backoff_s
        self.max_retry_backoff_s = max_retry_backoff_s
        self.sleep = sleep
        self.url = public_url(str(client.base_url)).rstrip("/")

    def call(self, what: str, action: Callable[[], _T], *, retries: int | None = None) -> _T:
        """``action()``, retried when the failure is transient; `_Refused` or `_Unavailable` otherwise."""
        import openai

        attempts = (self.max_retries if retries is None else retries) + 1
        last = ""
        for attempt in range(1, attempts + 1):
            retry_after: float | None = None
            try:
                return action()
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
    suffix: str | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    base_url: str | None = None,
    api_key_env: str = DEFAULT_KEY_ENV,
    poll_interval_s: float = 10.0,
    max_poll_interval_s: float = 60.0,
    timeout_s: float = 7200.0,
    progress: Callable[[str], None] = print,
    max_retries: int = 4,
    retry_backoff_s: float = 1.0,
    max_retry_backoff_s: float = 30.0,
    request_timeout_s: float = 120.0,
    sleep: Callable[[float], None] = time.sleep,
) -> HostedJob:
    """Upload the dataset, fine-tune ``base_model`` on the service and wait for the job to end.

    ``hyperparameters`` (``n_epochs``, ``batch_size``, ``learning_rate_multiplier``; ``auto`` or absent
    lets the service choose) go into the supervised method. ``base_url`` defaults to ``$OPENAI_BASE_URL``,
    else the OpenAI API; the key is read from ``$api_key_env``. ``timeout_s`` counts from the job's
    creation. Returns the succeeded job; every other ending is a `HostedFineTuneError`.
    """
    for name, value in (("poll_interval_s", poll_interval_s), ("timeout_s", timeout_s)):
        if not value > 0:
            raise ValueError(f"{name} is a number of seconds greater than 0, got {value!r}")
    if max_poll_interval_s < poll_interval_s:
        raise ValueError(f"max_poll_interval_s ({max_poll_interval_s:g}) is less than poll_interval_s")
    if not base_model:
        raise HostedFineTuneError("hosted fine-tuning needs a base model name (e.g. gpt-4o-mini-2024-07-18)")
    files = [("training", Path(train_file))] + ([("validation", Path(val_file))] if val_file is not None else [])
    for role, path in files:
        if not path.is_file():
            raise HostedFineTuneError(f"the {role} file {path} does not exist")
        if path.stat().st_size == 0:
            raise HostedFineTuneError(f"the {role} file {path} is empty: nothing to fine-tune on")
    key = os.environ.get(api_key_env, "")
    if not key:
        raise HostedFineTuneError(
            f"hosted fine-tuning needs an API key in ${api_key_env} (set api_key_env to read another variable)"
        )
    redactor = Redactor([key])
    say = _say(progress, redactor)
    try:
        import openai

        client = openai.OpenAI(api_key=key, base_url=base_url, max_retries=0, timeout=request_timeout_s)
    except Exception as exc:  # the client refuses its configuration
        raise HostedFineTuneError(redactor.text(f"cannot make an OpenAI client: {exc}")) from None
    service = _Service(
        client,
        redactor,
        max_retries=max_retries,
        retry_backoff_s=retry_backoff_s,
        max_retry_backoff_s=max_retry_backoff_s,
        sleep=sleep,
    )

    file_ids: dict[str, str] = {}
    for role, path in files:
        content = path.read_bytes()
        uploaded = _submit_step(
            service,
            f"uploading {path.name}",
            f"the fine-tuning service refused the {role} file {path.name}",
            functools.partial(client.files.create, file=(path.name, content, "application/jsonl"), purpose="fine-tune"),
            api_key_env,
        )
        file_ids[role] = uploaded.id
        say(f"uploaded {role} file {path.name} ({len(content)} bytes) as {uploaded.id}")

    method = {"type": "supervised", "supervised": {"hyperparameters": dict(hyperparameters or {})}}
    options: dict[str, Any] = {"model": base_model, "training_file": file_ids["training"], "method": method}
    if "validation" in file_ids:
        options["validation_file"] = file_ids["validation"]
    if suffix:
        options["suffix"] = suffix
    created = _submit_step(
        service,
        "creating the fine-tuning job",
        f"the fine-tuning service refused to create a job on {base_model}",
        lambda: client.fine_tuning.jobs.create(**options),
        api_key_env,
    )

    job = HostedJob(
        job_id=created.id,
        status=created.status,
        fine_tuned_model=None,
        trained_tokens=None,
        base_model=base_model,
        training_file=file_ids["training"],
        validation_file=file_ids.get("validation"),
        statuses=[created.status],
    )
    say(f"created fine-tuning job {job.job_id} on {base_model}: {job.status}")
    _wait(service, client, job, created, say, redactor, poll_interval_s, max_poll_interval_s, timeout_s, sleep)
    return job


def _wait(
    service: _Service,
    client: Any,
    job: HostedJob,
    remote: Any,
    say: Callable[[str], None],
    redactor: Redactor,
    poll_interval_s: float,
    max_poll_interval_s: float,
    timeout_s: float,
    sleep: Callable[[float], None],
) -> None:
    """Poll ``job`` to a terminal state, updating it in place; raise unless it succeeded."""
    deadline = time.monotonic() + timeout_s
    interval = poll_interval_s
    seen: set[str] = set()
    try:
        while True:
            for event in _new_events(service, client, job.job_id, seen, redactor):
                job.events.append(event)
                level = "" if event["level"] == "info" else f"{event['level']}: "
                say(f"{job.job_id} {level}{event['message']}")
            if job.status in TERMINAL_STATUSES:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                _give_up(service, client, job, say, timeout_s)
            sleep(min(interval, left))
            remote = service.call(f"checking job {job.job_id}", lambda: client.fine_tuning.jobs.retrieve(job.job_id))
            if remote.status != job.status:
                job.status = remote.status
                job.statuses.append(remote.status)
                say(f"{job.job_id}: {remote.status}")
                interval = poll_interval_s
            else:
                interval = min(interval * 2, max_poll_interval_s)
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


def _give_up(service: _Service, client: Any, job: HostedJob, say: Callable[[str], None], timeout_s: float) -> None:
    """The job ran past ``timeout_s``: cancel it, best effort, and raise."""
    before = job.status
    try:
        cancelled = service.call(
            f"cancelling job {job.job_id}", lambda: client.fine_tuning.jobs.cancel(job.job_id), retries=1
        )
        outcome = f"cancelled it (status {cancelled.status})"
        if cancelled.status != job.status:
            job.status = cancelled.status
            job.statuses.append(cancelled.status)
    except (_Refused, _Unavailable) as exc:
        outcome = f"could not cancel it ({exc}); cancel it yourself"
    job.error = f"timed out after {timeout_s:g}s"
    say(f"{job.job_id}: not finished within {timeout_s:g}s, {outcome}")
    raise HostedFineTuneError(
        f"fine-tuning job {job.job_id} did not finish within timeout_s={timeout_s:g} (last status {before}); {outcome}",
        job,
    )


def _new_events(
    service: _Service, client: Any, job_id: str, seen: set[str], redactor: Redactor
) -> list[dict[str, Any]]:
    """The job's events not in ``seen``, oldest first (the service lists them newest first)."""
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


def _submit_step(service: _Service, what: str, refused: str, action: Callable[[], Any], key_env: str) -> Any:
    """One call before a job exists: a refusal or an unavailable service ends the submission, said plainly."""
    try:
        return service.call(what, action)
    except _Refused as exc:
        raise HostedFineTuneError(f"{refused}: {exc}{_auth_hint(exc, key_env)}") from None
    except _Unavailable as exc:
        raise HostedFineTuneError(str(exc)) from None


def _auth_hint(exc: _Refused, key_env: str) -> str:
    if exc.status in (401, 403):
        return f" (check the key in ${key_env} and its permissions)"
    return ""

"""Hosted fine-tuning against a faithful local server of the OpenAI (and Azure OpenAI) Files and Fine-tuning APIs.

Real HTTP on 127.0.0.1 (tests/support/fake_finetune.py) and the real ``openai`` client; polling intervals of
milliseconds keep every test well under a second or two.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_autoevolve.cli.app import main
from pytest_autoevolve.loops import hosted
from pytest_autoevolve.loops.hosted import (
    AzureTarget,
    HostedFineTuneError,
    HostedJob,
    ask_on_tty,
    preference_jsonl,
    submit_fine_tune,
)
from tests.support.fake_finetune import FakeFineTune, JobScript, example_tokens, fake_finetune
from tests.support.fake_openai import Answer, error

KEY = "sk-proj-SECRETKEY-0123456789abcdef"
AZURE_KEY = "azure-SECRETKEY-fedcba9876543210"
BASE = "gpt-4o-mini-2024-07-18"
PREVIEW = "2025-04-01-preview"
GA = "2024-10-21"
FAST = {"poll_interval_s": 0.005, "max_poll_interval_s": 0.02, "timeout_s": 10.0, "retry_backoff_s": 0.01}


def example(n: int, *, tool: bool = False) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a careful assistant."},
        {"role": "user", "content": f"What is {n} plus {n}?"},
    ]
    if tool:
        call = {"id": f"call_{n}", "type": "function", "function": {"name": "add", "arguments": json.dumps([n, n])}}
        messages += [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": f"call_{n}", "content": str(2 * n)},
        ]
    messages.append({"role": "assistant", "content": f"{n} plus {n} is {2 * n}."})
    return {"messages": messages}


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, Path]:
    train = write_jsonl(tmp_path / "train.jsonl", [example(n, tool=n % 3 == 0) for n in range(12)])
    val = write_jsonl(tmp_path / "val.jsonl", [example(n) for n in range(100, 103)])
    return train, val


def pair(n: int) -> dict[str, Any]:
    """A preference pair as `finetune curate --pairs` writes it (TRL's conversational format)."""
    return {
        "prompt": [{"role": "user", "content": f"What is {n} plus {n}?"}],
        "chosen": [{"role": "assistant", "content": f"{2 * n}"}],
        "rejected": [{"role": "assistant", "content": f"{2 * n + 1}"}],
    }


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", AZURE_KEY)
    for name in ("OPENAI_BASE_URL", "AZURE_OPENAI_ENDPOINT", "OPENAI_API_VERSION", "AZURE_OPENAI_AD_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def run(server: FakeFineTune, train: Path, val: Path | None, lines: list[str], **options: Any) -> HostedJob:
    settings = {**FAST, **options}
    return submit_fine_tune(
        train, val, settings.pop("base_model", BASE), base_url=server.url, progress=lines.append, **settings
    )


def azure_run(
    server: FakeFineTune, train: Path, val: Path | None, lines: list[str], version: str = PREVIEW, **options: Any
) -> HostedJob:
    settings = {**FAST, **options}
    target = AzureTarget(server.endpoint, version)
    return submit_fine_tune(
        train, val, settings.pop("base_model", BASE), azure=target, progress=lines.append, **settings
    )


def test_success_lifecycle(dataset: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    train, val = dataset
    lines: list[str] = []
    with fake_finetune(JobScript(queued_polls=2, running_polls=3), api_key=KEY) as server:
        job = run(server, train, val, lines, suffix="demo-v1", hyperparameters={"n_epochs": 2})
        stored = server.jobs[job.job_id]

    assert job.status == "succeeded"
    assert job.statuses == ["validating_files", "queued", "running", "succeeded"]
    assert job.fine_tuned_model == f"ft:{BASE}:demo-v1:{job.job_id.removeprefix('ftjob-')[:8]}"
    expected_tokens = 2 * sum(example_tokens(json.loads(line)) for line in train.read_text().splitlines())
    assert job.trained_tokens == expected_tokens > 0
    assert job.error is None

    uploads = server.routed("POST", "/v1/files")
    assert [(r.body["filename"], r.body["purpose"]) for r in uploads] == [
        ("train.jsonl", "fine-tune"),
        ("val.jsonl", "fine-tune"),
    ]
    assert server.files[job.training_file].content == train.read_bytes()
    assert job.validation_file is not None and server.files[job.validation_file].content == val.read_bytes()
    created = server.routed("POST", "/v1/fine_tuning/jobs")[0].body
    assert created["model"] == BASE and created["suffix"] == "demo-v1"
    assert created["training_file"] == job.training_file and created["validation_file"] == job.validation_file
    assert created["method"] == {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}}
    assert stored.record["hyperparameters"] == {"n_epochs": 2, "batch_size": 1, "learning_rate_multiplier": 1.8}
    assert stored.polls == 6  # queued x2, running x3, succeeded

    # every server event shown exactly once, oldest first, and kept on the job
    messages = [e["message"] for e in stored.events]
    assert [e["message"] for e in job.events] == messages
    assert len({e["id"] for e in job.events}) == len(messages)
    shown = [line for line in lines if line.startswith(f"{job.job_id} ")]
    assert shown == [f"{job.job_id} {m}" for m in messages]
    assert messages[0] == f"Created fine-tuning job: {job.job_id}"
    assert messages[-1] == "The job has successfully completed"
    assert any(m.startswith("Step 24/24: training loss=") for m in messages)
    assert [e["type"] for e in job.events].count("metrics") == 3
    # status changes are shown as they happen
    assert [line.split(": ")[-1] for line in lines if line.startswith(f"{job.job_id}: ")] == [
        "queued",
        "running",
        "succeeded",
    ]
    assert any(job.fine_tuned_model in line for line in lines)
    assert KEY not in "\n".join(lines) + capsys.readouterr().out
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in server.requests)
    assert json.loads(json.dumps(job.to_dict()))["fine_tuned_model"] == job.fine_tuned_model


def test_without_validation_file_and_default_hyperparameters(dataset: tuple[Path, Path]) -> None:
    train, _ = dataset
    lines: list[str] = []
    with fake_finetune() as server:
        job = run(server, train, None, lines)
    assert job.status == "succeeded" and job.validation_file is None
    assert len(server.routed("POST", "/v1/files")) == 1
    body = server.routed("POST", "/v1/fine_tuning/jobs")[0].body
    assert "validation_file" not in body and "suffix" not in body
    assert job.fine_tuned_model == f"ft:{BASE}::{job.job_id.removeprefix('ftjob-')[:8]}"
    assert job.trained_tokens == 3 * sum(example_tokens(json.loads(x)) for x in train.read_text().splitlines())


@pytest.mark.parametrize("fail_in", ["validating_files", "running"])
def test_failed_job(dataset: tuple[Path, Path], fail_in: str) -> None:
    train, val = dataset
    lines: list[str] = []
    script = JobScript(
        "failed",
        fail_in=fail_in,
        error_code="invalid_training_file",
        error_message="The job failed due to an invalid training file: line 3 is too long.",
    )
    with fake_finetune(script) as server, pytest.raises(HostedFineTuneError) as caught:
        run(server, train, val, lines)
    job = caught.value.job
    assert job is not None and job.status == "failed"
    assert str(caught.value) == (
        f"fine-tuning job {job.job_id} failed: invalid_training_file: "
        "The job failed due to an invalid training file: line 3 is too long."
    )
    assert job.error == "invalid_training_file: The job failed due to an invalid training file: line 3 is too long."
    assert job.fine_tuned_model is None
    expected = (
        ["validating_files", "failed"]
        if fail_in == "validating_files"
        else ["validating_files", "queued", "running", "failed"]
    )
    assert job.statuses == expected
    assert f"{job.job_id} error: The job failed due to an invalid training file: line 3 is too long." in lines


def test_too_few_examples_fails_validation(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", [example(n) for n in range(3)])
    with fake_finetune() as server, pytest.raises(HostedFineTuneError, match="invalid_n_examples") as caught:
        run(server, train, None, [])
    assert "Training file has 3 example(s), but must have at least 10 examples" in str(caught.value)
    assert caught.value.job is not None and caught.value.job.statuses == ["validating_files", "failed"]


def test_cancelled_job(dataset: tuple[Path, Path]) -> None:
    train, val = dataset
    lines: list[str] = []
    with fake_finetune(JobScript("cancelled", running_polls=1)) as server, pytest.raises(HostedFineTuneError) as caught:
        run(server, train, val, lines)
    job = caught.value.job
    assert job is not None
    assert str(caught.value) == f"fine-tuning job {job.job_id} was cancelled"
    assert job.statuses == ["validating_files", "queued", "running", "cancelled"]
    assert f"{job.job_id} Fine-tuning job cancelled" in lines
    assert not server.routed("POST", r"/v1/fine_tuning/jobs/.+/cancel")  # the service cancelled it, not us


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("not json at all", "Line 2 is not valid JSON"),
        ({"prompt": "hi", "completion": "there"}, "Line 2, key 'messages'"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "Line 2, message 1: invalid role 'robot'"),
        ({"messages": [{"role": "user", "content": "only a question"}]}, "at least one assistant message"),
    ],
)
def test_invalid_file_refused_at_upload(tmp_path: Path, row: Any, reason: str) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", [example(1), row, example(2)])
    with fake_finetune() as server, pytest.raises(HostedFineTuneError) as caught:
        run(server, train, None, [])
    message = str(caught.value)
    assert message.startswith("the fine-tuning service refused the training file train.jsonl: HTTP 400 ")
    assert "invalid_file_format" in message and reason in message
    assert caught.value.job is None
    assert not server.files and not server.routed("POST", "/v1/fine_tuning/jobs")


def test_wrong_extension_refused(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.json", [example(n) for n in range(12)])
    with fake_finetune() as server, pytest.raises(HostedFineTuneError, match=r"Must be \.jsonl"):
        run(server, train, None, [])
    assert not server.files


def test_unknown_base_model_refused_at_create(dataset: tuple[Path, Path]) -> None:
    train, val = dataset
    with fake_finetune() as server, pytest.raises(HostedFineTuneError) as caught:
        run(server, train, val, [], base_model="gpt-nonexistent")
    assert str(caught.value) == (
        "the fine-tuning service refused to create a supervised job on gpt-nonexistent: HTTP 400 (model_not_available, "
        "param model): Model gpt-nonexistent is not available for fine-tuning or does not exist."
    )
    assert len(server.files) == 2 and not server.jobs
    assert len(server.routed("POST", "/v1/fine_tuning/jobs")) == 1  # a refusal is not retried


def test_no_quota_is_refused_not_retried(dataset: tuple[Path, Path]) -> None:
    train, val = dataset
    message = "You exceeded your current quota, please check your plan."
    quota = Answer(
        429, {"error": {"message": message, "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}}
    )
    with fake_finetune() as server:
        server.inject("POST", "^/v1/files$", quota)
        with pytest.raises(HostedFineTuneError, match=r"refused the training file train\.jsonl: HTTP 429 \(insuff"):
            run(server, train, val, [])
        assert len(server.routed("POST", "/v1/files")) == 1


def test_unknown_hyperparameter_refused(dataset: tuple[Path, Path]) -> None:
    train, val = dataset
    with fake_finetune() as server, pytest.raises(HostedFineTuneError, match=r"Unknown parameter.*epochs_n"):
        run(server, train, val, [], hyperparameters={"epochs_n": 3})
    assert not server.jobs


def test_nothing_listening_is_unavailable(dataset: tuple[Path, Path]) -> None:
    train, val = dataset
    with socket.socket() as sock:  # a port that was free a moment ago: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    slept: list[float] = []
    with pytest.raises(HostedFineTuneError) as caught:
        submit_fine_tune(
            train,
            val,
            BASE,
            base_url=f"http://127.0.0.1:{port}/v1",
            progress=lambda line: None,
            max_retries=3,
            retry_backoff_s=0.01,
            sleep=slept.append,
        )
    message = str(caught.value)
    assert message.startswith(f"the fine-tuning service at http://127.0.0.1:{port}/v1 is unavailable: ")
    assert "uploading train.jsonl failed after 4 attempt(s); last error: connection error" in message
    assert slept == [0.01, 0.02, 0.04]


def test_5xx_is_retried_then_unavailable(dataset: tuple[Path, Path]) -> None:
    train, val = dataset
    with fake_finetune() as server:
        server.inject("POST", "^/v1/fine_tuning/jobs$", *[error(503, "The engine is currently overloaded")] * 3)
        with pytest.raises(HostedFineTuneError, match="unavailable: creating the fine-tuning job failed after 3 "):
            run(server, train, val, [], max_retries=2)
        assert len(server.routed("POST", "/v1/fine_tuning/jobs")) == 3 and not server.jobs
        assert len(server.routed("GET", "/v1/fine_tuning/jobs")) == 2  # looked for a job before each retry


def test_transient_errors_are_retried(dataset: tuple[Path, Path]) -> None:
    train, val = dataset
    lines: list[str] = []
    with fake_finetune() as server:
        server.inject("POST", "^/v1/files$", error(502, "Bad gateway"))
        server.inject(
            "GET",
            r"^/v1/fine_tuning/jobs/[^/]+$",
            error(500, "oops"),
            error(429, "Rate limit reached", headers={"retry-after-ms": "5"}),
        )
        server.inject("GET", "/events$", error(503, "busy"))
        job = run(server, train, val, lines)
    assert job.status == "succeeded" and job.fine_tuned_model
    assert len(server.routed("POST", "/v1/files")) == 3  # one 502, then two uploads
    assert len(server.files) == 3  # train, val and the job's results file
    assert len(server.routed("GET", r"/v1/fine_tuning/jobs/[^/]+")) == server.jobs[job.job_id].polls + 2
    assert [e["message"] for e in job.events] == [e["message"] for e in server.jobs[job.job_id].events]


def test_lost_job_names_it(dataset: tuple[Path, Path]) -> None:
    train, val = dataset
    with fake_finetune(JobScript("stall")) as server:
        server.inject("GET", r"^/v1/fine_tuning/jobs/[^/]+$", *[error(500, "down")] * 10)
        with pytest.raises(HostedFineTuneError) as caught:
            run(server, train, val, [], max_retries=1)
    job = caught.value.job
    assert job is not None
    assert str(caught.value).startswith(f"lost track of fine-tuning job {job.job_id} (last status validating_files;")
    assert "unavailable" in str(caught.value)


def test_timeout_cancels_the_job(dataset: tuple[Path, Path]) -> None:
    train, val = dataset
    lines: list[str] = []
    with fake_finetune(JobScript("stall")) as server, pytest.raises(HostedFineTuneError) as caught:
        run(server, train, val, lines, timeout_s=0.3)
    job = caught.value.job
    assert job is not None
    assert str(caught.value) == (
        f"fine-tuning job {job.job_id} did not finish within timeout_s=0.3 (last status running); "
        "cancelled it (status cancelled)"
    )
    assert len(server.routed("POST", rf"/v1/fine_tuning/jobs/{job.job_id}/cancel")) == 1
    assert server.jobs[job.job_id].record["status"] == "cancelled"
    assert job.status == "cancelled" and job.statuses[-2:] == ["running", "cancelled"]
    assert job.error == "timed out after 0.3s"


def test_timeout_when_cancel_fails(dataset: tuple[Path, Path]) -> None:
    train, val = dataset
    with fake_finetune(JobScript("stall")) as server:
        server.inject("POST", "/cancel$", *[error(500, "cannot cancel now")] * 2)
        with pytest.raises(HostedFineTuneError) as caught:
            run(server, train, val, [], timeout_s=0.05)
        job = caught.value.job
        assert job is not None and server.jobs[job.job_id].record["status"] in ("validating_files", "queued", "running")
        assert job.status == server.jobs[job.job_id].record["status"]  # not cancelled
    assert f"job {job.job_id} did not finish" in str(caught.value)
    assert "could not cancel it" in str(caught.value) and "cancel it yourself" in str(caught.value)


def test_poll_backoff_grows_and_is_capped(dataset: tuple[Path, Path]) -> None:
    train, val = dataset
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    with fake_finetune(JobScript("stall")) as server, pytest.raises(HostedFineTuneError, match="did not finish"):
        run(server, train, val, [], poll_interval_s=0.01, max_poll_interval_s=0.04, timeout_s=0.4, sleep=sleep)
    # validating -> queued (changed), queued -> running (changed), then running and running: doubling to the cap
    assert slept[:6] == [0.01, 0.01, 0.01, 0.02, 0.04, 0.04]
    assert max(slept) == 0.04 and slept.count(0.04) >= 3
    polls = [r.at for r in server.routed("GET", r"/v1/fine_tuning/jobs/[^/]+")]
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    assert len(polls) == len(slept)  # each wait is followed by one poll
    # the server sees the waits between its polls (arrival times jitter by a few ms: a wait, not an exact gap)
    assert all(gap >= wait / 2 for gap, wait in zip(gaps, slept[1:], strict=True)), (gaps, slept)
    assert sum(gaps) >= 0.9 * sum(slept[1:]) and max(gaps[3:]) >= 0.035


def test_key_never_shown(dataset: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    train, val = dataset
    lines: list[str] = []
    with fake_finetune(api_key="sk-proj-the-right-key-000000") as server, pytest.raises(HostedFineTuneError) as caught:
        run(server, train, val, lines)
    message = str(caught.value)
    assert "HTTP 401 (invalid_api_key)" in message and "Incorrect API key provided: ***." in message
    assert "check the key in $OPENAI_API_KEY" in message
    assert KEY not in message + "\n".join(lines) + capsys.readouterr().out + repr(caught.value.args)


def test_missing_key_and_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", [example(1)])
    with pytest.raises(HostedFineTuneError, match=r"needs an API key in \$MY_KEY"):
        submit_fine_tune(train, None, BASE, api_key_env="MY_KEY", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(HostedFineTuneError, match=r"validation file .*missing.jsonl does not exist"):
        submit_fine_tune(train, tmp_path / "missing.jsonl", BASE, base_url="http://127.0.0.1:9/v1")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(HostedFineTuneError, match=r"training file .*empty.jsonl is empty"):
        submit_fine_tune(empty, None, BASE, base_url="http://127.0.0.1:9/v1")


def test_events_are_paged_back_to_the_last_seen(dataset: tuple[Path, Path]) -> None:
    """More new events between two polls than one page holds: older pages are fetched, none is skipped."""
    train, val = dataset
    lines: list[str] = []
    with fake_finetune(JobScript(running_polls=2, events_per_poll=130)) as server:
        job = run(server, train, val, lines, hyperparameters={"n_epochs": 25})
        stored = server.jobs[job.job_id]
        paged = [r for r in server.routed("GET", r".*/events") if "after" in r.query]
    assert len(stored.events) > 260
    assert [e["id"] for e in job.events] == [e["id"] for e in stored.events]
    steps = [e["data"]["step"] for e in job.events if e["type"] == "metrics"]
    assert steps == sorted(steps) and steps[-1] == 300 and len(steps) == 260
    assert len(paged) == 2  # one older page after each of the two big bursts
    assert len([line for line in lines if "training loss=" in line]) == 260


# --- Azure OpenAI ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [GA, PREVIEW])
def test_azure_supervised_end_to_end(dataset: tuple[Path, Path], version: str) -> None:
    train, val = dataset
    lines: list[str] = []
    with fake_finetune(azure=True, api_key=AZURE_KEY) as server:
        job = azure_run(server, train, val, lines, version, suffix="demo", hyperparameters={"n_epochs": 2})
        stored = server.jobs[job.job_id]
        file_reads = [server.routed("GET", f"/openai/files/{f}") for f in (job.training_file, job.validation_file)]
        created = server.routed("POST", "/openai/fine_tuning/jobs")[0].body

    hexa = job.job_id.removeprefix("ftjob-")
    assert job.status == "succeeded" and len(hexa) == 32
    assert job.statuses == ["validating_files", "queued", "running", "succeeded"]
    assert job.fine_tuned_model == f"{BASE}.ft-{hexa}-demo"
    assert job.trained_tokens == 2 * sum(example_tokens(json.loads(x)) for x in train.read_text().splitlines())
    assert all(r.path.startswith("/openai/") and r.query["api-version"] == [version] for r in server.requests)
    assert all(r.headers["api-key"] == AZURE_KEY and "authorization" not in r.headers for r in server.requests)
    assert all(file_reads)  # each file read back until Azure had imported it, before the job was created
    # no method and no metadata: every api-version takes the job so
    assert created == {
        "model": BASE,
        "training_file": job.training_file,
        "validation_file": job.validation_file,
        "suffix": "demo",
        "hyperparameters": {"n_epochs": 2},
    }
    assert stored.record["method"]["type"] == "supervised"
    assert [e["message"] for e in job.events] == [e["message"] for e in stored.events]
    assert any(job.fine_tuned_model in line for line in lines) and AZURE_KEY not in "\n".join(lines)


def test_azure_settings_from_the_standard_variables(
    dataset: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    train, _ = dataset
    with pytest.raises(HostedFineTuneError) as caught:
        submit_fine_tune(train, None, BASE, azure=AzureTarget())
    assert str(caught.value) == (
        "Azure OpenAI fine-tuning needs an endpoint (azure_endpoint, or $AZURE_OPENAI_ENDPOINT) and an API version "
        "(api_version, or $OPENAI_API_VERSION)"
    )
    with fake_finetune(azure=True) as server:
        monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", server.endpoint)
        monkeypatch.setenv("OPENAI_API_VERSION", GA)
        job = submit_fine_tune(train, None, BASE, azure=AzureTarget(), progress=lambda line: None, **FAST)
        assert job.status == "succeeded" and all(r.query["api-version"] == [GA] for r in server.requests)
        monkeypatch.delenv("AZURE_OPENAI_API_KEY")
        with pytest.raises(HostedFineTuneError, match=r"needs an API key in \$AZURE_OPENAI_API_KEY"):
            submit_fine_tune(train, None, BASE, azure=AzureTarget())


def test_azure_file_the_service_cannot_import(dataset: tuple[Path, Path]) -> None:
    train, val = dataset
    failed = {"object": "file", "id": "file-1", "purpose": "fine-tune", "filename": "train.jsonl", "bytes": 1}
    failed |= {"created_at": 0, "status": "error", "status_details": "The file is not UTF-8 encoded."}
    with fake_finetune(azure=True) as server:
        server.inject("GET", "^/openai/files/[^/]+$", Answer(body=failed))
        with pytest.raises(HostedFineTuneError) as caught:
            azure_run(server, train, val, [])
        assert not server.jobs and len(server.routed("POST", "/openai/files")) == 1  # stops at the first file
    assert (
        str(caught.value)
        == "the service could not import the training file train.jsonl: The file is not UTF-8 encoded."
    )


def test_azure_dpo_job(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", [pair(n) for n in range(12)])
    val = write_jsonl(tmp_path / "val.jsonl", [pair(n) for n in range(100, 103)])
    before = train.read_bytes()
    lines: list[str] = []
    with fake_finetune(azure=True) as server:
        job = azure_run(server, train, val, lines, method="dpo", hyperparameters={"beta": 0.2})
        stored = server.jobs[job.job_id]
        created = server.routed("POST", "/openai/fine_tuning/jobs")[0].body
        uploaded = server.files[job.training_file]

    assert job.status == "succeeded" and job.method == "dpo" and job.fine_tuned_model
    assert created["method"] == {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2}}} and "metadata" not in created
    assert stored.record["method"]["dpo"]["hyperparameters"] == {
        "n_epochs": 3,
        "batch_size": 1,
        "learning_rate_multiplier": 1.8,
        "beta": 0.2,
    }
    assert uploaded.kind == "preference" and len(uploaded.examples) == 12
    assert uploaded.examples[1] == {
        "input": {"messages": pair(1)["prompt"]},
        "preferred_output": pair(1)["chosen"],
        "non_preferred_output": pair(1)["rejected"],
    }
    assert train.read_bytes() == before  # converted in memory, nothing written
    assert f"created fine-tuning job {job.job_id} (dpo) on {BASE}: validating_files" in lines


def test_openai_dpo_job_sends_the_method(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", [pair(n) for n in range(12)])
    with fake_finetune() as server:
        job = run(server, train, None, [], method="dpo")
        created = server.routed("POST", "/v1/fine_tuning/jobs")[0].body
    assert job.status == "succeeded"
    assert created["method"] == {"type": "dpo", "dpo": {"hyperparameters": {}}}
    assert set(created["metadata"]) == {"autoevolve_request"}


def test_azure_dpo_needs_an_api_version_that_takes_the_method(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", [pair(n) for n in range(12)])
    with fake_finetune(azure=True) as server, pytest.raises(HostedFineTuneError) as caught:
        azure_run(server, train, None, [], GA, method="dpo")
    assert str(caught.value) == (
        f"the fine-tuning service refused to create a dpo job on {BASE} (api-version {GA}): HTTP 400 (invalidPayload): "
        "Unrecognized request argument supplied: method"
    )
    assert not server.jobs


def test_preference_rows_converted(tmp_path: Path) -> None:
    native = {
        "input": {"messages": [{"role": "user", "content": "hi"}]},
        "preferred_output": [{"role": "assistant", "content": "hello"}],
        "non_preferred_output": [{"role": "assistant", "content": "go away"}],
    }
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "hi", "chosen": "hello", "rejected": "go away"}, native])
    rows = [json.loads(line) for line in preference_jsonl(pairs).decode().splitlines()]
    assert rows == [native, native]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"prompt": "hi", "chosen": "hello"}, "a preference pair has prompt, chosen and rejected (or input, "),
        ({"prompt": "hi", "chosen": "hello", "rejected": []}, "no rejected answer (a non-empty text or a list of"),
        ({"prompt": "hi", "chosen": "hello", "rejected": " "}, "no rejected answer"),
        ({"prompt": "hi", "chosen": "same", "rejected": "same"}, "chosen and rejected are the same answer"),
        ({"prompt": [], "chosen": "a", "rejected": "b"}, "prompt is a list of messages or a user message's text"),
        ("{not json", "not a JSON object"),
    ],
)
def test_bad_pairs_refused_before_anything_is_sent(tmp_path: Path, row: Any, reason: str) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", [pair(1), row])
    with fake_finetune(azure=True) as server, pytest.raises(HostedFineTuneError) as caught:
        azure_run(server, train, None, [], method="dpo")
    assert str(caught.value).startswith(f"train.jsonl, line 2: {reason}")
    assert not server.requests


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (
            "wrong key",
            "the fine-tuning service refused the training file train.jsonl: HTTP 401 (401): Access denied due to "
            "invalid subscription key or wrong API endpoint.",
        ),
        (
            "key auth disabled",
            "the fine-tuning service refused the training file train.jsonl: HTTP 403 (AuthenticationTypeDisabled): "
            "Key based authentication is disabled for this resource. (check the key in $AZURE_OPENAI_API_KEY and its "
            "permissions)",
        ),
        (
            "unknown api-version",
            "the fine-tuning service refused the training file train.jsonl: HTTP 404 (404): Resource not found "
            "(check the endpoint {endpoint}/openai and the api-version 2023-01-01)",
        ),
        (
            "closed",
            f"the fine-tuning service refused to create a supervised job on {BASE} (api-version {PREVIEW}): HTTP 403 "
            "(fine_tuning_unavailable): Fine-tuning is no longer available: new fine-tuning jobs can no longer be "
            "created. (check the key in $AZURE_OPENAI_API_KEY and its permissions)",
        ),
    ],
)
def test_azure_refusals_are_said_plainly(dataset: tuple[Path, Path], case: str, expected: str) -> None:
    train, val = dataset
    with fake_finetune(azure=True, api_key=AZURE_KEY, closed=case == "closed") as server:
        if case == "wrong key":
            server.api_key = "another-key-0000000000"
        if case == "key auth disabled":
            message = "Key based authentication is disabled for this resource."
            body = {"error": {"code": "AuthenticationTypeDisabled", "message": message}}
            server.inject("POST", "^/openai/files$", Answer(403, body))
        with pytest.raises(HostedFineTuneError) as caught:
            azure_run(server, train, val, [], "2023-01-01" if case == "unknown api-version" else PREVIEW)
        assert not server.jobs and len(server.routed("POST", "/openai/fine_tuning/jobs")) <= 1  # never retried
    assert str(caught.value).startswith(expected.format(endpoint=server.endpoint))
    assert "2027" not in str(caught.value) and AZURE_KEY not in str(caught.value)


def test_openai_refusing_new_jobs_says_why(dataset: tuple[Path, Path]) -> None:
    train, val = dataset
    with fake_finetune(closed=True) as server, pytest.raises(HostedFineTuneError) as caught:
        run(server, train, val, [])
    assert str(caught.value) == (
        f"the fine-tuning service refused to create a supervised job on {BASE}: HTTP 403 (fine_tuning_unavailable): "
        "Fine-tuning is no longer available: new fine-tuning jobs can no longer be created. (check the key in "
        "$OPENAI_API_KEY and its permissions). OpenAI's self-serve fine-tuning takes no new jobs from 6 January "
        "2027: fine-tune on Azure OpenAI (--backend azure) or locally (--backend lora) instead"
    )
    assert not server.jobs and len(server.routed("POST", "/v1/fine_tuning/jobs")) == 1


# --- the duplicate-job guard and Ctrl-C --------------------------------------------------------------


@pytest.mark.parametrize("azure", [False, True], ids=["openai", "azure"])
@pytest.mark.parametrize("lost", ["5xx", "timeout"])
def test_a_job_created_by_a_failed_attempt_is_reused(dataset: tuple[Path, Path], azure: bool, lost: str) -> None:
    train, val = dataset
    lines: list[str] = []
    jobs = "/openai/fine_tuning/jobs" if azure else "/v1/fine_tuning/jobs"
    answer = error(502, "Bad gateway") if lost == "5xx" else Answer(body={}, delay_s=0.6)
    timeout = {"request_timeout_s": 0.3} if lost == "timeout" else {}
    with fake_finetune(azure=azure) as server:
        server.inject("POST", f"^{jobs}$", answer, handled=True)  # the job is made, the answer is lost
        job = (azure_run if azure else run)(server, train, val, lines, **timeout)
        assert list(server.jobs) == [job.job_id] and len(server.routed("POST", jobs)) == 1
        assert server.routed("GET", jobs)  # looked up before creating again, and found
        metadata = server.jobs[job.job_id].record["metadata"]
    assert job.status == "succeeded" and job.fine_tuned_model
    assert f"the job the failed attempt created is {job.job_id}: using it, not creating another" in lines
    assert (metadata is None) if azure else set(metadata) == {"autoevolve_request"}


def interrupt_once_running(server: FakeFineTune) -> Callable[[float], None]:
    """A sleep that is Ctrl-C once the job runs on the server."""

    def sleep(seconds: float) -> None:
        if any(job.record["status"] == "running" for job in server.jobs.values()):
            raise KeyboardInterrupt
        time.sleep(seconds)

    return sleep


@pytest.mark.parametrize("answer", [True, False, None], ids=["yes", "no", "no-terminal"])
def test_ctrl_c_while_polling_offers_to_cancel(dataset: tuple[Path, Path], answer: bool | None) -> None:
    train, val = dataset
    lines: list[str] = []
    asked: list[str] = []

    def confirm(question: str) -> bool | None:
        asked.append(question)
        return answer

    with fake_finetune(JobScript("stall")) as server:
        with pytest.raises(KeyboardInterrupt):
            run(server, train, val, lines, sleep=interrupt_once_running(server), confirm=confirm)
        (job_id,) = server.jobs
        status = server.jobs[job_id].record["status"]
        cancels = server.routed("POST", rf"/v1/fine_tuning/jobs/{job_id}/cancel")
    assert asked == [f"cancel fine-tuning job {job_id} (status running)?"]
    if answer:
        assert status == "cancelled" and len(cancels) == 1
        assert lines[-1] == f"fine-tuning job {job_id}: cancelled it (status cancelled)"
        return
    command = f'curl -X POST "{server.url}/fine_tuning/jobs/{job_id}/cancel" -H "Authorization: Bearer $OPENAI_API_KEY"'
    assert status == "running" and not cancels
    assert (
        lines[-1]
        == f"fine-tuning job {job_id} goes on running on the service (status running); to cancel it: {command}"
    )


def test_ask_on_tty(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", open(os.devnull))  # noqa: SIM115 - closed with the test's file descriptors
    assert ask_on_tty("cancel?") is None
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    for typed, expected in (("y", True), ("", False)):
        monkeypatch.setattr("builtins.input", lambda prompt, typed=typed: typed)
        assert ask_on_tty("cancel?") is expected


# --- the command line ------------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with a curated dataset; the command polls every few milliseconds."""
    folder = tmp_path / "finetune" / "datasets" / "v1"
    folder.mkdir(parents=True)
    write_jsonl(folder / "train.jsonl", [example(n) for n in range(12)])
    write_jsonl(folder / "val.jsonl", [example(n) for n in range(100, 103)])
    (tmp_path / "autoevolve.yaml").write_text("incumbent: tiny\ncandidate: tiny\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    fast = {k: v for k, v in FAST.items() if k != "timeout_s"}
    monkeypatch.setattr(hosted, "submit_fine_tune", functools.partial(hosted.submit_fine_tune, **fast))
    return tmp_path


def test_cli_azure_settings_from_the_incumbents_model_entry(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with fake_finetune(azure=True, api_key=AZURE_KEY) as server:
        entry = {"spec": "openai:prod", "azure": True, "azure_endpoint": server.endpoint, "api_version": PREVIEW}
        config = {"models": {"prod": entry}, "incumbent": "prod", "candidate": "prod"}
        (project / "autoevolve.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
        argv = ["finetune", "train", "finetune/datasets/v1", "--backend", "azure", "--base", BASE]
        assert main(argv) == 0 and len(server.jobs) == 1
        status = main([*argv, "--deployment", "ft-v1"])
    out = capsys.readouterr().out
    assert status == 0
    shown = json.dumps({**entry, "spec": "openai:DEPLOYMENT"})
    assert (
        f"on the resource, then gate it with candidate: {shown} in autoevolve.yaml\nautoevolve.yaml: unchanged" in out
    )
    assert yaml.safe_load((project / "autoevolve.yaml").read_text())["candidate"] == {**entry, "spec": "openai:ft-v1"}


def test_cli_azure_options_win(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with fake_finetune(azure=True) as server:
        argv = ["finetune", "train", "finetune/datasets/v1", "--backend", "azure", "--base", BASE, "--suffix", "s1"]
        argv += ["--azure-endpoint", server.endpoint, "--api-version", GA, "--deployment", "ft-s1"]
        assert main(argv) == 0
        assert all(r.query["api-version"] == [GA] for r in server.requests)
    expected = {"spec": "openai:ft-s1", "azure": True, "azure_endpoint": server.endpoint, "api_version": GA}
    assert yaml.safe_load((project / "autoevolve.yaml").read_text())["candidate"] == expected
    assert f"model {BASE}.ft-" in capsys.readouterr().out


@pytest.mark.parametrize("backend", ["openai", "azure"])
def test_cli_refusal_is_one_line_and_changes_nothing(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    before = (project / "autoevolve.yaml").read_text()
    argv = ["finetune", "train", "finetune/datasets/v1", "--backend", backend, "--base", BASE, "--deployment", "d"]
    with fake_finetune(closed=True, azure=backend == "azure") as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        if backend == "azure":
            argv += ["--azure-endpoint", server.endpoint, "--api-version", "2023-01-01"]
        status = main(argv)
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err
    said = err.removeprefix("autoevolve finetune train: the fine-tuning service refused ")
    if backend == "openai":
        assert said.startswith(f"to create a supervised job on {BASE}: HTTP 403 ")
        assert "takes no new jobs from 6 January 2027" in said
    else:
        assert said.startswith("the training file train.jsonl: HTTP 404 (404): Resource not found (check the endpoint")
    assert (project / "autoevolve.yaml").read_text() == before


SUBMIT_QUICKLY = (
    "import functools, sys\n"
    "from pytest_autoevolve.loops import hosted\n"
    "from pytest_autoevolve.cli.app import main\n"
    "fast = {'poll_interval_s': 0.02, 'max_poll_interval_s': 0.05}\n"
    "hosted.submit_fine_tune = functools.partial(hosted.submit_fine_tune, **fast)\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def test_sigint_while_polling_shows_how_to_cancel_and_exits_130(project: Path) -> None:
    argv = ["finetune", "train", "finetune/datasets/v1", "--backend", "azure", "--base", BASE]
    with fake_finetune(JobScript("stall"), azure=True) as server:
        env = {**os.environ, "AZURE_OPENAI_ENDPOINT": server.endpoint, "OPENAI_API_VERSION": PREVIEW}
        command = subprocess.Popen(
            [sys.executable, "-c", SUBMIT_QUICKLY, *argv],
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline, seen = time.monotonic() + 20, None
        while seen is None or len(server.requests) <= seen:  # a request after the one that made it run
            assert command.poll() is None and time.monotonic() < deadline, command.communicate()
            if seen is None and any(job.record["status"] == "running" for job in server.jobs.values()):
                seen = len(server.requests)
            time.sleep(0.01)
        command.send_signal(signal.SIGINT)
        out, err = command.communicate(timeout=20)
        (job_id,) = server.jobs
        assert server.jobs[job_id].record["status"] == "running"  # not cancelled unasked
    assert command.returncode == 130
    cancel = f'"{server.endpoint}/openai/fine_tuning/jobs/{job_id}/cancel?api-version={PREVIEW}"'
    assert f"goes on running on the service (status running); to cancel it: curl -X POST {cancel} " in out
    assert out.rstrip().endswith('-H "api-key: $AZURE_OPENAI_API_KEY"')
    assert err.strip() == "autoevolve finetune train: interrupted"
    assert AZURE_KEY not in out + err


def test_cli_dpo_on_azure_and_no_hosted_grpo(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pairs = project / "finetune" / "pairs" / "v1"
    pairs.mkdir(parents=True)
    write_jsonl(pairs / "train.jsonl", [pair(n) for n in range(12)])
    write_jsonl(pairs / "val.jsonl", [pair(n) for n in range(100, 102)])
    argv = ["finetune", "train", "finetune/pairs/v1", "--backend", "azure", "--base", BASE, "--method", "dpo"]
    with fake_finetune(azure=True) as server:
        assert main([*argv, "--azure-endpoint", server.endpoint, "--api-version", PREVIEW]) == 0
        (job,) = server.jobs.values()
        assert job.record["method"]["type"] == "dpo"
        assert {server.files[job.record[f]].kind for f in ("training_file", "validation_file")} == {"preference"}
    assert (
        main(["finetune", "train", "finetune/datasets/v1", "--backend", "openai", "--base", BASE, "--method", "grpo"])
        == 2
    )
    assert capsys.readouterr().err.strip().endswith("--backend openai trains with --method sft or dpo, not grpo")

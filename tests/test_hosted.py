"""Hosted fine-tuning against a faithful local server of the OpenAI Files and Fine-tuning APIs.

Real HTTP on 127.0.0.1 (tests/support/fake_finetune.py) and the real ``openai`` client; polling intervals of
milliseconds keep every test well under a second or two.
"""

from __future__ import annotations

import itertools
import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_autoevolve.loops.hosted import HostedFineTuneError, HostedJob, submit_fine_tune
from tests.support.fake_finetune import FakeFineTune, JobScript, example_tokens, fake_finetune
from tests.support.fake_openai import Answer, error

KEY = "sk-proj-SECRETKEY-0123456789abcdef"
BASE = "gpt-4o-mini-2024-07-18"
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


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def run(server: FakeFineTune, train: Path, val: Path | None, lines: list[str], **options: Any) -> HostedJob:
    settings = {**FAST, **options}
    return submit_fine_tune(
        train, val, settings.pop("base_model", BASE), base_url=server.url, progress=lines.append, **settings
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
        "the fine-tuning service refused to create a job on gpt-nonexistent: HTTP 400 (model_not_available, "
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
    assert all(gap >= 0.0095 for gap in gaps) and max(gaps[3:]) >= 0.039


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

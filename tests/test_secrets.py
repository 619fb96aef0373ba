"""No part of an API key or an endpoint password reaches anything a run writes or prints."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from pytest_autoevolve.providers.base import ModelSpecError, parse_spec, shown_spec
from tests.support.fake_openai import Answer, error, fake_openai, scripted

PASSWORD = f"pw{uuid.uuid4().hex[:20]}"  # random hex: no fragment of it occurs in any other text


def fragments(secret: str, size: int = 6) -> set[str]:
    """Every piece of ``secret`` of ``size`` characters: any of them found anywhere is a leak."""
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


def everything_written(root: Path, *texts: str) -> str:
    """What a run wrote: its artifacts folder (runs, cache), its junit file, and ``texts`` (the terminal)."""
    paths = [*(root / ".autoevolve").rglob("*"), root / "junit.xml"]
    files = [path.read_text(encoding="utf-8", errors="replace") for path in paths if path.is_file()]
    return "\n".join([*files, *texts])


def test_no_key_fragment_in_any_artifact(pytester, monkeypatch):
    key = f"sk{uuid.uuid4().hex}"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    # the key straddles the cuts: error messages are shortened at 500 and quoted bodies at 200 characters
    plan = {
        "cut": [error(400, "x" * 490 + f" bad key {key} rejected")],
        "body": [Answer(body="y" * 190 + key + " not json")],
        "echo": [error(401, f"Incorrect API key provided: {key}. Password {PASSWORD} for alice.")],
    }
    with fake_openai(scripted(plan)) as server:
        url = server.url.replace("http://", f"http://alice:{PASSWORD}@")
        models = {"leaky": {"spec": "openai:fake-model", "base_url": url, "max_retries": 0}}
        (pytester.path / "autoevolve.yaml").write_text(json.dumps({"models": models}), encoding="utf-8")
        pytester.makefile(
            ".yaml",
            **{
                "scenarios/secrets": "scenarios:\n"
                + "".join(f"  - {{id: {name}, input: {name}, expected: ok}}\n" for name in plan)
            },
        )
        result = pytester.runpytest(
            "--autoevolve",
            "--autoevolve-incumbent",
            "leaky",
            "--autoevolve-candidate",
            "leaky",
            "--junitxml=junit.xml",
            "-p",
            "no:cacheprovider",
        )
    trajectories = (next((pytester.path / ".autoevolve" / "runs").iterdir()) / "trajectories.jsonl").read_text()
    assert trajectories.count('"error": "TrialError') == 6  # every trial failed, and says why
    written = everything_written(pytester.path, result.stdout.str(), result.stderr.str())
    for fragment in fragments(key) | fragments(PASSWORD):
        assert fragment not in written, f"{fragment!r} of a secret was written"


def test_a_malformed_spec_does_not_print_its_key(pytester):
    key = f"sk{uuid.uuid4().hex}"
    spec = f"openai:gpt+api_key={key}+oops"
    result = pytester.runpytest("--autoevolve", "--autoevolve-candidate", spec, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    written = result.stdout.str() + result.stderr.str()
    assert "is not key=value" in written
    assert not any(fragment in written for fragment in fragments(key))


def test_specs_hide_passwords_and_secret_parameters():
    assert shown_spec(f"openai:m+base_url=https://bob:{PASSWORD}@host/v1+api_key=sk-1") == (
        "openai:m+base_url=https://***@host/v1+api_key=***"
    )
    parsed = parse_spec({"spec": "openai:m", "base_url": f"https://bob:{PASSWORD}@host/v1", "api_key": "sk-1"})
    assert parsed.display == "openai:m+base_url=https://***@host/v1"
    with pytest.raises(ModelSpecError) as caught:
        parse_spec(f"openai:m+token={PASSWORD}+broken")
    assert PASSWORD not in str(caught.value)

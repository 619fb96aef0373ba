"""The ``openai:`` provider against the real `transformers serve` running the shipped ``tiny`` folder.

Greedy decoding on both sides: the catalog run through the OpenAI-compatible server must
score exactly as the in-process ``tiny`` incumbent, with the same output for every trial.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_autoevolve.tiny import TINY_DIR
from tests.support.projects import REPO
from tests.support.runs import read_run

STARTUP_S = 90


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def tiny_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of `transformers serve` on the tiny folder, offline; stopped afterwards."""
    cli = Path(sys.executable).parent / "transformers"
    assert cli.exists(), f"{cli} not found: install the dev extra (transformers[serving])"
    port = free_port()
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [str(cli), "serve", str(TINY_DIR), "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while not healthy(url):
            if server.poll() is not None or time.monotonic() > deadline:
                log = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
                pytest.fail(f"transformers serve did not become healthy on {url} (exit {server.poll()}):\n{log}")
            time.sleep(0.25)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


def test_catalog_through_transformers_serve_scores_like_tiny(pytester, tiny_server, monkeypatch):
    shutil.copytree(REPO / "scenarios", pytester.path / "scenarios")
    monkeypatch.setenv("OPENAI_BASE_URL", f"{tiny_server}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    candidate = f"openai:{TINY_DIR}+max_tokens=32+timeout_s=30"
    result = pytester.runpytest(
        "--autoevolve", "--autoevolve-incumbent", "tiny", "--autoevolve-candidate", candidate, "-p", "no:cacheprovider"
    )
    result.stdout.fnmatch_lines(["*= autoevolve gate: *", "incumbent*tiny*pass rate*", "candidate*openai:*pass rate*"])
    trajectories, summary = read_run(pytester.path)
    trials = {
        role: {(t["scenario_id"], t["repeat"]): t for t in trajectories if t["role"] == role}
        for role in ("incumbent", "candidate")
    }
    incumbent, served = trials["incumbent"], trials["candidate"]
    assert len(served) == len(incumbent) >= 200
    assert set(served) == set(incumbent)
    assert [key for key, t in served.items() if t["error"]] == []
    assert summary["candidate"]["n"] == summary["incumbent"]["n"] == len(incumbent)
    assert summary["candidate"]["pass_rate"] == summary["incumbent"]["pass_rate"]
    assert 0 < summary["candidate"]["pass_rate"] < 1  # the tiny model solves the catalog only partly
    differing = {
        key: (incumbent[key]["output"], t["output"])
        for key, t in served.items()
        if t["output"] != incumbent[key]["output"]
    }
    assert differing == {}
    for key, trial in served.items():  # same chat template, same tokens
        assert trial["prompt_tokens"] == incumbent[key]["prompt_tokens"] > 0, key
        assert trial["completion_tokens"] == incumbent[key]["completion_tokens"] > 0, key
        assert trial["passed"] == incumbent[key]["passed"], key
        assert trial["turns"] == 1
    assert summary["regressions"] == summary["improvements"] == []

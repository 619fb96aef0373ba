"""`autoevolve cache stats | clear | prune` on a real run's cache."""

from __future__ import annotations

import os
import time

import pytest

from pytest_autoevolve.cli import main


@pytest.fixture
def cached(pytester, agents):
    (pytester.path / "scenarios").mkdir()
    catalog = "scenarios:\n" + "".join(f"  - {{id: q{n}, input: 'say {n}', expected: '{n}'}}\n" for n in range(4))
    (pytester.path / "scenarios" / "say.yaml").write_text(catalog, encoding="utf-8")
    model = "python:toyagents:echo"
    pytester.runpytest("--autoevolve", "--autoevolve-incumbent", model, "--autoevolve-candidate", model)
    os.chdir(pytester.path)
    return pytester.path / ".autoevolve" / "cache" / "models"


def test_stats_prune_and_clear(cached, capsys):
    entries = sorted(cached.glob("*/*.json"))
    assert len(entries) == 4
    assert main(["cache", "stats"]) == 0
    assert capsys.readouterr().out.startswith("models   4 entries, ")
    old = time.time() - 40 * 86400
    for path in entries[:3]:
        os.utime(path, (old, old))
    assert main(["cache", "prune", "--older-than", "30d"]) == 0
    assert capsys.readouterr().out == "removed 3 cache entries written more than 30d ago\n"
    assert main(["cache", "clear", "--namespace", "models"]) == 0
    assert capsys.readouterr().out == "removed 1 cache entries\n"
    assert list(cached.glob("*/*.json")) == []


def test_prune_needs_a_duration(cached, capsys):
    assert main(["cache", "prune"]) == 2
    assert "prune needs --older-than DURATION" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["cache", "prune", "--older-than", "a while"])
    assert "a duration is a number and s, m, h or d" in capsys.readouterr().err

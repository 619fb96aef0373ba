"""The response cache keys a trial on what the model is handed: an edited scenario or tool is a fresh call."""

from __future__ import annotations

import json

from tests.support.runs import run_dirs

CATALOG = """
scenarios:
  - id: capital
    input: "capital?"
    expected: Rome
    metadata: {answer: Paris}
  - id: tool
    input: "tool?"
    expected: "2"
    tools: [cache_tools:lookup]
"""
AGENT = """
def answer(messages, scenario):
    if scenario.tools:
        return str(scenario.tools[0].function())
    return scenario.metadata["answer"]
"""


def calls(pytester) -> tuple[int, int]:
    """Cache hits and model calls of the latest run."""
    cache = json.loads((run_dirs(pytester.path)[-1] / "summary.json").read_text())["cache"]
    return cache["hits"], cache["model_calls"]


def test_edited_metadata_or_tool_code_is_a_fresh_call(pytester):
    (pytester.path / "scenarios").mkdir()
    catalog = pytester.path / "scenarios" / "cache.yaml"
    catalog.write_text(CATALOG, encoding="utf-8")
    pytester.makepyfile(cache_agent=AGENT, cache_tools="def lookup():\n    return 1\n")
    spec = "python:cache_agent:answer"
    args = ["--autoevolve", "--autoevolve-incumbent", spec, "--autoevolve-candidate", spec, "-p", "no:cacheprovider"]

    pytester.runpytest_subprocess(*args).assert_outcomes(failed=4)
    assert calls(pytester) == (2, 2)  # one model in both roles: the second role's trials are answered from the first's
    pytester.runpytest_subprocess(*args).assert_outcomes(failed=4)
    assert calls(pytester) == (4, 0)  # nothing changed: every answer from the cache

    catalog.write_text(CATALOG.replace("answer: Paris", "answer: Rome"), encoding="utf-8")
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=2, failed=2)
    assert calls(pytester) == (3, 1)  # the edited scenario asked again (once for both roles), the other one not

    (pytester.path / "cache_tools.py").write_text("def lookup():\n    return 2\n", encoding="utf-8")
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=4)
    assert calls(pytester) == (2, 2)  # the tool's module is a project file the agent can read: both asked again

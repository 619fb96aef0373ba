"""Agents the tests write into their projects as ``python:`` models: each module's source, written once."""

from __future__ import annotations

# The module ``toyagents`` of the `agents` fixture: echo, answer, boom, slow.
AGENTS = """
import time

def echo(messages):
    return messages[-1]["content"]

def answer(messages, scenario, seed, repeat):
    return {"output": scenario.expected or "", "usage": {"prompt_tokens": 3, "completion_tokens": 1}}

def boom(messages):
    raise RuntimeError("model exploded")

def slow(messages):
    time.sleep(5)
    return "late"
"""

# ``agent.py`` of the git projects (`tests.support.projects.git_project`): a fixed, scenario-dependent
# share of the answers is right, more at a higher level; ``LEVEL = 1`` is what an edit of the code changes.
LEVEL_AGENT = """
import os
import time
import zlib

LEVEL = 1


def level(scenario, n):
    right = zlib.crc32(scenario.id.encode()) % 4 < n
    return (scenario.expected or "") if right else "?"


def answer(messages, scenario):
    return level(scenario, LEVEL)


def bad(messages, scenario):
    return level(scenario, 0)


def weak(messages, scenario):
    if "AGENT_CALLS" in os.environ:  # counts the base side's model calls
        with open(os.environ["AGENT_CALLS"], "a") as log:
            log.write(scenario.id + "\\n")
    return level(scenario, 1)


def strong(messages, scenario):
    return level(scenario, 3)


def slow(messages, scenario):
    time.sleep(1)
    return level(scenario, 3)
"""

# Models for "say N" scenarios whose right answer is N, each right on its own share of the numbers.
SAY_AGENTS = """
def _n(messages):
    return int(messages[-1]["content"].split()[-1])

def strong(messages):
    return str(_n(messages))

def better(messages):
    return str(_n(messages))

def half(messages):
    n = _n(messages)
    return str(n) if n % 2 == 0 else "?"

def weak(messages):
    n = _n(messages)
    return str(n) if n % 3 == 0 else "?"

def worse(messages):
    n = _n(messages)
    return str(n) if n % 4 == 0 else "?"

def breaks_critical(messages):
    n = _n(messages)
    return "?" if n == 0 else str(n)

def flaky(messages, scenario, seed, repeat):
    n = _n(messages)
    return str(n) if (seed + n) % 4 else "?"

def shaky(messages, scenario, seed, repeat):
    n = _n(messages)
    return str(n) if (seed + n) % 2 else "?"

def erroring(messages):
    raise ConnectionError("endpoint down")
"""

"""Curation of trajectories into a chat fine-tuning dataset: rules, dedupe, split, versions, leakage guard."""

from __future__ import annotations

import json
import re
import textwrap
from datetime import datetime

import pytest

from pytest_autoevolve.catalog.loader import load_catalog
from pytest_autoevolve.files import TrajectoryWriter
from pytest_autoevolve.graders.builtin import default_registry
from pytest_autoevolve.loops.dataset import DATASET_FORMAT_VERSION, LeakageError, curate, dataset_sha256, read_dataset
from pytest_autoevolve.loops.examples import DatasetError, example_sha256, prompt_sha256, validate_example
from pytest_autoevolve.records import Trajectory
from pytest_autoevolve.run.runner import grade
from tests.support.projects import REPO
from tests.support.runs import read_jsonl

# A user's agent whose behaviour each scenario picks through its metadata.
CURATION_AGENTS = """
import json
import time

def mixed(messages, scenario, repeat):
    kind = scenario.metadata.get("kind", "good")
    if kind == "error":
        raise RuntimeError("model exploded")
    if kind == "fail":
        return "wrong answer"
    if kind == "slow":
        time.sleep(0.3)
    answer = messages[-1]["content"].split()[-1]
    reply = {"output": f"the answer is {answer} (take {repeat})"}
    if kind == "pricey":
        reply["cost"] = 5.0
    return reply

def same(messages):
    return "the answer is " + messages[-1]["content"].split()[-1]

def add(a: int, b: int) -> int:
    \"\"\"Add two whole numbers.\"\"\"
    return a + b

def tooler(messages, scenario, repeat):
    a, b = (int(x) for x in messages[-1]["content"].split()[-1].split("+"))
    record = scenario.tools[0].call(json.dumps({"a": a, "b": b}))
    total = str(record["result"])
    if scenario.metadata.get("style") == "plugin":
        # the plugin's own record form, no final assistant message: curation converts and completes it
        calls = [{"name": "add", "arguments": {"a": a, "b": b}}]
        convo = [*messages, {"role": "assistant", "content": "", "tool_calls": calls},
                 {"role": "tool", "tool_call_id": "call_0", "content": record["result"]}]
    else:
        call = {"id": f"call_{repeat}", "type": "function",
                "function": {"name": "add", "arguments": json.dumps({"a": a, "b": b})}}
        convo = [*messages, {"role": "assistant", "content": None, "tool_calls": [call]},
                 {"role": "tool", "tool_call_id": call["id"], "content": total},
                 {"role": "assistant", "content": total}]
    return {"output": total, "messages": convo, "tool_calls": [record]}
"""

GOOD = list(range(101, 125))  # 24 scenarios that pass

CATALOG = """
defaults:
  split: train
scenarios:
  - id: good-{{n}}
    input: "echo {{n}}"
    expect:
      - contains: "{{n}}"
    split: %(good_split)s
    vars:
      n: %(good)s
  - id: fails
    input: "echo 7"
    expect:
      - contains: "7"
    metadata: {kind: fail}
  - id: errs
    input: "echo 8"
    expect:
      - contains: "8"
    metadata: {kind: error}
  - id: slow
    input: "echo 9"
    expect:
      - contains: "9"
    metadata: {kind: slow}
  - id: pricey
    input: "echo 10"
    expect:
      - contains: "10"
    metadata: {kind: pricey}
  - id: held-out
    input: "echo 11"
    expect:
      - contains: "11"
    split: eval
"""

TOOLS = """
defaults:
  split: train
  tools: [cagents:add]
scenarios:
  - id: sum-{{a}}-{{b}}
    input: "add {{a}}+{{b}}"
    expected: "{{total}}"
    expect:
      - tool_called: add
    vars:
      - {a: 2, b: 3, total: 5}
      - {a: 4, b: 4, total: 8}
      - {a: 9, b: 1, total: 10}
  - id: plugin-sum
    input: "add 6+7"
    expected: "13"
    metadata: {style: plugin}
"""


def write_catalog(write_scenarios, *, good_split="train", extra=""):
    text = textwrap.dedent(CATALOG) % {"good_split": good_split, "good": json.dumps(GOOD)}
    return write_scenarios(text + extra)


def run(pytester, agent, *extra):
    """One candidate run over the pytester catalog; the new run folder."""
    runs = pytester.path / ".autoevolve" / "runs"
    before = set(runs.iterdir()) if runs.exists() else set()
    pytester.runpytest(
        "--autoevolve",
        "--autoevolve-incumbent",
        "python:cagents:same",
        "--autoevolve-candidate",
        f"python:cagents:{agent}",
        "--autoevolve-split",
        "all",
        "-k",
        "candidate",
        "-p",
        "no:cacheprovider",
        *extra,
    )
    (folder,) = set(runs.iterdir()) - before
    assert (folder / "trajectories.jsonl").is_file()
    return folder


def catalog_of(pytester):
    return load_catalog([pytester.path / "scenarios"], default_registry(), pytester.path)


@pytest.fixture
def cagents(pytester):
    """The curation agents, importable in runs as the module ``cagents``."""
    pytester.makepyfile(cagents=CURATION_AGENTS)
    pytester.syspathinsert()


@pytest.fixture
def mixed_run(pytester, write_scenarios, cagents):
    """A real run of `mixed` (2 repeats) over the catalog, plus two records no run of this catalog makes."""
    write_catalog(write_scenarios)
    folder = run(pytester, "mixed", "--autoevolve-repeats", "2")
    writer = TrajectoryWriter(folder / "trajectories.jsonl")
    ungraded = dict(
        scenario_id="good-101",
        role="candidate",
        model="python:cagents:mixed",
        seed=1,
        repeat=9,
        messages=[{"role": "user", "content": "echo 101"}],
        output="101",
        split="train",
    )
    writer.append(Trajectory(**ungraded))  # a trial never graded: not passed, no grades
    writer.append(Trajectory(**{**ungraded, "scenario_id": "gone", "passed": True}))  # not in the catalog
    return folder


def scenario_of(row):
    """The good-N scenario a row of the mixed catalog came from, by its prompt."""
    return "good-" + row["messages"][0]["content"].split()[-1]


def test_rules_reject_and_count_by_reason(pytester, mixed_run, tmp_path):
    dataset = curate([mixed_run], catalog_of(pytester), tmp_path / "ds", max_latency_s=0.2, max_cost=1.0)
    counts = dataset.manifest["counts"]
    assert counts["read"] == 24 * 2 + 5 * 2 + 2
    assert counts["rejected"] == {
        "unknown_scenario": 1,
        "eval_split": 2,
        "error": 2,
        "grader_failed": 2,
        "failed": 1,
        "over_latency": 2,
        "over_cost": 2,
    }
    assert counts["failed_graders"] == {"contains": 2}
    assert counts["kept"] == 48 and counts["duplicates"] == 0
    assert dataset.train + dataset.val == 48
    rows = read_jsonl(dataset.path / "train.jsonl") + read_jsonl(dataset.path / "val.jsonl")
    assert {scenario_of(r) for r in rows} == {f"good-{n}" for n in GOOD}
    for row in rows:  # the final assistant reply is the graded output, prompt first
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
        assert row["messages"][1]["content"].startswith(f"the answer is {row['messages'][0]['content'].split()[-1]}")
    # without limits the slow and pricey trials are kept
    loose = curate([mixed_run], catalog_of(pytester), tmp_path / "loose")
    assert loose.manifest["counts"]["kept"] == 52
    assert "over_latency" not in loose.manifest["counts"]["rejected"]


def test_dedupe_by_whole_example(pytester, mixed_run, tmp_path):
    second = run(pytester, "mixed", "--autoevolve-repeats", "2", "--autoevolve-cache", "off")
    dataset = curate([mixed_run, second], catalog_of(pytester), tmp_path / "ds", max_latency_s=0.2, max_cost=1.0)
    counts = dataset.manifest["counts"]
    assert counts["kept"] == 48 and counts["duplicates"] == 48
    rows = read_jsonl(dataset.path / "train.jsonl") + read_jsonl(dataset.path / "val.jsonl")
    hashes = [example_sha256(r) for r in rows]
    assert len(set(hashes)) == len(hashes) == 48
    # one reply per scenario and repeat: "same" answers identically on every repeat, so only one is kept
    third = run(pytester, "same", "--autoevolve-repeats", "3")
    plain = curate([third], catalog_of(pytester), tmp_path / "plain", min_examples=5)
    assert plain.manifest["counts"]["kept"] == 24 + 4  # "same" passes every train scenario
    assert plain.manifest["counts"]["duplicates"] == 28 * 2
    assert plain.manifest["models"] == ["python:cagents:same"]


def test_split_by_scenario_is_deterministic(pytester, mixed_run, tmp_path):
    catalog = catalog_of(pytester)
    first = curate([mixed_run], catalog, tmp_path / "a", max_latency_s=0.2, max_cost=1.0, val_fraction=0.25)
    again = curate([mixed_run], catalog, tmp_path / "b", max_latency_s=0.2, max_cost=1.0, val_fraction=0.25)
    train_ids, val_ids = first.manifest["scenarios"]["train"], first.manifest["scenarios"]["val"]
    assert len(val_ids) == 6 and len(train_ids) == 18  # a quarter of 24 scenarios
    assert again.manifest["scenarios"] == first.manifest["scenarios"]
    assert (again.path / "train.jsonl").read_bytes() == (first.path / "train.jsonl").read_bytes()
    train_rows, val_rows = read_jsonl(first.path / "train.jsonl"), read_jsonl(first.path / "val.jsonl")
    assert {scenario_of(r) for r in train_rows} == set(train_ids)
    assert {scenario_of(r) for r in val_rows} == set(val_ids)
    assert not set(train_ids) & set(val_ids)
    assert len(val_rows) == 12  # both repeats of each val scenario on the val side
    others = [
        curate(
            [mixed_run], catalog, tmp_path / f"s{seed}", max_latency_s=0.2, max_cost=1.0, val_fraction=0.25, seed=seed
        ).manifest["scenarios"]["val"]
        for seed in (1, 2, 3)
    ]
    assert any(other != val_ids for other in others)  # the seed picks the val scenarios


def test_versions_and_content_hash(pytester, mixed_run, tmp_path):
    catalog, out = catalog_of(pytester), tmp_path / "datasets"
    one = curate([mixed_run], catalog, out, max_latency_s=0.2, max_cost=1.0)
    two = curate([mixed_run], catalog, out, max_latency_s=0.2, max_cost=1.0)
    three = curate([mixed_run], catalog, out, max_latency_s=0.2, max_cost=1.0, seed=7)
    assert one.sha256 == two.sha256 != three.sha256
    assert one.path.name == f"v1-{one.sha256[:8]}" and one.version == one.path.name
    assert two.path.name == f"v2-{one.sha256[:8]}"
    assert three.path.name == f"v3-{three.sha256[:8]}"
    assert sorted(p.name for p in out.iterdir()) == [one.version, two.version, three.version]  # no temp left
    assert sorted(p.name for p in one.path.iterdir()) == ["manifest.json", "train.jsonl", "val.jsonl"]


def test_every_line_is_a_chat_example_and_manifest_has_provenance(pytester, mixed_run, tmp_path):
    dataset = curate(
        [mixed_run],
        catalog_of(pytester),
        tmp_path / "ds",
        max_latency_s=0.2,
        max_cost=1.0,
        model_spec="python:cagents:mixed",
        git_commit="0123abcd" * 5,
        seed=3,
        val_fraction=0.2,
    )
    train, val, manifest = read_dataset(dataset.path)
    for name in ("train.jsonl", "val.jsonl"):
        for line in (dataset.path / name).read_text(encoding="utf-8").splitlines():
            validate_example(json.loads(line))
    assert len(train) == dataset.train and len(val) == dataset.val
    assert manifest == dataset.manifest
    assert manifest["format_version"] == DATASET_FORMAT_VERSION
    assert datetime.fromisoformat(manifest["created_at"]).tzinfo is not None
    assert manifest["sources"] == [{"run_ids": [mixed_run.name], "path": str(mixed_run), "trajectories": 60}]
    assert manifest["model_spec"] == "python:cagents:mixed" and manifest["models"] == ["python:cagents:mixed"]
    assert manifest["git_commit"] == "0123abcd" * 5
    assert manifest["seed"] == 3 and manifest["val_fraction"] == 0.2
    train_bytes, val_bytes = (dataset.path / "train.jsonl").read_bytes(), (dataset.path / "val.jsonl").read_bytes()
    assert manifest["sha256"] == dataset_sha256(train_bytes, val_bytes) == dataset.sha256
    assert [e["sha256"] for e in manifest["examples"]["train"]] == [example_sha256(r) for r in train]
    assert [e["sha256"] for e in manifest["examples"]["val"]] == [example_sha256(r) for r in val]
    assert {e["scenario_id"] for e in manifest["examples"]["val"]} == set(manifest["scenarios"]["val"])
    assert all(e["run_id"] == mixed_run.name for e in manifest["examples"]["train"])
    assert manifest["counts"]["train"] == len(train) and manifest["counts"]["val"] == len(val)
    # an edited file, or another format version, is refused on reading
    (dataset.path / "val.jsonl").write_bytes(val_bytes + val_bytes.splitlines(keepends=True)[0])
    with pytest.raises(DatasetError, match="changed after curation"):
        read_dataset(dataset.path)
    (dataset.path / "val.jsonl").write_bytes(val_bytes)
    (dataset.path / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}), "utf-8")
    with pytest.raises(DatasetError, match="format_version 99"):
        read_dataset(dataset.path)


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ([], "is a JSON object"),
        ({"messages": []}, "non-empty list"),
        ({"messages": [{"role": "user", "content": "hi"}], "extra": 1}, "unknown key"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "role 'robot'"),
        ({"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "x"}]}, "is a string"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "last message is the assistant"),
        ({"messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "x"}]}, "user message"),
        ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None}]}, "null only"),
        (
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "tool", "content": "1"},
                    {"role": "assistant", "content": "x"},
                ]
            },
            "tool_call_id",
        ),
        (
            {"messages": [{"role": "user", "content": "hi", "tool_calls": []}, {"role": "assistant", "content": "x"}]},
            "only assistant",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": {}}}],
                    },
                    {"role": "assistant", "content": "x"},
                ]
            },
            "JSON string",
        ),
    ],
)
def test_validate_example_refuses(row, problem):
    with pytest.raises(DatasetError, match=re.escape(problem)):
        validate_example(row)


def test_leakage_by_eval_id_refuses_and_writes_nothing(pytester, mixed_run, write_scenarios, tmp_path):
    write_catalog(write_scenarios, good_split="eval")  # the catalog now holds the good scenarios out
    out = tmp_path / "ds"
    with pytest.raises(LeakageError) as caught:
        curate([mixed_run], catalog_of(pytester), out, max_latency_s=0.2, max_cost=1.0, min_examples=1)
    message = str(caught.value)
    assert "24 scenario(s): good-101, good-102, good-103, good-104, good-105 and 19 more" in message
    assert "eval split by id" in message
    assert not out.exists() or not any(out.iterdir())


def test_leakage_by_prompt_under_another_id(pytester, mixed_run, write_scenarios, tmp_path):
    exam = '  - id: exam-1\n    input: "  echo   101 "\n    expected: "101"\n    split: eval\n'
    write_catalog(write_scenarios, extra=exam)
    out = tmp_path / "ds"
    with pytest.raises(
        LeakageError,
        match=r"1 scenario\(s\) whose prompt equals an eval scenario's: "
        r"good-101 \(= eval exam-1\)",
    ):
        curate([mixed_run], catalog_of(pytester), out, max_latency_s=0.2, max_cost=1.0)
    assert not out.exists() or not any(out.iterdir())


def test_too_small_or_one_sided_dataset_is_an_error(pytester, mixed_run, tmp_path):
    out = tmp_path / "ds"
    with pytest.raises(DatasetError, match=r"too few examples to train on: 48 kept, min_examples=100") as caught:
        curate([mixed_run], catalog_of(pytester), out, max_latency_s=0.2, max_cost=1.0, min_examples=100)
    assert "grader_failed 2" in str(caught.value) and "read 60" in str(caught.value)
    assert not out.exists() or not any(out.iterdir())


def test_a_single_scenario_cannot_fill_both_splits(pytester, write_scenarios, cagents, tmp_path):
    write_scenarios(
        "scenarios:\n  - id: only\n    input: 'echo 5'\n    expected: 'the answer is 5'\n    split: train\n"
    )
    folder = run(pytester, "same", "--autoevolve-repeats", "2")
    with pytest.raises(DatasetError, match="val split would be empty: 1 example"):
        curate([folder], catalog_of(pytester), tmp_path / "ds", min_examples=1)
    assert not (tmp_path / "ds").exists() or not any((tmp_path / "ds").iterdir())


def test_no_trajectories_is_an_error(tmp_path):
    catalog = load_catalog([REPO / "scenarios"], default_registry(), REPO)
    with pytest.raises(DatasetError, match="no trajectories"):
        curate([tmp_path / "nothing"], catalog, tmp_path / "ds")


def test_tool_call_trajectories_keep_openai_format(pytester, write_scenarios, cagents, tmp_path):
    write_scenarios(TOOLS)
    folder = run(pytester, "tooler")
    dataset = curate([folder], catalog_of(pytester), tmp_path / "ds", min_examples=4, val_fraction=0.25)
    train, val, _ = read_dataset(dataset.path)
    rows = {row["messages"][0]["content"]: row for row in train + val}
    assert len(rows) == 4
    schema = {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two whole numbers.",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "required": ["a", "b"],
            },
        },
    }
    assert rows["add 2+3"] == {
        "messages": [
            {"role": "user", "content": "add 2+3"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_0", "type": "function", "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "call_0", "content": "5"},
            {"role": "assistant", "content": "5"},
        ],
        "tools": [schema],
    }
    # the plugin's {name, arguments} record form becomes the OpenAI form, and the graded reply is appended
    plugin = rows["add 6+7"]["messages"]
    assert plugin[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_0", "type": "function", "function": {"name": "add", "arguments": '{"a": 6, "b": 7}'}}
        ],
    }
    assert plugin[2] == {"role": "tool", "tool_call_id": "call_0", "content": "13"}
    assert plugin[3] == {"role": "assistant", "content": "13"}


def demo_trajectory(scenario, output, split=None, run_id="demo-run"):
    trajectory = Trajectory(
        scenario_id=scenario.id,
        role="candidate",
        model="tiny",
        seed=0,
        repeat=0,
        run_id=run_id,
        messages=[*map(dict, scenario.messages), {"role": "assistant", "content": output}],
        output=output,
        split=split or scenario.split,
        latency_s=0.01,
        scenario_file=scenario.path,
    )
    grade(trajectory, scenario)
    return trajectory


def test_shipped_demo_catalog_curates_without_eval_leakage(tmp_path):
    catalog = load_catalog([REPO / "scenarios"], default_registry(), REPO)
    run_dir = tmp_path / "runs" / "demo-run"
    writer = TrajectoryWriter(run_dir / "trajectories.jsonl")
    for scenario in catalog:  # every scenario answered right: the eval ones must still stay out
        assert scenario.expected is not None or scenario.split == "eval"
        writer.append(demo_trajectory(scenario, scenario.expected or "x"))
    dataset = curate([run_dir], catalog, tmp_path / "ds", model_spec="tiny")
    train, val, manifest = read_dataset(dataset.path)
    eval_ids = {s.id for s in catalog.split("eval")}
    train_ids = {s.id for s in catalog.split("train")}
    chosen = set(manifest["scenarios"]["train"]) | set(manifest["scenarios"]["val"])
    assert chosen == train_ids and not chosen & eval_ids
    assert manifest["counts"]["rejected"] == {"eval_split": len(eval_ids)}
    assert len(train) + len(val) == len(train_ids)
    eval_prompts = {prompt_sha256(s.messages) for s in catalog.split("eval")}
    assert not {prompt_sha256(row["messages"]) for row in train + val} & eval_prompts
    # an eval scenario recorded as train (a run made on another catalog) is refused by the guard
    eval_scenario = catalog.split("eval")[0]
    writer.append(demo_trajectory(eval_scenario, eval_scenario.expected or "", split="train"))
    with pytest.raises(LeakageError, match=re.escape(f"1 scenario(s): {eval_scenario.id} of the eval split")):
        curate([run_dir], catalog, tmp_path / "leak")
    assert not (tmp_path / "leak").exists() or not any((tmp_path / "leak").iterdir())

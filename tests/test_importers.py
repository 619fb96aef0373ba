"""`autoevolve import`: promptfoo, OpenAI evals, Inspect and row files as scenario files that load and run.

The promptfoo fixture (tests/fixtures/promptfoo) holds a test for each assertion type with a right and a
wrong answer in its vars; results.json is promptfoo's own run of it (promptfoo 0.121.20, its python
providers `right` and `wrong`). The imported scenarios must give the same verdict as promptfoo, grader by
grader, on the same outputs.
"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from pytest_autoevolve.catalog.importers import ImportOptions, SourceError, import_source
from pytest_autoevolve.catalog.importers.promptfoo import assertion_from_string, comma_values
from pytest_autoevolve.catalog.importers.templates import TemplateError, render
from pytest_autoevolve.catalog.loader import load_file
from pytest_autoevolve.cli import app as cli
from pytest_autoevolve.graders import default_registry
from tests.support.runs import read_run

FIXTURES = Path(__file__).parent / "fixtures"

# The agents of the imported promptfoo scenarios: the answers promptfoo's `right` and `wrong` providers gave.
PROMPTFOO_AGENTS = """
import json
import sys
import time


def right(messages, scenario):
    return {"output": scenario.metadata["vars"]["right"], "cost": 0.001}


def wrong(messages, scenario):
    variables = scenario.metadata["vars"]
    if variables.get("slow"):
        time.sleep(0.4)
    return {"output": variables["wrong"], "cost": 0.05}


def judge(messages):
    text = messages[-1]["content"]
    response = text[text.rfind("Response to grade:"):]
    return json.dumps({"reasoning": "looked for Paris", "score": float("Paris" in response)})
"""


def cli_run(capsys, *argv):
    capsys.readouterr()
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def promptfoo_project(pytester):
    """The promptfoo fixture copied into the pytester folder, with the agents and a judge."""
    shutil.copytree(FIXTURES / "promptfoo", pytester.path / "pf")
    pytester.makepyfile(pfagents=PROMPTFOO_AGENTS)
    pytester.syspathinsert()
    (pytester.path / "autoevolve.yaml").write_text("judge: python:pfagents:judge\n", encoding="utf-8")
    return pytester


def promptfoo_verdicts():
    """promptfoo's own verdicts in results.json: {(provider, test description): [(assertion type, passed)]}."""
    data = json.loads((FIXTURES / "promptfoo" / "results.json").read_text(encoding="utf-8"))
    return {
        (r["provider"]["label"], r["testCase"]["description"]): [
            (c["assertion"]["type"], c["pass"]) for c in r["gradingResult"]["componentResults"]
        ]
        for r in data["results"]["results"]
    }


# --- promptfoo ----------------------------------------------------------------------------------------------


def test_promptfoo_config_imports_every_assertion_type(promptfoo_project, capsys):
    status, out, err = cli_run(capsys, "import", "promptfoo", "pf/promptfooconfig.yaml", "-o", "scenarios/pf.yaml")
    assert (status, err) == (0, "")
    assert "wrote scenarios/pf.yaml: 24 scenarios from pf/promptfooconfig.yaml" in out
    for line in (
        "mapped: equals -> identical (1)",
        "mapped: icontains-all -> icontains_all (1)",
        "mapped: contains-json -> contains_json (1)",
        "mapped: is-json -> json_schema (1)",
        "mapped: not-starts-with -> not starts_with (1)",
        "mapped: not-contains -> not_contains (2)",
        "mapped: levenshtein -> levenshtein (2)",
        "mapped: latency -> max_latency_s (1)",
        "mapped: cost -> max_cost (1)",
        "mapped: python -> python_assert (2)",
        "mapped: llm-rubric -> llm_judge (1)",
        "not imported: javascript: runs JavaScript (1)",
        "1 scenarios tagged partial_import",
    ):
        assert line in out, line
    scenarios = load_file(
        promptfoo_project.path / "scenarios" / "pf.yaml", default_registry(judge=_Judge()), "scenarios/pf.yaml"
    )
    by_id = {s.id: s for s in scenarios}
    assert by_id["pf.javascript-is-not-imported"].tags == ("partial_import",)
    assert by_id["pf.javascript-is-not-imported"].metadata["not_imported"] == ["javascript: runs JavaScript"]
    assert by_id["pf.csv-capital"].input == "Answer briefly: capital of France?"  # CSV row vars in the prompt
    assert [c.name for c in by_id["pf.equals"].graders] == ["not", "identical"]  # defaultTest.assert first


class _Judge:
    default = "python:pfagents:judge"

    def describe(self, spec):
        return str(spec)


def test_imported_promptfoo_scenarios_give_promptfoos_verdicts(promptfoo_project, capsys):
    assert cli_run(capsys, "import", "promptfoo", "pf/promptfooconfig.yaml", "-o", "scenarios/pf.yaml")[0] == 0
    result = promptfoo_project.runpytest(
        "--autoevolve",
        "--autoevolve-incumbent=python:pfagents:wrong",
        "--autoevolve-candidate=python:pfagents:right",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=24, failed=24)  # the right agent passes every scenario, the wrong one none
    trajectories, summary = read_run(promptfoo_project.path)
    assert summary["verdict"] == "pass"
    written = yaml.safe_load((promptfoo_project.path / "scenarios" / "pf.yaml").read_text(encoding="utf-8"))
    descriptions = {s["id"]: s["description"] for s in written["scenarios"]}
    theirs = promptfoo_verdicts()
    provider = {"candidate": "right", "incumbent": "wrong"}
    assert len(trajectories) == len(theirs) == 48
    for trial in trajectories:  # grader by grader, the same verdict as promptfoo's on the same output
        verdicts = theirs[provider[trial["role"]], descriptions[trial["scenario_id"]]]
        expected = [passed for kind, passed in verdicts if kind != "javascript"]
        assert [g["passed"] for g in trial["grades"]] == expected, (
            trial["scenario_id"],
            trial["role"],
            trial["grades"],
        )


@pytest.mark.parametrize(
    ("cell", "assertion"),
    [
        ("Paris", {"type": "equals", "value": "Paris"}),
        ("icontains:PARIS", {"type": "icontains", "value": "PARIS"}),
        ("not-contains:London", {"type": "not-contains", "value": "London"}),
        ('contains-any:red,"blue, surely"', {"type": "contains-any", "value": ["red", "blue, surely"]}),
        ("levenshtein(3):hi there", {"type": "levenshtein", "value": "hi there", "threshold": 3.0}),
        ("starts-with:hi", {"type": "starts-with", "value": "hi", "threshold": 0.75}),
        ("is-json", {"type": "is-json"}),
        ("grade:is polite", {"type": "llm-rubric", "value": "is polite"}),
        ("python:output == 'x'", {"type": "python", "value": "output == 'x'"}),
        ("fn:output.length > 3", {"type": "javascript", "value": "output.length > 3"}),
    ],
)
def test_csv_expected_cells_read_as_promptfoo_reads_them(cell, assertion):
    assert assertion_from_string(cell) == assertion


def test_comma_values_keep_quoted_commas():
    assert comma_values('a, "b, c",d') == ["a", "b, c", "d"]


@pytest.mark.parametrize(
    ("template", "text"),
    [
        ("Hi {{ name }}!", "Hi Ada!"),
        ("{{name|upper}} {{ name | lower }}", "ADA ada"),
        ("{{ user.city }} {{ items[1] }} {{ items | join(', ') }}", "Paris b a, b"),
        ("{{ missing }}|{{ missing | default('none') }}", "|none"),
        ("{# a comment #}{% raw %}{{ kept }}{% endraw %}", "{{ kept }}"),
        ("{{ count }} {{ ratio }} {{ user | dump }}", '3 1.5 {"city": "Paris"}'),
    ],
)
def test_templates_render_as_nunjucks(template, text):
    variables = {"name": "Ada", "user": {"city": "Paris"}, "items": ["a", "b"], "count": 3.0, "ratio": 1.5}
    assert render(template, variables) == text


def test_template_tags_beyond_output_are_refused():
    with pytest.raises(TemplateError, match="not supported"):
        render("{% if x %}y{% endif %}", {"x": 1})


def write_config(folder: Path, text: str) -> Path:
    path = folder / "promptfooconfig.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_prompts_times_tests_with_list_vars_and_chat_prompts(tmp_path):
    (tmp_path / "chat.json").write_text(
        json.dumps([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say {{word}}"}]),
        encoding="utf-8",
    )
    (tmp_path / "prompts.txt").write_text("First {{word}}\n---\nSecond {{word}}\n", encoding="utf-8")
    config = write_config(
        tmp_path,
        """
        prompts:
          - file://chat.json
          - file://prompts.txt
        tests:
          - vars: {word: [yes, no]}
            assert: [{type: contains, value: "{{word}}"}]
        """,
    )
    imported = import_source("promptfoo", config, ImportOptions(id_prefix="x", output_dir=tmp_path))
    ids = [s["id"] for s in imported.scenarios]
    assert len(ids) == 6 and len(set(ids)) == 6  # 3 prompts x 2 values of the list var
    chat = imported.scenarios[0]
    assert chat["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say yes"}]
    assert chat["expect"] == [{"contains": "yes"}]
    assert [s.get("input") for s in imported.scenarios[1:3]] == ["First yes", "Second yes"]


def test_unsupported_assertions_alone_leave_the_test_out(tmp_path):
    config = write_config(
        tmp_path,
        """
        prompts: ["{{q}}"]
        tests:
          - description: only similar
            vars: {q: hi}
            assert: [{type: similar, value: hello}]
          - description: kept
            vars: {q: hi}
            assert: [{type: webhook, value: "http://x"}, {type: icontains, value: hi}]
        """,
    )
    imported = import_source("promptfoo", config, ImportOptions(output_dir=tmp_path))
    assert [s["id"] for s in imported.scenarios] == ["kept"]
    assert imported.scenarios[0]["tags"] == ["partial_import"]
    assert imported.left_out == [
        "only similar (prompt p1): none of its assertions could be imported (similar: needs an embedding model)"
    ]
    assert imported.dropped == {"webhook: calls a web service": 1, "similar: needs an embedding model": 1}


def test_judged_assertions_become_llm_judge(tmp_path):
    config = write_config(
        tmp_path,
        """
        prompts: ["{{q}}"]
        defaultTest:
          options: {provider: "openai:chat:gpt-4o-mini"}
        tests:
          - vars: {q: hi, ref: Paris}
            assert:
              - {type: llm-rubric, value: is polite, threshold: 0.8}
              - {type: g-eval, value: coherent}
              - {type: factuality, value: "{{ref}}"}
        """,
    )
    (scenario,) = import_source("promptfoo", config, ImportOptions(output_dir=tmp_path)).scenarios
    model = "openai:gpt-4o-mini"
    assert scenario["expect"] == [
        {"llm_judge": {"rubric": "is polite", "threshold": 0.8, "model": model}},
        {
            "llm_judge": {
                "rubric": "Evaluate the response against these criteria: coherent",
                "threshold": 0.7,
                "model": model,
            }
        },
        {
            "llm_judge": {
                "rubric": "The response is factually consistent with this reference answer: Paris",
                "model": model,
            }
        },
    ]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("scenarios: [{id: a, input: x, expected: y}]\n", "not a promptfoo config"),
        ("prompts: [hi]\ntests: file://missing.csv\n", "missing.csv: no such file"),
        ("prompts: [file://nope.txt]\ntests: []\n", "nope.txt: no such file"),
        ("prompts: [hi]\ntests: [{assert: [{type: javascript, value: 'true'}]}]\n", "nothing could be imported"),
        ("prompts: [hi\n", "not valid YAML"),
    ],
)
def test_bad_promptfoo_configs_are_one_line_errors(tmp_path, capsys, monkeypatch, config, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "promptfooconfig.yaml").write_text(config, encoding="utf-8")
    status, _, err = cli_run(capsys, "import", "promptfoo", "promptfooconfig.yaml", "-o", "scenarios/x.yaml")
    assert status == 2
    assert err.startswith("autoevolve import: ") and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "scenarios").exists() or not any((tmp_path / "scenarios").iterdir())


def test_a_file_that_does_not_load_is_not_written(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_config(tmp_path, "prompts: [hi]\ntests: [{assert: [{type: regex, value: '[^]'}]}]\n")  # valid in JS only
    status, _, err = cli_run(capsys, "import", "promptfoo", "promptfooconfig.yaml", "-o", "scenarios/x.yaml")
    assert status == 2
    assert "do not load, so nothing was written" in err and "not a valid regular expression" in err
    assert list((tmp_path / "scenarios").iterdir()) == []  # neither the file nor its temporary


def test_unknown_format_and_existing_output(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rows.jsonl").write_text('{"input": "a", "expected": "b"}\n', encoding="utf-8")
    status, _, err = cli_run(capsys, "import", "langsmith", "rows.jsonl")
    assert (status, err.strip()) == (
        2,
        "autoevolve import: unknown format 'langsmith'; formats: promptfoo, openai-evals, inspect, jsonl, csv, hf",
    )
    assert cli_run(capsys, "import", "jsonl", "rows.jsonl")[0] == 0
    status, _, err = cli_run(capsys, "import", "jsonl", "rows.jsonl")
    assert status == 2 and "scenarios/rows.yaml exists; give --force" in err
    assert cli_run(capsys, "import", "jsonl", "rows.jsonl", "--force")[0] == 0


# --- rows: jsonl, csv, inspect --------------------------------------------------------------------------------


def test_jsonl_and_csv_with_field_mapping(tmp_path):
    (tmp_path / "rows.csv").write_text("key,question,answer,part\nk1,2+2?,4,train\nk2,3+3?,6,test\n", encoding="utf-8")
    options = ImportOptions(
        id_prefix="m", input_field="question", id_field="key", split_field="part", grader="contains"
    )
    imported = import_source("csv", tmp_path / "rows.csv", options)
    assert imported.scenarios == [
        {"id": "m.k1", "input": "2+2?", "expect": [{"contains": "4"}], "split": "train"},
        {"id": "m.k2", "input": "3+3?", "expect": [{"contains": "6"}], "split": "eval"},
    ]
    assert imported.mapped == {"answer -> contains": 2}
    with pytest.raises(SourceError, match="records have no field 'prompt'"):
        import_source("jsonl", tmp_path / "rows.csv", ImportOptions(input_field="prompt"))


def test_inspect_dataset_imports_with_the_match_scorer(tmp_path):
    imported = import_source("inspect", FIXTURES / "inspect" / "dataset.jsonl", ImportOptions(id_prefix="a"))
    first = imported.scenarios[0]
    assert first == {
        "id": "a.add-1",
        "input": "What is 2 + 2?",
        "expect": [{"match": "4"}],
        "metadata": {"answer": "The answer is 4"},
    }
    assert imported.scenarios[3]["expect"] == [{"match": ["Paris", "paris"]}]
    includes = import_source("inspect", FIXTURES / "inspect" / "dataset.jsonl", ImportOptions(grader="includes"))
    assert includes.scenarios[0]["expect"] == [{"icontains_any": "4"}]
    exact = import_source("inspect", FIXTURES / "inspect" / "dataset.jsonl", ImportOptions(grader="exact"))
    assert exact.scenarios[0]["expect"] == [{"normalized_equals": "4"}]


def test_imported_match_grades_as_inspects_scorer_did():
    """Our `match` grader on every completion of a real Inspect log gives the log's own score."""
    inspect_log = pytest.importorskip("inspect_ai.log")
    registry = default_registry()
    log = inspect_log.read_eval_log(str(FIXTURES / "inspect_logs" / "strong.json"))
    for sample in log.samples:
        target = sample.target if isinstance(sample.target, list) else [sample.target]
        grade = registry.build("match", target, FIXTURES)(sample.output.completion, None, None)
        assert grade.passed == (sample.scores["match"].value == "C"), (sample.id, sample.output.completion)


# --- openai evals -------------------------------------------------------------------------------------------


def make_registry(root: Path) -> Path:
    (root / "registry" / "evals").mkdir(parents=True)
    (root / "registry" / "data" / "caps").mkdir(parents=True)
    samples = [
        {
            "input": [{"role": "system", "content": "Answer with the city."}, {"role": "user", "content": "France?"}],
            "ideal": "Paris",
        },
        {"input": "Italy?", "ideal": ["Rome", "Roma"]},
    ]
    (root / "registry" / "data" / "caps" / "samples.jsonl").write_text(
        "".join(json.dumps(s) + "\n" for s in samples), encoding="utf-8"
    )
    registry = root / "registry" / "evals" / "caps.yaml"
    registry.write_text(
        textwrap.dedent(
            """
            caps:
              id: caps.dev.v0
              metrics: [accuracy]
            caps.dev.v0:
              class: evals.elsuite.basic.match:Match
              args: {samples_jsonl: caps/samples.jsonl}
            caps-fuzzy:
              class: evals.elsuite.basic.fuzzy_match:FuzzyMatch
              args: {samples_jsonl: caps/samples.jsonl}
            caps-judged:
              class: evals.elsuite.modelgraded.classify:ModelBasedClassify
              args: {samples_jsonl: caps/samples.jsonl}
            """
        ),
        encoding="utf-8",
    )
    return registry


MATCH_AGENTS = """
def city(messages, scenario):
    return scenario.metadata["answer"]
"""


def test_openai_evals_registry_grades_as_match_does(pytester, capsys):
    registry = make_registry(pytester.path)
    status, out, _ = cli_run(capsys, "import", "openai-evals", registry, "-o", "scenarios/caps.yaml")
    assert status == 0
    assert "mapped: Match -> starts_with (2)" in out and "mapped: FuzzyMatch -> fuzzy_match (2)" in out
    assert "left out: eval caps-judged: class evals.elsuite.modelgraded.classify:ModelBasedClassify" in out
    data = yaml.safe_load((pytester.path / "scenarios" / "caps.yaml").read_text(encoding="utf-8"))
    first = data["scenarios"][0]
    assert first["messages"][0] == {"role": "system", "content": "Answer with the city."}
    assert first["expect"] == [{"starts_with": ["Paris"]}]
    # Match: the sampled text starts with an ideal answer, as it is (no trimming); FuzzyMatch: either contains the other
    answers = {
        "caps.caps.dev.v0.1": "Paris, surely",
        "caps.caps.dev.v0.2": " Rome",
        "caps.caps-fuzzy.1": "paris",
        "caps.caps-fuzzy.2": "I think it is rome.",
    }
    for scenario in data["scenarios"]:
        scenario["metadata"]["answer"] = answers[scenario["id"]]
    (pytester.path / "scenarios" / "caps.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    pytester.makepyfile(evalagents=MATCH_AGENTS)
    pytester.syspathinsert()
    result = pytester.runpytest(
        "--autoevolve",
        "--autoevolve-incumbent=python:evalagents:city",
        "--autoevolve-candidate=python:evalagents:city",
        "-p",
        "no:cacheprovider",
        "-v",
    )
    result.stdout.fnmatch_lines(
        [
            "*caps.caps.dev.v0.1?incumbent? PASSED*",
            "*caps.caps.dev.v0.2?incumbent? FAILED*",
            "*caps.caps-fuzzy.1?incumbent? PASSED*",
            "*caps.caps-fuzzy.2?incumbent? PASSED*",
        ]
    )


def test_openai_evals_samples_and_a_missing_samples_file(tmp_path):
    registry = make_registry(tmp_path)
    samples = tmp_path / "registry" / "data" / "caps" / "samples.jsonl"
    imported = import_source("openai-evals", samples, ImportOptions(id_prefix="s"))
    assert [s["expect"] for s in imported.scenarios] == [
        [{"starts_with": ["Paris"]}],
        [{"starts_with": ["Rome", "Roma"]}],
    ]
    samples.unlink()
    with pytest.raises(SourceError, match=r"samples_jsonl 'caps/samples\.jsonl' not found"):
        import_source("openai-evals", registry, ImportOptions())


def test_openai_evals_api_definition(tmp_path):
    definition = {
        "object": "eval",
        "name": "Tickets",
        "data_source_config": {"type": "custom", "item_schema": {"type": "object"}},
        "testing_criteria": [
            {
                "type": "string_check",
                "name": "exact",
                "input": "{{ sample.output_text }}",
                "reference": "{{ item.label }}",
                "operation": "eq",
            },
            {
                "type": "string_check",
                "name": "no-sorry",
                "input": "{{sample.output_text}}",
                "reference": "sorry",
                "operation": "ne",
            },
            {
                "type": "text_similarity",
                "name": "close",
                "input": "{{sample.output_text}}",
                "reference": "{{item.label}}",
                "evaluation_metric": "fuzzy_match",
                "pass_threshold": 0.8,
            },
            {
                "type": "text_similarity",
                "name": "meaning",
                "input": "{{sample.output_text}}",
                "reference": "{{item.label}}",
                "evaluation_metric": "cosine",
                "pass_threshold": 0.8,
            },
            {
                "type": "score_model",
                "name": "tone",
                "model": "o3-mini",
                "range": [1, 7],
                "pass_threshold": 5,
                "input": [{"role": "user", "content": "Is the reply to '{{item.ticket}}' polite?"}],
            },
            {
                "type": "label_model",
                "name": "kind",
                "model": "gpt-4o",
                "labels": ["hardware", "software"],
                "passing_labels": ["hardware"],
                "input": [{"role": "user", "content": "Classify: {{sample.output_text}}"}],
            },
        ],
        "data_source": {
            "type": "completions",
            "input_messages": {
                "type": "template",
                "template": [
                    {"role": "developer", "content": "Label the ticket."},
                    {"role": "user", "content": "{{item.ticket}}"},
                ],
            },
            "source": {
                "type": "file_content",
                "content": [{"item": {"ticket": "My screen broke", "label": "Hardware"}}],
            },
        },
    }
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(definition), encoding="utf-8")
    (scenario,) = import_source("openai-evals", path, ImportOptions()).scenarios
    assert scenario["messages"] == [
        {"role": "system", "content": "Label the ticket."},
        {"role": "user", "content": "My screen broke"},
    ]
    assert scenario["expect"][:3] == [
        {"identical": "Hardware"},
        {"not": {"identical": "sorry"}},
        {"text_similarity": {"reference": "Hardware", "metric": "fuzzy_match", "threshold": 0.8}},
    ]
    assert scenario["expect"][3]["llm_judge"]["threshold"] == pytest.approx(4 / 6)
    assert "Is the reply to 'My screen broke' polite?" in scenario["expect"][3]["llm_judge"]["rubric"]
    assert '["hardware"]' in scenario["expect"][4]["llm_judge"]["rubric"]
    assert scenario["tags"] == ["partial_import"]
    assert scenario["metadata"]["not_imported"] == [
        "meaning: evaluation_metric 'cosine' (imported: fuzzy_match, bleu, "
        "rouge_1, rouge_2, rouge_3, rouge_4, rouge_5, rouge_l)"
    ]
    del definition["data_source"]
    path.write_text(json.dumps(definition), encoding="utf-8")
    with pytest.raises(SourceError, match="carries no items; give them with --items"):
        import_source("openai-evals", path, ImportOptions())


# --- the graders the imports use, with the other tools' semantics --------------------------------------------------


def grade(name, value, output, metadata=None, folder=FIXTURES):
    from pytest_autoevolve.records import Scenario

    scenario = Scenario("s", ({"role": "user", "content": "q"},), (), "x.yaml", metadata=metadata or {})
    return default_registry().build(name, value, folder)(output, None, scenario)


@pytest.mark.parametrize(
    ("name", "value", "output", "passed"),
    [
        ("icontains", "HELLO", "well, hello", True),
        ("contains_any", ["red", "green"], "Green", False),  # case-sensitive, as promptfoo's contains-any
        ("contains_any", "blue", "a blue sky", True),
        ("contains_all", ["a", "b"], "a only", False),
        ("icontains_any", ["CAT", "dog"], "a Dog", True),
        ("icontains_all", ["Foo", "BAR"], "foo bar", True),
        ("starts_with", "Yes", " Yes", False),  # the output as it is: no trimming
        ("starts_with", ["No", "Yes"], "Yes!", True),
        ("identical", "Paris", "Paris ", False),  # promptfoo's equals does not trim
        ("json_equals", {"a": [1, 2]}, '{"a": [1, 2]}', True),
        ("json_equals", {"a": 1}, '{"a": true}', False),
        ("is_json", True, '[1, "x"]', True),
        ("is_json", True, "{a: 1}", False),
        ("contains_json", True, "see {a: 1} here", True),  # promptfoo reads objects leniently (YAML flow style)
        ("contains_json", {"required": ["n"]}, 'x {"m": 1} y {"n": 2', True),  # an unclosed object is closed
        ("contains_json", True, "[1, 2]", False),  # objects only
        ("levenshtein", "kitten", "sitting", True),  # distance 3 <= promptfoo's default 5
        ("levenshtein", {"text": "kitten", "max_distance": 2}, "sitting", False),
        ("match", "4", "The answer is 4.", True),  # Inspect's match: the end, punctuation and case aside
        ("match", "4", "4 is the answer", False),
        ("match", {"target": "paris", "location": "begin"}, "Paris, of course", True),
        ("normalized_equals", "The Eiffel Tower", "eiffel tower!", True),  # Inspect's exact
        ("normalized_equals", "3", "3.0", True),
        ("fuzzy_match", ["New York City"], "The new York.", True),  # either contains the other
        ("fuzzy_match", "Paris", "London", False),
        ("not", {"icontains": "sorry"}, "Sorry!", False),
        ("not", {"regex": "^a"}, "banana", True),
    ],
)
def test_graders_semantics(name, value, output, passed):
    assert grade(name, value, output).passed is passed


def test_text_similarity_scores():
    from pytest_autoevolve.graders.text import levenshtein_distance, similarity

    assert levenshtein_distance("kitten", "sitting") == 3
    assert levenshtein_distance("a" * 50, "b", bound=5) == 6  # cut short past the bound
    assert similarity("fuzzy_match", "abcd", "abce") == pytest.approx(0.75)  # 2 * LCS 3 / 8
    assert similarity("rouge_1", "the cat sat", "the cat ran") == pytest.approx(2 / 3)
    assert similarity("rouge_l", "a b c d", "a c d") == pytest.approx(2 * (3 / 4) * 1 / (3 / 4 + 1))
    assert similarity("bleu", "the cat sat on the mat", "the cat sat on the mat") == pytest.approx(1.0)
    result = grade("text_similarity", {"reference": "abce", "metric": "fuzzy_match", "threshold": 0.8}, "abcd")
    assert (result.passed, result.score) == (False, pytest.approx(0.75))


def test_python_assert_reads_results_as_promptfoo_does(tmp_path):
    (tmp_path / "checks.py").write_text(
        "def get_assert(output, context):\n    return {'pass': output == context['vars']['want'], 'score': 0.4,"
        " 'reason': 'compared'}\n\ndef score(output, context):\n    return 0.4\n",
        encoding="utf-8",
    )
    metadata = {"vars": {"want": "yes"}}
    assert grade("python_assert", {"file": "checks.py"}, "yes", metadata, tmp_path).reason == "compared"
    assert not grade("python_assert", {"file": "checks.py", "threshold": 0.5}, "yes", metadata, tmp_path).passed
    assert grade("python_assert", {"file": "checks.py", "function": "score"}, "x", metadata, tmp_path).passed  # > 0
    assert not grade(
        "python_assert", {"file": "checks.py", "function": "score", "threshold": 0.5}, "x", None, tmp_path
    ).passed
    assert grade("python_assert", "output.upper() == context['vars']['want']", "YES", {"vars": {"want": "YES"}}).passed
    assert grade("python_assert", "x = len(output)\nreturn 'true' if x > 2 else 'false'", "abc").passed


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("contains_any", [], "non-empty list"),
        ("levenshtein", {"text": "a", "max_distance": -1}, "max_distance is a number of at least 0"),
        ("match", {"target": "a", "location": "middle"}, "location is one of begin, end, any, exact"),
        ("text_similarity", {"reference": "a", "metric": "cosine"}, "metric is one of fuzzy_match"),
        ("is_json", {"type": "object"}, "write json_schema: SCHEMA"),
        ("python_assert", {"file": "nope.py"}, "nope.py does not exist"),
        ("python_assert", "return (", "not valid Python"),
        ("not", {"unknown_grader": 1}, "unknown grader 'unknown_grader'"),
    ],
)
def test_grader_values_are_checked_when_the_file_loads(name, value, message):
    with pytest.raises(ValueError, match=message):
        default_registry().build(name, value, FIXTURES)


# --- openai evals: python and multi criteria --------------------------------------------------------------------

LABEL_SOURCE = """import json


def grade(sample, item) -> float:
    return float(sample["output_text"].strip().lower() == item["label"].lower())
"""

REPLY_AGENTS = """
def reply(messages, scenario):
    return scenario.metadata["item"]["reply"]
"""


def check_of(name, reference, **more):
    kind = "string_check" if "operation" in more else "text_similarity"
    return {"type": kind, "name": name, "input": "{{sample.output_text}}", "reference": reference, **more}


def graded_eval(criteria):
    """An Evals API eval of three tickets, each item with the reply the agent gives."""
    items = [
        {"ticket": "My screen broke", "label": "Hardware", "reply": "Hardware"},
        {"ticket": "The app crashes", "label": "Software", "reply": "software"},
        {"ticket": "No wifi", "label": "Network", "reply": "Printer"},
    ]
    return {
        "object": "eval",
        "name": "Tickets",
        "testing_criteria": criteria,
        "data_source": {
            "input_messages": {"template": [{"role": "user", "content": "Label: {{item.ticket}}"}]},
            "source": {"type": "file_content", "content": [{"item": item} for item in items]},
        },
    }


MULTI_GRADERS = {
    "exact": check_of("exact", "{{item.label}}", operation="eq"),
    "close": check_of("close", "{{item.label}}", evaluation_metric="fuzzy_match"),
}


def test_openai_evals_python_and_multi_criteria_grade_as_the_api_did(pytester, capsys):
    criteria = [
        {"type": "python", "name": "label", "source": LABEL_SOURCE, "pass_threshold": 1.0},
        {
            "type": "multi",
            "name": "mean",
            "graders": MULTI_GRADERS,
            "calculate_output": "(exact + close) / 2",
            "pass_threshold": 0.4,
        },
        {"type": "multi", "name": "worst", "graders": MULTI_GRADERS, "calculate_output": "min(exact, close)"},
        {"type": "multi", "name": "gate", "graders": MULTI_GRADERS, "calculate_output": "exact > 0.5"},
        {
            "type": "python",
            "name": "fuzzy",
            "source": "import rapidfuzz_missing\n\ndef grade(sample, item):\n  return 1",
        },
    ]
    (pytester.path / "eval.json").write_text(json.dumps(graded_eval(criteria)), encoding="utf-8")
    status, out, err = cli_run(capsys, "import", "openai-evals", "eval.json", "-o", "scenarios/tickets.yaml")
    assert (status, err) == (0, "")
    for line in (
        "wrote scenarios/tickets_label_grader.py: a grader's code the scenarios call",
        "mapped: python -> python_assert (3)",
        "mapped: multi -> python_assert (6)",
        "not imported: multi: its calculate_output 'exact > 0.5' uses 'exact > 0.5' (imported: numbers, grader "
        "names, + - * / ^, min, max, abs, floor, ceil, sqrt, exp, log, average) (3)",
        "not imported: python: its source imports rapidfuzz_missing, not installed here (3)",
        "3 scenarios tagged partial_import",
    ):
        assert line in out, (line, out)
    module = (pytester.path / "scenarios" / "tickets_label_grader.py").read_text(encoding="utf-8")
    assert module.startswith(LABEL_SOURCE.rstrip()) and "def autoevolve_grade(output, context):" in module
    written = yaml.safe_load((pytester.path / "scenarios" / "tickets.yaml").read_text(encoding="utf-8"))
    first = written["scenarios"][0]
    assert first["expect"][0] == {
        "python_assert": {
            "file": "tickets_label_grader.py",
            "function": "autoevolve_grade",
            "threshold": 1.0,
            "config": {"item": {"ticket": "My screen broke", "label": "Hardware", "reply": "Hardware"}},
        }
    }
    assert first["expect"][2]["python_assert"]["threshold"] == 0.5  # the default pass_threshold
    assert first["expect"][1]["python_assert"]["code"].endswith(
        "    'exact': float(output == 'Hardware'),\n"
        "    'close': similarity('fuzzy_match', output, 'Hardware'),\n"
        "}\n"
        "return (scores['exact'] + scores['close']) / 2"
    )
    pytester.makepyfile(ticketagents=REPLY_AGENTS)
    pytester.syspathinsert()
    pytester.runpytest(
        "--autoevolve",
        "--autoevolve-incumbent=python:ticketagents:reply",
        "--autoevolve-candidate=python:ticketagents:reply",
        "-p",
        "no:cacheprovider",
    )
    trajectories, _ = read_run(pytester.path)
    grades = {t["scenario_id"]: [(g["passed"], round(g["score"], 4)) for g in t["grades"]] for t in trajectories}
    # fuzzy_match similarity: 'software' / 'Software' 0.875, 'Printer' / 'Network' 2/7
    assert grades == {
        "tickets.1": [(True, 1.0), (True, 1.0), (True, 1.0)],
        "tickets.2": [(True, 1.0), (True, 0.4375), (False, 0.0)],
        "tickets.3": [(False, 0.0), (False, round(1 / 7, 4)), (False, 0.0)],
    }


@pytest.mark.parametrize(
    ("formula", "python"),
    [
        ("(a + b) / 2", "(scores['a'] + scores['b']) / 2"),
        ("average(a, b, c)", "(scores['a'] + scores['b'] + scores['c']) / 3"),
        ("0.3 * a + 0.7 * b", "0.3 * scores['a'] + 0.7 * scores['b']"),
        ("min(a, b)", "min(scores['a'], scores['b'])"),
        ("a ^ 2 - -b", "scores['a'] ** 2 - -scores['b']"),
        ("sqrt(abs(a))", "math.sqrt(abs(scores['a']))"),
    ],
)
def test_multi_formulas_become_python(formula, python):
    from pytest_autoevolve.catalog.importers.openai_evals import _multi_code

    graders = {name: check_of(name, "x", operation="eq") for name in "abc"}
    code = _multi_code({"graders": graders, "calculate_output": formula}, {"item": {}})
    assert code.splitlines()[-1] == f"return {python}"


@pytest.mark.parametrize(
    ("criterion", "reason"),
    [
        ({"calculate_output": "a + d"}, "names 'd', none of its graders"),
        ({"calculate_output": "__import__('os')"}, "uses \"__import__('os')\""),
        ({"calculate_output": "a if b else c"}, "uses 'a if b else c'"),
        ({"calculate_output": "(a +"}, "is not a formula"),
        ({"graders": {"j": {"type": "score_model", "input": []}}, "calculate_output": "j"}, "'j' is a score_model"),
    ],
)
def test_multi_forms_not_imported_say_why(tmp_path, criterion, reason):
    multi = {"type": "multi", "name": "m", "graders": {n: check_of(n, "x", operation="eq") for n in "abc"}}
    criteria = [{**multi, **criterion}, check_of("exact", "{{item.label}}", operation="eq")]
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(graded_eval(criteria)), encoding="utf-8")
    imported = import_source("openai-evals", path, ImportOptions())
    assert all(s["expect"] == [{"identical": s["metadata"]["item"]["label"]}] for s in imported.scenarios)
    (dropped,) = imported.dropped
    assert dropped.startswith("multi: its ") and reason in dropped, dropped


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("def grade(sample, item):\n  return (", "its source is not valid Python: '(' was never closed (line 2)"),
        ("def score(sample, item):\n  return 1.0\n", "its source defines no grade(sample, item)"),
        ("", "it has no source"),
    ],
)
def test_python_criteria_that_cannot_run_here_are_not_imported(tmp_path, source, reason):
    criteria = [{"type": "python", "name": "p", "source": source}, check_of("e", "{{item.label}}", operation="eq")]
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(graded_eval(criteria)), encoding="utf-8")
    imported = import_source("openai-evals", path, ImportOptions())
    assert imported.files == {} and len(imported.scenarios) == 3
    assert list(imported.dropped) == [f"python: {reason}"]


def test_a_grader_file_in_the_way_is_refused_without_force(pytester, capsys):
    criteria = [{"type": "python", "name": "label", "source": LABEL_SOURCE}]
    (pytester.path / "eval.json").write_text(json.dumps(graded_eval(criteria)), encoding="utf-8")
    (pytester.path / "scenarios").mkdir()
    (pytester.path / "scenarios" / "tickets_label_grader.py").write_text("# mine\n", encoding="utf-8")
    status, _, err = cli_run(capsys, "import", "openai-evals", "eval.json", "-o", "scenarios/tickets.yaml")
    assert status == 2 and "tickets_label_grader.py exists; give --force" in err
    assert not (pytester.path / "scenarios" / "tickets.yaml").exists()
    assert cli_run(capsys, "import", "openai-evals", "eval.json", "-o", "scenarios/tickets.yaml", "--force")[0] == 0
    assert "autoevolve_grade" in (pytester.path / "scenarios" / "tickets_label_grader.py").read_text(encoding="utf-8")


# --- hf: Hugging Face datasets, offline ---------------------------------------------------------------------

QA_ROWS = [
    {"question": "2+2?", "answer": ["4"], "uid": "sum-a", "part": "train"},
    {"question": "3+3?", "answer": ["6", "six"], "uid": "sum-b", "part": "test"},
    {"question": "Capital of France?", "answer": ["Paris"], "uid": "cap", "part": "test"},
]

HF_OPTIONS = {"input_field": "question", "expected_field": "answer", "id_field": "uid"}


@pytest.fixture
def hf_datasets(tmp_path, monkeypatch):
    """The `datasets` library kept off the network and its caches in ``tmp_path``; a small dataset of QA_ROWS."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    datasets = pytest.importorskip("datasets")
    return datasets, datasets.Dataset.from_list(QA_ROWS)


def expected_qa(prefix):
    return [
        {"id": f"{prefix}.sum-a", "input": "2+2?", "expect": [{"icontains": "4"}], "split": "train"},
        {"id": f"{prefix}.sum-b", "input": "3+3?", "expect": [{"icontains_any": ["6", "six"]}], "split": "eval"},
        {"id": f"{prefix}.cap", "input": "Capital of France?", "expect": [{"icontains": "Paris"}], "split": "eval"},
    ]


def test_hf_reads_saved_folders_and_data_files(hf_datasets, tmp_path):
    datasets, dataset = hf_datasets
    dataset.save_to_disk(str(tmp_path / "saved"))
    datasets.DatasetDict({"train": dataset.select([0]), "test": dataset}).save_to_disk(str(tmp_path / "dict"))
    dataset.to_parquet(str(tmp_path / "qa.parquet"))
    dataset.to_json(str(tmp_path / "qa.jsonl"))
    (arrow,) = (tmp_path / "saved").glob("*.arrow")
    options = ImportOptions(id_prefix="qa", grader="icontains", split_field="part", **HF_OPTIONS)
    for source in ("saved", "qa.parquet", "qa.jsonl", arrow):
        assert import_source("hf", tmp_path / source, options).scenarios == expected_qa("qa"), source
    picked = ImportOptions(id_prefix="qa", grader="icontains", split_field="part", hf_split="test", **HF_OPTIONS)
    assert import_source("hf", tmp_path / "dict", picked).scenarios == expected_qa("qa")
    one = datasets.DatasetDict({"validation": dataset.select([2])})
    one.save_to_disk(str(tmp_path / "one"))
    (only,) = import_source("hf", tmp_path / "one", ImportOptions(**HF_OPTIONS)).scenarios  # its only split
    assert only == {"id": "cap", "input": "Capital of France?", "expect": [{"equals": "Paris"}]}
    assert not (tmp_path / "hf-home").exists()  # nothing cached on the way


@pytest.mark.parametrize(
    ("source", "options", "message"),
    [
        ("absent", {}, "absent: no such file or folder"),
        ("plain", {}, "plain: not a Hugging Face datasets folder (no dataset_dict.json or state.json"),
        ("saved", {"input_field": "prompt"}, "saved: records have no field 'prompt' (fields: question, answer,"),
        ("dict", {}, "dict: a DatasetDict of splits train, test; pick one with --hf-split"),
        ("dict", {"hf_split": "dev"}, "dict: no split 'dev' (splits: train, test)"),
        ("saved", {"hf_split": "test"}, "saved: holds one Dataset, not a DatasetDict; --hf-split test does not apply"),
        ("qa.txt", {}, "qa.txt: an hf source is a datasets folder or a .parquet, .arrow, .json, .jsonl, .csv file"),
        ("bad.parquet", {}, "bad.parquet: cannot be read as a parquet dataset: "),
    ],
)
def test_hf_bad_sources_are_one_line_errors(hf_datasets, tmp_path, source, options, message):
    datasets, dataset = hf_datasets
    dataset.save_to_disk(str(tmp_path / "saved"))
    datasets.DatasetDict({"train": dataset, "test": dataset}).save_to_disk(str(tmp_path / "dict"))
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "rows.jsonl").write_text("{}\n", encoding="utf-8")
    (tmp_path / "qa.txt").write_text("x", encoding="utf-8")
    (tmp_path / "bad.parquet").write_text("not parquet", encoding="utf-8")
    with pytest.raises(SourceError) as caught:
        import_source("hf", tmp_path / source, ImportOptions(**{**HF_OPTIONS, **options}))
    assert str(caught.value).startswith(str(tmp_path / message)) and "\n" not in str(caught.value)


def test_hf_without_the_datasets_library_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` raises ImportError
    (tmp_path / "saved").mkdir()
    with pytest.raises(
        SourceError,
        match=r"saved: reading Hugging Face datasets needs the datasets library: "
        r"pip install 'pytest-autoevolve\[hf\]'",
    ):
        import_source("hf", tmp_path / "saved", ImportOptions())


def test_hf_import_command_and_the_imported_scenarios_run(hf_datasets, pytester, capsys):
    datasets, dataset = hf_datasets
    datasets.DatasetDict({"train": dataset.select([0]), "test": dataset}).save_to_disk(str(pytester.path / "qa"))
    argv = ["import", "hf", "qa", "-o", "scenarios/qa.yaml", "--hf-split", "test", "--grader", "icontains"]
    argv += ["--input-field", "question", "--expected-field", "answer", "--id-field", "uid", "--split-field", "part"]
    status, out, err = cli_run(capsys, *argv)
    assert (status, err) == (0, "")
    assert "wrote scenarios/qa.yaml: 3 scenarios from qa" in out and "mapped: answer -> icontains (2)" in out
    pytester.makepyfile(qaagents="def answer(messages, scenario):\n    return 'It is six.'\n")
    pytester.syspathinsert()
    result = pytester.runpytest(
        "--autoevolve",
        "--autoevolve-incumbent=python:qaagents:answer",
        "--autoevolve-candidate=python:qaagents:answer",
        "-p",
        "no:cacheprovider",
        "-v",
    )
    result.stdout.fnmatch_lines(["*qa.sum-b?incumbent? PASSED*", "*qa.cap?incumbent? FAILED*"])
    assert "qa.sum-a" not in result.stdout.str()  # the train split is not graded


def test_a_grader_module_that_does_not_load_leaves_nothing(pytester, capsys):
    source = "raise RuntimeError('needs a sandbox')\n\n\ndef grade(sample, item):\n    return 1.0\n"
    criteria = [{"type": "python", "name": "label", "source": source}]
    (pytester.path / "eval.json").write_text(json.dumps(graded_eval(criteria)), encoding="utf-8")
    status, _, err = cli_run(capsys, "import", "openai-evals", "eval.json", "-o", "scenarios/tickets.yaml")
    assert status == 2 and "do not load, so nothing was written" in err and "needs a sandbox" in err
    assert list((pytester.path / "scenarios").iterdir()) == []  # neither the scenario file nor the grader's module

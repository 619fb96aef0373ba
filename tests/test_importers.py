"""`autoevolve import`: promptfoo, OpenAI evals, Inspect and row files as scenario files that load and run.

The promptfoo fixture (tests/fixtures/promptfoo) holds a test for each assertion type with a right and a
wrong answer in its vars; results.json is promptfoo's own run of it (promptfoo 0.121.20, its python
providers `right` and `wrong`). The imported scenarios must give the same verdict as promptfoo, grader by
grader, on the same outputs.
"""

from __future__ import annotations

import json
import shutil
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
        "autoevolve import: unknown format 'langsmith'; formats: promptfoo, openai-evals, inspect, jsonl, csv",
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

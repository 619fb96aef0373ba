"""What `pytest --autoevolve PATHS` collects: the catalog folders, files named, and folders named."""

from __future__ import annotations

from tests.support.runs import read_run, run_models


def test_a_folder_named_on_the_command_line_is_searched_for_scenario_files(pytester, agents):
    evals = pytester.path / "evals" / "nested"
    evals.mkdir(parents=True)
    (evals / "greet.yaml").write_text("scenarios: [{id: hi, input: hi, expected: hi}]\n", encoding="utf-8")
    (pytester.path / "evals" / "settings.yaml").write_text("retries: 3\n", encoding="utf-8")
    result = run_models(pytester, "evals")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["autoevolve: skipped evals/settings.yaml: not a scenario file*"])
    trajectories, _ = read_run(pytester.path)
    assert {t["scenario_file"] for t in trajectories} == {"evals/nested/greet.yaml"}


def test_a_yaml_file_named_on_the_command_line_is_a_scenario_file(pytester, agents):
    (pytester.path / "settings.yaml").write_text("retries: 3\n", encoding="utf-8")
    result = run_models(pytester, "settings.yaml")
    result.stdout.fnmatch_lines(["settings.yaml: key 'retries': unknown top-level key; allowed: defaults, scenarios"])

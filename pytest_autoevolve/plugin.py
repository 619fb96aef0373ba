"""The pytest plugin: options, collection of scenario files, fixtures and the run's lifecycle.

Nothing heavy is imported here: the scenario, model and session modules load only when
``--autoevolve`` is on or an autoevolve fixture is used.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_autoevolve import hookspecs
from pytest_autoevolve.settings import CACHE_MODES, ROLES, SPLIT_CHOICES, new_run_id

if TYPE_CHECKING:
    from pytest_autoevolve.catalog.loader import Catalog
    from pytest_autoevolve.loops.evolve import EvolveResult
    from pytest_autoevolve.loops.finetune import FineTuneLoop
    from pytest_autoevolve.records import Scenario
    from pytest_autoevolve.run.context import RunContext
    from pytest_autoevolve.run.runner import ModelHandle
    from pytest_autoevolve.settings import Settings

RUN_ID_KEY = pytest.StashKey[str]()
CLI_DESTS = {
    "incumbent": "autoevolve_incumbent",
    "candidate": "autoevolve_candidate",
    "repeats": "autoevolve_repeats",
    "artifacts": "autoevolve_artifacts",
    "seed": "autoevolve_seed",
    "catalog": "autoevolve_catalog",
    "split": "autoevolve_split",
    "cache": "autoevolve_cache",
    "concurrency": "autoevolve_concurrency",
    "only": "autoevolve_only",
}


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Make the ``pytest_autoevolve_*`` hooks known."""
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    """The ``--autoevolve*`` options; each also settable in pyproject.toml or autoevolve.yaml."""
    group = parser.getgroup("autoevolve", "LLM regression gate (pytest-autoevolve)")
    group.addoption(
        "--autoevolve",
        action="store_true",
        dest="autoevolve",
        default=False,
        help="collect YAML scenarios and run them on the incumbent and candidate models",
    )
    group.addoption(
        "--autoevolve-incumbent",
        dest=CLI_DESTS["incumbent"],
        metavar="SPEC",
        help="model deployed today (default: tiny, the embedded model)",
    )
    group.addoption(
        "--autoevolve-candidate",
        dest=CLI_DESTS["candidate"],
        metavar="SPEC",
        help="model a change proposes: tiny, hf:PATH[+adapter=DIR], openai:MODEL, python:pkg.mod:fn, "
        "or a name under 'models:' in the config (default: tiny)",
    )
    group.addoption(
        "--autoevolve-repeats",
        dest=CLI_DESTS["repeats"],
        type=positive_int,
        metavar="N",
        help="trials per scenario and model when a scenario sets no 'repeats' (default: 1)",
    )
    group.addoption(
        "--autoevolve-artifacts",
        dest=CLI_DESTS["artifacts"],
        metavar="DIR",
        help="where runs/<run-id>/ is written, relative to the rootdir (default: .autoevolve)",
    )
    group.addoption(
        "--autoevolve-seed",
        dest=CLI_DESTS["seed"],
        type=int,
        metavar="N",
        help="base seed; trial seeds derive from it, the scenario and the repeat (default: 0)",
    )
    group.addoption(
        "--autoevolve-catalog",
        dest=CLI_DESTS["catalog"],
        action="append",
        metavar="DIR",
        help="scenario folder, repeatable (default: scenarios)",
    )
    group.addoption(
        "--autoevolve-cache",
        dest=CLI_DESTS["cache"],
        metavar="MODE",
        type=cache_choice,
        help="response cache in the artifacts folder: off, read, write or readwrite (default)",
    )
    group.addoption(
        "--autoevolve-concurrency",
        dest=CLI_DESTS["concurrency"],
        type=positive_int,
        metavar="N",
        help="run N trials' model calls at a time; same results as serial (default: 1)",
    )
    group.addoption(
        "--autoevolve-split",
        dest=CLI_DESTS["split"],
        type=split_choice,
        metavar="SPLIT",
        help="which scenarios to collect: eval (gating, default), train or all",
    )
    group.addoption(
        "--autoevolve-only",
        dest=CLI_DESTS["only"],
        type=role_choice,
        metavar="ROLE",
        help="run only the incumbent's or the candidate's items (nothing pairs: the gate is "
        "inconclusive); for sampling and scoring runs",
    )
    group.addoption(
        "--autoevolve-sequential",
        action="store_true",
        default=None,
        dest="autoevolve_sequential",
        help="run scenarios in a seeded order and stop at the first look that decides (gate: {sequential: true})",
    )
    group.addoption(
        "--autoevolve-shard",
        dest="autoevolve_shard",
        type=shard_option,
        metavar="K/N",
        help="run the K-th of N stable, balanced slices of the scenarios (both roles together); "
        "merge the shards' junit files with `autoevolve report`",
    )
    group.addoption(
        "--autoevolve-canary",
        dest="autoevolve_canary",
        type=canary_share,
        metavar="P",
        help="a canary run: route a seeded share P in (0, 1] of the scenarios (both roles) to the canary slot "
        "of autoevolve.yaml (autoevolve canary start), as the candidate, and gate it against the incumbent",
    )
    group.addoption(
        "--autoevolve-resume",
        dest="autoevolve_resume",
        metavar="RUN",
        help="finish the run in folder RUN (or with that run id): its finished trials are taken as they are",
    )
    group.addoption(
        "--autoevolve-retry-errors",
        action="store_true",
        default=False,
        dest="autoevolve_retry_errors",
        help="with --autoevolve-resume, run again the trials that ended in an error",
    )
    group.addoption(
        "--autoevolve-budget",
        dest="autoevolve_budget",
        type=budget_option,
        metavar="calls=N,tokens=N,cost=USD",
        help="stop starting scenarios once the run has spent this; a fixed gate cut short is inconclusive",
    )


def _settings(config: pytest.Config) -> Settings:
    from pytest_autoevolve.errors import ConfigError
    from pytest_autoevolve.settings import load_settings

    cli = {name: config.getoption(dest) for name, dest in CLI_DESTS.items()}
    gate = {"sequential": config.getoption("autoevolve_sequential"), "budget": config.getoption("autoevolve_budget")}
    cli["gate"] = {key: value for key, value in gate.items() if value is not None} or None
    try:
        settings = load_settings(config.rootpath, cli)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    if config.getoption("autoevolve_canary") is None:
        return settings
    if settings.canary is None:
        raise pytest.UsageError(
            "--autoevolve-canary: autoevolve.yaml has no canary slot; start one with: autoevolve canary start SPEC"
        )
    if cli["candidate"] is not None:
        raise pytest.UsageError("--autoevolve-canary runs the canary as the candidate: drop --autoevolve-candidate")
    if config.getoption("autoevolve_shard") is not None:
        raise pytest.UsageError("--autoevolve-canary routes a share of the whole selection: run it unsharded")
    return replace(settings, candidate=settings.canary)


def positive_int(text: str) -> int:
    """An option value that must be a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise pytest.UsageError(f"expected a whole number of at least 1, got {text!r}") from None
    if value < 1:
        raise pytest.UsageError(f"expected a whole number of at least 1, got {value}")
    return value


def budget_option(text: str) -> dict[str, float]:
    """``calls=N,tokens=N,cost=USD`` (any of them) as a ``gate: {budget: ...}`` mapping."""
    budget: dict[str, float] = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        try:
            budget[key.strip()] = float(value) if key.strip() == "cost" else int(value)
        except ValueError:
            raise pytest.UsageError(f"--autoevolve-budget takes calls=N,tokens=N,cost=USD, got {text!r}") from None
    return budget


def canary_share(text: str) -> float:
    """A share of the scenarios in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 1:  # NaN included
        raise pytest.UsageError(f"--autoevolve-canary takes a share of scenarios in (0, 1] (e.g. 0.3), got {text!r}")
    return value


def shard_option(text: str) -> tuple[int, int]:
    """``K/N`` with 1 <= K <= N."""
    index, _, total = text.partition("/")
    if not (index.isdigit() and total.isdigit() and 1 <= int(index) <= int(total)):
        raise pytest.UsageError(f"--autoevolve-shard takes K/N with 1 <= K <= N (e.g. 2/4), got {text!r}")
    return int(index), int(total)


def _choice(option: str, allowed: tuple[str, ...]) -> Callable[[str], str]:
    """An option type that takes one of ``allowed``."""

    def parse(text: str) -> str:
        if text not in allowed:
            raise pytest.UsageError(f"--autoevolve-{option} takes one of {', '.join(allowed)}, got {text!r}")
        return text

    return parse


cache_choice, split_choice, role_choice = (
    _choice("cache", CACHE_MODES),
    _choice("split", SPLIT_CHOICES),
    _choice("only", ROLES),
)


def get_context(config: pytest.Config) -> RunContext:
    """The run's context, created on first use (workers take the controller's run id)."""
    from pytest_autoevolve.files import prepare_artifacts
    from pytest_autoevolve.run.context import RunContext
    from pytest_autoevolve.run.stash import CONTEXT_KEY

    if CONTEXT_KEY not in config.stash:
        settings = _settings(config)
        workerinput = getattr(config, "workerinput", {})
        run_id = workerinput.get("autoevolve_run_id") or config.stash.get(RUN_ID_KEY, None) or new_run_id()
        context = RunContext(config, settings, run_id)
        prepare_artifacts(config.rootpath / settings.artifacts)
        config.stash[CONTEXT_KEY] = context
    return config.stash[CONTEXT_KEY]


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """With ``--autoevolve``: set up the run, and on the controller the result log."""
    config.addinivalue_line("markers", "autoevolve: an autoevolve scenario item")
    controller = not hasattr(config, "workerinput")
    if controller and config.pluginmanager.hasplugin("xdist"):
        config.stash[RUN_ID_KEY] = new_run_id()
        config.pluginmanager.register(_XdistHooks(config.stash[RUN_ID_KEY]), "autoevolve-xdist")
    if not config.getoption("autoevolve"):
        return
    context = get_context(config)
    context.check_specs()
    resume = config.getoption("autoevolve_resume")
    if resume:
        from pytest_autoevolve.errors import ConfigError

        try:
            context.resume(resume, config.getoption("autoevolve_retry_errors"))
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
    share = config.getoption("autoevolve_canary")
    if share is not None:
        config.pluginmanager.register(_CanaryRouting(share, context.settings.seed), "autoevolve-canary")
    if controller:
        from pytest_autoevolve.run.results import ResultLog

        config.pluginmanager.register(ResultLog(context), "autoevolve-results")
    if config.args_source is not pytest.Config.ArgsSource.ARGS:
        catalog = [str(config.rootpath / entry) for entry in context.settings.catalog]
        config.args = [path for path in catalog if Path(path).exists()] or config.args


class _XdistHooks:
    """Sends the run id to xdist workers so all of them write one run folder."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["autoevolve_run_id"] = self.run_id


class _CanaryRouting:
    """Keeps a canary run's share of the selected scenarios, the same in every process, and deselects the rest."""

    def __init__(self, share: float, seed: int) -> None:
        self.share, self.seed = share, seed

    @pytest.hookimpl(trylast=True)  # after -k and -m: the share is of the scenarios they selected
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        from pytest_autoevolve.run.items import ROUTING_KEY, ROUTING_OUTPUT, route_canary

        kept, routed, total = route_canary(items, self.share, self.seed)
        staying = set(map(id, kept))
        config.hook.pytest_deselected(items=[i for i in items if id(i) not in staying])
        items[:] = kept
        config.stash[ROUTING_KEY] = (routed, total)
        if hasattr(config, "workerinput"):
            config.workeroutput[ROUTING_OUTPUT] = [routed, total]  # type: ignore[attr-defined]

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """On the controller, once the gate wrote its summary: the run goes on the promotion history."""
        from pytest_autoevolve.loops.canary import record_run

        if not hasattr(session.config, "workerinput"):
            context = get_context(session.config)
            record_run(context.root, context.run_dir / "summary.json")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """YAML files under the catalog folders, or named on the command line, are scenario files."""
    config = parent.config
    if not config.getoption("autoevolve") or file_path.suffix not in (".yaml", ".yml"):
        return None
    context = get_context(config)
    roots = [(config.rootpath / entry).resolve() for entry in context.settings.catalog]
    named = [Path(arg.split("::")[0]).resolve() for arg in config.args]
    if file_path not in named:  # a file named on the command line is always a scenario file
        if not any(file_path.is_relative_to(folder) for folder in [*roots, *named]):
            return None
        if not any(file_path.is_relative_to(root) for root in roots) and not _is_scenario_file(file_path):
            _note_skipped(config, file_path)  # a YAML file of another kind in a folder named on the command line
            return None
    from pytest_autoevolve.run.items import ScenarioFile

    return ScenarioFile.from_parent(parent, path=file_path)


SCENARIO_FILE = re.compile(r"^scenarios\s*:", re.MULTILINE)


def _is_scenario_file(path: Path) -> bool:
    """Whether a YAML file has a top-level ``scenarios:`` key (read as text: cheap, and never an error)."""
    try:
        return SCENARIO_FILE.search(path.read_text(encoding="utf-8", errors="replace")) is not None
    except OSError:
        return False


def _note_skipped(config: pytest.Config, path: Path) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        shown = path.relative_to(config.rootpath) if path.is_relative_to(config.rootpath) else path
        reporter.write_line(f"autoevolve: skipped {shown}: not a scenario file (no top-level 'scenarios:' key)")


def pytest_report_header(config: pytest.Config) -> list[str]:
    """With ``--autoevolve``: for each ``python:`` agent, what its cache key covers and why its answers miss."""
    if not config.getoption("autoevolve"):
        return []
    return get_context(config).cache_notes()


FAILED_ITEMS = "failed scenario items"
"""The count line's word for scenario items that failed: evidence the gate weighs, not failed tests."""


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> tuple[str, str, str] | None:
    """A failed scenario item is counted apart from failed tests and listed briefly in the gate's block."""
    if report.when != "call" or not report.failed or not config.getoption("autoevolve", False):
        return None
    from pytest_autoevolve.run.items import brief_failures

    if dict(report.user_properties).get("autoevolve") != "scenario" or not brief_failures(config):
        return None
    return FAILED_ITEMS, "F", "FAILED"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With a sequential gate, scenarios run in its seeded order (the same order in every xdist worker)."""
    if not config.getoption("autoevolve"):
        return
    settings = get_context(config).settings
    shard = config.getoption("autoevolve_shard")
    if shard is not None:
        if settings.gate.sequential:
            raise pytest.UsageError("--autoevolve-shard: a sequential gate decides on one machine; run it unsharded")
        from pytest_autoevolve.run.items import shard as shard_items

        kept = shard_items(items, *shard)
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept
    if settings.gate.sequential:
        from pytest_autoevolve.run.items import run_order

        items[:] = run_order(items, settings.seed)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> None:
    """In an xdist worker with ``--autoevolve-concurrency N``, start the trials of the items queued for it ahead."""
    config = item.config
    if not hasattr(config, "workerinput") or not config.getoption("autoevolve"):
        return
    context = get_context(config)
    if context.settings.concurrency > 1:
        from pytest_autoevolve.run.items import queued

        context.prefetch((i.role, i.scenario) for i in queued(item.session))


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """With ``--autoevolve-concurrency N`` in a single process, start every selected trial N at a time.

    Items then collect their trials in order, so results and reports are the same as a serial
    run. Under xdist each worker starts the trials of the items queued for it instead.
    """
    config = session.config
    if not config.getoption("autoevolve") or config.option.collectonly or hasattr(config, "workerinput"):
        return
    if getattr(config.option, "numprocesses", None) or getattr(config.option, "dist", "no") != "no":
        return
    context = get_context(config)
    if context.settings.concurrency > 1:
        from pytest_autoevolve.run.items import ScenarioItem

        context.prefetch((i.role, i.scenario) for i in session.items if isinstance(i, ScenarioItem))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop the trial pool (dropping trials an interrupted run never reached)."""
    from pytest_autoevolve.run.stash import CONTEXT_KEY

    context = session.config.stash.get(CONTEXT_KEY, None)
    if context is not None:
        context.close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that asks for ``autoevolve_scenario`` runs once per scenario of the split."""
    if "autoevolve_scenario" not in metafunc.fixturenames:
        return
    context = get_context(metafunc.config)
    scenarios = context.catalog.split(context.settings.split)
    metafunc.parametrize("autoevolve_scenario", scenarios, ids=[s.id for s in scenarios], indirect=True)


@pytest.fixture(scope="session")
def autoevolve_settings(pytestconfig: pytest.Config) -> Settings:
    """The run's settings (CLI over autoevolve.yaml over pyproject.toml over defaults)."""
    return get_context(pytestconfig).settings


@pytest.fixture(scope="session")
def autoevolve_catalog(pytestconfig: pytest.Config) -> Catalog:
    """Every scenario of the configured catalog folders."""
    return get_context(pytestconfig).catalog


@pytest.fixture(scope="session")
def autoevolve_model(pytestconfig: pytest.Config) -> Callable[[Any], ModelHandle]:
    """A factory of model handles, by role or spec.

    ``autoevolve_model("candidate")`` or ``autoevolve_model("hf:./m")``; the handle's
    ``.run(scenario)`` returns a graded, recorded `Trajectory`.
    """
    return get_context(pytestconfig).fixture_handle


@pytest.fixture(scope="session")
def autoevolve_incumbent(autoevolve_model: Callable[[Any], ModelHandle]) -> ModelHandle:
    """The incumbent model's handle."""
    return autoevolve_model("incumbent")


@pytest.fixture(scope="session")
def autoevolve_candidate(autoevolve_model: Callable[[Any], ModelHandle]) -> ModelHandle:
    """The candidate model's handle."""
    return autoevolve_model("candidate")


@pytest.fixture
def autoevolve_finetune(pytestconfig: pytest.Config) -> FineTuneLoop:
    """The fine-tune loop's steps (sample, curate, train, gate) on this project, for a small cycle in a test."""
    from pytest_autoevolve.loops.finetune import FineTuneLoop

    return FineTuneLoop(pytestconfig.rootpath, str(get_context(pytestconfig).settings.artifacts))


@pytest.fixture
def autoevolve_evolve(pytestconfig: pytest.Config, tmp_path: Path) -> Callable[..., EvolveResult]:
    """Run a short edit-score-gate loop on a clone of this project, in a temporary folder.

    ``autoevolve_evolve("space:evolve-space.yaml", iterations=2, targets=["autoevolve.yaml"])``
    returns the `EvolveResult`; the project's own repository and branches are left alone.
    """
    from pytest_autoevolve.loops.evolve import evolve_clone

    def run(proposer: str, iterations: int = 2, **options: Any) -> EvolveResult:
        return evolve_clone(pytestconfig.rootpath, tmp_path, proposer, iterations, **options)

    return run


@pytest.fixture
def autoevolve_scenario(request: pytest.FixtureRequest) -> Scenario:
    """The current scenario of a test parametrized over the catalog's split."""
    scenario: Scenario = request.param
    return scenario

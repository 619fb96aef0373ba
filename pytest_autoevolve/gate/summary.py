"""The typed ``summary.json``: the gate's result and the run behind it, written and read back.

`RunSummary.to_json` is the document a run writes; `RunSummary.from_json` and `RunSummary.load`
read one back, checking ``format_version`` and the type of every key, so a summary of another
format version, or something that is not a summary, is a `FormatError` naming the file and
what is wrong. `GateSummary` is the gate's part alone: what ``autoevolve report --json`` prints
and what the reports render.
"""

from __future__ import annotations

import functools
import json
import types
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, get_args, get_origin, get_type_hints

from pytest_autoevolve.errors import FormatError
from pytest_autoevolve.gate import stats
from pytest_autoevolve.gate.decide import (
    VERDICTS,
    CategoryRow,
    GateResult,
    Guardrail,
    RoleStats,
    ScenarioRole,
    ScenarioRow,
)
from pytest_autoevolve.gate.sequential import Design
from pytest_autoevolve.records import FORMAT_VERSION
from pytest_autoevolve.settings import MODES, GateConfig

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

SUMMARY_FORMAT_VERSION = 4

"""The version of ``summary.json``'s layout; bump it when a key appears, goes or changes meaning."""

READABLE_FORMAT_VERSIONS = (3, SUMMARY_FORMAT_VERSION)

"""The layouts this version reads: 4 added ``canary`` (a version-3 summary reads with ``canary`` None)."""

OUTCOMES = ("improved", "same", "regressed")

STABILITIES = ("stable-pass", "stable-fail", "flaky")

_Row = TypeVar("_Row", bound="DataclassInstance")

_WRONG = object()

"""What `_convert` returns for a value not of the type asked for."""


@dataclass(frozen=True)
class CacheStats:
    """How the run used the response cache: its mode, trials answered from it, and model calls made."""

    mode: str
    hits: int
    model_calls: int


@dataclass(frozen=True)
class CanaryRun:
    """A canary run (``--autoevolve-canary``): the canary slot's model, gated on a seeded share of the scenarios."""

    spec: str
    """The canary's spec, as the candidate role shows it."""
    share: float
    """The share of the selected scenarios routed to the canary, in (0, 1]."""
    seed: int
    """The run's seed, which chose the routed scenarios."""
    routed: int
    """Scenarios routed to the canary (both roles of each ran)."""
    total: int
    """Scenarios selected before routing."""


@dataclass(frozen=True)
class GateSummary:
    """The gate's verdict and every number behind it, as ``summary.json`` holds them.

    ``lift``, ``ci_low``, ``ci_high``, ``p_value`` and ``test`` are None when the gate stopped
    before the paired test.
    """

    verdict: str
    reasons: tuple[str, ...]
    incumbent: RoleStats
    candidate: RoleStats
    lift: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    test: str | None
    n_paired: int
    regressions: tuple[str, ...]
    improvements: tuple[str, ...]
    critical_regressions: tuple[str, ...]
    minimum_detectable_lift: float | None
    discordance: float | None
    guardrails: tuple[Guardrail, ...]
    categories: tuple[CategoryRow, ...]
    scenarios: tuple[ScenarioRow, ...]
    thresholds: GateConfig
    complete: bool = True
    """Whether every selected scenario item finished; a run that is not complete never passes."""
    missing: tuple[str, ...] = ()
    """The selected items (``id[role]``) that did not finish."""
    design: Design | None = None
    """A sequential gate's looks and where it stopped; None for the fixed design."""

    @property
    def alpha(self) -> float:
        """The significance level of the gate's rule."""
        return self.thresholds.alpha

    @property
    def mode(self) -> str:
        """The gate's rule: superiority or non_inferiority."""
        return self.thresholds.mode

    @property
    def paired(self) -> stats.PairedTest | None:
        """The paired test's numbers, when it ran."""
        if self.test is None or self.lift is None or self.p_value is None:
            return None
        if self.ci_low is None or self.ci_high is None:
            return None
        return stats.PairedTest(self.test, self.lift, self.ci_low, self.ci_high, self.p_value, self.n_paired)

    def role(self, name: str) -> RoleStats:
        """The incumbent's or the candidate's numbers, by role name."""
        return self.candidate if name == "candidate" else self.incumbent

    @classmethod
    def from_result(cls, result: GateResult) -> GateSummary:
        """The summary of a gate result."""
        test = result.test
        return cls(
            verdict=result.verdict,
            reasons=tuple(result.reasons),
            incumbent=result.incumbent,
            candidate=result.candidate,
            lift=test.lift if test else None,
            ci_low=test.ci_low if test else None,
            ci_high=test.ci_high if test else None,
            p_value=test.p_value if test else None,
            test=test.test if test else None,
            n_paired=result.n_paired,
            regressions=tuple(result.regressions),
            improvements=tuple(result.improvements),
            critical_regressions=tuple(result.critical_regressions),
            minimum_detectable_lift=result.minimum_detectable_lift,
            discordance=result.discordance,
            guardrails=tuple(result.guardrails),
            categories=tuple(result.categories),
            scenarios=tuple(result.scenarios),
            thresholds=result.config,
            complete=result.complete,
            missing=tuple(result.missing),
            design=result.design,
        )

    def to_json(self) -> dict[str, Any]:
        """The gate's keys of ``summary.json``, in their order."""
        return {
            "verdict": self.verdict,
            "complete": self.complete,
            "missing": list(self.missing),
            "reasons": list(self.reasons),
            "incumbent": _flat(self.incumbent),
            "candidate": _flat(self.candidate),
            "lift": self.lift,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "p_value": self.p_value,
            "test": self.test,
            "alpha": self.alpha,
            "mode": self.mode,
            "n_paired": self.n_paired,
            "regressions": list(self.regressions),
            "improvements": list(self.improvements),
            "critical_regressions": list(self.critical_regressions),
            "minimum_detectable_lift": self.minimum_detectable_lift,
            "discordance": self.discordance,
            "guardrails": [_flat(g) for g in self.guardrails],
            "categories": [_flat(c) for c in self.categories],
            "scenarios": [_scenario_json(row) for row in self.scenarios],
            "thresholds": _flat(self.thresholds),
            "design": None if self.design is None else _flat(self.design),
        }

    @classmethod
    def from_json(cls, data: object, source: str = "summary.json", *, partial: bool = False) -> GateSummary:
        """Read the gate's part of a summary (other keys are left alone); `FormatError` when malformed.

        A ``format_version``, when present, must be this version's. ``partial`` lets every key
        but ``verdict`` be missing, taking an empty value: for abbreviated summaries written by hand.
        """
        reader = _Reader(data, source, partial)
        _check_version(reader, required=False)
        return cls._read(reader)

    @classmethod
    def load(cls, path: Path, *, partial: bool = False) -> GateSummary:
        """Read the gate's part of a ``summary.json`` file (see `from_json`)."""
        return cls.from_json(_read_json(path), str(path), partial=partial)

    @classmethod
    def _read(cls, reader: _Reader) -> GateSummary:
        if "verdict" not in reader.data:
            raise reader.malformed("key 'verdict' is missing")
        thresholds = _row(GateConfig, reader.child("thresholds"))
        reader.choice("thresholds.mode", thresholds.mode, MODES)
        gate = _build(
            cls,
            reader,
            incumbent=_row(RoleStats, reader.child("incumbent")),
            candidate=_row(RoleStats, reader.child("candidate")),
            guardrails=tuple(_row(Guardrail, item) for item in reader.children("guardrails")),
            categories=tuple(_row(CategoryRow, item) for item in reader.children("categories")),
            scenarios=tuple(_scenario(item, thresholds.k) for item in reader.children("scenarios")),
            thresholds=thresholds,
        )
        reader.choice("verdict", gate.verdict, VERDICTS)
        for key, value in (("alpha", gate.alpha), ("mode", gate.mode)):
            if reader.typed(key, type(value), value) != value:
                raise reader.malformed(f"key {key!r} is not the {key} of 'thresholds' ({value!r})")
        return gate


@dataclass(frozen=True)
class RunSummary:
    """``summary.json``: the gate's result, and the run it came from (its id, settings, provenance)."""

    run_id: str
    created_at: str
    gate: GateSummary
    split: str
    seed: int
    repeats: int
    judge: str | None
    cache: CacheStats
    catalog_sha256: str
    git_commit: str | None
    versions: dict[str, str]
    trajectory_format_version: int = FORMAT_VERSION
    canary: CanaryRun | None = None
    """The canary run's routing; None for an ordinary run."""

    def to_json(self) -> dict[str, Any]:
        """The content of ``summary.json``."""
        return {
            "format_version": SUMMARY_FORMAT_VERSION,
            "trajectory_format_version": self.trajectory_format_version,
            "run_id": self.run_id,
            "created_at": self.created_at,
            **self.gate.to_json(),
            "split": self.split,
            "seed": self.seed,
            "repeats": self.repeats,
            "canary": None if self.canary is None else _flat(self.canary),
            "judge": self.judge,
            "cache": _flat(self.cache),
            "catalog_sha256": self.catalog_sha256,
            "git_commit": self.git_commit,
            "versions": dict(self.versions),
        }

    @classmethod
    def from_json(cls, data: object, source: str = "summary.json") -> RunSummary:
        """Read a whole summary back: this format version, every key present and of its type, no other key.

        Anything else is a `FormatError` naming ``source`` and what is wrong.
        """
        reader = _Reader(data, source, partial=False)
        version = _check_version(reader, required=True)
        gate, cache = GateSummary._read(reader), _row(CacheStats, reader.child("cache"))
        summary = _build(cls, reader, gate=gate, cache=cache, canary=_canary(reader, version))
        reader.finish()
        return summary

    @classmethod
    def load(cls, path: Path) -> RunSummary:
        """Read a ``summary.json`` file (see `from_json`)."""
        return cls.from_json(_read_json(path), str(path))


# --------------------------------------------------------------------------- writing


def _flat(row: DataclassInstance) -> dict[str, Any]:
    """A row of plain fields as JSON: its fields in order, tuples as lists, nested rows as objects."""
    return {f.name: _plain(getattr(row, f.name)) for f in fields(row)}


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return _flat(value)
    return [_plain(item) for item in value] if isinstance(value, tuple) else value


def _scenario_json(row: ScenarioRow) -> dict[str, Any]:
    def role(stat: ScenarioRole) -> dict[str, Any]:
        return {
            "trials": stat.trials,
            "passes": stat.passes,
            "errors": stat.errors,
            "pass_rate": stat.pass_rate,
            "stability": stat.stability,
            f"pass^{stat.k}": stat.pass_hat_k,
            f"pass@{stat.k}": stat.pass_at_k,
        }

    return {
        "id": row.id,
        "category": row.category,
        "critical": row.critical,
        "file": row.file,
        "line": row.line,
        "outcome": row.outcome,
        "incumbent": role(row.incumbent),
        "candidate": role(row.candidate),
    }


# --------------------------------------------------------------------------- reading


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FormatError(f"{path}: the summary cannot be read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{path}: not an autoevolve summary: not JSON ({exc})") from None


def _check_version(reader: _Reader, required: bool) -> int:
    """The summary's format version, one of `READABLE_FORMAT_VERSIONS` (this one when a partial summary has none)."""
    reader.used.add("format_version")
    if "format_version" not in reader.data:
        if required:
            raise reader.error("not an autoevolve summary: it has no format_version")
        return SUMMARY_FORMAT_VERSION
    version = reader.data["format_version"]
    if type(version) is not int or version not in READABLE_FORMAT_VERSIONS:
        raise reader.error(
            f"summary format_version {version!r}; this version of pytest-autoevolve reads format_version "
            f"{SUMMARY_FORMAT_VERSION} (and {', '.join(map(str, READABLE_FORMAT_VERSIONS[:-1]))}; "
            "the summary was written by another version)"
        )
    return version


def _canary(reader: _Reader, version: int) -> CanaryRun | None:
    """The ``canary`` object (None: an ordinary run; a version-3 summary has no such key)."""
    if version < 4 and "canary" not in reader.data:
        return None
    if reader.get("canary", None) is None:
        return None
    canary = _row(CanaryRun, reader.child("canary"))
    if not (0 < canary.share <= 1 and 0 <= canary.routed <= canary.total):
        raise reader.malformed(f"key 'canary' routes {canary.routed} of {canary.total} at share {canary.share!r}")
    return canary


def _scenario(reader: _Reader, k: int) -> ScenarioRow:
    def role(name: str) -> ScenarioRole:
        side = reader.child(name)
        stat = _build(
            ScenarioRole,
            side,
            k=k,
            pass_hat_k=side.typed(f"pass^{k}", float | None),
            pass_at_k=side.typed(f"pass@{k}", float | None),
        )
        side.choice(f"{name}.stability", stat.stability, STABILITIES)
        side.finish()
        return stat

    row = _row(ScenarioRow, reader, incumbent=role("incumbent"), candidate=role("candidate"))
    reader.choice("outcome", row.outcome, OUTCOMES)
    return row


def _row(cls: type[_Row], reader: _Reader, **given: Any) -> _Row:
    """A nested object: `_build`, then no key may be left unread."""
    row = _build(cls, reader, **given)
    reader.finish()
    return row


def _build(cls: type[_Row], reader: _Reader, **given: Any) -> _Row:
    """An instance of the dataclass ``cls``: ``given`` fields as they are, the others read by their types."""
    hints = _hints(cls)
    values = dict(given)
    for f in fields(cls):
        if f.name not in values:
            values[f.name] = reader.typed(f.name, hints[f.name], f.default)
    return cls(**values)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """The resolved field types of a dataclass."""
    return get_type_hints(cls)


class _Reader:
    """Typed access to one JSON object of a summary: a missing or mistyped key is a `FormatError`.

    ``partial`` gives a missing key its field's default, or an empty value of its type.
    """

    def __init__(self, data: object, source: str, partial: bool, path: str = "") -> None:
        self.source, self.partial, self.path = source, partial, path
        if not isinstance(data, Mapping):
            if not path:
                raise self.error(f"not an autoevolve summary: it is {_kind(data)}, not a JSON object")
            raise self.malformed(f"key {path!r} is {_kind(data)}, expected a JSON object")
        self.data: Mapping[str, object] = data
        self.used: set[str] = set()

    def error(self, message: str) -> FormatError:
        """A `FormatError` naming the file."""
        return FormatError(f"{self.source}: {message}")

    def malformed(self, message: str) -> FormatError:
        """A `FormatError` for a summary whose keys are wrong."""
        return self.error(f"malformed summary: {message}")

    def key(self, key: str) -> str:
        """The dotted path of ``key`` from the top of the document."""
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, default: object) -> object:
        """The raw value of ``key``; ``default`` when it is missing from a partial summary."""
        self.used.add(key)
        if key in self.data:
            return self.data[key]
        if self.partial:
            return default
        raise self.malformed(f"key {self.key(key)!r} is missing")

    def typed(self, key: str, hint: Any, default: object = MISSING) -> Any:
        """The value of ``key`` checked against the type ``hint`` (lists read as tuples where the type says so)."""
        value = self.get(key, _empty(hint) if default is MISSING else default)
        converted = _convert(value, hint)
        if converted is _WRONG:
            raise self.malformed(f"key {self.key(key)!r} is {_kind(value)}, expected {_expected(hint)}")
        return converted

    def child(self, key: str) -> _Reader:
        """The object under ``key``."""
        return _Reader(self.get(key, {}), self.source, self.partial, self.key(key))

    def children(self, key: str) -> list[_Reader]:
        """The objects in the list under ``key``."""
        items = self.get(key, [])
        if not isinstance(items, list):
            raise self.malformed(f"key {self.key(key)!r} is {_kind(items)}, expected a list")
        return [_Reader(item, self.source, self.partial, f"{self.key(key)}[{i}]") for i, item in enumerate(items)]

    def choice(self, key: str, value: str, choices: tuple[str, ...]) -> None:
        """Check that ``value`` (read from ``key``) is one of ``choices``."""
        if value not in choices:
            raise self.malformed(f"key {self.key(key)!r} is {value!r}, expected one of {', '.join(choices)}")

    def finish(self) -> None:
        """Check that no key was left unread (a key this format version does not have)."""
        unknown = sorted(set(self.data) - self.used)
        if unknown and not self.partial:
            where = f"in {self.path!r}" if self.path else "at the top"
            raise self.malformed(f"unknown key(s) {', '.join(map(repr, unknown))} {where}")


def _convert(value: object, hint: Any) -> object:
    """``value`` as the type ``hint`` (str, int, float, bool, optional, tuples, string maps); `_WRONG` when not."""
    args = get_args(hint)
    if isinstance(hint, types.UnionType):  # X | None
        inner = next(a for a in args if a is not type(None))
        return None if value is None else _convert(value, inner)
    if get_origin(hint) is tuple:
        if not isinstance(value, list | tuple) or (args[-1] is not Ellipsis and len(value) != len(args)):
            return _WRONG
        kinds = [args[0]] * len(value) if args[-1] is Ellipsis else list(args)
        items = [_convert(item, kind) for item, kind in zip(value, kinds, strict=True)]
        return _WRONG if _WRONG in items else tuple(items)
    if get_origin(hint) is dict:
        ok = isinstance(value, Mapping) and all(isinstance(x, str) for x in (*value.keys(), *value.values()))
        return dict(value) if ok and isinstance(value, Mapping) else _WRONG
    if hint is float:
        return value if isinstance(value, int | float) and not isinstance(value, bool) else _WRONG
    if hint is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _WRONG
    if hint in (str, bool):
        return value if isinstance(value, hint) else _WRONG
    if isinstance(hint, type) and is_dataclass(hint):
        return _convert_row(value, hint)
    raise TypeError(f"no JSON reading for the type {hint!r}")


def _convert_row(value: object, cls: type) -> object:
    """A nested row (a budget, a look) from its JSON object: every key known and of its type."""
    names = {f.name for f in fields(cls)}
    if not isinstance(value, Mapping) or not set(value) <= names:
        return _WRONG
    hints = _hints(cls)
    converted = {name: _convert(item, hints[name]) for name, item in value.items()}
    return _WRONG if any(item is _WRONG for item in converted.values()) else cls(**converted)


def _empty(hint: Any) -> object:
    """The value a key of type ``hint`` takes when a partial summary leaves it out."""
    if isinstance(hint, types.UnionType):
        return None
    origin = get_origin(hint)
    if origin is tuple:
        return () if get_args(hint)[-1] is Ellipsis else (float("nan"), float("nan"))
    return {} if origin is dict else {str: "", int: 0, float: 0.0, bool: False}[hint]


def _expected(hint: Any) -> str:
    if isinstance(hint, types.UnionType):
        return " or ".join(_expected(a) for a in get_args(hint))
    args = get_args(hint)
    if get_origin(hint) is tuple:
        return "a list of strings" if args[-1] is Ellipsis else f"a list of {len(args)} numbers"
    if get_origin(hint) is dict:
        return "an object of strings"
    names = {str: "a string", int: "a whole number", float: "a number", bool: "true or false", type(None): "null"}
    return names.get(hint, "an object")


def _kind(value: object) -> str:
    """What a JSON value is, for a message: its kind and a short rendering."""
    kinds = {type(None): "null", bool: "a boolean", int: "a whole number", float: "a number", str: "a string"}
    kind = kinds.get(type(value), "a list" if isinstance(value, list) else "an object")
    shown = json.dumps(value, default=str)
    return f"{kind} ({shown[:40]}{'…' if len(shown) > 40 else ''})" if value is not None else kind

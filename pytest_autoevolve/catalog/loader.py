"""Scenario files: loading, validation and `vars` expansion (DESIGN §4).

Every problem in a file raises `ScenarioError`, which names the file, the scenario
(by id, or by its position when it has none) and the key, and says what is allowed.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_autoevolve.catalog.tools import tool_from_entry
from pytest_autoevolve.catalog.yamlfile import _parse
from pytest_autoevolve.errors import ScenarioError
from pytest_autoevolve.graders.registry import GraderRegistry
from pytest_autoevolve.providers.base import ModelSpecError, parse_spec
from pytest_autoevolve.records import NamedCheck, Scenario, SimulatedUser, Tool, written_text
from pytest_autoevolve.settings import Limits

SPLITS = ("eval", "train")

ROLES = ("system", "user", "assistant")

SCENARIO_KEYS = (
    "id",
    "description",
    "input",
    "messages",
    "expected",
    "expect",
    "category",
    "tags",
    "split",
    "repeats",
    "critical",
    "timeout_s",
    "max_turns",
    "tools",
    "metadata",
    "turns",
    "user",
    "vars",
)

FILE_KEYS = ("defaults", "scenarios")

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")

TAG_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

RESERVED_MARKERS = ("skip", "skipif", "xfail", "parametrize", "usefixtures", "filterwarnings", "autoevolve")

UNTEMPLATED_KEYS = ("metadata",)
"""Keys whose text is handed to the agent as data: a ``{{...}}`` there is not a placeholder."""

USER_KEYS = ("model", "persona", "max_turns", "stop")
DEFAULT_STOP = "###STOP###"
DEFAULT_USER_TURNS = 10

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def load_file(
    path: Path, registry: GraderRegistry, display: str | None = None, limits: Limits | None = None
) -> list[Scenario]:
    """Every scenario of one file, validated and expanded; `ScenarioError` on bad input."""
    shown = display or str(path)
    limits = limits or Limits()
    try:
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            raise ScenarioError(
                shown, f"the file has {size} bytes, over limits.max_file_bytes={limits.max_file_bytes} of the config"
            )
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(shown, f"cannot read the file: {exc}") from None
    data, lines = _parse(Path(shown), text, limits.max_yaml_nodes)
    if not isinstance(data, dict):
        kind = "an empty file" if data is None else f"a {type(data).__name__}"
        raise ScenarioError(shown, f"a scenario file is a mapping with a 'scenarios' list; this is {kind}")
    for key in data:
        if key not in FILE_KEYS:
            raise ScenarioError(shown, f"unknown top-level key; allowed: {', '.join(FILE_KEYS)}", key=str(key))
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ScenarioError(shown, "'defaults' is a mapping of scenario keys", key="defaults")
    for key in defaults:
        if key not in SCENARIO_KEYS or key in ("id", "vars"):
            allowed = [k for k in SCENARIO_KEYS if k not in ("id", "vars")]
            raise ScenarioError(shown, f"unknown key in defaults; allowed: {', '.join(allowed)}", key=f"defaults.{key}")
    entries = data.get("scenarios")
    if not isinstance(entries, list) or not entries:
        raise ScenarioError(shown, "'scenarios' is a non-empty list of scenario mappings", key="scenarios")
    builder = _Builder(path.parent, shown, registry, limits.max_scenarios_per_entry)
    scenarios: list[Scenario] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        line = lines[index] if index < len(lines) else 0
        for scenario in builder.expand(entry, defaults, index, line):
            if scenario.id in seen:
                raise ScenarioError(
                    shown,
                    f"duplicate id, first defined at line {seen[scenario.id]}",
                    scenario=repr(scenario.id),
                    key="id",
                    line=line,
                )
            seen[scenario.id] = line
            scenarios.append(scenario)
    return scenarios


def _substitute(value: Any, variables: Mapping[str, Any], missing: list[str]) -> Any:
    """Replace ``{{name}}`` in every string of ``value``; a lone placeholder keeps its type."""
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value.strip())
        if whole and whole.group(1) in variables:
            return variables[whole.group(1)]

        def replace(match: re.Match[str]) -> str:
            if match.group(1) not in variables:
                missing.append(match.group(1))
                return match.group(0)
            return written_text(variables[match.group(1)])

        return PLACEHOLDER.sub(replace, value)
    if isinstance(value, list):
        return [_substitute(v, variables, missing) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, variables, missing) for k, v in value.items()}
    return value


def _var_rows(raw: Any, limit: int) -> list[dict[str, Any]]:
    """`vars` as rows: a list of mappings, or a mapping of lists (their product), at most ``limit`` of them."""
    if isinstance(raw, list) and raw and all(isinstance(row, dict) for row in raw):
        if len(raw) > limit:
            raise ValueError(f"'vars' gives {len(raw)} rows, over limits.max_scenarios_per_entry={limit}")
        return raw
    if isinstance(raw, dict) and raw and all(isinstance(v, list) and v for v in raw.values()):
        count = math.prod(len(v) for v in raw.values())
        if count > limit:
            raise ValueError(
                f"'vars' expands to {count} scenarios, over limits.max_scenarios_per_entry={limit} of the config"
            )
        names = list(raw)
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*raw.values())]
    raise ValueError("'vars' is a non-empty list of mappings, or a mapping of non-empty lists (their product)")


class _Builder:
    """Validates and expands the entries of one file."""

    def __init__(self, folder: Path, shown: str, registry: GraderRegistry, max_scenarios: int) -> None:
        self.folder, self.shown, self.registry = folder, shown, registry
        self.max_scenarios = max_scenarios

    def error(self, message: str, where: str, key: str | None, line: int) -> ScenarioError:
        return ScenarioError(self.shown, message, scenario=where, key=key, line=line)

    def expand(self, entry: Any, defaults: Mapping[str, Any], index: int, line: int) -> Iterator[Scenario]:
        """The scenarios one entry stands for (many with `vars`)."""
        where = f"#{index + 1}"
        if not isinstance(entry, dict):
            raise self.error(f"a scenario is a mapping, got {type(entry).__name__}", where, None, line)
        if isinstance(entry.get("id"), str | int) and not isinstance(entry.get("id"), bool):
            where = repr(str(entry["id"]))
        for key in entry:
            if key not in SCENARIO_KEYS:
                raise self.error(f"unknown key; allowed: {', '.join(SCENARIO_KEYS)}", where, str(key), line)
        merged = {**defaults, **entry}
        if "vars" not in merged:
            for key, value in merged.items():
                missing: list[str] = []
                _substitute(value, {}, missing)
                if missing and key not in UNTEMPLATED_KEYS:
                    raise self.error(
                        f"placeholder {{{{{missing[0]}}}}} has no value: this entry has no 'vars'", where, key, line
                    )
            yield self.build(merged, where, line)
            return
        try:
            rows = _var_rows(merged.pop("vars"), self.max_scenarios)
        except ValueError as exc:
            raise self.error(str(exc), where, "vars", line) from None
        for row in rows:
            missing = []
            expanded = _substitute(merged, row, missing)
            if missing:
                raise self.error(
                    f"placeholder {{{{{missing[0]}}}}} has no value; vars give: {', '.join(row)}", where, "vars", line
                )
            yield self.build(expanded, where, line)

    def build(self, raw: dict[str, Any], where: str, line: int) -> Scenario:
        """Validate one expanded mapping into a `Scenario`."""
        ident = raw.get("id")
        if ident is None:
            raise self.error("every scenario needs an 'id', unique across the catalog", where, "id", line)
        if isinstance(ident, bool) or not isinstance(ident, str | int) or not ID_PATTERN.match(str(ident)):
            raise self.error(
                f"id {ident!r} must be letters, digits, '_', '.' or '-', starting with a letter or digit",
                where,
                "id",
                line,
            )
        where = repr(str(ident))
        fields = _Fields(raw, lambda message, key: self.error(message, where, key, line))
        messages, turns = fields.conversation()
        expected = fields.text("expected")
        graders = self.graders(raw, expected, where, line)
        return Scenario(
            id=str(ident),
            messages=messages,
            graders=graders,
            path=self.shown,
            line=line,
            expected=expected,
            description=fields.text("description"),
            category=fields.text("category"),
            tags=fields.tags(),
            split=fields.choice("split", SPLITS, "eval"),
            repeats=fields.positive("repeats", int),
            critical=fields.flag("critical"),
            timeout_s=fields.positive("timeout_s", float),
            max_turns=fields.positive("max_turns", int),
            tools=self.tools(raw.get("tools"), where, line),
            metadata=fields.mapping("metadata"),
            turns=turns,
            user=self.user(raw.get("user"), where, line),
        )

    def user(self, value: Any, where: str, line: int) -> SimulatedUser | None:
        """The simulated user of ``user:``, its model spec checked and bound to the run's judge registry."""
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.error(f"'user' is a mapping with {', '.join(USER_KEYS)}", where, "user", line)
        for key in value:
            if key not in USER_KEYS:
                raise self.error(f"unknown key; allowed: {', '.join(USER_KEYS)}", where, f"user.{key}", line)
        fields = _Fields(value, lambda message, key: self.error(message, where, f"user.{key}", line))
        persona, stop = fields.text("persona"), fields.text("stop")
        if not persona or stop == "":
            key = "stop" if persona else "persona"
            raise self.error(f"'{key}' is a non-empty string", where, f"user.{key}", line)
        judge = self.registry.judge
        try:
            spec = value["model"]
            display = judge.describe(spec) if judge is not None else parse_spec(spec).display
        except (KeyError, ValueError, ModelSpecError) as exc:
            reason = "'model' is required: a model spec or a name under models:" if isinstance(exc, KeyError) else exc
            raise self.error(str(reason), where, "user.model", line) from None
        return SimulatedUser(
            spec,
            display,
            persona,
            fields.positive("max_turns", int) or DEFAULT_USER_TURNS,
            stop or DEFAULT_STOP,
            functools.partial(judge.ask, spec) if judge is not None else None,
        )

    def tools(self, entries: Any, where: str, line: int) -> tuple[Tool, ...]:
        """The scenario's function tools, imported and described."""
        if entries is None:
            return ()
        if not isinstance(entries, list):
            raise self.error(
                "'tools' is a list of 'pkg.module:function' or {python, name, description, parameters}",
                where,
                "tools",
                line,
            )
        tools = []
        for position, entry in enumerate(entries):
            try:
                tools.append(tool_from_entry(entry, self.folder))
            except ValueError as exc:
                raise self.error(str(exc), where, f"tools[{position}]", line) from None
        names = [t.name for t in tools]
        if len(set(names)) != len(names):
            raise self.error(f"tool names must be unique, got {', '.join(names)}", where, "tools", line)
        return tuple(tools)

    def graders(self, raw: Mapping[str, Any], expected: str | None, where: str, line: int) -> tuple[NamedCheck, ...]:
        """The checks from `expected` and `expect`, built and validated."""
        checks: list[NamedCheck] = []
        if expected is not None:
            checks.append(NamedCheck("equals", expected, self.registry.build("equals", expected, self.folder)))
        entries = raw.get("expect", [])
        if not isinstance(entries, list):
            raise self.error(
                "'expect' is a list of one-key grader mappings, e.g. - contains: '4'", where, "expect", line
            )
        for position, entry in enumerate(entries):
            key = f"expect[{position}]"
            if not isinstance(entry, dict) or not entry:
                raise self.error(
                    f"a grader is a one-key mapping; known graders: {', '.join(self.registry.names())}",
                    where,
                    key,
                    line,
                )
            if len(entry) != 1:
                raise self.error(f"one grader per entry, got {', '.join(map(str, entry))}", where, key, line)
            name, value = next(iter(entry.items()))
            try:
                checks.append(NamedCheck(str(name), value, self.registry.build(str(name), value, self.folder)))
            except ValueError as exc:
                raise self.error(str(exc), where, f"{key}.{name}", line) from None
        if not checks:
            raise self.error("no grader: give 'expected' or a list under 'expect'", where, "expect", line)
        return tuple(checks)


class _Fields:
    """Typed access to one scenario mapping; every mistake raises through ``fail``."""

    def __init__(self, raw: Mapping[str, Any], fail: Any) -> None:
        self.raw, self.fail = raw, fail

    def text(self, key: str) -> str | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.fail(f"'{key}' is a string, got {type(value).__name__} {value!r}", key)
        return written_text(value)

    def conversation(self) -> tuple[tuple[Mapping[str, str], ...], tuple[str, ...]]:
        """The opening messages and the scripted turns after them; ``turns`` alone opens with its first."""
        turns = self.turns()
        if turns and "input" not in self.raw and "messages" not in self.raw:
            return ({"role": "user", "content": turns[0]},), turns[1:]
        return self.messages(), turns

    def turns(self) -> tuple[str, ...]:
        value = self.raw.get("turns")
        if value is None:
            return ()
        if not isinstance(value, list) or not value:
            raise self.fail("'turns' is a non-empty list of user messages (strings)", "turns")
        for position, turn in enumerate(value):
            if isinstance(turn, bool) or not isinstance(turn, str | int | float):
                raise self.fail(
                    f"each turn is a user message (a string), got {type(turn).__name__} {turn!r}",
                    f"turns[{position}]",
                )
        return tuple(written_text(turn) for turn in value)

    def messages(self) -> tuple[Mapping[str, str], ...]:
        has_input, has_messages = "input" in self.raw, "messages" in self.raw
        if has_input == has_messages:
            which = "both" if has_input else "neither"
            raise self.fail(
                f"give exactly one of 'input' (a user message) or 'messages', or open with 'turns'; got {which}",
                "input",
            )
        if has_input:
            return ({"role": "user", "content": self.text("input") or ""},)
        value = self.raw["messages"]
        if not isinstance(value, list) or not value:
            raise self.fail("'messages' is a non-empty list of {role, content} mappings", "messages")
        messages = []
        for position, message in enumerate(value):
            key = f"messages[{position}]"
            if not isinstance(message, dict) or set(message) != {"role", "content"}:
                raise self.fail("each message is a mapping with exactly 'role' and 'content'", key)
            if message["role"] not in ROLES:
                raise self.fail(f"unknown role {message['role']!r}; allowed: {', '.join(ROLES)}", f"{key}.role")
            if not isinstance(message["content"], str):
                raise self.fail(f"'content' is a string, got {type(message['content']).__name__}", f"{key}.content")
            messages.append({"role": message["role"], "content": message["content"]})
        return tuple(messages)

    def tags(self) -> tuple[str, ...]:
        value = self.raw.get("tags", [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise self.fail("'tags' is a list of names", "tags")
        for tag in value:
            if isinstance(tag, str) and tag in RESERVED_MARKERS:
                raise self.fail(f"tag {tag!r} is a pytest marker with its own meaning; choose another name", "tags")
            if not isinstance(tag, str) or not TAG_PATTERN.match(tag):
                raise self.fail(f"tag {tag!r} must be a name of letters, digits and '_' (usable with -m)", "tags")
        return tuple(value)

    def choice(self, key: str, allowed: Iterable[str], default: str) -> str:
        value = self.raw.get(key, default)
        if value not in allowed:
            raise self.fail(f"{value!r} is not allowed; allowed: {', '.join(allowed)}", key)
        return str(value)

    def positive(self, key: str, kind: type[int] | type[float]) -> Any:
        value = self.raw.get(key)
        if value is None:
            return None
        whole = isinstance(value, int) and not isinstance(value, bool)
        number = whole or (kind is float and isinstance(value, float))
        if not number or value <= 0:
            what = "a positive whole number" if kind is int else "a positive number of seconds"
            raise self.fail(f"'{key}' is {what}, got {value!r}", key)
        return kind(value)

    def flag(self, key: str) -> bool:
        value = self.raw.get(key, False)
        if not isinstance(value, bool):
            raise self.fail(f"'{key}' is true or false, got {value!r}", key)
        return value

    def mapping(self, key: str) -> dict[str, Any]:
        value = self.raw.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(f"'{key}' is a mapping, got {type(value).__name__}", key)
        return value


@dataclass
class Catalog:
    """Every scenario of the catalog, ids unique across files."""

    scenarios: list[Scenario] = field(default_factory=list)
    _origin: dict[str, str] = field(default_factory=dict, repr=False)

    def add(self, scenarios: Iterable[Scenario]) -> None:
        """Add one file's scenarios; a `ScenarioError` for an id another file has."""
        fresh = list(scenarios)
        for scenario in fresh:
            first = self._origin.get(scenario.id)
            if first is not None and first != scenario.path:
                raise ScenarioError(
                    scenario.path,
                    f"duplicate id: already defined in {first}",
                    scenario=repr(scenario.id),
                    key="id",
                    line=scenario.line,
                )
        for scenario in fresh:
            self._origin[scenario.id] = scenario.path
        self.scenarios.extend(fresh)

    def split(self, name: str) -> list[Scenario]:
        """The scenarios of one split (`eval`, `train`), or all for `all`."""
        return [s for s in self.scenarios if name == "all" or s.split == name]

    def __getitem__(self, scenario_id: str) -> Scenario:
        for scenario in self.scenarios:
            if scenario.id == scenario_id:
                return scenario
        raise KeyError(scenario_id)

    def __len__(self) -> int:
        return len(self.scenarios)

    def __iter__(self) -> Iterator[Scenario]:
        return iter(self.scenarios)


def scenario_files(roots: Iterable[Path]) -> list[Path]:
    """Every ``*.yaml``/``*.yml`` under the catalog folders, sorted."""
    found: set[Path] = set()
    for root in roots:
        if root.is_file():
            found.add(root)
        elif root.is_dir():
            found.update(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    return sorted(found)


def load_catalog(
    roots: Iterable[Path], registry: GraderRegistry, base: Path | None = None, limits: Limits | None = None
) -> Catalog:
    """Load every scenario file under ``roots``; the first error raises."""
    catalog = Catalog()
    for path in scenario_files(roots):
        shown = str(path.relative_to(base)) if base and path.is_relative_to(base) else str(path)
        catalog.add(load_file(path, registry, shown, limits))
    return catalog

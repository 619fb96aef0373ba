"""Read junit XML files written by ``pytest --autoevolve --junitxml`` back into gate inputs (DESIGN §7).

pytest writes ``testsuites > testsuite > testcase > properties``. Each scenario item carries
its `ItemResult` as testcase properties (``autoevolve=scenario``, ``role``, ``scenario``,
``score``, ``passed``, ``latency_s``, ``tokens``, ...) and the run's verdict is in the
testsuite properties ``autoevolve_verdict``, ``autoevolve_lift``, ... . Files are parsed
with junitparser; nested testsuites and several testsuites per file are read too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from junitparser import Element, JUnitXml, JUnitXmlError, Properties, TestSuite

from pytest_autoevolve.errors import FormatError
from pytest_autoevolve.gate.results import ItemResult

RUN_PREFIX = "autoevolve_"
"""Testsuite properties of the run (verdict, lift, ...) carry this prefix."""


class JunitError(FormatError, ValueError):
    """A junit file that is missing, not junit XML, or holds no autoevolve items."""


@dataclass
class JunitRun:
    """What one junit file says about an autoevolve run."""

    path: Path
    items: list[ItemResult]
    run: dict[str, str] = field(default_factory=dict)
    testcases: int = 0

    @property
    def verdict(self) -> str | None:
        """The verdict the run recorded, if any."""
        return self.run.get("verdict") or None

    @property
    def seed(self) -> int | None:
        """The run's seed, when the file records it."""
        text = self.run.get("seed", "")
        try:
            return int(text)
        except ValueError:
            return None

    def recorded(self) -> dict[str, Any]:
        """The run-level properties with numbers as numbers and empty values as None."""
        values: dict[str, Any] = {}
        for name, text in self.run.items():
            values[name] = (
                _number(text)
                if name in ("lift", "ci_low", "ci_high", "p_value", "n_paired", "seed")
                else (text or None)
            )
        return values

    def role(self, role: str) -> list[ItemResult]:
        """The items of one role, in file order."""
        return [item for item in self.items if item.role == role]


def _number(text: str) -> float | int | None:
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return None


def _suites(suite: TestSuite) -> Iterator[TestSuite]:
    yield suite
    for child in suite.testsuites():  # type: ignore[no-untyped-call]
        yield from _suites(child)


def _properties(element: Element) -> dict[str, str]:
    """The ``<properties>`` of a testsuite or testcase (junitparser's TestCase has no accessor)."""
    props: Properties | None = element.child(Properties)  # type: ignore[no-untyped-call]
    if props is None:
        return {}
    return {str(p.name): "" if p.value is None else str(p.value) for p in props if p.name is not None}


def read_junit(path: str | Path) -> JunitRun:
    """Parse one junit file; `JunitError` with a plain message when it is not a usable one."""
    path = Path(path)
    if not path.exists():
        raise JunitError(f"no such junit file: {path}")
    if not path.is_file():
        raise JunitError(f"{path} is not a file; give the junit XML written by pytest --junitxml")
    try:
        xml = JUnitXml.fromfile(str(path))
    except JUnitXmlError:
        raise JunitError(
            f"{path} is XML but not junit: its root element is neither <testsuites> nor <testsuite>"
        ) from None
    except SyntaxError as exc:  # xml.etree's ParseError and lxml's XMLSyntaxError both are
        raise JunitError(f"{path} is not valid XML: {exc}") from None
    except OSError as exc:
        raise JunitError(f"cannot read {path}: {exc.strerror or exc}") from None
    run = JunitRun(path=path, items=[])
    for top in xml:
        for suite in _suites(top):
            for name, value in _properties(suite).items():
                if name.startswith(RUN_PREFIX):
                    run.run[name.removeprefix(RUN_PREFIX)] = value
        for case in top:  # junitparser walks the nested testsuites' testcases too
            run.testcases += 1
            try:
                item = ItemResult.from_properties(_properties(case))
            except (KeyError, ValueError) as exc:
                where = "::".join(x for x in (case.classname, case.name) if x)
                raise JunitError(f"{path}: testcase {where} has broken autoevolve properties ({exc!r})") from None
            if item is not None:
                run.items.append(item)
    if not run.items:
        raise JunitError(
            f"{path} holds {run.testcases} testcase(s) but none from an autoevolve run (no 'autoevolve' "
            f"testcase properties); write it with: pytest --autoevolve --junitxml={path.name}"
        )
    return run


def merge(runs: Sequence[JunitRun]) -> list[ItemResult]:
    """The items of several files (e.g. CI shards); a scenario and role found twice is an error."""
    seen: dict[tuple[str, str, str], Path] = {}
    items: list[ItemResult] = []
    for run in runs:
        for item in run.items:
            key = (item.role, item.split, item.scenario)
            if key in seen:
                also = "" if seen[key] == run.path else f" and in {run.path}"
                raise JunitError(
                    f"scenario {item.scenario!r} ({item.role}, {item.split} split) appears twice: in {seen[key]}{also}"
                )
            seen[key] = run.path
            items.append(item)
    return items


def side(run: JunitRun) -> tuple[str, list[ItemResult]]:
    """The role whose items stand for a run in a comparison: the candidate's, else the incumbent's."""
    for role in ("candidate", "incumbent"):
        items = run.role(role)
        if items:
            return role, items
    roles = ", ".join(sorted({item.role for item in run.items}))
    raise JunitError(f"{run.path} has no candidate or incumbent items (roles found: {roles})")


def before_after(before: JunitRun, after: JunitRun) -> tuple[list[ItemResult], str, str]:
    """Items of two runs relabelled for the gate: ``before`` as the incumbent, ``after`` as the candidate.

    Each run is represented by its candidate-role items, or by its incumbent-role items when it
    has no candidate ones. Returns the items and the role taken from each file.
    """
    before_role, before_items = side(before)
    after_role, after_items = side(after)
    items = [replace(i, role="incumbent") for i in before_items] + [replace(i, role="candidate") for i in after_items]
    return items, before_role, after_role

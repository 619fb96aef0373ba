"""Reading one YAML scenario file: a safe loader that refuses duplicate keys and knows each entry's line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pytest_autoevolve.errors import ScenarioError
from pytest_autoevolve.records import WrittenFloat, WrittenInt


class _LineLoader(yaml.SafeLoader):
    """A safe loader that refuses a key written twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is written twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_written_int(self, node: yaml.ScalarNode) -> int:
        """An integer that keeps its source text, so ``expected: 02134`` means the text ``02134``."""
        return WrittenInt(self.construct_yaml_int(node), str(node.value))

    def construct_written_float(self, node: yaml.ScalarNode) -> float:
        """A float that keeps its source text, so ``expected: 2.50`` means the text ``2.50``."""
        return WrittenFloat(self.construct_yaml_float(node), str(node.value))


_LineLoader.add_constructor("tag:yaml.org,2002:int", _LineLoader.construct_written_int)
_LineLoader.add_constructor("tag:yaml.org,2002:float", _LineLoader.construct_written_float)


def _parse(path: Path, text: str) -> tuple[Any, list[int]]:
    """The YAML document and the line of each entry under `scenarios:`."""
    loader = _LineLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(path, f"YAML syntax error: {problem}", line=line) from None
    finally:
        loader.dispose()
    lines: list[int] = []
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == "scenarios" and isinstance(value_node, yaml.SequenceNode):
                lines = [item.start_mark.line + 1 for item in value_node.value]
    return data, lines

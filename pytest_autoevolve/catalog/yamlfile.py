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


def expanded_size(node: yaml.Node, limit: int) -> int:
    """How many values ``node`` stands for with every alias expanded, counting no further than ``limit``."""
    sizes: dict[int, int] = {}

    def size(current: yaml.Node) -> int:
        if id(current) in sizes:
            return sizes[id(current)]
        sizes[id(current)] = 1  # a node that refers to itself counts once
        children: list[yaml.Node] = []
        if isinstance(current, yaml.SequenceNode):
            children = list(current.value)
        elif isinstance(current, yaml.MappingNode):
            children = [part for pair in current.value for part in pair]
        total = 1
        for child in children:
            total = min(total + size(child), limit + 1)
        sizes[id(current)] = total
        return total

    return size(node)


def _parse(path: Path, text: str, max_nodes: int) -> tuple[Any, list[int]]:
    """The YAML document and the line of each entry under `scenarios:`; aliases may not expand past ``max_nodes``."""
    try:
        loader = _LineLoader(text)  # the reader refuses control characters already here
    except yaml.YAMLError as exc:
        raise ScenarioError(path, f"not a YAML text: {exc}") from None
    try:
        node = loader.get_single_node()
        if node is not None and expanded_size(node, max_nodes) > max_nodes:
            raise ScenarioError(
                path,
                f"the YAML expands to more than {max_nodes} values (aliases repeated inside aliases?); "
                "raise limits.max_yaml_nodes in the config if the file is meant to be this large",
            )
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

"""The project a loop works on: its config file, its catalog, and where fine-tune work goes."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_autoevolve.errors import LoopError

CONFIG_FILE = "autoevolve.yaml"

WORK_DIR = "finetune"


class FineTuneError(LoopError):
    """A step of the loop that cannot go on: the message says why and what to do."""


def incumbent_of(root: Path) -> str:
    """The project's incumbent spec, as every run reads it (`load_settings`)."""
    from pytest_autoevolve.settings import load_settings

    return str(load_settings(root).incumbent)


def read_config(root: Path) -> dict[str, Any]:
    """``autoevolve.yaml`` as a plain mapping (empty when there is none); `update_config` changes it.

    To read a setting, use `pytest_autoevolve.settings.load_settings`, which also reads
    pyproject.toml and validates.
    """
    import yaml

    path = root / CONFIG_FILE
    data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return data if isinstance(data, dict) else {}


LAYOUTS = ((2, 4, 2), (2, 2, 0), (4, 4, 2), (4, 6, 4), (4, 4, 0))

"""Indentations (mapping, sequence, dash offset) `edit_yaml` tries, in order, to write a file as it was written."""


def edit_yaml(text: str, changes: Mapping[str, Any]) -> tuple[str, list[str]]:
    """``text`` (a YAML mapping) with each top-level key of ``changes`` set, or removed when None.

    A round trip (ruamel.yaml): comments, order, quoting and indentation stay as they were. Also
    returns each change in words (``incumbent: tiny -> tiny+adapter=...``); no change, no new text.
    """
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.error import YAMLError

    try:
        document = _yaml().load(text) if text.strip() else None
    except YAMLError as exc:
        why = " ".join(str(exc).split())
        raise FineTuneError(f"{CONFIG_FILE} cannot be edited: it is not valid YAML: {why}") from None
    document = CommentedMap() if document is None else document
    if not isinstance(document, dict):
        raise FineTuneError(f"{CONFIG_FILE} is not a mapping of settings: it cannot be edited")
    layout = next((lay for lay in LAYOUTS if _dump(document, lay) == text), LAYOUTS[0])
    said = []
    for key, value in changes.items():
        old = document.get(key)
        if old == value or (value is None and key not in document):
            continue
        said.append(f"{key}: {_shown(old, key in document)} -> {_shown(value, value is not None)}")
        if value is None:
            del document[key]
        else:
            document[key] = value
    return (_dump(document, layout), said) if said else (text, [])


def _yaml(layout: tuple[int, int, int] = LAYOUTS[0]) -> Any:
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.width, yaml.preserve_quotes = 4096, True
    yaml.indent(mapping=layout[0], sequence=layout[1], offset=layout[2])
    yaml.representer.add_representer(type(None), _null)
    return yaml


def _dump(document: Any, layout: tuple[int, int, int]) -> str:
    stream = io.StringIO()
    _yaml(layout).dump(document, stream)
    return stream.getvalue()


def _shown(value: Any, present: bool) -> str:
    return str(value) if present else "(not set)"


def _null(representer: Any, _: None) -> Any:
    return representer.represent_scalar("tag:yaml.org,2002:null", "null")  # as written, not an empty value


def update_config(root: Path, changes: Mapping[str, Any]) -> list[str]:
    """Set (or, with None, remove) top-level keys of ``autoevolve.yaml`` in place, atomically; each change in words.

    Comments and layout are kept (`edit_yaml`); a file nothing changes is not rewritten.
    """
    path = root / CONFIG_FILE
    text, said = edit_yaml(path.read_text(encoding="utf-8") if path.is_file() else "", changes)
    if said:
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
    return said


def project_catalog(root: Path) -> Any:
    """The catalog of the project at ``root``, from its configured folders (default ``scenarios``)."""
    from pytest_autoevolve.catalog.loader import load_catalog
    from pytest_autoevolve.run.registries import project_registries
    from pytest_autoevolve.settings import load_settings

    settings = load_settings(root)
    graders = project_registries(root, settings).graders
    return load_catalog([root / folder for folder in settings.catalog], graders, root, settings.limits)

"""The project a loop works on: its config file, its catalog, and where fine-tune work goes."""

from __future__ import annotations

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
    """``autoevolve.yaml`` as a mapping (empty when there is none), to edit and write back.

    To read a setting, use `pytest_autoevolve.settings.load_settings`, which also reads
    pyproject.toml and validates.
    """
    import yaml

    path = root / CONFIG_FILE
    data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return data if isinstance(data, dict) else {}


def write_config(root: Path, data: dict[str, Any]) -> None:
    """Write ``autoevolve.yaml`` atomically (comments in it are not kept)."""
    import yaml

    path = root / CONFIG_FILE
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    temporary.replace(path)


def project_catalog(root: Path) -> Any:
    """The catalog of the project at ``root``, from its configured folders (default ``scenarios``)."""
    from pytest_autoevolve.catalog.loader import load_catalog
    from pytest_autoevolve.run.registries import project_registries
    from pytest_autoevolve.settings import load_settings

    settings = load_settings(root)
    graders = project_registries(root, settings).graders
    return load_catalog([root / folder for folder in settings.catalog], graders, root, settings.limits)

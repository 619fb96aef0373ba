"""Importing user code named in scenarios and model specs (``pkg.module:function``)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def split_reference(ref: str) -> tuple[str, str]:
    """``pkg.mod:attr`` or ``pkg.mod.attr`` as (module, attribute path)."""
    if ":" in ref:
        module, _, attr = ref.partition(":")
    else:
        module, _, attr = ref.rpartition(".")
    if not module or not attr:
        raise ImportError(f"{ref!r} is not of the form 'package.module:function'")
    return module, attr


def import_object(ref: str, search: Iterable[Path] = ()) -> Any:
    """Import the object ``ref`` names, looking in ``search`` folders after `sys.path`."""
    module_name, attr = split_reference(ref)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module_name.startswith(exc.name):
            raise
        module = _import_from(module_name, [str(p) for p in search if str(p) not in sys.path])
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ImportError(f"module {module_name!r} has no attribute {attr!r}") from None
    return target


def _import_from(module_name: str, folders: list[str]) -> Any:
    sys.path[:0] = folders
    try:
        return importlib.import_module(module_name)
    finally:
        for folder in folders:
            sys.path.remove(folder)

"""The response cache: model replies on disk, keyed by everything that shapes them.

A key covers the model's fingerprint (provider, model, parameters, and for local models
the files they load), the messages, the tools, the trial seed and the **repeat index**,
so a repeat is never served another repeat's answer. Only successful replies are stored.
Entries live under ``<artifacts>/cache/<namespace>/``; judges use their own namespace. A model
entry's ``cache_expiry`` makes older entries misses.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from pytest_autoevolve.providers.base import Reply, stored_reply

CACHE_FORMAT_VERSION = 1
LOG = logging.getLogger("pytest_autoevolve")
_T = TypeVar("_T")
FINGERPRINTS = "fingerprints"
"""Not a namespace: the file digests behind models' fingerprints (`run.fingerprint`), under ``cache/``."""


class ResponseCache:
    """Replies on disk for one namespace, read and written per the mode."""

    def __init__(self, root: Path, namespace: str, mode: str = "readwrite") -> None:
        self.folder = root / "cache" / namespace
        self.mode = mode
        self.hits = 0
        self.misses = 0
        self.rejected = 0
        """Entries found but not served: torn, foreign or tampered (each logged)."""
        self.expired = 0
        """Entries found but written longer ago than the model's ``cache_expiry``."""
        self._lock = threading.Lock()

    @staticmethod
    def key(fingerprint: str, messages: Any, tools: Any, seed: int, repeat: int, scenario: Any = None) -> str:
        """The cache key of one call; ``scenario`` is what else the model is handed (metadata, tool code)."""
        payload = {
            "v": CACHE_FORMAT_VERSION,
            "model": fingerprint,
            "messages": messages,
            "tools": tools,
            "seed": seed,
            "repeat": repeat,
        }
        if scenario is not None:
            payload["scenario"] = scenario
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str, max_age_s: float | None = None) -> tuple[Reply, float] | None:
        """The stored reply and its original latency, when reading is on, the key is known and not too old."""
        return self.lookup(key, _reply, max_age_s)

    def lookup(self, key: str, parse: Callable[[dict[str, Any]], _T], max_age_s: float | None = None) -> _T | None:
        """What ``parse`` reads from the entry under ``key``, when reading is on and it is there, sound and not too old.

        ``parse`` raises `ValueError` on an entry it cannot read: like a torn, foreign or
        tampered entry, that is a miss, logged, never an answer.
        """
        if self.mode not in ("read", "readwrite"):
            return None
        path = self._path(key)
        try:
            if max_age_s is not None and time.time() - path.stat().st_mtime > max_age_s:
                self._miss(expired=True)
                return None
            text = path.read_text(encoding="utf-8")
        except OSError:
            self._miss()
            return None
        try:
            value = parse(_checked(json.loads(text), key))
        except ValueError as exc:
            LOG.warning("autoevolve cache: ignoring %s: %s", path, exc)
            self._miss(rejected=True)
            return None
        with self._lock:
            self.hits += 1
        return value

    def _miss(self, *, expired: bool = False, rejected: bool = False) -> None:
        with self._lock:
            self.misses += 1
            self.expired += expired
            self.rejected += rejected

    def put(self, key: str, reply: Reply, latency_s: float) -> None:
        """Store a successful reply, atomically, when writing is on."""
        self.store(key, {"reply": asdict(reply), "latency_s": latency_s})

    def store(self, key: str, fields: dict[str, Any]) -> None:
        """Store an entry of ``fields`` under ``key``, atomically, when writing is on."""
        if self.mode not in ("write", "readwrite"):
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        entry = {"format_version": CACHE_FORMAT_VERSION, "key": key, **fields}
        temporary.write_text(json.dumps(entry, default=str), encoding="utf-8")
        os.replace(temporary, path)


def _checked(entry: Any, key: str) -> dict[str, Any]:
    """A cache entry of this version stored under ``key``; `ValueError` says what is wrong."""
    if not isinstance(entry, dict) or entry.get("format_version") != CACHE_FORMAT_VERSION:
        raise ValueError("not a cache entry of this version")
    if entry.get("key") != key:
        raise ValueError("the entry was stored under another key")
    return entry


def _reply(entry: dict[str, Any]) -> tuple[Reply, float]:
    """The reply and latency of a reply entry, checked field by field; `ValueError` says what is wrong."""
    latency = entry.get("latency_s")
    if isinstance(latency, bool) or not isinstance(latency, int | float) or not 0 <= latency < math.inf:
        raise ValueError(f"latency_s is {latency!r}")
    try:
        return stored_reply(entry.get("reply"), "the entry"), float(latency)
    except TypeError as exc:
        raise ValueError(str(exc)) from None


@dataclass(frozen=True)
class CacheShelf:
    """What one namespace of the cache holds: its entries, their bytes, and the oldest and newest write."""

    namespace: str
    entries: int
    bytes: int
    oldest: float | None
    newest: float | None


def _namespaces(artifacts: Path) -> list[Path]:
    """The namespace folders under ``<artifacts>/cache/``, in name order."""
    root = artifacts / "cache"
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name != FINGERPRINTS) if root.is_dir() else []


def cache_shelves(artifacts: Path) -> list[CacheShelf]:
    """Every namespace under ``<artifacts>/cache/``, in name order."""
    shelves = []
    for folder in _namespaces(artifacts):
        stats = [path.stat() for path in _entries(folder)]
        times = [s.st_mtime for s in stats]
        shelves.append(
            CacheShelf(
                folder.name,
                len(stats),
                sum(s.st_size for s in stats),
                min(times, default=None),
                max(times, default=None),
            )
        )
    return shelves


def remove_entries(artifacts: Path, namespace: str | None = None, older_than_s: float | None = None) -> int:
    """Delete the entries of ``namespace`` (every one when None) written more than ``older_than_s`` ago; how many."""
    cutoff = None if older_than_s is None else time.time() - older_than_s
    removed = 0
    for folder in _namespaces(artifacts):
        if namespace is not None and folder.name != namespace:
            continue
        for path in _entries(folder):
            if cutoff is None or path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def _entries(folder: Path) -> list[Path]:
    return [path for path in folder.glob("*/*.json") if path.is_file()]

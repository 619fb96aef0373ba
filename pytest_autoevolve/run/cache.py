"""The response cache: model replies on disk, keyed by everything that shapes them.

A key covers the model's fingerprint (provider, model, parameters, and for local models
the files they load), the messages, the tools, the trial seed and the **repeat index**,
so a repeat is never served another repeat's answer. Only successful replies are stored.
Entries live under ``<artifacts>/cache/<namespace>/``; judges use their own namespace.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pytest_autoevolve.providers.base import Reply

CACHE_FORMAT_VERSION = 1


class ResponseCache:
    """Replies on disk for one namespace, read and written per the mode."""

    def __init__(self, root: Path, namespace: str, mode: str = "readwrite") -> None:
        self.folder = root / "cache" / namespace
        self.mode = mode
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()

    @staticmethod
    def key(fingerprint: str, messages: Any, tools: Any, seed: int, repeat: int) -> str:
        """The cache key of one call."""
        payload = {
            "v": CACHE_FORMAT_VERSION,
            "model": fingerprint,
            "messages": messages,
            "tools": tools,
            "seed": seed,
            "repeat": repeat,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> tuple[Reply, float] | None:
        """The stored reply and its original latency, when reading is on and the key is known."""
        if self.mode not in ("read", "readwrite"):
            return None
        try:
            entry = json.loads(self._path(key).read_text(encoding="utf-8"))
            reply = Reply(**entry["reply"])
            latency = float(entry["latency_s"])
        except (OSError, ValueError, KeyError, TypeError):
            with self._lock:
                self.misses += 1
            return None
        with self._lock:
            self.hits += 1
        return reply, latency

    def put(self, key: str, reply: Reply, latency_s: float) -> None:
        """Store a successful reply, atomically, when writing is on."""
        if self.mode not in ("write", "readwrite"):
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        entry = {"format_version": CACHE_FORMAT_VERSION, "reply": asdict(reply), "latency_s": latency_s}
        temporary.write_text(json.dumps(entry, default=str), encoding="utf-8")
        os.replace(temporary, path)

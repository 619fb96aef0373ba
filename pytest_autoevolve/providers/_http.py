"""What the HTTP clients share (model calls, hosted fine-tuning): retry pauses, rate limits, prices, redaction."""

from __future__ import annotations

import email.utils
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

DEFAULT_KEY_ENV = "OPENAI_API_KEY"

AZURE_KEY_ENV = "AZURE_OPENAI_API_KEY"

MAX_RETRY_AFTER_S = 120.0

"""A server asking for a longer pause than this is not retried: the trial fails at once."""

MIN_SECRET_LENGTH = 8

"""Shorter keys are placeholders (``unused``, ``sk-no``) for local servers and are not redacted."""

REDACTED = "***"

ERROR_PREFIX = re.compile(r"^Error code: \d+ - ")

"""What the client puts before a status error's message."""


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The pause a response asks for: ``retry-after-ms``, or ``Retry-After`` in seconds or as an HTTP date.

    `None` when there is no such header or it cannot be read; never negative.
    """
    lowered = {str(k).lower(): str(v).strip() for k, v in headers.items()}
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = lowered.get(name)
        if not value:
            continue
        try:
            number = float(value)
        except ValueError:
            continue
        if number != number or number in (float("inf"), float("-inf")):  # NaN or infinite: unreadable
            continue
        return max(number / divisor, 0.0)
    value = lowered.get("retry-after")
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


class RateLimiter:
    """At most ``rpm`` requests per minute, evenly spaced, across every thread that uses it."""

    _shared: ClassVar[dict[tuple[str, ...], RateLimiter]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        rpm: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rpm <= 0:
            raise ValueError(f"rpm is a positive number of requests per minute, got {rpm!r}")
        self.rpm = float(rpm)
        self.interval = 60.0 / self.rpm
        self._clock, self._sleep = clock, sleep
        self._next = float("-inf")
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, key: tuple[str, ...], rpm: float) -> RateLimiter:
        """One limiter per key (endpoint, model, rpm) in this process, so models on one endpoint share it."""
        with cls._shared_lock:
            full = (*key, repr(float(rpm)))
            if full not in cls._shared:
                cls._shared[full] = cls(rpm)
            return cls._shared[full]

    def acquire(self) -> float:
        """Wait for the next free slot; return the seconds waited."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        wait = slot - now
        if wait > 0:
            self._sleep(wait)
        return wait


def cost_of(
    prices: Mapping[str, float] | None, prompt_tokens: int | None, completion_tokens: int | None
) -> float | None:
    """USD for the tokens at ``prices`` (USD per 1M ``prompt`` and ``completion`` tokens); `None` without both."""
    if prices is None or (prompt_tokens is None and completion_tokens is None):
        return None
    total = (prompt_tokens or 0) * prices["prompt"] + (completion_tokens or 0) * prices["completion"]
    return round(total / 1_000_000, 12)


class Redactor:
    """Replaces secret values (API keys) in text and in nested JSON-like data."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)

    def text(self, value: str) -> str:
        """``value`` with every secret replaced by ``***``."""
        for secret in self.secrets:
            value = value.replace(secret, REDACTED)
        return value

    def data(self, value: Any) -> Any:
        """A copy of strings, lists and mappings in ``value`` with secrets replaced."""
        if not self.secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.data(k): self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value


DEFAULT_BASE_URL = "https://api.openai.com/v1"


def url_secrets(url: str | None) -> list[str]:
    """The password (and ``user:password``) a URL carries, to redact wherever the URL's errors go."""
    if not url:
        return []
    parts = urlsplit(url)
    if parts.password is None:
        return []
    return [parts.password, f"{parts.username}:{parts.password}"]


def public_url(url: str) -> str:
    """A URL without user info (``user:password@``) or query, fit for a fingerprint."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

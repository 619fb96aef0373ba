"""What the HTTP clients share (model calls, hosted fine-tuning): retry pauses, rate limits, prices, redaction."""

from __future__ import annotations

import asyncio
import email.utils
import re
import threading
import time
from collections import deque
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

    def reserve(self) -> float:
        """Take the next free slot; return the seconds to wait for it (an event loop sleeps them its own way)."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        return slot - now

    def acquire(self) -> float:
        """Wait for the next free slot; return the seconds waited."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return wait


class TokenBudget:
    """At most ``tpm`` tokens a minute: a call waits until the tokens spent before it fit the budget."""

    _shared: ClassVar[dict[tuple[str, ...], TokenBudget]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, tpm: float, clock: Callable[[], float] = time.monotonic) -> None:
        if tpm <= 0:
            raise ValueError(f"tpm is a positive number of tokens per minute, got {tpm!r}")
        self.per_second = tpm / 60.0
        self._clock = clock
        self._debt = 0.0
        self._at = clock()
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, key: tuple[str, ...], tpm: float) -> TokenBudget:
        """One budget per key (endpoint, model, tpm) in this process."""
        with cls._shared_lock:
            full = (*key, repr(float(tpm)))
            if full not in cls._shared:
                cls._shared[full] = cls(tpm)
            return cls._shared[full]

    def _settle(self) -> None:
        now = self._clock()
        self._debt = max(self._debt - (now - self._at) * self.per_second, 0.0)
        self._at = now

    def wait_s(self) -> float:
        """The seconds until the tokens spent so far are paid off at ``tpm``."""
        with self._lock:
            self._settle()
            return self._debt / self.per_second

    def spend(self, tokens: int) -> None:
        """Count the tokens a call used."""
        with self._lock:
            self._settle()
            self._debt += tokens


DEFAULT_CONCURRENCY = 16
"""The ceiling of an endpoint's in-flight calls outside a run (a run sets ``--autoevolve-concurrency``)."""


class AdaptiveLimit:
    """The in-flight calls to one endpoint on the event loop: at most `limit`, which adapts to 429s.

    A 429 halves the limit (once per wave: calls that started before a cut do not cut again) and
    pauses new calls for the ``Retry-After`` it carries; each run of `limit` successes adds one
    again, up to `ceiling`. Used from the event loop's thread only.
    """

    concurrency: ClassVar[int] = DEFAULT_CONCURRENCY
    """The ceiling of limits made from now on: the run's ``--autoevolve-concurrency``."""
    _shared: ClassVar[dict[str, AdaptiveLimit]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, ceiling: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ceiling = self.limit = max(int(ceiling), 1)
        self.active = 0
        self.wave = 0
        self._streak = 0
        self._resume_at = float("-inf")
        self._clock = clock
        self._waiters: deque[asyncio.Future[None]] = deque()

    @classmethod
    def shared(cls, endpoint: str) -> AdaptiveLimit:
        """The limit of ``endpoint`` in this process (made anew when the run's concurrency changed)."""
        with cls._shared_lock:
            limit = cls._shared.get(endpoint)
            if limit is None or limit.ceiling != cls.concurrency:
                limit = cls._shared[endpoint] = cls(cls.concurrency)
            return limit

    async def acquire(self) -> int:
        """Wait for a slot and for the end of any pause a 429 asked for; return the wave the call starts in."""
        while self._waiters and self._waiters[0].done():  # cancelled while waiting
            self._waiters.popleft()
        if self.active < self.limit and not self._waiters:
            self.active += 1
        else:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter  # `_wake` hands the slot over
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self.release(self.wave, None)
                raise
        pause = self._resume_at - self._clock()
        if pause > 0:
            await asyncio.sleep(pause)
        return self.wave

    def release(self, wave: int, status: int | None, retry_after: float | None = None) -> None:
        """Give the slot back, with the call's HTTP status (None: no answer) and the pause a 429 asked for."""
        self.active -= 1
        if status == 429:
            self._cut(wave, retry_after)
        elif status is not None and status < 300:
            self._streak += 1
            if self._streak >= self.limit and self.limit < self.ceiling:
                self.limit, self._streak = self.limit + 1, 0
        self._wake()

    def _cut(self, wave: int, retry_after: float | None) -> None:
        if retry_after is not None and retry_after <= MAX_RETRY_AFTER_S:
            self._resume_at = max(self._resume_at, self._clock() + retry_after)
        if wave == self.wave:
            self.wave += 1
            self.limit = max(min(self.limit, self.active + 1) // 2, 1)
            self._streak = 0

    def _wake(self) -> None:
        while self._waiters and self.active < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.active += 1
                waiter.set_result(None)


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

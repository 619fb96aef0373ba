"""One event loop for every coroutine a run meets: async agents, graders, tools and judges.

A ``python:`` agent (or grader, or tool) may be ``async def``, or return an awaitable; `resolve`
runs it on one event loop in a background thread that the whole process shares, so concurrent
async trials interleave on that loop instead of each starting a loop of its own.
"""

from __future__ import annotations

import asyncio
import atexit
import inspect
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

_T = TypeVar("_T")


class _SharedLoop:
    """The process's event loop for trials, started on first use in a daemon thread."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closers: list[Callable[[], Awaitable[object]]] = []

    def get(self) -> asyncio.AbstractEventLoop:
        """The running shared loop."""
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever, name="autoevolve-loop", daemon=True)
                self._thread.start()
            return self._loop

    def is_current(self) -> bool:
        """Whether the caller runs on the shared loop's own thread."""
        return self._thread is not None and threading.current_thread() is self._thread

    def close_at_exit(self, close: Callable[[], Awaitable[object]]) -> None:
        """Await ``close()`` on the loop when the process exits (an HTTP session's connections, say)."""
        with self._lock:
            if not self._closers:
                atexit.register(self._close_all)
            self._closers.append(close)

    def _close_all(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            return
        for close in self._closers:
            try:
                asyncio.run_coroutine_threadsafe(_within(close(), EXIT_TIMEOUT_S), loop).result()
            except Exception:  # the process ends anyway: a session that cannot close is left to it
                continue


EXIT_TIMEOUT_S = 2.0
"""How long each `SHARED_LOOP.close_at_exit` closer may take when the process ends."""


SHARED_LOOP = _SharedLoop()


def resolve(value: Any, timeout_s: float | None = None) -> Any:
    """``value`` itself, or its result when it is awaitable: awaited on the shared loop, within ``timeout_s``.

    A coroutine that runs past ``timeout_s`` is cancelled and `TimeoutError` raised.
    """
    if not inspect.isawaitable(value):
        return value
    if SHARED_LOOP.is_current():
        raise RuntimeError("a coroutine was handed back to the event loop it runs on; await it instead")
    future = asyncio.run_coroutine_threadsafe(_within(value, timeout_s), SHARED_LOOP.get())
    try:
        return future.result()
    except BaseException:
        future.cancel()
        raise


async def _within(awaitable: Awaitable[Any], timeout_s: float | None) -> Any:
    if timeout_s is None:
        return await awaitable
    try:
        return await asyncio.wait_for(awaitable, timeout_s)
    except TimeoutError:
        raise TimeoutError(f"the coroutine did not finish within timeout_s={timeout_s:g}") from None


def call_within(function: Callable[[], _T], timeout_s: float | None, what: str = "the model") -> _T:
    """Call ``function``, raising `TimeoutError` when it runs past ``timeout_s`` (it is left running, unread)."""
    if timeout_s is None:
        return function()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = function()
        except BaseException as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=target, daemon=True, name="autoevolve-call")
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise TimeoutError(f"{what} did not answer within timeout_s={timeout_s:g}")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]

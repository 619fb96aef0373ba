"""The per-call cache: the model calls a trial makes over HTTP, keyed by exactly what is sent.

A trial's reply is cached whole (`run.cache`), keyed by the model's fingerprint; when that misses
(the agent's code, a prompt file or a tool changed), the agent runs again, and its own calls to
model APIs are looked up here one by one. A call is a JSON ``POST`` with a ``model`` to a model
API path (``/chat/completions``, ``/responses``, ``/messages``, ...) sent by an httpx client
(the one the openai SDK, pydantic-ai, the OpenAI Agents SDK and most agent frameworks use). Its
key is the method, the URL (credentials in the query left out), the body, the trial's seed and
repeat, and how many identical calls the trial made before; headers (where the API key travels)
are not in it. A hit is answered from disk without touching the network, so an edited prompt
misses only the calls whose messages changed. Only ``200`` answers are stored, in the
``calls`` namespace; entries are checked on read like every cache entry.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pytest_autoevolve.providers._http import Redactor
from pytest_autoevolve.providers.base import TRIAL_CALLS, CallCache, is_secret
from pytest_autoevolve.run.cache import ResponseCache

NAMESPACE = "calls"
MODEL_PATHS = ("/chat/completions", "/completions", "/responses", "/messages", "/embeddings", ":generateContent")
"""Paths of model APIs whose calls are cached (OpenAI-compatible, Anthropic, Gemini)."""
CLIENT_MODULES = ("httpx", "httpx2")
"""The HTTP client libraries whose clients are watched, when an agent has loaded them."""
_T = TypeVar("_T")


@dataclass
class _Trial:
    """The per-call cache of one trial: where calls are kept, and how many of each it has made."""

    cache: ResponseCache
    seed: int
    repeat: int
    made: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def key(self, url: str, body: Mapping[str, Any], query: Sequence[tuple[str, str]] = ()) -> str:
        """The key of one call: what is sent, the trial's seed and repeat, and how many identical calls came before."""
        kept = sorted((name, value) for name, value in query if not is_secret(name))
        call = json.dumps({"url": url, "query": kept, "body": body}, sort_keys=True, default=str)
        digest = hashlib.sha256(call.encode()).hexdigest()
        with self.lock:
            occurrence = self.made[digest]
            self.made[digest] += 1
        payload = {"call": digest, "seed": self.seed, "repeat": self.repeat, "occurrence": occurrence}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def lookup(self, key: str) -> tuple[str, str] | None:
        """The stored answer's content type and body text, when there is a sound one."""
        return self.cache.lookup(key, _stored)

    def store(self, key: str, url: str, content_type: str, body: str) -> None:
        """Keep a successful answer."""
        self.cache.store(key, {"call": {"url": url, "content_type": content_type, "body": body}})


_PATCH_LOCK = threading.Lock()
WRAPPED = "_autoevolve_cached"
"""Marks a client's ``send`` this module has wrapped."""


def cached_calls(cache: ResponseCache | None, seed: int, repeat: int, call: Callable[[], _T]) -> Callable[[], _T]:
    """``call`` with the model calls it makes over HTTP served from and stored in ``cache``."""
    if cache is None:
        return call

    def run() -> _T:
        with _recording(_Trial(cache, seed, repeat)):
            return call()

    return run


@contextmanager
def _recording(trial: _Trial) -> Iterator[None]:
    _watch_clients()
    token = TRIAL_CALLS.set(trial)
    try:
        yield
    finally:
        TRIAL_CALLS.reset(token)


def _watch_clients() -> None:
    """Wrap ``send`` of the sync and async clients of every HTTP library the process has loaded (once each)."""
    for name in CLIENT_MODULES:
        module = sys.modules.get(name)
        if module is None or hasattr(module.Client.send, WRAPPED):
            continue
        with _PATCH_LOCK:
            if not hasattr(module.Client.send, WRAPPED):
                _wrap_sync(module)
                _wrap_async(module)


def _wrap_sync(module: Any) -> None:
    send = module.Client.send

    def cached_send(client: Any, request: Any, **options: Any) -> Any:
        trial, key = _keyed(request)
        if trial is None or key is None:
            return send(client, request, **options)
        hit = trial.lookup(key)
        if hit is not None:
            return _response(module, request, hit)
        response = send(client, request, **options)
        if response.status_code == 200:
            response.read()
            _store(trial, key, request, response)
        return response

    setattr(cached_send, WRAPPED, True)
    module.Client.send = cached_send


def _wrap_async(module: Any) -> None:
    send = module.AsyncClient.send

    async def cached_send(client: Any, request: Any, **options: Any) -> Any:
        trial, key = _keyed(request)
        if trial is None or key is None:
            return await send(client, request, **options)
        hit = trial.lookup(key)
        if hit is not None:
            return _response(module, request, hit)
        response = await send(client, request, **options)
        if response.status_code == 200:
            await response.aread()
            _store(trial, key, request, response)
        return response

    setattr(cached_send, WRAPPED, True)
    module.AsyncClient.send = cached_send


def _keyed(request: Any) -> tuple[CallCache | None, str | None]:
    """The trial's per-call cache and the key of ``request`` in it; no key when it is not a model call."""
    trial = TRIAL_CALLS.get()
    if trial is None or request.method != "POST" or not str(request.url.path).endswith(MODEL_PATHS):
        return trial, None
    try:
        body = json.loads(request.content)
    except (ValueError, UnicodeDecodeError, RuntimeError):  # not JSON, or a streamed body
        return trial, None
    if not isinstance(body, dict) or "model" not in body:
        return trial, None
    url = f"{request.url.scheme}://{request.url.host}:{request.url.port}{request.url.path}"
    return trial, trial.key(url, body, request.url.params.multi_items())


def _store(trial: CallCache, key: str, request: Any, response: Any) -> None:
    try:
        text = response.content.decode("utf-8")
    except UnicodeDecodeError:  # not text: not a model API's answer
        return
    text = _credentials(request).text(text)  # an answer that echoes the key never reaches the disk with it
    trial.store(key, str(request.url.path), response.headers.get("content-type", "application/json"), text)


def _credentials(request: Any) -> Redactor:
    """The secrets a request carries (authorization and API-key headers, credentials in its query), to redact."""
    named = [*request.headers.items(), *request.url.params.multi_items()]
    found = [value for name, value in named if is_secret(name)]
    return Redactor([*found, *(value.split(" ", 1)[-1] for value in found)])  # "Bearer sk-...": the token alone too


def _stored(entry: dict[str, Any]) -> tuple[str, str]:
    """The content type and body of a stored call; `ValueError` when the entry holds none."""
    call = entry.get("call")
    if not isinstance(call, dict) or not all(isinstance(call.get(k), str) for k in ("content_type", "body")):
        raise ValueError("not a stored model call")
    return call["content_type"], call["body"]


def _response(module: Any, request: Any, stored: tuple[str, str]) -> Any:
    """The stored answer as the library's own response to ``request``, already read."""
    kind, body = stored
    response = module.Response(200, headers={"content-type": kind}, content=body.encode("utf-8"), request=request)
    response.elapsed = datetime.timedelta(0)
    return response

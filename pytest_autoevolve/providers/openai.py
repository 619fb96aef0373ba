"""OpenAI-compatible chat endpoints (``openai:MODEL``): OpenAI, Azure OpenAI, vLLM, Ollama, `transformers serve`.

Each trial is a small agent loop: the scenario's messages (and its tools, as function tools)
go to ``/chat/completions``; tool calls in the reply are run and their results sent back until
the model answers without tool calls or the turn limit is reached. Model calls are coroutines on
the process's one event loop (`aio.SHARED_LOOP`): a plain endpoint is posted to over one shared
aiohttp session and its JSON read directly; Azure (and any endpoint when aiohttp is missing) goes
through the ``openai`` library's async client. Every call retries on its own (429 honouring
``Retry-After``, 5xx, connection errors, timeouts, a body that is no completion), with exponential
backoff, within ``rpm``/``tpm`` and an in-flight limit per endpoint that halves on a 429 and grows
back after successes (`AdaptiveLimit`). The API key never reaches an error message or a
trajectory: its value is redacted from everything recorded.

Parameters (``openai:MODEL+key=value`` or the config mapping form), see `OPENAI_KEYS`.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import os
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from pytest_autoevolve.aio import SHARED_LOOP, resolve
from pytest_autoevolve.providers._http import (
    AZURE_KEY_ENV,
    DEFAULT_BASE_URL,
    DEFAULT_KEY_ENV,
    MAX_RETRY_AFTER_S,
    AdaptiveLimit,
    RateLimiter,
    Redactor,
    TokenBudget,
    cost_of,
    public_url,
    retry_after_seconds,
    url_secrets,
)
from pytest_autoevolve.providers.base import (
    TRIAL_CALLS,
    CallCache,
    ModelRequest,
    ModelSpec,
    ModelSpecError,
    Reply,
    TrialError,
)
from pytest_autoevolve.records import result_text

if TYPE_CHECKING:
    import aiohttp


OPENAI_KEYS = (
    "base_url",
    "api_key_env",
    "azure",
    "api_version",
    "azure_endpoint",
    "azure_deployment",
    "temperature",
    "top_p",
    "max_tokens",
    "max_new_tokens",
    "timeout_s",
    "max_retries",
    "backoff_s",
    "max_backoff_s",
    "rpm",
    "tpm",
    "prices",
    "max_turns",
    "system_prompt",
)


class _Retryable(Exception):
    """A failed model call worth another attempt."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Fatal(Exception):
    """A failed model call that another attempt would not fix (most 4xx)."""


@dataclass(frozen=True)
class _Settings:
    """The validated parameters of one ``openai:`` model."""

    model: str
    base_url: str | None
    key_env: str
    azure: bool
    api_version: str | None
    azure_endpoint: str | None
    azure_deployment: str | None
    temperature: float
    top_p: float | None
    max_tokens: int | None
    timeout_s: float
    max_retries: int
    backoff_s: float
    max_backoff_s: float
    rpm: float | None
    tpm: float | None
    prices: dict[str, float] | None
    max_turns: int

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> _Settings:
        params = dict(spec.params)
        unknown = sorted(set(params) - set(OPENAI_KEYS))
        if unknown:
            raise ModelSpecError(
                f"unknown parameter(s) {', '.join(unknown)} for openai:{spec.target}; allowed: {', '.join(OPENAI_KEYS)}"
            )
        if not spec.target:
            raise ModelSpecError("openai model spec needs a model name: 'openai:MODEL' (e.g. openai:gpt-4o-mini)")
        if "max_tokens" in params and "max_new_tokens" in params and params["max_tokens"] != params["max_new_tokens"]:
            raise ModelSpecError("give one of max_tokens or max_new_tokens (an alias), not both")
        azure = _flag(params, "azure")
        max_tokens = params.get("max_tokens", params.get("max_new_tokens"))
        return cls(
            model=spec.target,
            base_url=_text(params, "base_url"),
            key_env=_text(params, "api_key_env") or (AZURE_KEY_ENV if azure else DEFAULT_KEY_ENV),
            azure=azure,
            api_version=_text(params, "api_version"),
            azure_endpoint=_text(params, "azure_endpoint"),
            azure_deployment=_text(params, "azure_deployment"),
            temperature=_number(params, "temperature", 0.0, minimum=0.0),
            top_p=_number(params, "top_p", None, minimum=0.0, maximum=1.0),
            max_tokens=None if max_tokens is None else _integer({"max_tokens": max_tokens}, "max_tokens", 1, 1),
            timeout_s=_number(params, "timeout_s", 60.0, minimum=0.0, exclusive=True),
            max_retries=_integer(params, "max_retries", 4, 0),
            backoff_s=_number(params, "backoff_s", 0.5, minimum=0.0),
            max_backoff_s=_number(params, "max_backoff_s", 30.0, minimum=0.0),
            rpm=_number(params, "rpm", None, minimum=0.0, exclusive=True),
            tpm=_number(params, "tpm", None, minimum=0.0, exclusive=True),
            prices=_prices(params.get("prices")),
            max_turns=_integer(params, "max_turns", 8, 1),
        )


def _text(params: Mapping[str, Any], key: str) -> str | None:
    value = params.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ModelSpecError(f"openai parameter {key!r} is a string, got {type(value).__name__}")
    return str(value)


def _flag(params: Mapping[str, Any], key: str) -> bool:
    value = params.get(key, False)
    if not isinstance(value, bool):
        raise ModelSpecError(f"openai parameter {key!r} is true or false, got {value!r}")
    return value


def _number(
    params: Mapping[str, Any],
    key: str,
    default: float | None,
    *,
    minimum: float,
    maximum: float | None = None,
    exclusive: bool = False,
) -> Any:
    value = params.get(key)
    if value is None:
        return default
    low = "greater than" if exclusive else "at least"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ModelSpecError(f"openai parameter {key!r} is a number {low} {minimum:g}, got {value!r}")
    if value < minimum or (exclusive and value == minimum) or (maximum is not None and value > maximum):
        bound = f" and at most {maximum:g}" if maximum is not None else ""
        raise ModelSpecError(f"openai parameter {key!r} is a number {low} {minimum:g}{bound}, got {value!r}")
    return float(value)


def _integer(params: Mapping[str, Any], key: str, default: int, minimum: int) -> int:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ModelSpecError(f"openai parameter {key!r} is a whole number of at least {minimum}, got {value!r}")
    return value


def _prices(value: Any) -> dict[str, float] | None:
    if value is None:
        return None
    shape = "a mapping {prompt: USD per 1M tokens, completion: USD per 1M tokens} (config mapping form)"
    if not isinstance(value, Mapping) or set(value) != {"prompt", "completion"}:
        raise ModelSpecError(f"openai parameter 'prices' is {shape}, got {value!r}")
    prices = {}
    for key in ("prompt", "completion"):
        number = value[key]
        if isinstance(number, bool) or not isinstance(number, int | float) or number < 0:
            raise ModelSpecError(f"openai parameter 'prices.{key}' is a number of at least 0, got {number!r}")
        prices[key] = float(number)
    return prices


class OpenAIModel:
    """A chat model behind an OpenAI-compatible endpoint, with a tool-calling agent loop."""

    untraced = True
    """It runs none of the user's code but a scenario's tools: a trial without tools emits no span to capture."""

    spec: str
    """The spec shown in reports, secrets removed."""
    fingerprint: str
    """What answers: provider, endpoint, model and the parameters that shape replies (JSON); never a secret.

    Retries, timeouts, rate limits and prices are left out: they do not change what the model says.
    """

    def __init__(self, spec: ModelSpec) -> None:
        self.settings = settings = _Settings.from_spec(spec)
        self.spec = spec.display
        self.name = f"openai:{settings.model}"
        key = os.environ.get(settings.key_env, "")
        if not key:
            raise ModelSpecError(
                f"{self.name} needs an API key in ${settings.key_env} (set 'api_key_env' to read another variable; "
                "local servers accept any value, e.g. unused)"
            )
        endpoint = settings.base_url or settings.azure_endpoint or os.environ.get("OPENAI_BASE_URL")
        self.redactor = Redactor([key, *url_secrets(endpoint)])
        self.transport = self._transport(key)
        self.base_url = public_url(self.transport.url).rstrip("/") + "/"
        self.fingerprint = json.dumps(
            {
                "provider": "azure-openai" if settings.azure else "openai",
                "base_url": self.base_url,
                "model": settings.model,
                "api_version": settings.api_version if settings.azure else None,
                "temperature": settings.temperature,
                "top_p": settings.top_p,
                "max_tokens": settings.max_tokens,
                "max_turns": settings.max_turns,
            },
            sort_keys=True,
        )
        where = (self.base_url, settings.model)
        self.limiter = RateLimiter.shared(where, settings.rpm) if settings.rpm is not None else None
        self.budget = TokenBudget.shared(where, settings.tpm) if settings.tpm is not None else None

    def _transport(self, key: str) -> _Transport:
        """How calls travel: aiohttp for a plain endpoint, the openai library for Azure or without aiohttp."""
        settings = self.settings
        if settings.azure:
            return _LibraryTransport(self._azure_client(key))
        if settings.api_version or settings.azure_endpoint or settings.azure_deployment:
            raise ModelSpecError("api_version, azure_endpoint and azure_deployment need azure=true")
        url = settings.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        if importlib.util.find_spec("aiohttp") is not None:
            return _AiohttpTransport(url, key)
        import openai

        return _LibraryTransport(openai.AsyncOpenAI(api_key=key, base_url=url, max_retries=0))

    def _azure_client(self, key: str) -> Any:
        """The async Azure client; a configuration it refuses is a `ModelSpecError`."""
        settings = self.settings
        if settings.base_url and settings.azure_endpoint:
            raise ModelSpecError("give one of base_url or azure_endpoint for an Azure model, not both")
        import openai

        options: dict[str, Any] = {"api_key": key, "api_version": settings.api_version, "max_retries": 0}
        if settings.base_url:
            options["base_url"] = settings.base_url
        else:  # None: AZURE_OPENAI_ENDPOINT
            options["azure_endpoint"] = settings.azure_endpoint
            options["azure_deployment"] = settings.azure_deployment
        if importlib.util.find_spec("aiohttp") is not None:
            options["http_client"] = openai.DefaultAioHttpClient()
        try:
            return openai.AsyncAzureOpenAI(**options)
        except Exception as exc:  # the client refuses its configuration (no endpoint, no api_version, ...)
            raise ModelSpecError(self.redactor.text(f"{self.name}: {exc}")) from None

    def generate(self, request: ModelRequest) -> Reply:
        """Run the agent loop for one trial; a `TrialError` carries the partial conversation."""
        conversation = [dict(m) for m in request.messages]
        tools = {tool.name: tool for tool in request.tools}
        limit = request.max_turns or self.settings.max_turns
        schemas = [t.schema() for t in tools.values()]
        reply = Reply(output="", messages=conversation, turns=0)
        try:
            while True:
                if reply.turns >= limit:
                    raise TrialError(f"{self.name} did not finish within {limit} turns (max_turns)")
                message, usage = resolve(self._complete(self._body(conversation, schemas, request.seed)))
                reply.turns += 1
                self._count(reply, usage)
                content = _content(message.get("content"))
                calls = message.get("tool_calls") or []
                assistant: dict[str, Any] = {"role": "assistant", "content": content}
                if calls:
                    assistant["tool_calls"] = calls
                conversation.append(assistant)
                reply.output = content or ""
                if not calls:
                    return self._finish(reply)
                for call in calls:
                    record = self._run_tool(call, tools, reply.turns)
                    reply.tool_calls.append(record)
                    conversation.append({"role": "tool", "tool_call_id": call["id"], "content": result_text(record)})
        except TrialError as exc:
            raise TrialError(self.redactor.text(str(exc)), reply=self._finish(reply)) from None
        except Exception as exc:  # anything unexpected is this trial's error, with what ran so far
            text = self.redactor.text(f"{self.name}: {type(exc).__name__}: {exc}")
            raise TrialError(text, reply=self._finish(reply)) from None

    def _finish(self, reply: Reply) -> Reply:
        reply.cost = cost_of(self.settings.prices, reply.prompt_tokens, reply.completion_tokens)
        return Reply(
            output=self.redactor.text(reply.output),
            messages=self.redactor.data(reply.messages),
            tool_calls=self.redactor.data(reply.tool_calls),
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens,
            cost=reply.cost,
            turns=reply.turns,
        )

    @staticmethod
    def _count(reply: Reply, usage: Mapping[str, Any]) -> None:
        for field in ("prompt_tokens", "completion_tokens"):
            value = usage.get(field)
            if isinstance(value, int) and not isinstance(value, bool):
                setattr(reply, field, (getattr(reply, field) or 0) + value)

    @staticmethod
    def _run_tool(call: Mapping[str, Any], tools: Mapping[str, Any], turn: int) -> dict[str, Any]:
        function = call["function"]
        name, arguments = function["name"], function.get("arguments") or "{}"
        tool = tools.get(name)
        if tool is None:
            known = ", ".join(tools) or "none"
            record: dict[str, Any] = {
                "name": name,
                "arguments": arguments,
                "result": None,
                "error": f"unknown tool {name!r}; tools offered: {known}",
            }
        else:
            record = tool.call(arguments)
            if record["result"] is not None:  # JSON-safe, as it is recorded and cached
                record["result"] = json.loads(json.dumps(record["result"], default=str))
        return {"id": call["id"], **record, "turn": turn}

    def _body(self, conversation: list[dict[str, Any]], tools: list[dict[str, Any]], seed: int) -> dict[str, Any]:
        """The chat completion request: model, messages, the trial's seed and the generation parameters."""
        settings = self.settings
        body: dict[str, Any] = {
            "model": settings.model,
            "messages": conversation,
            "seed": seed,
            "temperature": settings.temperature,
        }
        if settings.top_p is not None:
            body["top_p"] = settings.top_p
        if settings.max_tokens is not None:
            body["max_tokens"] = settings.max_tokens
        if tools:
            body["tools"] = tools
        return body

    async def _complete(self, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """One model call with retries: the reply's message and usage."""
        settings = self.settings
        attempts = settings.max_retries + 1
        last = ""
        for attempt in range(1, attempts + 1):
            try:
                return await self._attempt(body)
            except _Fatal as exc:
                raise TrialError(f"{self.name}: {exc} (not retried)") from None
            except _Retryable as exc:
                last = str(exc)
                if attempt == attempts:
                    break
                if exc.retry_after is not None and exc.retry_after > MAX_RETRY_AFTER_S:
                    raise TrialError(
                        f"{self.name}: {last}; the server asks to retry after {exc.retry_after:g}s, more than "
                        f"{MAX_RETRY_AFTER_S:g}s, so gave up after {attempt} attempt(s)"
                    ) from None
                if exc.retry_after is not None:
                    delay = exc.retry_after
                else:
                    delay = min(settings.backoff_s * 2 ** (attempt - 1), settings.max_backoff_s)
                await asyncio.sleep(delay)
        raise TrialError(f"{self.name}: gave up after {attempts} attempt(s); last error: {last}")

    async def _attempt(self, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """One request: from the trial's per-call cache, else sent; a sound answer is kept there, secrets redacted.

        The openai library's calls go through httpx, whose clients the per-call cache watches itself.
        """
        transport, calls = self.transport, TRIAL_CALLS.get()
        if calls is None or not isinstance(transport, _AiohttpTransport):
            return (await self._answer(body))[1:]
        key = transport.call_key(calls, body)
        hit = calls.lookup(key)
        if hit is not None:
            return _parse_completion(hit[1], self.redactor)
        text, message, usage = await self._answer(body)
        calls.store(key, transport.path, "application/json", self.redactor.text(text))
        return message, usage

    async def _answer(self, body: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """One sound answer: its body, message and usage (counted against ``tpm``)."""
        text = await self._send(body)
        message, usage = _parse_completion(text, self.redactor)
        if self.budget is not None:
            self.budget.spend(_tokens(usage))
        return text, message, usage

    async def _send(self, body: dict[str, Any]) -> str:
        """The body of one successful answer, sent within the endpoint's in-flight limit, ``rpm`` and ``tpm``."""
        endpoint = AdaptiveLimit.shared(self.base_url)
        wave = await endpoint.acquire()
        status: int | None = None
        retry_after = None
        try:
            if self.limiter is not None:
                await asyncio.sleep(self.limiter.reserve())
            if self.budget is not None:
                await asyncio.sleep(self.budget.wait_s())
            status, headers, text = await self.transport.post(body, self.settings.timeout_s)
            if status >= 400:
                retry_after = retry_after_seconds(headers)
                raise _status_error(status, text, retry_after, self.redactor)
        finally:
            endpoint.release(wave, status, retry_after)
        return text


class _Transport(Protocol):
    """Posts one chat completion request: the HTTP status, headers and body text; `_Retryable` when no answer."""

    url: str
    """The endpoint's base URL."""

    async def post(self, body: dict[str, Any], timeout_s: float) -> tuple[int, Mapping[str, str], str]: ...


class _AiohttpTransport:
    """Chat completions posted as JSON over the event loop's one aiohttp session."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        parts = urlsplit(url)
        path = parts.path.rstrip("/") + "/chat/completions"
        self._post_url = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], path, parts.query, ""))
        if parts.username or parts.password:  # credentials in the URL win, as with the openai library's httpx
            basic = base64.b64encode(f"{parts.username or ''}:{parts.password or ''}".encode()).decode()
            authorization = f"Basic {basic}"
        else:
            authorization = f"Bearer {key}"
        self._headers = {"Authorization": authorization, "Content-Type": "application/json"}
        for header, variable in (("OpenAI-Organization", "OPENAI_ORG_ID"), ("OpenAI-Project", "OPENAI_PROJECT_ID")):
            if os.environ.get(variable):
                self._headers[header] = os.environ[variable]
        self._proxy = _env_proxy(parts.scheme, parts.hostname)
        self.path = path
        self._call_url = f"{parts.scheme}://{parts.hostname}:{parts.port}{path}"
        self._query = parse_qsl(parts.query)

    def call_key(self, calls: CallCache, body: dict[str, Any]) -> str:
        """The key of a request with ``body`` in the trial's per-call cache (the URL as an httpx client's)."""
        return calls.key(self._call_url, body, self._query)

    async def post(self, body: dict[str, Any], timeout_s: float) -> tuple[int, Mapping[str, str], str]:
        """Post ``body``; read the whole answer within ``timeout_s``."""
        import aiohttp

        session = await _session()
        data = json.dumps(body).encode()
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        try:
            async with session.post(
                self._post_url, data=data, headers=self._headers, timeout=timeout, proxy=self._proxy
            ) as answer:
                raw = await answer.read()
                return answer.status, answer.headers, raw.decode("utf-8", "replace")
        except TimeoutError:
            raise _Retryable(f"no answer within timeout_s={timeout_s:g}") from None
        except aiohttp.ClientError as exc:
            raise _Retryable(f"connection error: {type(exc).__name__}: {exc}") from None


def _env_proxy(scheme: str, host: str | None) -> str | None:
    """The proxy the environment names for an endpoint (``HTTPS_PROXY``, ``NO_PROXY``, ...), read once, not per call."""
    if host and urllib.request.proxy_bypass(host):
        return None
    return urllib.request.getproxies().get(scheme)


_SESSIONS: dict[tuple[asyncio.AbstractEventLoop, type[Any]], aiohttp.ClientSession] = {}


async def _session() -> aiohttp.ClientSession:
    """The running loop's aiohttp session, made on first use and closed when the process exits.

    Keyed by the session class too: aiohttp imported afresh (pytest's ``pytester`` runs) gets its own.
    """
    import aiohttp

    key = (asyncio.get_running_loop(), aiohttp.ClientSession)
    session = _SESSIONS.get(key)
    if session is None or session.closed:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        session = _SESSIONS[key] = aiohttp.ClientSession(connector=connector)
        SHARED_LOOP.close_at_exit(session.close)
    return session


class _LibraryTransport:
    """Chat completions through the ``openai`` library's async client (Azure, or no aiohttp installed)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.url = str(client.base_url)
        SHARED_LOOP.close_at_exit(client.close)

    async def post(self, body: dict[str, Any], timeout_s: float) -> tuple[int, Mapping[str, str], str]:
        """Send ``body`` through the client; a status error is an answer like any other."""
        import openai

        try:
            raw = await self.client.chat.completions.with_raw_response.create(**body, timeout=timeout_s)
        except openai.APITimeoutError:
            raise _Retryable(f"no answer within timeout_s={timeout_s:g}") from None
        except openai.APIConnectionError as exc:
            cause = f" ({type(exc.__cause__).__name__}: {exc.__cause__})" if exc.__cause__ else ""
            raise _Retryable(f"connection error: {exc}{cause}") from None
        except openai.APIStatusError as exc:
            return exc.status_code, exc.response.headers, exc.response.text
        return raw.status_code, raw.headers, raw.http_response.text


def _status_error(status: int, text: str, retry_after: float | None, redactor: Redactor) -> Exception:
    """The error of an HTTP error answer: retried for 429, 408 and 5xx, not for other client errors."""
    detail = f"HTTP {status}: {_short(redactor.text(_error_message(text)))}"
    if status == 429 or status == 408 or status >= 500:
        return _Retryable(detail, retry_after)
    return _Fatal(detail)


def _error_message(text: str) -> str:
    """An error body's ``error.message`` (OpenAI's shape), else the body itself."""
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip() or "(no body)"
    error = body.get("error", body) if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) and message else text.strip()


def _tokens(usage: Mapping[str, Any]) -> int:
    """The tokens a call used, as its usage reports them."""
    total = usage.get("total_tokens")
    if isinstance(total, int):
        return total
    return sum(v for k in ("prompt_tokens", "completion_tokens") if isinstance(v := usage.get(k), int))


def _parse_completion(text: str, redactor: Redactor) -> tuple[dict[str, Any], dict[str, Any]]:
    """The first choice's message and the usage of a chat.completion body; `_Retryable` when it is none.

    Text quoted in an error is redacted before it is shortened, so no part of a secret survives the cut.
    """
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise _Retryable(f"the response is not valid JSON ({exc}): {_short(redactor.text(text), 200)!r}") from None
    if not isinstance(body, dict):
        raise _Retryable(f"the response is not a chat completion object: {_short(redactor.text(text), 200)!r}")
    if body.get("error"):
        raise _Retryable(f"the response is an error: {_short(redactor.text(json.dumps(body['error'])))}")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise _Retryable("the completion has no choices")
    first = choices[0]
    message = first.get("message") if isinstance(first, dict) else None
    if not isinstance(message, dict):
        raise _Retryable("the completion's first choice has no message")
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise _Retryable("the completion's tool_calls is not a list")
    normalized = []
    for position, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _Retryable(f"tool call #{position + 1} of the completion has no function name")
        arguments = function.get("arguments")
        if not isinstance(arguments, str):  # some servers send an object
            arguments = json.dumps(arguments if arguments is not None else {})
        normalized.append(
            {
                "id": str(call.get("id") or f"call_{position}"),
                "type": "function",
                "function": {"name": function["name"], "arguments": arguments},
            }
        )
    usage = body.get("usage")
    return {"content": message.get("content"), "tool_calls": normalized}, usage if isinstance(usage, dict) else {}


def _content(value: Any) -> str | None:
    """A message's text: a string, or the text parts of a list of content parts."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(str(p.get("text", "")) for p in value if isinstance(p, dict))
    return str(value)


def _short(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[:limit] + "..."

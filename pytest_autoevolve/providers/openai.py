"""OpenAI-compatible chat endpoints (``openai:MODEL``): OpenAI, Azure OpenAI, vLLM, Ollama, `transformers serve`.

Each trial is a small agent loop: the scenario's messages (and its tools, as function tools)
go to ``/chat/completions``; tool calls in the reply are run and their results sent back until
the model answers without tool calls or the turn limit is reached. Every model call retries
on its own (429 honouring ``Retry-After``, 5xx, connection errors, timeouts, a body that is no
completion), with exponential backoff; the client's own retries are off. The API key never
reaches an error message or a trajectory: its value is redacted from everything recorded.

Parameters (``openai:MODEL+key=value`` or the config mapping form), see `OPENAI_KEYS`.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_autoevolve.providers._http import (
    AZURE_KEY_ENV,
    DEFAULT_BASE_URL,
    DEFAULT_KEY_ENV,
    ERROR_PREFIX,
    MAX_RETRY_AFTER_S,
    RateLimiter,
    Redactor,
    cost_of,
    public_url,
    retry_after_seconds,
    url_secrets,
)
from pytest_autoevolve.providers.base import ModelRequest, ModelSpec, ModelSpecError, Reply, TrialError
from pytest_autoevolve.records import result_text

if TYPE_CHECKING:
    pass


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
        self._key = key
        self._client_lock = threading.Lock()
        self._client_instance: Any = None
        plain_url = None
        if not settings.azure:
            if settings.api_version or settings.azure_endpoint or settings.azure_deployment:
                raise ModelSpecError("api_version, azure_endpoint and azure_deployment need azure=true")
            plain_url = settings.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        # the openai library costs about half a second to import: a plain endpoint waits for its first call
        self.base_url = public_url(plain_url or str(self.client.base_url)).rstrip("/") + "/"
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
        self.limiter = (
            RateLimiter.shared((self.base_url, settings.model), settings.rpm) if settings.rpm is not None else None
        )

    @property
    def client(self) -> Any:
        """The openai client, made on first use; a configuration it refuses is a `ModelSpecError`."""
        with self._client_lock:
            if self._client_instance is None:
                try:
                    self._client_instance = self._client(self._key)
                except ModelSpecError:
                    raise
                except Exception as exc:  # the client refuses its configuration (no endpoint, no api_version, ...)
                    raise ModelSpecError(self.redactor.text(f"{self.name}: {exc}")) from None
            return self._client_instance

    def _client(self, key: str) -> Any:
        settings = self.settings
        import openai

        if not settings.azure:
            return openai.OpenAI(
                api_key=key, base_url=settings.base_url, max_retries=0, timeout=settings.timeout_s
            )  # base_url None: OPENAI_BASE_URL, else the OpenAI API
        if settings.base_url and settings.azure_endpoint:
            raise ModelSpecError("give one of base_url or azure_endpoint for an Azure model, not both")
        options: dict[str, Any] = {
            "api_key": key,
            "api_version": settings.api_version,
            "max_retries": 0,
            "timeout": settings.timeout_s,
        }
        if settings.base_url:
            options["base_url"] = settings.base_url
        else:  # None: AZURE_OPENAI_ENDPOINT
            options["azure_endpoint"] = settings.azure_endpoint
            options["azure_deployment"] = settings.azure_deployment
        return openai.AzureOpenAI(**options)

    def generate(self, request: ModelRequest) -> Reply:
        """Run the agent loop for one trial; a `TrialError` carries the partial conversation."""
        conversation = [dict(m) for m in request.messages]
        tools = {tool.name: tool for tool in request.tools}
        limit = request.max_turns or self.settings.max_turns
        seed = request.seed
        reply = Reply(output="", messages=conversation, turns=0)
        try:
            while True:
                if reply.turns >= limit:
                    raise TrialError(f"{self.name} did not finish within {limit} turns (max_turns)")
                message, usage = self._complete(conversation, [t.schema() for t in tools.values()], seed)
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

    def _complete(
        self, conversation: list[dict[str, Any]], tools: list[dict[str, Any]], seed: int
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """One model call with retries: the reply's message and usage."""
        settings = self.settings
        attempts = settings.max_retries + 1
        last = ""
        for attempt in range(1, attempts + 1):
            if self.limiter is not None:
                _ = self.client  # made before the slot is taken, so the first call's set-up cannot bunch requests
                self.limiter.acquire()
            try:
                return self._attempt(conversation, tools, seed)
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
                time.sleep(delay)
        raise TrialError(f"{self.name}: gave up after {attempts} attempt(s); last error: {last}")

    def _attempt(
        self, conversation: list[dict[str, Any]], tools: list[dict[str, Any]], seed: int
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        import openai

        settings = self.settings
        options: dict[str, Any] = {
            "model": settings.model,
            "messages": conversation,
            "seed": seed,
            "temperature": settings.temperature,
            "timeout": settings.timeout_s,
        }
        if settings.top_p is not None:
            options["top_p"] = settings.top_p
        if settings.max_tokens is not None:
            options["max_tokens"] = settings.max_tokens
        if tools:
            options["tools"] = tools
        try:
            raw = self.client.chat.completions.with_raw_response.create(**options)
            text = raw.http_response.text
        except openai.APITimeoutError:
            raise _Retryable(f"no answer within timeout_s={settings.timeout_s:g}") from None
        except openai.APIConnectionError as exc:
            cause = f" ({type(exc.__cause__).__name__}: {exc.__cause__})" if exc.__cause__ else ""
            raise _Retryable(f"connection error: {exc}{cause}") from None
        except openai.APIStatusError as exc:
            status = exc.status_code
            detail = f"HTTP {status}: {_short(self.redactor.text(ERROR_PREFIX.sub('', exc.message)))}"
            if status == 429 or status == 408 or status >= 500:
                raise _Retryable(detail, retry_after_seconds(exc.response.headers)) from None
            raise _Fatal(detail) from None
        return _parse_completion(text, self.redactor)


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

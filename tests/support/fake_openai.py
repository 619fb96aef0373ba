"""A local OpenAI-compatible chat completions server for tests, scripted per request to misbehave.

It speaks real HTTP on 127.0.0.1 (``ThreadingHTTPServer`` in a thread) and answers
``POST .../chat/completions`` (``/v1/chat/completions`` and Azure's
``/openai/deployments/NAME/chat/completions``) with real ``chat.completion`` JSON, or with
whatever `Answer` a test scripts: an HTTP error with headers, a slow answer, a body that is
not JSON, a completion without choices. Every request is kept for the test to inspect.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.local_server import LocalServer


@dataclass
class Answer:
    """What the server sends back for one request."""

    status: int = 200
    body: Any = None
    """A mapping is sent as JSON; text or bytes as they are (``application/json`` all the same)."""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def send_answer(handler: BaseHTTPRequestHandler, answer: Answer, bytes_type: str = "application/json") -> None:
    """Write ``answer`` as the HTTP response: JSON for mappings, text as it is, bytes typed ``bytes_type``."""
    if answer.delay_s:
        time.sleep(answer.delay_s)
    if isinstance(answer.body, bytes):
        payload, kind = answer.body, bytes_type
    elif isinstance(answer.body, str):
        payload, kind = answer.body.encode("utf-8"), "application/json"
    else:
        payload, kind = json.dumps(answer.body).encode("utf-8"), "application/json"
    try:
        handler.send_response(answer.status)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(payload)))
        for name, value in answer.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)
        handler.wfile.flush()
    except OSError:  # the client gave up (a timeout) and closed the connection
        handler.close_connection = True


def json_body(raw: bytes) -> Any:
    """A request body as JSON: ``{}`` when empty, ``{"unparsed": text}`` when it is not JSON."""
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        return {"unparsed": raw.decode("utf-8", "replace")}


@dataclass
class Request:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    at: float
    """`time.monotonic` when it arrived."""

    @classmethod
    def received(cls, handler: BaseHTTPRequestHandler, method: str, body: Any, at: float) -> Request:
        """The request ``handler`` serves: its path, query and headers (names in lower case), with ``body``."""
        parts = urlsplit(handler.path)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        return cls(method, parts.path, parse_qs(parts.query), headers, body, at)

    @property
    def user(self) -> str:
        """The last user message of a chat request."""
        users = [m.get("content") for m in self.body.get("messages", []) if m.get("role") == "user"]
        return str(users[-1]) if users else ""

    @property
    def tool_messages(self) -> list[dict[str, Any]]:
        """The tool results sent back in this request."""
        return [m for m in self.body.get("messages", []) if m.get("role") == "tool"]


def completion(
    content: str | None = "ok",
    *,
    tool_calls: Sequence[dict[str, Any]] = (),
    model: str = "fake-model",
    prompt_tokens: int = 10,
    completion_tokens: int = 5,
) -> dict[str, Any]:
    """A real ``chat.completion`` object, as the OpenAI API returns it."""
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    finish = "tool_calls" if tool_calls else "stop"
    if tool_calls:
        message["tool_calls"] = list(tool_calls)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def tool_call(name: str, arguments: dict[str, Any], call_id: str | None = None) -> dict[str, Any]:
    """One entry of a message's ``tool_calls``."""
    return {
        "id": call_id or f"call_{uuid.uuid4().hex[:12]}",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


def error(status: int, message: str, headers: dict[str, str] | None = None, kind: str = "server_error") -> Answer:
    """An API error in OpenAI's shape."""
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return Answer(status=status, body=body, headers=headers or {})


Responder = Callable[["Request", int], "Answer | dict[str, Any]"]
"""Answers a request; the int is how many earlier requests had the same last user message."""


class FakeOpenAI(LocalServer):
    """The server: ``with FakeOpenAI(respond) as server: ... server.url ...``."""

    def __init__(self, respond: Responder | None = None) -> None:
        self.respond: Responder = respond or (lambda request, n: completion("ok"))
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._seen: dict[str, int] = {}
        self._serve(self._handler(), "fake-openai")

    def for_user(self, text: str) -> list[Request]:
        """The requests whose last user message is ``text``."""
        with self._lock:
            return [r for r in self.requests if r.user == text]

    def _record(self, request: Request) -> int:
        with self._lock:
            self.requests.append(request)
            key = request.user
            seen = self._seen.get(key, 0)
            self._seen[key] = seen + 1
            return seen

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def do_GET(self) -> None:
                self._send(Answer(404, {"error": {"message": "not found"}}))

            def do_POST(self) -> None:
                arrived = time.monotonic()
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                request = Request.received(self, "POST", json_body(raw), arrived)
                if not request.path.endswith("/chat/completions"):
                    self._send(Answer(404, {"error": {"message": f"no route {request.path}"}}))
                    return
                seen = server._record(request)
                answer = server.respond(request, seen)
                self._send(answer if isinstance(answer, Answer) else Answer(body=answer))

            def _send(self, answer: Answer) -> None:
                send_answer(self, answer)

        return Handler


@contextmanager
def fake_openai(respond: Responder | None = None) -> Iterator[FakeOpenAI]:
    """A started `FakeOpenAI`, shut down afterwards."""
    with FakeOpenAI(respond) as server:
        yield server


def scripted(plan: dict[str, Sequence[Answer | dict[str, Any]]]) -> Responder:
    """Answers by the last user message: its list in order, the last entry repeating forever."""

    def respond(request: Request, seen: int) -> Answer | dict[str, Any]:
        answers = plan.get(request.user)
        if not answers:
            return error(400, f"unscripted message {request.user!r}", kind="invalid_request_error")
        return answers[min(seen, len(answers) - 1)]

    return respond

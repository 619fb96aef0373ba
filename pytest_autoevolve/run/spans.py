"""OpenTelemetry capture: the GenAI spans an agent emits while it answers, read into its reply.

Each model call runs under a trace of its own (a fresh trace id made current around the call, in
the thread that makes it), so an in-process span processor can tell which trial a span belongs to,
however many trials run at once. The spans follow the OpenTelemetry GenAI semantic conventions:
``execute_tool`` spans become tool calls, model-call spans (``chat``, ``text_completion``,
``generate_content``) the turns and their token usage. What the agent returns explicitly wins.
``opentelemetry-sdk`` is optional: without it (or with a tracer provider that is not the SDK's)
nothing is captured; it is imported when the first trial runs.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import secrets
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pytest_autoevolve.providers.base import Reply
from pytest_autoevolve.run.conversation import capped

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

OPERATION = "gen_ai.operation.name"
MODEL_CALLS = ("chat", "text_completion", "generate_content")
TEXT_LIMIT = 10_000
"""A span attribute's text is kept up to this many characters."""


class _Collector:
    """Spans by the trace they belong to, for the traces of calls under way."""

    def __init__(self) -> None:
        self.open: dict[int, list[tuple[int, dict[str, Any]]]] = {}
        self.lock = threading.Lock()

    def run(self, call: Callable[[], Reply]) -> Reply:
        """``call`` under a trace of its own; its reply with the spans that trace collected."""
        from opentelemetry import context, trace

        trace_id = secrets.randbits(128) or 1
        parent = trace.SpanContext(
            trace_id, secrets.randbits(64) or 1, False, trace.TraceFlags(trace.TraceFlags.SAMPLED)
        )
        with self.lock:
            self.open[trace_id] = []
        token = context.attach(trace.set_span_in_context(trace.NonRecordingSpan(parent)))
        try:
            reply = call()
        finally:
            context.detach(token)
            with self.lock:
                ended = self.open.pop(trace_id)
        return merged(reply, [record for _, record in sorted(ended, key=lambda pair: pair[0])])

    def ended(self, span: ReadableSpan) -> None:
        """Keep a span that ended in a trace under way."""
        if span.context is None:
            return
        with self.lock:
            bucket = self.open.get(span.context.trace_id)
            if bucket is not None:
                bucket.append((span.start_time or 0, span_record(span)))


_STATE: list[_Collector | None] = []
_STATE_LOCK = threading.Lock()


def traced(call: Callable[[], Reply]) -> Callable[[], Reply]:
    """``call`` with the spans it emits read into its reply; ``call`` itself when nothing can capture them."""
    with _STATE_LOCK:
        if not _STATE:
            _STATE.append(_install() if _sdk_installed() else None)
        collector = _STATE[0]
    return call if collector is None else lambda: collector.run(call)


def _sdk_installed() -> bool:
    try:
        return importlib.util.find_spec("opentelemetry.sdk.trace") is not None
    except ModuleNotFoundError:  # not even the API
        return False


def _install() -> _Collector | None:
    """A collector fed by a processor on the global SDK tracer provider (set up when there is none)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

    collector = _Collector()

    class Processor(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            collector.ended(span)

    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):  # none set yet
        trace.set_tracer_provider(TracerProvider())
    add = getattr(trace.get_tracer_provider(), "add_span_processor", None)
    if add is None:  # the agent set a provider of its own that takes no processor
        return None
    add(Processor())
    return collector


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """One span as the trajectory keeps it: name, ids, duration, status and its attributes."""
    start, end = span.start_time or 0, span.end_time or 0
    return {
        "name": span.name,
        "id": f"{span.context.span_id:016x}" if span.context else None,
        "parent": f"{span.parent.span_id:016x}" if span.parent else None,
        "duration_s": round((end - start) / 1e9, 6),
        "status": span.status.status_code.name.lower(),
        "error": span.status.description,
        "attributes": {key: _plain(value) for key, value in (span.attributes or {}).items()},
    }


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        return capped(value, TEXT_LIMIT)
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    return value


def merged(reply: Reply, spans: list[dict[str, Any]]) -> Reply:
    """``reply`` with what ``spans`` say filled in where the reply says nothing: tool calls, usage, turns."""
    if not spans:
        return reply
    models = [s for s in spans if s["attributes"].get(OPERATION) in MODEL_CALLS]
    tools = [tool_call(s) for s in spans if s["attributes"].get(OPERATION) == "execute_tool"]
    silent = reply.prompt_tokens is None and reply.completion_tokens is None and reply.total_tokens is None
    return dataclasses.replace(
        reply,
        tool_calls=reply.tool_calls or tools,
        turns=len(models) if models and reply.turns == 1 else reply.turns,
        prompt_tokens=_summed(models, "gen_ai.usage.input_tokens") if silent else reply.prompt_tokens,
        completion_tokens=_summed(models, "gen_ai.usage.output_tokens") if silent else reply.completion_tokens,
        spans=[*reply.spans, *spans],
    )


def _summed(spans: list[dict[str, Any]], key: str) -> int | None:
    counts = [s["attributes"][key] for s in spans if isinstance(s["attributes"].get(key), int)]
    return sum(counts) if counts else None


def tool_call(span: Mapping[str, Any]) -> dict[str, Any]:
    """The tool call an ``execute_tool`` span records, as the trajectory's ``tool_calls`` hold them."""
    attributes = span["attributes"]
    name = attributes.get("gen_ai.tool.name") or str(span["name"]).removeprefix("execute_tool").strip()
    return {
        "id": attributes.get("gen_ai.tool.call.id"),
        "name": name,
        "arguments": _parsed(attributes.get("gen_ai.tool.call.arguments")),
        "result": _parsed(attributes.get("gen_ai.tool.call.result")),
        "error": span["error"] if span["status"] == "error" else None,
    }


def _parsed(value: Any) -> Any:
    """A JSON attribute as data; other values as they are."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value

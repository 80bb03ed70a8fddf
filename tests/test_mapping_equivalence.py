# SPDX-License-Identifier: Apache-2.0
"""Differential tests: the mapping gives exactly the events of the frozen pre-optimisation implementation.

``tests/golden/reference_mapping.py`` is the mapping as it was before its CPU rewrite. Every span here is mapped by
both and the events must be equal key for key, in the same key order (the NDJSON bytes), tags included. The corpus
covers the conventions the mapping reads, made with the real SDK (attributes behind ``MappingProxyType`` over
``BoundedAttributes``, as the exporter sees them); the property test feeds both the arbitrary attributes of
``test_mapping_properties``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanKind, Status, StatusCode

from opentelemetry_exporter_lumiqtrace import mapping
from tests.golden import reference_mapping as reference
from tests.test_mapping_properties import ATTRS, KNOWN_KEYS, events
from tests.test_mapping_support import START_NS, make_span

OPTION_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "no-cost": {"compute_cost": False},
    "content": {"capture_content": True, "max_content_chars": 120},
    "redact": {"redact_keys": frozenset({"tier", "route", "X-Secret"}), "environment": "staging"},
    "few-tags": {"max_tags": 3, "max_tag_value_chars": 5},
    "no-tags": {"max_tags": 0, "ai_only": True},
}


@functools.cache
def _options(name: str) -> tuple[mapping.MappingOptions, reference.MappingOptions]:
    """One pair of options per set, reused like the exporter reuses its options (so per-options caches are hit)."""
    kw = OPTION_SETS[name]
    return mapping.MappingOptions(**kw), reference.MappingOptions(**kw)


def _ordered(value: Any) -> Any:
    """The event as nested (key, value) lists with types, so key order and int/float/bool differences count."""
    if isinstance(value, dict):
        return [(k, _ordered(v)) for k, v in value.items()]
    return (type(value).__name__, value)


def assert_same(span: ReadableSpan, options_name: str) -> None:
    new_options, old_options = _options(options_name)
    expected = reference.map_span(span, old_options)
    got = mapping.map_span(span, new_options)
    if expected is None or got is None:
        assert got is None and expected is None, (got, expected)
        return
    if not isinstance(span.start_time, int) or not 0 <= span.start_time // 10**9 <= 253_402_300_799:
        # Both fall back to "now" for a missing or absurd start time; the two calls may see different clocks.
        expected.pop("timestamp")
        got.pop("timestamp")
    assert _ordered(got) == _ordered(expected)
    assert json.dumps(got) == json.dumps(expected)


# --- a corpus made with the real SDK --------------------------------------------------------------------------------

OPENAI_MESSAGES = json.dumps(
    [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Hi"}, {"type": "image", "uri": "x"}]},
    ]
)
OUTPUT_MESSAGES = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "Hello"}]}])

Scenario = tuple[str, SpanKind, dict[str, Any], Callable[[Any], None] | None]


def _fail_rate_limited(span: Any) -> None:
    span.record_exception(RuntimeError("Error code: 429 - {'error': {'code': 'rate_limit_exceeded'}}"))
    span.set_status(Status(StatusCode.ERROR, "RateLimitError: Error code: 429"))


def _fail_timeout(span: Any) -> None:
    span.add_event("exception", {"exception.type": "openai.APITimeoutError", "exception.message": "Request timed out."})
    span.set_status(Status(StatusCode.ERROR, "APITimeoutError: Request timed out."))


def _stream_events(span: Any) -> None:
    span.add_event("gen_ai.content.prompt", {"gen_ai.prompt": '[{"role": "user", "content": "Hi"}]'})
    span.add_event("First Token Stream Event")
    span.add_event("llm.content.completion.chunk")
    span.add_event("gen_ai.content.completion", {"gen_ai.completion": '[{"role": "assistant", "content": "Yo"}]'})


def _cancelled(span: Any) -> None:
    span.add_event("exception", {"exception.type": "asyncio.CancelledError", "exception.escaped": True})


def _server_error(span: Any) -> None:
    span.set_status(Status(StatusCode.ERROR, "boom: password=hunter2222 sk-abcdefghijklmnop"))


SCENARIOS: list[Scenario] = [
    (
        "http server",
        SpanKind.SERVER,
        {
            "http.request.method": "POST",
            "http.route": "/v1/chat",
            "url.path": "/v1/chat",
            "url.scheme": "https",
            "server.address": "chat-api.internal",
            "server.port": 8080,
            "client.address": "127.0.0.1",
            "user_agent.original": "python-requests/2.32.3",
            "http.response.status_code": 200,
        },
        None,
    ),
    ("http server 500", SpanKind.SERVER, {"http.method": "GET", "http.status_code": 500}, _server_error),
    ("http client 404", SpanKind.CLIENT, {"http.method": "GET", "http.target": "/a?b", "http.status_code": 404}, None),
    ("http 499", SpanKind.SERVER, {"http.response.status_code": 499}, None),
    ("http 429", SpanKind.CLIENT, {"http.response.status_code": 429, "rpc.grpc.status_code": 8}, None),
    ("http 408", SpanKind.SERVER, {"http.status_code": "408", "lumiqtrace.error_code": "slow"}, None),
    ("explicit success", SpanKind.CLIENT, {"http.response.status_code": 503, "lumiqtrace.status": " Success"}, None),
    ("http 504", SpanKind.CLIENT, {"http.response.status_code": 504}, None),
    ("db", SpanKind.CLIENT, {"db.system": "postgresql", "db.namespace": "app", "db.operation.name": "SELECT"}, None),
    ("grpc", SpanKind.CLIENT, {"rpc.system": "grpc", "rpc.service": "S", "rpc.grpc.status_code": 4}, _server_error),
    (
        "otel chat",
        SpanKind.CLIENT,
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.request.max_tokens": 512,
            "gen_ai.request.temperature": 0.2,
            "server.address": "api.openai.com",
            "server.port": 443,
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.response.id": "chatcmpl-1",
            "gen_ai.response.finish_reasons": ("stop", "stop", "length"),
            "gen_ai.usage.input_tokens": 200,
            "gen_ai.usage.output_tokens": 20,
            "gen_ai.usage.cache_read.input_tokens": 50,
            "gen_ai.usage.reasoning.output_tokens": 7,
            "gen_ai.conversation.id": "conv-1",
            "user.id": "u-1",
        },
        None,
    ),
    (
        "otel chat content",
        SpanKind.CLIENT,
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-3-5-sonnet-latest",
            "gen_ai.system_instructions": '[{"type": "text", "content": "sys"}]',
            "gen_ai.input.messages": OPENAI_MESSAGES,
            "gen_ai.output.messages": OUTPUT_MESSAGES,
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 3,
            "gen_ai.usage.cache_creation.input_tokens": 4,
        },
        None,
    ),
    (
        "otel rate limited",
        SpanKind.CLIENT,
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4.1-mini",
            "error.type": "openai.RateLimitError",
            "http.response.status_code": 429,
        },
        _fail_rate_limited,
    ),
    (
        "otel timeout",
        SpanKind.CLIENT,
        {"gen_ai.operation.name": "chat", "gen_ai.system": "az.ai.openai", "gen_ai.request.model": "gpt-4.1-nano"},
        _fail_timeout,
    ),
    (
        "legacy events stream",
        SpanKind.CLIENT,
        {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.completion_tokens": 3},
        _stream_events,
    ),
    (
        "openinference",
        SpanKind.INTERNAL,
        {
            "openinference.span.kind": "LLM",
            "llm.system": "openai",
            "llm.provider": "azure",
            "llm.model_name": "gpt-4o",
            "llm.invocation_parameters": '{"model": "gpt-4o", "stream": true, "temperature": 0}',
            "llm.input_messages.0.message.role": "system",
            "llm.input_messages.0.message.content": "Be brief",
            "llm.input_messages.1.message.role": "user",
            "llm.input_messages.1.message.contents.0.message_content.text": "Hi",
            "llm.input_messages.1.message.contents.1.message_content.type": "image",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "f",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"b": 1, "a": 2}',
            "llm.token_count.prompt": 12,
            "llm.token_count.completion": 5,
            "llm.token_count.prompt_details.cache_read": 4,
            "input.value": '{"messages": [{"role": "user", "content": "Hi"}]}',
            "output.value": "Hello",
            "session.id": "s-1",
            "tag.tags": ("a", "b", 3),
            "metadata": '{"tier": "gold", "password": "x", "nested": {"api_key": "k", "ok": [1, 2]}, "n": null}',
        },
        None,
    ),
    (
        "openinference failed call",
        SpanKind.INTERNAL,
        {"openinference.span.kind": "LLM", "llm.invocation_parameters": '{"model": "gpt-4.1-mini"}'},
        _fail_rate_limited,
    ),
    (
        "openllmetry legacy",
        SpanKind.CLIENT,
        {
            "llm.request.type": "chat",
            "gen_ai.system": "OpenAI",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": '[{"type": "text", "text": "Hi"}]',
            "gen_ai.prompt.1.role": "assistant",
            "gen_ai.prompt.1.tool_calls.0.name": "lookup",
            "gen_ai.prompt.1.tool_calls.0.arguments": '{"q": "x"}',
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": "Hello",
            "gen_ai.completion.0.finish_reason": "stop",
            "gen_ai.usage.prompt_tokens": 12,
            "gen_ai.usage.completion_tokens": 5,
            "llm.usage.total_tokens": 17,
            "llm.is_streaming": False,
            "traceloop.workflow.name": "wf",
            "traceloop.entity.name": "openai.chat",
            "traceloop.association.properties.user_id": "u-9",
            "traceloop.association.properties.sessionId": "s-9",
            "traceloop.association.properties.tier": "pro",
        },
        None,
    ),
    (
        "openllmetry workflow",
        SpanKind.INTERNAL,
        {
            "traceloop.span.kind": "workflow",
            "traceloop.entity.input": '{"inputs": {"q": "x"}}',
            "traceloop.entity.output": '{"outputs": "y"}',
        },
        None,
    ),
    (
        "tool",
        SpanKind.INTERNAL,
        {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "search",
            "gen_ai.tool.call.id": "call_1",
            "gen_ai.tool.call.arguments": '{"q": "weather"}',
            "gen_ai.tool.call.result": '{"content": [{"type": "text", "text": "sunny"}]}',
        },
        None,
    ),
    ("tool hint", SpanKind.INTERNAL, {"tool.name": "calc", "gen_ai.usage.total_tokens": 9}, None),
    (
        "agent",
        SpanKind.INTERNAL,
        {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "golden-agent",
            "gen_ai.provider.name": "gcp.vertex_ai",
            "gen_ai.request.model": "gemini-2.0-flash",
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 10,
            "gen_ai.conversation.id": "c",
        },
        None,
    ),
    (
        "embeddings",
        SpanKind.CLIENT,
        {
            "gen_ai.operation.name": "embeddings",
            "gen_ai.request.model": "text-embedding-3-small",
            "gen_ai.usage.input_tokens": 6,
        },
        None,
    ),
    ("model only", SpanKind.CLIENT, {"gen_ai.request.model": "o1-mini", "server.address": "x.openai.azure.com"}, None),
    ("o1xyz", SpanKind.CLIENT, {"llm.request.model": "o1xyz", "net.peer.name": "eu.aiplatform.googleapis.com"}, None),
    (
        "explicit overrides",
        SpanKind.CLIENT,
        {
            "lumiqtrace.provider": "Google",
            "lumiqtrace.model": "my-model",
            "lumiqtrace.operation": "Chat",
            "lumiqtrace.span_kind": "planning",
            "lumiqtrace.user_id": "lu",
            "lumiqtrace.session_id": "ls",
            "lumiqtrace.environment": "dev",
            "lumiqtrace.cost_usd": "0.25",
            "lumiqtrace.input_tokens": "7",
            "lumiqtrace.output_tokens": 3.0,
            "lumiqtrace.cached_tokens": 1,
            "lumiqtrace.ttft_ms": 40.4,
            "lumiqtrace.stream": "yes",
            "lumiqtrace.status": "Timeout",
            "lumiqtrace.error_code": "E42",
            "lumiqtrace.finish_reason": "length",
            "lumiqtrace.tags.team": "search",
            "lumiqtrace.tags.api_key": "secret",
            "lumiqtrace.tags.list": (1, 2),
            "gen_ai.provider.name": "openai",
        },
        None,
    ),
    (
        "context only lumiqtrace keys",
        SpanKind.SERVER,
        {"lumiqtrace.user_id": "u", "lumiqtrace.session_id": "s", "lumiqtrace.sample_rate": 0.5, "enduser.id": "e"},
        None,
    ),
    (
        "langfuse",
        SpanKind.INTERNAL,
        {
            "langfuse.observation.type": "generation",
            "langfuse.observation.model.name": "gpt-4o",
            "langfuse.observation.cost_details": '{"total": 0.5}',
            "langfuse.user.id": "lf-u",
            "langfuse.session.id": "lf-s",
            "langfuse.environment": "lf-env",
            "gen_ai.server.time_to_first_token": 0.2,
        },
        None,
    ),
    ("cancelled", SpanKind.CLIENT, {"gen_ai.request.model": "gpt-4o", "gen_ai.request.stream": True}, _cancelled),
    ("empty", SpanKind.INTERNAL, {}, None),
    (
        "odd values",
        SpanKind.INTERNAL,
        {
            "gen_ai.request.model": "  ",
            "llm.model_name": "gpt-4o",
            "gen_ai.usage.input_tokens": -1,
            "llm.token_count.prompt": 5.6,
            "gen_ai.response.finish_reasons": ("", " "),
            "llm.finish_reason": "stop",
            "gen_ai.agent.name": "é" * 2000,
            "deployment.environment": "prod",
        },
        None,
    ),
]


def _sdk_spans() -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "corpus", "deployment.environment.name": "production"})
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("corpus.scope", "1.0")
    for name, kind, attributes, hook in SCENARIOS:
        with tracer.start_as_current_span(name, kind=kind, attributes=attributes, record_exception=False) as span:
            if hook is not None:
                hook(span)
    provider.shutdown()
    return list(memory.get_finished_spans())


SDK_SPANS = _sdk_spans()


def _corpus() -> Iterator[Any]:
    for options_name in OPTION_SETS:
        for span in SDK_SPANS:
            yield pytest.param(span, options_name, id=f"{options_name}-{span.name}")


@pytest.mark.parametrize(("span", "options_name"), list(_corpus()))
def test_corpus_maps_like_the_reference(span: ReadableSpan, options_name: str) -> None:
    assert_same(span, options_name)


def test_corpus_covers_every_scenario() -> None:
    assert len(SDK_SPANS) == len(SCENARIOS)
    events_seen = [mapping.map_span(s, mapping.MappingOptions(compute_cost=False)) for s in SDK_SPANS]
    assert {e["status"] for e in events_seen if e} == {"success", "error", "timeout", "rate_limited", "cancelled"}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example])
@given(
    attrs=ATTRS,
    span_events=events(),
    kind=st.sampled_from(list(SpanKind)),
    status=st.sampled_from([StatusCode.UNSET, StatusCode.OK, StatusCode.ERROR]),
    description=st.none() | st.text(max_size=30) | st.sampled_from(["TimeoutError: x", "Error code: 429 {'code': 7}"]),
    start=st.none() | st.integers(min_value=-(2**63), max_value=2**63) | st.just(START_NS),
    options_name=st.sampled_from(sorted(OPTION_SETS)),
    parent=st.booleans(),
)
def test_any_span_maps_like_the_reference(
    attrs: dict[str, Any],
    span_events: list[Event],
    kind: SpanKind,
    status: StatusCode,
    description: str | None,
    start: int | None,
    options_name: str,
    parent: bool,
) -> None:
    span = make_span(
        attrs,
        kind=kind,
        status=Status(status, description if status is StatusCode.ERROR else None),
        events=span_events,
        start=start,
        parent=parent,
    )
    assert_same(span, options_name)


# Values that exercise the conventions' branches (status codes, kinds, providers, models, flags, JSON) rather than
# arbitrary junk, so the ladders and precedence lists are hit often.
PLAUSIBLE = st.sampled_from(
    [
        0,
        1,
        4,
        8,
        200,
        404,
        408,
        429,
        499,
        500,
        504,
        "429",
        12.5,
        True,
        False,
        "true",
        "no",
        "",
        " ",
        "chat",
        "LLM",
        "execute_tool",
        "agent",
        "embeddings",
        "workflow",
        "openai",
        "azure",
        "Anthropic",
        "gcp.vertex_ai",
        "gpt-4o-mini",
        "claude-3-5-sonnet-latest",
        "gemini-2.0-flash",
        "o1-mini",
        "api.openai.com",
        "x.openai.azure.com",
        "timeout",
        "RateLimitError",
        "asyncio.CancelledError",
        ("stop", "length", "stop"),
        ("",),
        ["a", 1],
        '{"model": "gpt-4o", "stream": true}',
        '{"total": 0.25}',
        '[{"role": "user", "content": "hi"}]',
        '{"messages": [{"role": "user", "content": "hi"}]}',
        '{"choices": [{"message": {"role": "assistant", "content": "yo"}}]}',
        '{"tier": "gold", "secret": "s", "deep": {"token": "t"}}',
        "é" * 1100,
    ]
)
PLAUSIBLE_ATTRS = st.dictionaries(st.sampled_from(KNOWN_KEYS), PLAUSIBLE, max_size=20)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    attrs=PLAUSIBLE_ATTRS,
    span_events=events(),
    kind=st.sampled_from(list(SpanKind)),
    status=st.sampled_from([StatusCode.UNSET, StatusCode.OK, StatusCode.ERROR]),
    options_name=st.sampled_from(sorted(OPTION_SETS)),
)
def test_plausible_span_maps_like_the_reference(
    attrs: dict[str, Any], span_events: list[Event], kind: SpanKind, status: StatusCode, options_name: str
) -> None:
    description = "TimeoutError: Request timed out." if status is StatusCode.ERROR else None
    span = make_span(attrs, kind=kind, status=Status(status, description), events=span_events)
    assert_same(span, options_name)


@pytest.mark.parametrize("options_name", sorted(OPTION_SETS))
@pytest.mark.parametrize(
    ("name", "scope", "attrs"),
    [
        ("GET /", None, {}),
        ("GET /", InstrumentationScope("s", None), {}),
        ("GET /", InstrumentationScope("s", ""), {"http.response.status_code": 200}),
        ("GET /", InstrumentationScope(None, "1.0"), {}),  # type: ignore[arg-type]
        ("GET /", InstrumentationScope("s", "1.0"), {"lumiqtrace.tags.otel.span_name": "mine", "lumiqtrace.tags.x": 1}),
        ("é" * 300, InstrumentationScope("sc\ud800", "1.0"), {"lumiqtrace.tags.otel.span_kind": "mine"}),
        (None, InstrumentationScope("s", "1.0"), {}),
        ("password", InstrumentationScope("token", "secret"), {}),
    ],
)
def test_identity_tags_map_like_the_reference(name: Any, scope: Any, attrs: dict[str, Any], options_name: str) -> None:
    # Twice: the second mapping of the same identity reads the per-options cache of identity tags.
    for _ in range(2):
        assert_same(make_span(attrs, name=name, scope=scope), options_name)

# SPDX-License-Identifier: Apache-2.0
"""Table tests of the span -> event mapping: precedence of every field and every status rule."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from opentelemetry_exporter_lumiqtrace.mapping import (
    DEFAULT_MAX_TAGS,
    MappingOptions,
    event_id_for,
    map_span,
)
from opentelemetry_exporter_lumiqtrace.mapping.redaction import Redactor
from opentelemetry_exporter_lumiqtrace.mapping.tags import fill_tags
from tests.test_mapping_support import (
    PARENT_ID,
    SPAN_ID,
    TRACE_ID,
    check_event,
    event_at,
    exception_event,
    make_span,
    mapped,
)

_UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
CHAT = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"}

# --- identity, time -------------------------------------------------------------------------------------------------


def test_ids_timestamp_and_latency() -> None:
    event = mapped(CHAT, duration_ms=843.4)
    assert event["trace_id"] == f"{TRACE_ID:032x}"
    assert event["span_id"] == f"{SPAN_ID:016x}"
    assert event["parent_span_id"] == f"{PARENT_ID:016x}"
    assert event["timestamp"] == "2026-04-20T10:00:00.000Z"
    assert event["latency_ms"] == 843
    assert event["event_id"] == event_id_for(TRACE_ID, SPAN_ID)


def test_root_span_has_no_parent_and_timestamp_keeps_milliseconds() -> None:
    event = mapped(CHAT, parent=False, start=1_776_679_200_123_987_654)
    assert "parent_span_id" not in event
    assert event["timestamp"] == "2026-04-20T10:00:00.123Z"


def test_event_id_is_deterministic_uuid4() -> None:
    first = event_id_for(TRACE_ID, SPAN_ID)
    assert first == event_id_for(TRACE_ID, SPAN_ID)
    assert _UUID4.fullmatch(first)
    assert uuid.UUID(first).version == 4
    assert first != event_id_for(TRACE_ID, SPAN_ID + 1)
    assert first != event_id_for(TRACE_ID + 1, SPAN_ID)
    assert _UUID4.fullmatch(event_id_for(0, 0))
    assert _UUID4.fullmatch(event_id_for(2**128 - 1, 2**64 - 1))


def test_event_id_is_the_span_id_and_the_trace_ids_random_part_laid_out_as_a_uuid4() -> None:
    # W3C Trace Context's example ids: the whole span id, then the trace id's low 58 bits, version and variant set.
    trace_id, span_id = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331
    assert event_id_for(trace_id, span_id) == "b7ad6b71-6920-4333-8148-eb211c80319c"
    ids = {event_id_for(trace_id, span_id)}
    for bit in range(64):  # every bit of the span id tells spans apart
        ids.add(event_id_for(trace_id, span_id ^ (1 << bit)))
    for bit in range(58):  # and every bit of the trace id's random part (W3C: its low 56 bits) tells traces apart
        ids.add(event_id_for(trace_id ^ (1 << bit), span_id))
    assert len(ids) == 1 + 64 + 58
    assert all(uuid.UUID(i).version == 4 and uuid.UUID(i).variant == uuid.RFC_4122 for i in ids)


# --- provider -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "provider", "raw"),
    [
        ({"lumiqtrace.provider": "anthropic", "gen_ai.provider.name": "openai"}, "anthropic", "anthropic"),
        ({"gen_ai.provider.name": "openai", "gen_ai.system": "anthropic"}, "openai", "openai"),
        ({"gen_ai.system": "anthropic", "llm.provider": "openai"}, "anthropic", "anthropic"),
        ({"llm.provider": "google", "llm.system": "openai"}, "google", "google"),
        ({"llm.system": "openai"}, "openai", "openai"),
        ({"gen_ai.provider.name": "azure.ai.openai"}, "openai", "azure.ai.openai"),
        ({"gen_ai.system": "az.ai.openai"}, "openai", "az.ai.openai"),
        ({"gen_ai.provider.name": "gcp.vertex_ai"}, "google", "gcp.vertex_ai"),
        ({"gen_ai.provider.name": "gcp.gemini"}, "google", "gcp.gemini"),
        ({"gen_ai.system": "vertex_ai"}, "google", "vertex_ai"),
        ({"gen_ai.system": "Anthropic"}, "anthropic", "Anthropic"),  # OpenLLMetry legacy capitalisation
        ({"gen_ai.system": "OpenAI"}, "openai", "OpenAI"),
        ({"gen_ai.system": "Google"}, "google", "Google"),
        ({"gen_ai.system": "MistralAI"}, "custom", "MistralAI"),
        ({"gen_ai.provider.name": "aws.bedrock"}, "custom", "aws.bedrock"),  # API flavour, not model vendor
        ({"gen_ai.provider.name": "mistral_ai"}, "custom", "mistral_ai"),
        ({"llm.provider": "azure", "llm.system": "openai"}, "openai", "azure"),
        ({"llm.provider": "azure", "llm.system": "mistralai"}, "custom", "azure"),
        ({"lumiqtrace.provider": "custom", "gen_ai.provider.name": "openai"}, "custom", "custom"),
    ],
)
def test_provider_precedence_and_normalisation(attrs: dict[str, str], provider: str, raw: str) -> None:
    event = mapped({**CHAT, **attrs})
    assert event["provider"] == provider
    assert event["tags"]["gen_ai.provider.name"] == raw


@pytest.mark.parametrize(
    ("attrs", "provider"),
    [
        ({"server.address": "api.openai.com"}, "openai"),
        ({"server.address": "myres.openai.azure.com"}, "openai"),
        ({"server.address": "api.anthropic.com"}, "anthropic"),
        ({"server.address": "generativelanguage.googleapis.com"}, "google"),
        ({"server.address": "us-central1-aiplatform.googleapis.com"}, "google"),
        ({"gen_ai.request.model": "claude-sonnet-4-5"}, "anthropic"),
        ({"gen_ai.request.model": "gemini-2.5-flash"}, "google"),
        ({"gen_ai.request.model": "o3-mini"}, "openai"),
        ({"gen_ai.request.model": "text-embedding-004"}, "google"),
        ({"gen_ai.request.model": "text-embedding-3-small"}, "openai"),
        ({"gen_ai.request.model": "llama-3-70b"}, "custom"),
        ({"server.address": "localhost", "gen_ai.request.model": "gpt-4o"}, "openai"),
    ],
)
def test_provider_fallbacks_without_provider_attribute(attrs: dict[str, str], provider: str) -> None:
    event = mapped({"gen_ai.operation.name": "chat", **attrs})
    assert event["provider"] == provider
    assert "gen_ai.provider.name" not in event["tags"]


# --- model ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "model", "requested"),
    [
        (
            {"gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06"},
            "gpt-4o-2024-08-06",
            "gpt-4o",
        ),
        ({"gen_ai.request.model": "gpt-4o"}, "gpt-4o", None),
        ({"llm.model_name": "gpt-4o-mini"}, "gpt-4o-mini", None),
        ({"llm.request.model_name": "a", "llm.response.model_name": "b"}, "b", "a"),
        # The response model of any convention beats the request model of any other convention.
        ({"gen_ai.request.model": "a", "llm.response.model_name": "b"}, "b", "a"),
        ({"llm.model_name": "a", "gen_ai.response.model": "b"}, "b", "a"),
        ({"gen_ai.request.model": "a", "llm.model_name": "b"}, "a", None),
        ({"embedding.model_name": "text-embedding-3-small"}, "text-embedding-3-small", None),
        # a failed OpenInference call only has the requested model in its invocation parameters
        ({"llm.invocation_parameters": json.dumps({"model": "gpt-4.1", "stream": False})}, "gpt-4.1", None),
        ({"llm.model_name": "a", "llm.invocation_parameters": json.dumps({"model": "b"})}, "a", None),
        ({"lumiqtrace.model": "mine", "gen_ai.response.model": "b", "gen_ai.request.model": "a"}, "mine", "a"),
    ],
)
def test_model_precedence(attrs: dict[str, str], model: str, requested: str | None) -> None:
    event = mapped({"gen_ai.operation.name": "chat", **attrs})
    assert event["model"] == model
    assert event["tags"].get("gen_ai.request.model") == requested


def test_model_is_never_invented_from_span_name() -> None:
    event = mapped({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai"}, name="chat gpt-4o")
    assert "model" not in event


# --- operation and span kind ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "operation", "span_kind"),
    [
        ({"gen_ai.operation.name": "chat"}, "chat", "llm"),
        ({"gen_ai.operation.name": "text_completion"}, "chat", "llm"),
        ({"gen_ai.operation.name": "generate_content"}, "chat", "llm"),
        ({"gen_ai.operation.name": "embeddings"}, "embed", "llm"),
        ({"gen_ai.operation.name": "execute_tool"}, "tool", "tool"),
        ({"gen_ai.operation.name": "invoke_agent"}, "agent", "agent"),
        ({"gen_ai.operation.name": "create_agent"}, "agent", "agent"),
        ({"gen_ai.operation.name": "invoke_workflow"}, "custom", "general"),
        ({"gen_ai.operation.name": "retrieval"}, "custom", "retriever"),
        ({"gen_ai.operation.name": "plan"}, "custom", "planning"),
        ({"openinference.span.kind": "LLM"}, "chat", "llm"),
        ({"openinference.span.kind": "EMBEDDING"}, "embed", "llm"),
        ({"openinference.span.kind": "TOOL"}, "tool", "tool"),
        ({"openinference.span.kind": "AGENT"}, "agent", "agent"),
        ({"openinference.span.kind": "CHAIN"}, "custom", "general"),
        ({"openinference.span.kind": "RETRIEVER"}, "custom", "retriever"),
        ({"openinference.span.kind": "RERANKER"}, "custom", "retriever"),
        ({"openinference.span.kind": "GUARDRAIL"}, "custom", "guardrail"),
        ({"openinference.span.kind": "EVALUATOR"}, "custom", "general"),
        ({"llm.request.type": "chat"}, "chat", "llm"),
        ({"llm.request.type": "completion"}, "chat", "llm"),
        ({"llm.request.type": "embedding"}, "embed", "llm"),
        ({"llm.request.type": "rerank"}, "custom", "retriever"),
        ({"traceloop.span.kind": "workflow"}, "custom", "general"),
        ({"traceloop.span.kind": "task"}, "custom", "general"),
        ({"traceloop.span.kind": "agent"}, "agent", "agent"),
        ({"traceloop.span.kind": "tool"}, "tool", "tool"),
        # precedence: OTel > OpenInference > OpenLLMetry
        ({"gen_ai.operation.name": "chat", "openinference.span.kind": "AGENT"}, "chat", "llm"),
        ({"openinference.span.kind": "TOOL", "llm.request.type": "chat"}, "tool", "tool"),
        ({"llm.request.type": "chat", "traceloop.span.kind": "workflow"}, "chat", "llm"),
        # an unknown value falls through to the next source, then to heuristics
        ({"gen_ai.operation.name": "my_op", "openinference.span.kind": "TOOL"}, "tool", "tool"),
        ({"gen_ai.tool.name": "search"}, "tool", "tool"),
        ({"gen_ai.request.model": "gpt-4o"}, "chat", "llm"),
        ({"gen_ai.agent.name": "planner"}, "custom", "general"),
        # explicit overrides
        ({"lumiqtrace.operation": "embed", "gen_ai.operation.name": "chat"}, "embed", "llm"),
        ({"lumiqtrace.span_kind": "handoff", "gen_ai.operation.name": "invoke_agent"}, "agent", "handoff"),
        ({"lumiqtrace.span_kind": "guardrail"}, "custom", "guardrail"),
        ({"lumiqtrace.span_kind": "planning", "lumiqtrace.operation": "agent"}, "agent", "planning"),
        ({"lumiqtrace.operation": "execute_tool"}, "tool", "tool"),
        ({"lumiqtrace.operation": "whatever"}, "custom", "general"),
        ({"lumiqtrace.span_kind": "bogus", "gen_ai.operation.name": "chat"}, "custom", "general"),
    ],
)
def test_operation_and_span_kind(attrs: dict[str, str], operation: str, span_kind: str) -> None:
    event = mapped(attrs)
    assert (event["operation"], event["span_kind"]) == (operation, span_kind)


def test_raw_operation_kept_in_tags() -> None:
    assert mapped({"gen_ai.operation.name": "generate_content"})["tags"]["gen_ai.operation.name"] == "generate_content"
    tags = mapped({"openinference.span.kind": "LLM", "llm.request.type": "chat"})["tags"]
    assert tags["openinference.span.kind"] == "LLM"
    assert tags["llm.request.type"] == "chat"


# --- tokens ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ({"gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5}, (10, 5, None)),
        ({"gen_ai.usage.prompt_tokens": 11, "gen_ai.usage.completion_tokens": 6}, (11, 6, None)),
        ({"gen_ai.usage.input_tokens": 10, "gen_ai.usage.prompt_tokens": 99}, (10, None, None)),
        ({"llm.token_count.prompt": 12, "llm.token_count.completion": 7}, (12, 7, None)),
        ({"gen_ai.usage.prompt_tokens": 1, "llm.token_count.prompt": 2}, (1, None, None)),
        ({"lumiqtrace.input_tokens": 3, "gen_ai.usage.input_tokens": 4}, (3, None, None)),
        ({"gen_ai.usage.cache_read.input_tokens": 8}, (None, None, 8)),
        ({"gen_ai.usage.cache_read_input_tokens": 9}, (None, None, 9)),
        ({"llm.token_count.prompt_details.cache_read": 10}, (None, None, 10)),
        ({"gen_ai.usage.output_tokens": 5, "gen_ai.usage.total_tokens": 25}, (20, 5, None)),
        ({"gen_ai.usage.input_tokens": "42", "gen_ai.usage.output_tokens": 7.0}, (42, 7, None)),
        ({"gen_ai.usage.input_tokens": -1, "gen_ai.usage.output_tokens": float("nan")}, (None, None, None)),
        ({"gen_ai.usage.input_tokens": True}, (None, None, None)),
        ({"gen_ai.usage.input_tokens": 0, "gen_ai.usage.output_tokens": 0}, (0, 0, None)),
    ],
)
def test_token_precedence(attrs: dict[str, object], expected: tuple[int | None, int | None, int | None]) -> None:
    event = mapped({**CHAT, **attrs})
    assert (event.get("input_tokens"), event.get("output_tokens"), event.get("cached_tokens")) == expected


@pytest.mark.parametrize(
    "key",
    [
        "gen_ai.usage.cache_write.input_tokens",
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.cache_creation_input_tokens",
        "llm.token_count.prompt_details.cache_write",
    ],
)
def test_cache_write_tokens_go_to_tags(key: str) -> None:
    assert mapped({**CHAT, key: 30})["tags"]["tokens.cache_write"] == "30"


@pytest.mark.parametrize(
    "key",
    [
        "gen_ai.usage.reasoning.output_tokens",
        "gen_ai.usage.reasoning_tokens",
        "llm.usage.reasoning_tokens",
        "llm.token_count.completion_details.reasoning",
    ],
)
def test_reasoning_tokens_go_to_tags(key: str) -> None:
    assert mapped({**CHAT, key: 64})["tags"]["tokens.reasoning"] == "64"


def test_unknown_values_are_omitted() -> None:
    event = mapped(CHAT)
    for name in ("input_tokens", "output_tokens", "cached_tokens", "ttft_ms", "cost_usd", "user_id", "session_id"):
        assert name not in event
    assert None not in event.values()


# --- ttft and stream ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "events", "ttft"),
    [
        ({"gen_ai.response.time_to_first_chunk": 0.34}, (), 340),
        ({"gen_ai.server.time_to_first_token": 0.2}, (), 200),
        ({"lumiqtrace.ttft_ms": 12, "gen_ai.response.time_to_first_chunk": 0.34}, (), 12),
        ({}, (event_at("First Token Stream Event", 150),), 150),
        ({}, (event_at("gen_ai.content.completion.chunk", 90), event_at("gen_ai.content.completion.chunk", 99)), 90),
        ({}, (event_at("llm.content.completion.chunk", 77),), 77),
        ({"gen_ai.response.time_to_first_chunk": 0.1}, (event_at("First Token Stream Event", 150),), 100),
        ({"gen_ai.response.time_to_first_chunk": 99.0}, (), 1200),  # clamped to latency
        ({"gen_ai.client.operation.time_to_first_chunk": 0.0892}, (), 89),  # pydantic-ai
        ({"gen_ai.response.time_to_first_chunk": 0.3, "gen_ai.client.operation.time_to_first_chunk": 0.1}, (), 300),
    ],
)
def test_ttft_sources(attrs: dict[str, object], events: tuple[object, ...], ttft: int) -> None:
    event = mapped({**CHAT, **attrs}, events=events, duration_ms=1200)
    assert event["ttft_ms"] == ttft
    assert event["stream"] is True


@pytest.mark.parametrize(
    ("attrs", "stream"),
    [
        ({"gen_ai.request.stream": True}, True),
        ({"gen_ai.request.stream": False, "gen_ai.is_streaming": True}, False),
        ({"gen_ai.is_streaming": True}, True),
        ({"llm.is_streaming": "true"}, True),
        ({"gen_ai.request.is_stream": True}, True),
        ({"llm.invocation_parameters": json.dumps({"model": "gpt-4o", "stream": True})}, True),
        # Nothing says whether the call streamed: unknown is omitted (issue 12 item 4).
        ({"llm.invocation_parameters": json.dumps({"model": "gpt-4o"})}, None),
        ({"llm.invocation_parameters": "{not json"}, None),
        ({}, None),
        ({"lumiqtrace.stream": True, "gen_ai.request.stream": False}, True),
        ({"llm.invocation_parameters": json.dumps({"model": "gpt-4o", "stream": False})}, False),
        # Logfire: the request as JSON in request_data (older logfire), or a streamed call's log template.
        ({"request_data": json.dumps({"model": "gpt-4o", "stream": True})}, True),
        ({"request_data": json.dumps({"model": "gpt-4o"})}, None),
        ({"logfire.msg_template": "streaming response from {request_data[model]!r} took {duration:.2f}s"}, True),
        ({"logfire.msg_template": "Chat Completion with {request_data[model]!r}"}, None),
        # A first-chunk time is evidence of streaming.
        ({"gen_ai.client.operation.time_to_first_chunk": 0.05}, True),
        ({"gen_ai.client.operation.time_to_first_chunk": 0.05, "gen_ai.request.stream": False}, False),
    ],
)
def test_stream_sources(attrs: dict[str, object], stream: bool | None) -> None:
    assert mapped({**CHAT, **attrs}).get("stream") is stream


def test_stream_omitted_for_tool_spans_without_information() -> None:
    assert "stream" not in mapped({"gen_ai.operation.name": "execute_tool"})


def test_stream_omitted_for_llm_spans_without_information() -> None:
    """Issue 12 item 4: an LLM span that says nothing about streaming (openai-agents' ``response`` span from
    ``run_streamed``) must not claim ``stream: false``."""
    params = json.dumps({"model": "gpt-4o-mini", "temperature": 0})
    for attrs in (
        {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini", "llm.invocation_parameters": params},
        {"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "text-embedding-3-small"},
        CHAT,
    ):
        event = mapped(attrs)
        assert event["span_kind"] == "llm"
        assert "stream" not in event


# --- Logfire's streamed-call log ------------------------------------------------------------------------------------

LOGFIRE_STREAM_LOG = {
    **CHAT,
    "logfire.span_type": "log",
    "logfire.msg_template": "streaming response from {request_data[model]!r} took {duration:.2f}s",
    "request_data": json.dumps({"model": "gpt-4o"}),
    "duration": 0.126,
    "gen_ai.response.finish_reasons": '["stop"]',
}


def test_logfire_streaming_log_takes_latency_from_duration() -> None:
    event = mapped(LOGFIRE_STREAM_LOG, duration_ms=0)
    assert event["latency_ms"] == 126
    assert event["stream"] is True
    assert event["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("attrs", "duration_ms", "latency_ms"),
    [
        ({**LOGFIRE_STREAM_LOG, "logfire.span_type": "span"}, 0, 0),  # a span's duration attribute is the user's
        (LOGFIRE_STREAM_LOG, 40, 40),  # a span with a start and an end has its own latency
        ({**LOGFIRE_STREAM_LOG, "duration": "n/a"}, 0, 0),
        ({**LOGFIRE_STREAM_LOG, "duration": -1.0}, 0, 0),
        ({**LOGFIRE_STREAM_LOG, "duration": 1e308}, 0, 0),
        # not an AI span: a log's "duration" is whatever the application logged
        ({"logfire.span_type": "log", "logfire.msg_template": "took {duration}", "duration": 5}, 0, 0),
    ],
)
def test_duration_is_read_only_from_logfire_ai_logs(
    attrs: dict[str, object], duration_ms: float, latency_ms: int
) -> None:
    assert mapped(attrs, duration_ms=duration_ms)["latency_ms"] == latency_ms


# --- status ladder --------------------------------------------------------------------------------------------------

ERR = Status(StatusCode.ERROR, "boom")


@pytest.mark.parametrize(
    ("attrs", "status", "events", "kind", "expected", "code"),
    [
        ({}, None, (), SpanKind.CLIENT, "success", None),
        ({}, Status(StatusCode.OK), (), SpanKind.CLIENT, "success", None),
        ({}, ERR, (), SpanKind.CLIENT, "error", None),
        ({"error.type": "_OTHER"}, None, (), SpanKind.CLIENT, "error", "_OTHER"),
        ({"error.type": "asyncio.exceptions.CancelledError"}, ERR, (), SpanKind.CLIENT, "cancelled", None),
        ({}, Status(StatusCode.ERROR, "CancelledError: "), (), SpanKind.CLIENT, "cancelled", None),
        (
            {"error.type": "_OTHER"},
            Status(StatusCode.ERROR, "abandoned stream"),
            (),
            SpanKind.CLIENT,
            "cancelled",
            None,
        ),
        ({"http.response.status_code": 499}, None, (), SpanKind.SERVER, "cancelled", "499"),
        # A dotted class path in error.type gives the class name, as OpenLLMetry and OpenInference report it.
        ({"error.type": "openai.APITimeoutError"}, ERR, (), SpanKind.CLIENT, "timeout", "APITimeoutError"),
        ({"rpc.grpc.status_code": 4, "rpc.system": "grpc"}, ERR, (), SpanKind.CLIENT, "timeout", "DEADLINE_EXCEEDED"),
        ({"error.type": "timeout"}, None, (), SpanKind.CLIENT, "timeout", "timeout"),
        ({}, ERR, (exception_event("httpx.ReadTimeout", "timed out"),), SpanKind.CLIENT, "timeout", "ReadTimeout"),
        (
            {},
            ERR,
            (exception_event("google.api_core.exceptions.DeadlineExceeded", "x"),),
            SpanKind.CLIENT,
            "timeout",
            None,
        ),
        ({}, Status(StatusCode.ERROR, "Request timed out."), (), SpanKind.CLIENT, "timeout", None),
        ({"http.response.status_code": 408}, None, (), SpanKind.SERVER, "timeout", "408"),
        ({"http.status_code": 504}, None, (), SpanKind.CLIENT, "timeout", "504"),
        ({"rpc.grpc.status_code": 4}, ERR, (), SpanKind.CLIENT, "timeout", None),
        ({"error.type": "RateLimitError"}, ERR, (), SpanKind.CLIENT, "rate_limited", "RateLimitError"),
        ({"error.type": "429"}, ERR, (), SpanKind.CLIENT, "rate_limited", "429"),
        ({"error.type": "ThrottlingException"}, ERR, (), SpanKind.CLIENT, "rate_limited", "ThrottlingException"),
        (
            {},
            ERR,
            (exception_event("google.api_core.exceptions.ResourceExhausted", "q"),),
            SpanKind.CLIENT,
            "rate_limited",
            None,
        ),
        ({}, Status(StatusCode.ERROR, "Error code: 429 - {'error': {}}"), (), SpanKind.CLIENT, "rate_limited", "429"),
        ({"http.response.status_code": 429}, None, (), SpanKind.SERVER, "rate_limited", "429"),
        ({"rpc.grpc.status_code": 8}, ERR, (), SpanKind.CLIENT, "rate_limited", None),
        ({"http.response.status_code": 500}, None, (), SpanKind.SERVER, "error", "500"),
        ({"http.response.status_code": 404}, None, (), SpanKind.SERVER, "success", None),  # server 4xx is not an error
        ({"http.response.status_code": 404}, None, (), SpanKind.CLIENT, "error", "404"),
        ({}, None, (exception_event("ValueError", "x", escaped=True),), SpanKind.INTERNAL, "error", "ValueError"),
        # a recorded, handled exception on a span that did not fail stays a success
        ({}, None, (exception_event("openai.RateLimitError", "retrying"),), SpanKind.CLIENT, "success", None),
        # the ladder order: cancelled > timeout > rate_limited > error
        (
            {"error.type": "RateLimitError"},
            ERR,
            (exception_event("TimeoutError", "x"),),
            SpanKind.CLIENT,
            "timeout",
            None,
        ),
        (
            {"error.type": "TimeoutError"},
            ERR,
            (exception_event("CancelledError", "x"),),
            SpanKind.CLIENT,
            "cancelled",
            None,
        ),
        ({"lumiqtrace.status": "cancelled"}, ERR, (), SpanKind.CLIENT, "cancelled", None),
        ({"lumiqtrace.status": "bogus"}, ERR, (), SpanKind.CLIENT, "error", None),
        # free-text messages never trigger the loose "timeout" identifier rule
        (
            {},
            Status(StatusCode.ERROR, "runtime output timeout mismatch in user code"),
            (),
            SpanKind.CLIENT,
            "error",
            None,
        ),
        # issue 12 item 3: pydantic-ai's ModelRateLimitError, without error.type or an HTTP status attribute
        (
            {},
            Status(
                StatusCode.ERROR,
                "ModelRateLimitError: status_code: 429, model_name: gpt-4o-mini, body: {'message': 'Rate limit "
                "reached', 'type': 'requests', 'param': None, 'code': 'rate_limit_exceeded'}",
            ),
            (exception_event("pydantic_ai.exceptions.ModelRateLimitError", "status_code: 429, model_name: x"),),
            SpanKind.CLIENT,
            "rate_limited",
            "rate_limit_exceeded",
        ),
        # each of its signs on its own: an identifier ending in RateLimitError, "status_code: 429", a body code/type
        (
            {},
            ERR,
            (exception_event("langchain_openai.chat_models.base.OpenAIRateLimitError", "slow down"),),
            SpanKind.INTERNAL,
            "rate_limited",
            "OpenAIRateLimitError",
        ),
        (
            {},
            Status(StatusCode.ERROR, "ModelHTTPError: status_code: 429, model_name: m"),
            (),
            SpanKind.CLIENT,
            "rate_limited",
            None,
        ),
        (
            {},
            Status(StatusCode.ERROR, "boom {'code': 'rate_limit_exceeded'}"),
            (),
            SpanKind.CLIENT,
            "rate_limited",
            "rate_limit_exceeded",
        ),
        (
            {},
            Status(StatusCode.ERROR, "APIStatusError: {'type': 'error', 'error': {'type': 'rate_limit_error'}}"),
            (),
            SpanKind.CLIENT,
            "rate_limited",
            None,
        ),
        # and their near misses stay errors
        (
            {},
            Status(StatusCode.ERROR, "ModelHTTPError: status_code: 4290, model_name: m"),
            (),
            SpanKind.CLIENT,
            "error",
            None,
        ),
        ({}, Status(StatusCode.ERROR, "boom {'code': 'rate_limit_exceeded_soon'}"), (), SpanKind.CLIENT, "error", None),
        ({}, ERR, (exception_event("RateLimitErrorHandler", "x"),), SpanKind.CLIENT, "error", None),
        (
            {},
            Status(StatusCode.ERROR, "ModelServerError: status_code: 500, model_name: m"),
            (),
            SpanKind.CLIENT,
            "error",
            None,
        ),
    ],
)
def test_status_ladder(
    attrs: dict[str, object],
    status: Status | None,
    events: tuple[object, ...],
    kind: SpanKind,
    expected: str,
    code: str | None,
) -> None:
    event = mapped({**CHAT, **attrs}, status=status, events=events, kind=kind)
    assert event["status"] == expected
    if code is not None:
        assert event["error_code"] == code
    if expected == "success":
        assert "error_code" not in event
        assert "error_message" not in event


def test_error_code_prefers_provider_code_in_message() -> None:
    message = (
        "Error code: 400 - {'error': {'message': 'too long', 'type': 'invalid_request_error', "
        "'code': 'context_length_exceeded'}}"
    )
    event = mapped(
        {**CHAT, "error.type": "BadRequestError"},
        status=Status(StatusCode.ERROR, message),
    )
    assert event["status"] == "error"
    assert event["error_code"] == "context_length_exceeded"
    assert event["error_message"].startswith("Error code: 400")


def test_error_message_from_exception_event_when_no_description() -> None:
    event = mapped(CHAT, status=Status(StatusCode.ERROR), events=(exception_event("KeyError", "'x' missing"),))
    assert event["error_message"] == "'x' missing"
    assert event["error_code"] == "KeyError"


LANGCHAIN_DESCRIPTION = (
    "OpenAIRateLimitError('Error code: 429 - Rate limit reached')Traceback (most recent call last):\n\n\n"
    '  File "/home/me/.venv/lib/python3.11/site-packages/langchain_openai/chat_models/base.py", line 1996, in '
    "_generate\n    raw_response = self.client.with_raw_response.create(**payload)\n"
)


@pytest.mark.parametrize(
    ("status", "events", "message"),
    [
        # issue 12 item 6: the exception's own message beats a description holding a traceback...
        (
            Status(StatusCode.ERROR, LANGCHAIN_DESCRIPTION),
            (exception_event("OpenAIRateLimitError", "Error code: 429 - Rate limit reached"),),
            "Error code: 429 - Rate limit reached",
        ),
        # ... and without one, the description is cut where the traceback starts
        (
            Status(StatusCode.ERROR, LANGCHAIN_DESCRIPTION),
            (),
            "OpenAIRateLimitError('Error code: 429 - Rate limit reached')",
        ),
        (Status(StatusCode.ERROR, 'ValueError: bad\n  File "/srv/app.py", line 3'), (), "ValueError: bad"),
        # a message that is itself a traceback is cut too (the next source is used when nothing is left)
        (
            Status(StatusCode.ERROR, 'Traceback (most recent call last):\n  File "/srv/app.py", line 3'),
            (exception_event("RemoteError", 'remote failed Traceback (most recent call last): File "/srv/w.py"'),),
            "remote failed",
        ),
        (Status(StatusCode.ERROR, 'Traceback (most recent call last): File "/srv/app.py"'), (), None),
        # the last exception event is the one that ended the span
        (ERR, (exception_event("E", "first try"), exception_event("E", "last try")), "last try"),
    ],
)
def test_error_message_is_the_exception_message_or_the_first_line(
    status: Status, events: tuple[object, ...], message: str | None
) -> None:
    event = mapped(CHAT, status=status, events=events)
    assert event["status"] != "success"
    assert event.get("error_message") == message


def test_error_message_falls_back_to_error_type_when_the_description_is_a_traceback() -> None:
    event = mapped(
        {**CHAT, "error.type": "openai.RateLimitError"},
        status=Status(StatusCode.ERROR, 'Traceback (most recent call last):\n  File "/srv/app.py", line 3'),
    )
    assert event["error_message"] == "openai.RateLimitError"


def test_error_message_from_the_exception_is_capped_and_scrubbed() -> None:
    secret = "sk-proj-" + "A1b2" * 10
    event = mapped(CHAT, status=ERR, events=(exception_event("E", f"key {secret} " + "y" * 2000),))
    message = event["error_message"]
    assert len(message) == 500 and message.endswith("…")
    assert secret not in message


def test_error_message_is_capped_and_scrubbed() -> None:
    secret = "sk-proj-" + "A1b2" * 10
    key = "lqt_" + "ab" * 32
    text = (
        f"failed with {secret} and {key} header Authorization: Bearer eyJhbGciOi.abc.def password=hunter22 "
        + "x" * 2000
    )
    event = mapped(CHAT, status=Status(StatusCode.ERROR, text))
    message = event["error_message"]
    assert len(message) <= 500
    assert secret not in message
    assert key not in message
    assert "eyJhbGciOi" not in message
    assert "hunter22" not in message
    assert "[REDACTED]" in message


# --- context --------------------------------------------------------------------------------------------------------


def test_environment_precedence() -> None:
    resource = Resource({"deployment.environment.name": "staging", "deployment.environment": "old"})
    opts = MappingOptions(environment="fallback", compute_cost=False)
    assert mapped({"lumiqtrace.environment": "ci", "deployment.environment.name": "x"}, opts)["environment"] == "ci"
    assert mapped({"deployment.environment.name": "span"}, opts, resource=resource)["environment"] == "span"
    assert mapped({"deployment.environment": "span-old"}, opts, resource=resource)["environment"] == "span-old"
    assert mapped({}, opts, resource=resource)["environment"] == "staging"
    assert mapped({}, opts, resource=Resource({"deployment.environment": "legacy"}))["environment"] == "legacy"
    assert mapped({}, opts)["environment"] == "fallback"
    assert "environment" not in mapped({})


@pytest.mark.parametrize(
    ("attrs", "user", "session"),
    [
        ({"lumiqtrace.user_id": "a", "user.id": "b", "lumiqtrace.session_id": "s", "session.id": "t"}, "a", "s"),
        ({"user.id": "b", "enduser.id": "c", "session.id": "t", "gen_ai.conversation.id": "u"}, "b", "t"),
        ({"enduser.id": "c", "gen_ai.conversation.id": "u"}, "c", "u"),
        (
            {
                "traceloop.association.properties.user_id": "d",
                "traceloop.association.properties.session_id": "v",
            },
            "d",
            "v",
        ),
        ({"gen_ai.user": "e", "traceloop.association.properties.sessionId": "w"}, "e", "w"),
        ({"llm.user": "f", "traceloop.association.properties.conversation_id": "x"}, "f", "x"),
        ({"user.id": 42}, "42", None),
        # issue 12 item 7: a user id given as framework metadata (OpenInference LangChain, pydantic-ai)
        ({"metadata": json.dumps({"user_id": "u-42", "ls_provider": "openai"})}, "u-42", None),
        ({"metadata": json.dumps({"userId": 7})}, "7", None),
        ({"metadata": json.dumps({"user_id": "u-42"}), "user.id": "b"}, "b", None),
        ({"metadata": json.dumps({"user": {"id": "u"}})}, None, None),
        ({"metadata": "user_id=u-42"}, None, None),
        ({"metadata": json.dumps({"user_id": ""})}, None, None),
    ],
)
def test_user_and_session(attrs: dict[str, object], user: str | None, session: str | None) -> None:
    event = mapped({**CHAT, **attrs})
    assert event.get("user_id") == user
    assert event.get("session_id") == session


# --- tags -----------------------------------------------------------------------------------------------------------


def test_tags_carry_span_identity() -> None:
    event = mapped(CHAT, name="chat gpt-4o", kind=SpanKind.CLIENT)
    tags = event["tags"]
    assert tags["otel.span_name"] == "chat gpt-4o"
    assert tags["otel.span_kind"] == "client"
    assert tags["otel.scope.name"] == "test.scope"
    assert tags["otel.scope.version"] == "9.9"
    assert tags["service.name"] == "checkout"
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items())


def test_explicit_tags_openinference_tags_metadata_and_association_properties() -> None:
    event = mapped(
        {
            **CHAT,
            "lumiqtrace.tags.team": "search",
            "lumiqtrace.tags.attempt": 3,
            "tag.tags": ("beta", "eu"),
            "metadata": json.dumps({"tier": "gold", "nested": {"a": 1, "password": "p"}, "n": 2}),
            "traceloop.association.properties.customer": "acme",
            "traceloop.association.properties.user_id": "u1",
        }
    )
    tags = event["tags"]
    assert tags["team"] == "search"
    assert tags["attempt"] == "3"
    assert tags["tags"] == "beta,eu"
    assert tags["metadata.tier"] == "gold"
    assert tags["metadata.n"] == "2"
    assert json.loads(tags["metadata.nested"]) == {"a": 1, "password": "[REDACTED]"}
    assert tags["customer"] == "acme"
    assert "user_id" not in tags
    assert event["user_id"] == "u1"


@pytest.mark.parametrize(
    "key",
    ["password", "api_key", "apiKey", "API-KEY", "Authorization", "secret", "access_token", "credit_card", "CVV"],
)
def test_default_redaction_keys_match_normalised(key: str) -> None:
    tags = mapped({**CHAT, f"lumiqtrace.tags.{key}": "s3cr3t", "metadata": json.dumps({key: "x"})})["tags"]
    assert tags[key] == "[REDACTED]"
    assert tags[f"metadata.{key}"] == "[REDACTED]"


def test_configured_redaction_keys_and_no_false_positives() -> None:
    opts = MappingOptions(redact_keys=frozenset({"customer_email"}), compute_cost=False)
    event = mapped(
        {
            **CHAT,
            "lumiqtrace.tags.customerEmail": "a@b.c",
            "lumiqtrace.tags.team": "x",
            "gen_ai.usage.reasoning.output_tokens": 5,
            "http.request.header.authorization": ("Bearer x",),
        },
        opts,
    )
    tags = event["tags"]
    assert tags["customerEmail"] == "[REDACTED]"
    assert tags["team"] == "x"
    assert tags["tokens.reasoning"] == "5"  # contains "token" but is not a redaction key


def test_redacted_header_tag_by_last_segment() -> None:
    event = mapped({**CHAT, "lumiqtrace.tags.http.request.header.authorization": "Bearer abc"})
    assert event["tags"]["http.request.header.authorization"] == "[REDACTED]"


def test_tag_caps() -> None:
    attrs = {**CHAT, **{f"lumiqtrace.tags.k{i}": "v" * 5000 for i in range(200)}}
    event = mapped(attrs, MappingOptions(max_tags=10, max_tag_value_chars=100, compute_cost=False))
    tags = event["tags"]
    assert len(tags) == 10
    assert all(len(v) <= 100 for v in tags.values())
    default = mapped(attrs)["tags"]
    assert len(default) == DEFAULT_MAX_TAGS


def test_zero_max_tags_sends_no_tags() -> None:
    assert "tags" not in mapped(CHAT, MappingOptions(max_tags=0, compute_cost=False))


@pytest.mark.parametrize("max_tags", range(9))
@pytest.mark.parametrize("repeated", [True, False], ids=["a-key-already-there", "new-keys-only"])
def test_fill_tags_keeps_the_first_tags_that_fit_below_at_and_above_the_cap(max_tags: int, repeated: bool) -> None:
    """fill_tags tests the cap only when the pairs can reach it: with the pairs short of it, exactly at it and past
    it (a key already there and a redacted key among them), the tags are the first that fit, in order, each key's first
    value kept, and the redacted key redacted on every call (its tag key is never remembered as plain)."""
    redactor = Redactor(())
    pairs = [("a", "again"), ("c", "3"), ("api_key", "secret"), ("d", 4), ("e", "5")][0 if repeated else 1 :]
    complete = {"a": "1", "b": "2", "c": "3", "api_key": "[REDACTED]", "d": "4", "e": "5"}
    for _ in range(2):  # the second call reads the plain tag key memo the first one filled
        tags = fill_tags(pairs, {"a": "1", "b": "2"}, redactor, max_tags, 100)
        assert list(tags.items()) == list(complete.items())[: max(max_tags, 2)]


# --- cost -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "cost"),
    [
        ({"lumiqtrace.cost_usd": 0.5, "operation.cost": 1.0}, 0.5),
        ({"operation.cost": 1.0, "gen_ai.usage.cost": 2.0}, 1.0),
        ({"gen_ai.usage.cost": 2.0, "llm.cost.total": 3.0}, 2.0),
        ({"llm.cost.total": 3.0}, 3.0),
        ({"llm.cost.total": "0.25"}, 0.25),
        ({"langfuse.observation.cost_details": json.dumps({"total": 0.125})}, 0.125),
        ({"lumiqtrace.cost_usd": -1.0, "llm.cost.total": 3.0}, 3.0),
        ({"lumiqtrace.cost_usd": float("inf")}, None),
        ({"lumiqtrace.cost_usd": 0}, 0.0),
    ],
)
def test_cost_on_span_wins(attrs: dict[str, object], cost: float | None) -> None:
    event = mapped({**CHAT, "gen_ai.usage.input_tokens": 10, **attrs}, MappingOptions(compute_cost=False))
    assert event.get("cost_usd") == cost
    if cost is not None:
        assert event["tags"]["cost.source"] == "span"


@pytest.mark.parametrize(
    ("attrs", "cost"),
    [
        ({"operation.cost": 2.5500000000000003e-06}, 2.55e-06),  # logfire's float sums
        ({"lumiqtrace.cost_usd": 0.1 + 0.2}, 0.3),
        ({"langfuse.observation.cost_details": json.dumps({"total": 1 / 3})}, 0.333333333333),
    ],
)
def test_cost_on_span_is_rounded_like_a_computed_cost(attrs: dict[str, object], cost: float) -> None:
    """Issue 14: cost_usd to 12 significant digits, wherever it comes from."""
    event = mapped({**CHAT, "gen_ai.usage.input_tokens": 10, **attrs}, MappingOptions(compute_cost=False))
    assert event["cost_usd"] == cost


def test_no_cost_without_pricing() -> None:
    event = mapped({**CHAT, "gen_ai.usage.input_tokens": 10}, MappingOptions(compute_cost=False))
    assert "cost_usd" not in event


# --- content --------------------------------------------------------------------------------------------------------

OT_INPUT = json.dumps(
    [
        {"role": "user", "parts": [{"type": "text", "content": "What is the weather in Paris?"}]},
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "c1", "name": "weather", "arguments": {"city": "Paris"}}],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "result": "sunny"}]},
    ]
)
OT_SYSTEM = json.dumps([{"type": "text", "content": "Be brief."}])
OL_LEGACY = {
    "gen_ai.prompt.0.role": "system",
    "gen_ai.prompt.0.content": "Be brief.",
    "gen_ai.prompt.1.role": "user",
    "gen_ai.prompt.1.content": "What is the weather in Paris?",
    "gen_ai.prompt.2.role": "assistant",
    "gen_ai.prompt.2.tool_calls.0.name": "weather",
    "gen_ai.prompt.2.tool_calls.0.arguments": '{ "city" : "Paris" }',
    "gen_ai.prompt.3.role": "tool",
    "gen_ai.prompt.3.content": "sunny",
    "gen_ai.completion.0.role": "assistant",
    "gen_ai.completion.0.content": "Sunny, 24C.",
    "gen_ai.completion.0.finish_reason": "stop",
}
OI_FLAT = {
    "llm.input_messages.0.message.role": "system",
    "llm.input_messages.0.message.content": "Be brief.",
    "llm.input_messages.1.message.role": "user",
    "llm.input_messages.1.message.contents.0.message_content.type": "text",
    "llm.input_messages.1.message.contents.0.message_content.text": "What is the weather in Paris?",
    "llm.input_messages.2.message.role": "assistant",
    "llm.input_messages.2.message.tool_calls.0.tool_call.function.name": "weather",
    "llm.input_messages.2.message.tool_calls.0.tool_call.function.arguments": '{"city": "Paris"}',
    "llm.input_messages.3.message.role": "tool",
    "llm.input_messages.3.message.content": "sunny",
    "llm.output_messages.0.message.role": "assistant",
    "llm.output_messages.0.message.content": "Sunny, 24C.",
}
OLD_EVENT_PROMPT = json.dumps(
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "What is the weather in Paris?"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}}
            ],
        },
        {"role": "tool", "content": "sunny", "tool_call_id": "c1"},
    ]
)


def test_prompt_hash_is_the_same_across_conventions() -> None:
    ot = mapped({**CHAT, "gen_ai.system_instructions": OT_SYSTEM, "gen_ai.input.messages": OT_INPUT})
    ol = mapped({**CHAT, **OL_LEGACY})
    oi = mapped({**CHAT, **OI_FLAT})
    ev = mapped(CHAT, events=(event_at("gen_ai.content.prompt", 1, {"gen_ai.prompt": OLD_EVENT_PROMPT}),))
    assert re.fullmatch(r"[0-9a-f]{64}", ot["prompt_hash"])
    assert ot["prompt_hash"] == ol["prompt_hash"] == oi["prompt_hash"] == ev["prompt_hash"]
    other = mapped(
        {**CHAT, "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "hi"}]}])}
    )
    assert other["prompt_hash"] != ot["prompt_hash"]


def test_prompt_hash_matches_documented_canonical_form() -> None:
    import hashlib

    event = mapped(
        {
            **CHAT,
            "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": "héllo"}]}]),
        }
    )
    canonical = json.dumps(
        [{"role": "user", "text": "héllo"}], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert event["prompt_hash"] == hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def test_content_only_sent_on_opt_in() -> None:
    attrs = {**CHAT, **OL_LEGACY}
    off = mapped(attrs)
    assert "prompt" not in off
    assert "response" not in off
    assert "prompt_hash" in off
    on = mapped(attrs, MappingOptions(capture_content=True, compute_cost=False))
    assert on["prompt"].startswith("system: Be brief.\nuser: What is the weather in Paris?")
    assert 'weather({"city":"Paris"})' in on["prompt"]
    assert on["response"] == "Sunny, 24C."
    assert on["prompt_hash"] == off["prompt_hash"]
    assert on["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("attrs", "events", "response"),
    [
        (
            {
                "gen_ai.output.messages": json.dumps(
                    [{"role": "assistant", "parts": [{"type": "text", "content": "A"}]}]
                )
            },
            (),
            "A",
        ),
        ({"llm.output_messages.0.message.role": "assistant", "llm.output_messages.0.message.content": "B"}, (), "B"),
        ({"llm.choices.0.completion.text": "C"}, (), "C"),
        (
            {},
            (
                event_at(
                    "gen_ai.content.completion",
                    5,
                    {"gen_ai.completion": json.dumps([{"role": "assistant", "content": "D"}])},
                ),
            ),
            "D",
        ),
        ({"output.value": json.dumps({"choices": [{"message": {"role": "assistant", "content": "E"}}]})}, (), "E"),
        ({"output.value": "plain F"}, (), "plain F"),
        ({"traceloop.entity.output": "G"}, (), "G"),
    ],
)
def test_response_sources(attrs: dict[str, object], events: tuple[object, ...], response: str) -> None:
    event = mapped({**CHAT, **attrs}, MappingOptions(capture_content=True, compute_cost=False), events=events)
    assert event["response"] == response


def test_content_is_capped() -> None:
    big = "x" * 10_000
    event = mapped(
        {**CHAT, "gen_ai.input.messages": json.dumps([{"role": "user", "content": big}]), "output.value": big},
        MappingOptions(capture_content=True, max_content_chars=100, compute_cost=False),
    )
    assert len(event["prompt"]) == 100
    assert len(event["response"]) == 100


def test_opaque_input_is_hashed_on_llm_spans_only() -> None:
    llm = mapped(
        {"openinference.span.kind": "LLM", "input.value": json.dumps({"messages": [{"role": "user", "content": "hi"}]})}
    )
    direct = mapped({**CHAT, "gen_ai.input.messages": json.dumps([{"role": "user", "content": "hi"}])})
    assert llm["prompt_hash"] == direct["prompt_hash"]
    chain = mapped({"openinference.span.kind": "CHAIN", "input.value": "hi"}, MappingOptions(capture_content=True))
    assert "prompt_hash" not in chain
    assert chain["prompt"] == "user: hi"


def test_tool_span_content() -> None:
    event = mapped(
        {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "weather",
            "gen_ai.tool.call.arguments": '{"city":"Paris"}',
            "gen_ai.tool.call.result": "sunny",
        },
        MappingOptions(capture_content=True),
    )
    assert event["prompt"] == 'user: {"city":"Paris"}'
    assert event["response"] == "sunny"
    assert "prompt_hash" not in event
    assert event["tags"]["gen_ai.tool.name"] == "weather"


def test_finish_reasons_joined() -> None:
    assert (
        mapped({**CHAT, "gen_ai.response.finish_reasons": ("stop", "length", "stop")})["finish_reason"] == "stop,length"
    )
    assert mapped({**CHAT, "llm.response.finish_reason": "length"})["finish_reason"] == "length"


@pytest.mark.parametrize(
    ("attrs", "reason"),
    [
        # Logfire stores the finish reasons as a JSON string
        ({"gen_ai.response.finish_reasons": '["stop"]'}, "stop"),
        ({"gen_ai.response.finish_reasons": '["tool_calls", "stop", "tool_calls"]'}, "tool_calls,stop"),
        # strings that are not a JSON array of reasons stay as they are
        ({"gen_ai.response.finish_reasons": '[{"role": "user"}]'}, '[{"role": "user"}]'),
        ({"gen_ai.response.finish_reasons": "[stop]"}, "[stop]"),
        ({"gen_ai.response.finish_reasons": "[]", "llm.finish_reason": "length"}, "[]"),
        # the Anthropic SDK's own tracing, last in precedence
        ({"anthropic.message.stop_reason": "end_turn"}, "end_turn"),
        ({"anthropic.message.stop_reason": "tool_use", "gen_ai.response.finish_reasons": ("stop",)}, "stop"),
    ],
)
def test_finish_reason_sources(attrs: dict[str, object], reason: str) -> None:
    assert mapped({**CHAT, **attrs})["finish_reason"] == reason


@pytest.mark.parametrize(
    ("name", "attrs", "operation", "span_kind"),
    [
        ("handoff to Forecaster", {"openinference.span.kind": "TOOL"}, "agent", "handoff"),
        ("handoff to Forecaster", {"gen_ai.operation.name": "execute_tool"}, "agent", "handoff"),
        ("handoff to Forecaster", {"openinference.span.kind": "AGENT"}, "agent", "agent"),  # only tool spans
        ("handoffs", {"openinference.span.kind": "TOOL"}, "tool", "tool"),
        ("Handoff to X", {"openinference.span.kind": "TOOL"}, "tool", "tool"),
        # an explicit span kind is the application's word
        ("handoff to Forecaster", {"lumiqtrace.span_kind": "tool"}, "tool", "tool"),
    ],
)
def test_handoff_spans(name: str, attrs: dict[str, object], operation: str, span_kind: str) -> None:
    event = mapped(attrs, name=name)
    assert (event["operation"], event["span_kind"]) == (operation, span_kind)


def test_handoff_is_not_remembered_for_tool_spans_of_the_same_attributes() -> None:
    """The identity memo is keyed by attribute values; the span name must still decide, span by span."""
    from opentelemetry_exporter_lumiqtrace.mapping.mapper import Mapper

    mapper = Mapper()
    options = MappingOptions(compute_cost=False)
    attrs = {"openinference.span.kind": "TOOL", "input.value": "Triage"}
    kinds = [
        mapper.map_span(make_span(attrs, name=name), options)["span_kind"]  # type: ignore[index]
        for name in ("get_weather", "handoff to Forecaster", "get_weather")
    ]
    assert kinds == ["tool", "handoff", "tool"]


# --- non-AI spans ---------------------------------------------------------------------------------------------------


def test_http_server_span() -> None:
    event = mapped(
        {
            "http.request.method": "POST",
            "http.route": "/chat",
            "http.response.status_code": 200,
            "url.scheme": "https",
            "user.id": "u9",
        },
        name="POST /chat",
        kind=SpanKind.SERVER,
    )
    assert (event["provider"], event["operation"], event["span_kind"]) == ("custom", "custom", "general")
    assert "model" not in event
    assert "stream" not in event
    assert event["status"] == "success"
    assert event["user_id"] == "u9"
    tags = event["tags"]
    assert tags["http.request.method"] == "POST"
    assert tags["http.route"] == "/chat"
    assert tags["http.response.status_code"] == "200"
    assert tags["otel.span_kind"] == "server"


def test_legacy_http_attributes() -> None:
    event = mapped(
        {"http.method": "GET", "http.target": "/items?id=3&token=x", "http.status_code": 503}, kind=SpanKind.SERVER
    )
    assert event["tags"]["http.request.method"] == "GET"
    assert event["tags"]["http.route"] == "/items"
    assert event["status"] == "error"


def test_db_span_tags() -> None:
    event = mapped(
        {"db.system.name": "postgresql", "db.operation.name": "SELECT"}, name="SELECT users", kind=SpanKind.CLIENT
    )
    assert event["tags"]["db.system.name"] == "postgresql"
    assert event["tags"]["otel.span_name"] == "SELECT users"
    assert event["span_kind"] == "general"


def test_ai_only_filters_non_ai_spans() -> None:
    opts = MappingOptions(ai_only=True)
    assert map_span(make_span({"http.request.method": "GET"}), opts) is None
    assert map_span(make_span({"lumiqtrace.user_id": "u"}), opts) is None  # context alone is not AI
    assert map_span(make_span(CHAT), opts) is not None
    assert map_span(make_span({"openinference.span.kind": "CHAIN"}), opts) is not None
    assert map_span(make_span({"traceloop.span.kind": "workflow"}), opts) is not None
    assert map_span(make_span({"lumiqtrace.span_kind": "agent"}), opts) is not None


# --- real SDK spans -------------------------------------------------------------------------------------------------


def test_spans_from_a_real_tracer_provider() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "svc", "deployment.environment.name": "prod"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("app", "1.0")
    with tracer.start_as_current_span("request", kind=SpanKind.SERVER) as root:
        root.set_attribute("http.request.method", "GET")
        with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes=CHAT):
            pass
    child, parent = exporter.get_finished_spans()
    child_event = check_event(map_span(child, MappingOptions(compute_cost=False)))
    parent_event = check_event(map_span(parent, MappingOptions(compute_cost=False)))
    assert child_event["parent_span_id"] == parent_event["span_id"]
    assert "parent_span_id" not in parent_event
    assert child_event["trace_id"] == parent_event["trace_id"]
    assert child_event["environment"] == parent_event["environment"] == "prod"
    assert child_event["span_kind"] == "llm"
    assert parent_event["span_kind"] == "general"


def test_sdk_span_that_raised() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("app")
    with pytest.raises(ConnectionError), tracer.start_as_current_span("chat", attributes=CHAT):
        raise ConnectionError("refused")
    event = check_event(map_span(exporter.get_finished_spans()[0], MappingOptions(compute_cost=False)))
    assert event["status"] == "error"
    assert event["error_code"] == "ConnectionError"
    # The exception's own message; the class is the error code (the description "ConnectionError: refused" is only
    # read when the span has no exception event).
    assert event["error_message"] == "refused"


def test_sdk_version_from_options() -> None:
    assert mapped(CHAT, MappingOptions(sdk_version="9.9.9"))["sdk_version"] == "9.9.9"


# --- whole span shapes of instrumentations not run for real ---------------------------------------------------------


def test_openai_v2_2_4b0_default_shape() -> None:
    """opentelemetry-instrumentation-openai-v2 2.4b0 (default mode): gen_ai.system, no provider name, no content."""
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.response.id": "chatcmpl-1",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 30,
        "gen_ai.usage.output_tokens": 7,
        "server.address": "api.openai.com",
        "server.port": 443,
    }
    event = mapped(attrs, name="chat gpt-4o", kind=SpanKind.CLIENT)
    assert (event["provider"], event["model"], event["operation"], event["span_kind"]) == (
        "openai",
        "gpt-4o-2024-08-06",
        "chat",
        "llm",
    )
    assert (event["input_tokens"], event["output_tokens"]) == (30, 7)
    assert "stream" not in event  # nothing says whether it streamed
    assert event["finish_reason"] == "stop"
    assert "prompt_hash" not in event  # content goes to log records, which a span exporter never sees
    assert event["tags"]["gen_ai.provider.name"] == "openai"
    assert event["tags"]["gen_ai.response.id"] == "chatcmpl-1"

    failed = mapped(
        {k: v for k, v in attrs.items() if not k.startswith(("gen_ai.usage", "gen_ai.response"))}
        | {"error.type": "RateLimitError"},
        status=Status(StatusCode.ERROR, "Error code: 429 - {'error': {'code': 'rate_limit_exceeded'}}"),
        kind=SpanKind.CLIENT,
    )
    assert (failed["status"], failed["error_code"], failed["model"]) == (
        "rate_limited",
        "rate_limit_exceeded",
        "gpt-4o",
    )

    embed = mapped(
        {
            "gen_ai.operation.name": "embeddings",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "text-embedding-3-small",
            "gen_ai.usage.input_tokens": 4,
        },
        kind=SpanKind.CLIENT,
    )
    assert (embed["operation"], embed["model"], embed["input_tokens"]) == ("embed", "text-embedding-3-small", 4)


def test_openllmetry_legacy_streaming_shape() -> None:
    """OpenLLMetry <= 0.54: llm.request.type, capitalised gen_ai.system, prompt_tokens, chunk events."""
    attrs = {
        "llm.request.type": "chat",
        "gen_ai.system": "OpenAI",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.usage.prompt_tokens": 20,
        "gen_ai.usage.completion_tokens": 3,
        "llm.usage.total_tokens": 23,
        "llm.is_streaming": True,
        "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": "hi",
        "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.content": "hello",
        "gen_ai.completion.0.finish_reason": "stop",
        "traceloop.association.properties.session_id": "s-1",
        "traceloop.association.properties.user_id": "u-1",
        "traceloop.workflow.name": "greeter",
    }
    chunks = tuple(event_at("llm.content.completion.chunk", ms) for ms in (210, 230, 250))
    event = mapped(attrs, MappingOptions(capture_content=True), name="openai.chat", events=chunks)
    assert (event["provider"], event["model"], event["operation"]) == ("openai", "gpt-4o-2024-08-06", "chat")
    assert (event["input_tokens"], event["output_tokens"]) == (20, 3)
    assert (event["stream"], event["ttft_ms"]) == (True, 210)
    assert (event["session_id"], event["user_id"]) == ("s-1", "u-1")
    assert event["finish_reason"] == "stop"
    assert (event["prompt"], event["response"]) == ("user: hi", "hello")
    assert event["tags"]["traceloop.workflow.name"] == "greeter"
    assert event["tags"]["gen_ai.provider.name"] == "OpenAI"


def test_openinference_shape() -> None:
    attrs = {
        "openinference.span.kind": "LLM",
        "llm.provider": "openai",
        "llm.system": "openai",
        "llm.model_name": "gpt-4o-mini-2024-07-18",
        "llm.token_count.prompt": 15,
        "llm.token_count.completion": 4,
        "llm.token_count.prompt_details.cache_read": 2,
        "llm.invocation_parameters": json.dumps({"model": "gpt-4o-mini", "stream": True}),
        "session.id": "s-2",
        "user.id": "u-2",
        "tag.tags": ("prod",),
        "metadata": json.dumps({"experiment": "b"}),
        "input.value": json.dumps({"messages": [{"role": "user", "content": "hi"}]}),
        "input.mime_type": "application/json",
        "llm.input_messages.0.message.role": "user",
        "llm.input_messages.0.message.content": "hi",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": "hello",
    }
    event = mapped(attrs, name="ChatCompletion", events=(event_at("First Token Stream Event", 120),))
    assert (event["provider"], event["model"], event["operation"], event["span_kind"]) == (
        "openai",
        "gpt-4o-mini-2024-07-18",
        "chat",
        "llm",
    )
    assert (event["input_tokens"], event["output_tokens"], event["cached_tokens"]) == (15, 4, 2)
    assert (event["stream"], event["ttft_ms"]) == (True, 120)
    assert (event["session_id"], event["user_id"]) == ("s-2", "u-2")
    assert event["tags"]["tags"] == "prod"
    assert event["tags"]["metadata.experiment"] == "b"
    assert (
        event["prompt_hash"]
        == mapped({**CHAT, "gen_ai.input.messages": '[{"role":"user","content":"hi"}]'})["prompt_hash"]
    )

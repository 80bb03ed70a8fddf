# SPDX-License-Identifier: Apache-2.0
"""Build the golden corpus (``tests/golden/corpus/*.json``, format in ``tests/golden/corpus.py``).

Run from the repository root::

    python -m tests.golden.make_corpus             # hand-written scenarios and the spans of the behavioural tests
    python -m tests.golden.make_corpus --drivers   # record the real OpenAI instrumentations (drive_openai.py)
    python -m tests.golden.make_corpus --refresh   # re-map every file's spans with the current mapping

``expected`` is whatever the current mapping returns: after building or refreshing, read the diff of the expected
events as a reviewer and keep only intended changes. The first build recorded the mapping as it was before its
redesign (issue 11); the corrections made in review since are listed in ``tests/golden/corpus/README.md``.

Sources of spans:

- ``scenarios-<options>.json``: one span per convention family and status rule (OTel GenAI current and deprecated,
  OpenInference with flattened messages and invocation parameters, OpenLLMetry current and legacy with association
  properties, Langfuse, ``lumiqtrace.*`` overrides and ``lumiqtrace.tags.*``, HTTP/DB/gRPC spans, odd values), under
  each of a few option sets (defaults, no cost, content capture, redaction, tag caps, ai_only).
- ``identity-<options>.json``: span name, kind, scope and resource cases of the identity tags.
- ``plausible-<options>.json``: seeded random spans over the keys the mapping reads and values that hit its branches.
- ``tests-<test>.json``: every span the behavioural tests (``tests/test_mapping.py``, ``tests/test_mapping_pricing.py``)
  map, harvested by running them with :func:`map_span` wrapped (spans whose fixture cannot rebuild them exactly, such
  as a missing start time that maps to "now", are left out).
- ``recorded-openai-<instrumentation>.json``: the spans of the real instrumentation drivers (``--drivers``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.golden.corpus import (
    CORPUS_DIR,
    Case,
    all_cases,
    mapping_options,
    options_to_json,
    span_from_fixture,
    span_to_fixture,
)

START_NS = 1_776_679_200_000_000_000  # 2026-04-20T10:00:00.000Z
RESOURCE = {"service.name": "corpus", "deployment.environment.name": "production"}
SCOPE = {"name": "corpus.scope", "version": "1.0"}

OPTION_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "no-cost": {"compute_cost": False},
    "content": {"capture_content": True, "max_content_chars": 120},
    "redact": {"redact_keys": ["X-Secret", "route", "tier"], "environment": "staging"},
    "few-tags": {"max_tags": 3, "max_tag_value_chars": 5},
    "no-tags": {"max_tags": 0, "ai_only": True},
}


class _Ids:
    """Deterministic trace and span ids, so rebuilding the corpus does not churn the files."""

    def __init__(self, seed: int) -> None:
        self._n = seed

    def next(self) -> tuple[str, str]:
        self._n += 1
        return f"{0x0AF7651916CD43DD8448EB2100000000 + self._n:032x}", f"{0x00F067AA0B000000 + self._n:016x}"


def fixture(
    ids: _Ids,
    name: str,
    attributes: dict[str, Any],
    *,
    kind: str = "INTERNAL",
    events: list[tuple[str, float, dict[str, Any]]] = (),  # type: ignore[assignment]
    status: tuple[str, str | None] = ("UNSET", None),
    resource: dict[str, Any] | None = None,
    scope: dict[str, Any] | None = SCOPE,
    duration_ms: float = 1200,
    parent: bool = True,
) -> dict[str, Any]:
    trace_id, span_id = ids.next()
    return {
        "name": name,
        "kind": kind,
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": "53995c3f42cd8ad8" if parent else None,
        "start_time_unix_nano": START_NS,
        "end_time_unix_nano": START_NS + int(duration_ms * 1_000_000),
        "attributes": attributes,
        "events": [
            {"name": n, "timestamp_unix_nano": START_NS + int(at * 1_000_000), "attributes": a} for n, at, a in events
        ],
        "status": {"code": status[0], "description": status[1]},
        "resource": RESOURCE if resource is None else resource,
        "scope": scope,
    }


# --- scenarios: one span per convention family and status rule ------------------------------------------------------

OPENAI_MESSAGES = json.dumps(
    [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Hi"}, {"type": "image", "uri": "x"}]},
    ]
)
OUTPUT_MESSAGES = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "Hello"}]}])
RATE_LIMITED: dict[str, Any] = {
    "events": [
        (
            "exception",
            5,
            {
                "exception.type": "RuntimeError",
                "exception.message": "Error code: 429 - {'error': {'code': 'rate_limit_exceeded'}}",
                "exception.escaped": "False",
            },
        )
    ],
    "status": ("ERROR", "RateLimitError: Error code: 429"),
}
TIMED_OUT: dict[str, Any] = {
    "events": [
        ("exception", 5, {"exception.type": "openai.APITimeoutError", "exception.message": "Request timed out."})
    ],
    "status": ("ERROR", "APITimeoutError: Request timed out."),
}
SERVER_ERROR: dict[str, Any] = {"status": ("ERROR", "boom: password=hunter2222 sk-abcdefghijklmnop")}

# (name, kind, attributes, extra keywords of fixture())
SCENARIOS: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    (
        "http server",
        "SERVER",
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
        {},
    ),
    ("http server 500", "SERVER", {"http.method": "GET", "http.status_code": 500}, SERVER_ERROR),
    ("http client 404", "CLIENT", {"http.method": "GET", "http.target": "/a?b", "http.status_code": 404}, {}),
    ("http server 404", "SERVER", {"http.request.method": "GET", "http.response.status_code": 404}, {}),
    ("http 499", "SERVER", {"http.response.status_code": 499}, {}),
    ("http 429", "CLIENT", {"http.response.status_code": 429, "rpc.grpc.status_code": 8}, {}),
    ("http 408", "SERVER", {"http.status_code": "408", "lumiqtrace.error_code": "slow"}, {}),
    ("explicit success", "CLIENT", {"http.response.status_code": 503, "lumiqtrace.status": " Success"}, {}),
    ("http 504", "CLIENT", {"http.response.status_code": 504}, {}),
    ("db", "CLIENT", {"db.system": "postgresql", "db.namespace": "app", "db.operation.name": "SELECT"}, {}),
    ("grpc", "CLIENT", {"rpc.system": "grpc", "rpc.service": "S", "rpc.grpc.status_code": 4}, SERVER_ERROR),
    (
        "grpc cancelled",
        "CLIENT",
        {"rpc.system": "grpc", "rpc.grpc.status_code": 1},
        {"status": ("ERROR", None)},
    ),
    (
        "otel chat",
        "CLIENT",
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
            "gen_ai.response.finish_reasons": ["stop", "stop", "length"],
            "gen_ai.usage.input_tokens": 200,
            "gen_ai.usage.output_tokens": 20,
            "gen_ai.usage.cache_read.input_tokens": 50,
            "gen_ai.usage.reasoning.output_tokens": 7,
            "gen_ai.conversation.id": "conv-1",
            "user.id": "u-1",
        },
        {},
    ),
    (
        "otel chat content",
        "CLIENT",
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
        {},
    ),
    (
        "otel deprecated names",
        "CLIENT",
        {
            "gen_ai.system": "gcp.gen_ai",
            "gen_ai.request.model": "gemini-2.5-flash",
            "gen_ai.usage.prompt_tokens": 30,
            "gen_ai.usage.completion_tokens": 9,
            "gen_ai.usage.cache_read_input_tokens": 8,
            "gen_ai.usage.cache_creation_input_tokens": 2,
            "gen_ai.usage.reasoning_tokens": 4,
            "gen_ai.response.finish_reason": "STOP",
            "gen_ai.request.is_stream": "true",
            "gen_ai.response.time_to_first_chunk": 0.35,
        },
        {},
    ),
    (
        "otel rate limited",
        "CLIENT",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4.1-mini",
            "error.type": "openai.RateLimitError",
            "http.response.status_code": 429,
        },
        RATE_LIMITED,
    ),
    (
        "otel timeout",
        "CLIENT",
        {"gen_ai.operation.name": "chat", "gen_ai.system": "az.ai.openai", "gen_ai.request.model": "gpt-4.1-nano"},
        TIMED_OUT,
    ),
    (
        "legacy events stream",
        "CLIENT",
        {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.completion_tokens": 3},
        {
            "events": [
                ("gen_ai.content.prompt", 1, {"gen_ai.prompt": '[{"role": "user", "content": "Hi"}]'}),
                ("First Token Stream Event", 250, {}),
                ("llm.content.completion.chunk", 260, {}),
                ("gen_ai.content.completion", 900, {"gen_ai.completion": '[{"role": "assistant", "content": "Yo"}]'}),
            ]
        },
    ),
    (
        "openinference",
        "INTERNAL",
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
            "tag.tags": ["a", "b", "3"],
            "metadata": '{"tier": "gold", "password": "x", "nested": {"api_key": "k", "ok": [1, 2]}, "n": null}',
        },
        {},
    ),
    (
        "openinference ten messages",
        "INTERNAL",
        {
            "openinference.span.kind": "LLM",
            "llm.provider": "anthropic",
            "llm.model_name": "claude-sonnet-4-5",
            **{
                f"llm.input_messages.{i}.message.{field}": value
                for i in range(10)
                for field, value in (("role", "user" if i % 2 == 0 else "assistant"), ("content", f"message {i}"))
            },
            "llm.token_count.prompt": 400,
            "llm.token_count.completion": 40,
            "llm.token_count.total": 440,
        },
        {},
    ),
    (
        "openinference failed call",
        "INTERNAL",
        {"openinference.span.kind": "LLM", "llm.invocation_parameters": '{"model": "gpt-4.1-mini"}'},
        RATE_LIMITED,
    ),
    (
        "openinference embedding and retriever",
        "INTERNAL",
        {"openinference.span.kind": "EMBEDDING", "embedding.model_name": "text-embedding-3-small"},
        {},
    ),
    ("openinference chain", "INTERNAL", {"openinference.span.kind": "CHAIN", "input.value": "question"}, {}),
    (
        "openllmetry legacy",
        "CLIENT",
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
        {},
    ),
    (
        "openllmetry current",
        "CLIENT",
        {
            "llm.request.type": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.input_tokens": 9,
            "gen_ai.usage.output_tokens": 2,
            "llm.usage.total_tokens": 11,
            "gen_ai.is_streaming": True,
            "traceloop.association.properties.conversation_id": "c-3",
        },
        {},
    ),
    (
        "openllmetry workflow",
        "INTERNAL",
        {
            "traceloop.span.kind": "workflow",
            "traceloop.entity.input": '{"inputs": {"q": "x"}}',
            "traceloop.entity.output": '{"outputs": "y"}',
        },
        {},
    ),
    (
        "tool",
        "INTERNAL",
        {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "search",
            "gen_ai.tool.call.id": "call_1",
            "gen_ai.tool.call.arguments": '{"q": "weather"}',
            "gen_ai.tool.call.result": '{"content": [{"type": "text", "text": "sunny"}]}',
        },
        {},
    ),
    ("tool hint", "INTERNAL", {"tool.name": "calc", "gen_ai.usage.total_tokens": 9}, {}),
    (
        "agent",
        "INTERNAL",
        {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "golden-agent",
            "gen_ai.provider.name": "gcp.vertex_ai",
            "gen_ai.request.model": "gemini-2.0-flash",
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 10,
            "gen_ai.conversation.id": "c",
        },
        {},
    ),
    (
        "embeddings",
        "CLIENT",
        {
            "gen_ai.operation.name": "embeddings",
            "gen_ai.request.model": "text-embedding-3-small",
            "gen_ai.usage.input_tokens": 6,
        },
        {},
    ),
    ("model only", "CLIENT", {"gen_ai.request.model": "o1-mini", "server.address": "x.openai.azure.com"}, {}),
    ("o1xyz", "CLIENT", {"llm.request.model": "o1xyz", "net.peer.name": "eu.aiplatform.googleapis.com"}, {}),
    (
        "explicit overrides",
        "CLIENT",
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
            "lumiqtrace.tags.list": [1, 2],
            "gen_ai.provider.name": "openai",
        },
        {},
    ),
    (
        "context only lumiqtrace keys",
        "SERVER",
        {"lumiqtrace.user_id": "u", "lumiqtrace.session_id": "s", "lumiqtrace.sample_rate": 0.5, "enduser.id": "e"},
        {},
    ),
    (
        "langfuse",
        "INTERNAL",
        {
            "langfuse.observation.type": "generation",
            "langfuse.observation.model.name": "gpt-4o",
            "langfuse.observation.cost_details": '{"total": 0.5}',
            "langfuse.user.id": "lf-u",
            "langfuse.session.id": "lf-s",
            "langfuse.environment": "lf-env",
            "gen_ai.server.time_to_first_token": 0.2,
        },
        {},
    ),
    (
        "cancelled",
        "CLIENT",
        {"gen_ai.request.model": "gpt-4o", "gen_ai.request.stream": True},
        {"events": [("exception", 5, {"exception.type": "asyncio.CancelledError", "exception.escaped": True})]},
    ),
    (
        "five exception events",
        "CLIENT",
        {"gen_ai.provider.name": "anthropic", "gen_ai.request.model": "claude-sonnet-4-5"},
        {
            "events": [
                ("exception", i, {"exception.type": "anthropic.APIConnectionError", "exception.message": f"try {i}"})
                for i in range(5)
            ],
            "status": ("ERROR", None),
        },
    ),
    ("empty", "INTERNAL", {}, {}),
    (
        "odd values",
        "INTERNAL",
        {
            "gen_ai.request.model": "  ",
            "llm.model_name": "gpt-4o",
            "gen_ai.usage.input_tokens": -1,
            "llm.token_count.prompt": 5.6,
            "gen_ai.response.finish_reasons": ["", " "],
            "llm.finish_reason": "stop",
            "gen_ai.agent.name": "é" * 2000,
            "deployment.environment": "prod",
        },
        {},
    ),
    (
        "resource environment and no scope",
        "SERVER",
        {"http.request.method": "GET"},
        {"resource": {"service.name": "svc", "deployment.environment": "qa"}, "scope": None},
    ),
    ("no resource", "INTERNAL", {"gen_ai.request.model": "gpt-4o"}, {"resource": {}, "parent": False}),
    # issue 12 items 2-7 and issue 14's rounding, as the frameworks emit them (see corpus/README.md)
    (
        "chat gpt-4o-mini",  # pydantic-ai, streamed: its first-chunk time (seconds) is ttft_ms and says stream
        "CLIENT",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 9,
            "gen_ai.usage.output_tokens": 2,
            "gen_ai.client.operation.time_to_first_chunk": 0.0892,
            "operation.cost": 2.5500000000000003e-06,  # a float sum: rounded to 12 significant digits
        },
        {},
    ),
    (
        "chat gpt-4o-mini",  # pydantic-ai's 429: no error.type, no HTTP status attribute
        "CLIENT",
        {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini"},
        {
            "events": [
                (
                    "exception",
                    5,
                    {
                        "exception.type": "pydantic_ai.exceptions.ModelRateLimitError",
                        "exception.message": "status_code: 429, model_name: gpt-4o-mini, body: {'message': 'Rate "
                        "limit reached', 'type': 'requests', 'param': None, 'code': 'rate_limit_exceeded'}",
                        "exception.escaped": "False",
                    },
                )
            ],
            "status": (
                "ERROR",
                "ModelRateLimitError: status_code: 429, model_name: gpt-4o-mini, body: {'message': 'Rate limit "
                "reached', 'type': 'requests', 'param': None, 'code': 'rate_limit_exceeded'}",
            ),
        },
    ),
    (
        "response",  # openai-agents + OpenInference from run_streamed: nothing says whether it streamed
        "INTERNAL",
        {
            "openinference.span.kind": "LLM",
            "llm.provider": "openai",
            "llm.model_name": "gpt-4o-mini",
            "llm.invocation_parameters": '{"model": "gpt-4o-mini"}',
            "llm.token_count.prompt": 11,
            "llm.token_count.completion": 3,
        },
        {},
    ),
    (
        "streaming response from {request_data[model]!r} took {duration:.2f}s",  # logfire 5.x
        "INTERNAL",
        {
            "logfire.span_type": "log",
            "logfire.msg_template": "streaming response from {request_data[model]!r} took {duration:.2f}s",
            "duration": 0.126,
            "request_data": '{"model":"gpt-4o-mini"}',
            "gen_ai.provider.name": "openai",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.finish_reasons": '["stop"]',
            "gen_ai.usage.input_tokens": 9,
            "gen_ai.usage.output_tokens": 2,
        },
        {"duration_ms": 0},
    ),
    (
        "ChatOpenAI",  # OpenInference LangChain: a traceback in the description, user id in the metadata
        "INTERNAL",
        {
            "openinference.span.kind": "LLM",
            "llm.provider": "openai",
            "llm.model_name": "gpt-4o-mini",
            "llm.invocation_parameters": '{"model": "gpt-4o-mini", "stream": false}',
            "metadata": '{"user_id": "u-42", "ls_provider": "openai"}',
        },
        {
            "events": [
                (
                    "exception",
                    5,
                    {
                        "exception.type": "langchain_openai.chat_models.base.OpenAIRateLimitError",
                        "exception.message": "Error code: 429 - Rate limit reached",
                        "exception.stacktrace": 'Traceback (most recent call last):\n  File "/home/me/app.py"',
                    },
                )
            ],
            "status": (
                "ERROR",
                "OpenAIRateLimitError('Error code: 429 - Rate limit reached')Traceback (most recent call last):\n"
                '\n\n  File "/home/me/.venv/lib/python3.11/site-packages/langchain_openai/chat_models/base.py", '
                "line 1996, in _generate\n",
            ),
        },
    ),
    (
        "handoff to Forecaster",  # openai-agents + OpenInference
        "INTERNAL",
        {"openinference.span.kind": "TOOL", "input.value": "Triage", "output.value": "Forecaster"},
        {},
    ),
    (
        "anthropic.messages.create",  # the Anthropic SDK's own tracing
        "CLIENT",
        {
            "gen_ai.provider.name": "anthropic",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "claude-sonnet-4-5",
            "gen_ai.usage.input_tokens": 25,
            "gen_ai.usage.output_tokens": 11,
            "anthropic.message.stop_reason": "tool_use",
        },
        {},
    ),
    (
        "invoke_agent agent",  # pydantic-ai: the user id in the agent's metadata
        "INTERNAL",
        {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "agent", "metadata": '{"user_id":"u-42"}'},
        {},
    ),
]


def scenario_cases() -> Iterator[Case]:
    for options_name, options in OPTION_SETS.items():
        ids = _Ids(0)
        spans = [fixture(ids, name, attrs, kind=kind, **extra) for name, kind, attrs, extra in SCENARIOS]
        yield Case(
            path=CORPUS_DIR / f"scenarios-{options_name}.json",
            description=f"one span per convention family and status rule, options {options_name!r}",
            source="hand-written",
            options=options,
            spans=spans,
        )


IDENTITY: list[tuple[str, dict[str, Any] | None, dict[str, Any], dict[str, Any] | None]] = [
    ("GET /", None, {}, None),
    ("GET /", {"name": "s", "version": None}, {}, None),
    ("GET /", {"name": "s", "version": ""}, {"http.response.status_code": 200}, None),
    (
        "GET /",
        {"name": "s", "version": "1.0"},
        {"lumiqtrace.tags.otel.span_name": "mine", "lumiqtrace.tags.x": 1},
        None,
    ),
    ("é" * 300, {"name": "sc", "version": "1.0"}, {"lumiqtrace.tags.otel.span_kind": "mine"}, None),
    ("password", {"name": "token", "version": "secret"}, {}, None),
    ("GET /", SCOPE, {}, {"service.name": "a", "deployment.environment.name": "prod", "deployment.environment": "x"}),
    ("GET /", SCOPE, {"deployment.environment": "span-env"}, {"deployment.environment": "resource-env"}),
    ("GET /", SCOPE, {}, {"service.name": 7}),
]


def identity_cases() -> Iterator[Case]:
    for options_name, options in OPTION_SETS.items():
        ids = _Ids(1000)
        spans = [fixture(ids, name, attrs, scope=scope, resource=resource) for name, scope, attrs, resource in IDENTITY]
        yield Case(
            path=CORPUS_DIR / f"identity-{options_name}.json",
            description=f"identity tags: span name, scope, resource service and environment, options {options_name!r}",
            source="hand-written",
            options=options,
            spans=spans,
        )


# --- seeded random spans over the keys the mapping reads ------------------------------------------------------------

PLAUSIBLE_VALUES: list[Any] = [
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
    ["stop", "length", "stop"],
    [""],
    [1, 2],
    '{"model": "gpt-4o", "stream": true}',
    '{"total": 0.25}',
    '[{"role": "user", "content": "hi"}]',
    '{"messages": [{"role": "user", "content": "hi"}]}',
    '{"choices": [{"message": {"role": "assistant", "content": "yo"}}]}',
    '{"tier": "gold", "secret": "s", "deep": {"token": "t"}}',
    "é" * 1100,
]
PLAUSIBLE_EVENTS: list[tuple[str, float, dict[str, Any]]] = [
    ("exception", 3, {"exception.type": "TimeoutError", "exception.message": "deadline", "exception.escaped": "True"}),
    ("exception", 4, {"exception.type": "x.RateLimitError", "exception.message": "Error code: 429 {'code': 'q'}"}),
    ("First Token Stream Event", 100, {}),
    ("gen_ai.content.prompt", 1, {"gen_ai.prompt": '[{"role": "user", "content": "p"}]'}),
    ("gen_ai.content.completion", 9, {"gen_ai.completion": '[{"role": "assistant", "content": "c"}]'}),
]


def known_keys() -> list[str]:
    from tests.test_mapping_properties import KNOWN_KEYS

    return list(KNOWN_KEYS)


def plausible_cases(per_options: int = 40) -> Iterator[Case]:
    keys = known_keys()
    for n, (options_name, options) in enumerate(OPTION_SETS.items()):
        rng = random.Random(11_000 + n)
        ids = _Ids(5000)
        spans = []
        for _ in range(per_options):
            attrs = {k: rng.choice(PLAUSIBLE_VALUES) for k in rng.sample(keys, rng.randint(0, 20))}
            status = rng.choice([("UNSET", None), ("OK", None), ("ERROR", "TimeoutError: Request timed out.")])
            events = rng.sample(PLAUSIBLE_EVENTS, rng.randint(0, 2))
            kind = rng.choice(["INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"])
            spans.append(fixture(ids, "plausible", attrs, kind=kind, status=status, events=events))
        yield Case(
            path=CORPUS_DIR / f"plausible-{options_name}.json",
            description=f"seeded random spans over the keys the mapping reads, options {options_name!r}",
            source="hand-written (seeded random)",
            options=options,
            spans=spans,
        )


# --- the spans of the behavioural tests -----------------------------------------------------------------------------

HARVESTED_TESTS = ("tests/test_mapping.py", "tests/test_mapping_pricing.py")


def harvest_cases() -> Iterator[Case]:
    """Run the behavioural mapping tests with ``map_span`` wrapped and keep every span they map."""
    import pytest

    from opentelemetry_exporter_lumiqtrace import mapping

    original = mapping.map_span
    seen: list[tuple[str, Any, Any]] = []
    current = [""]

    def recording(span: Any, options: Any = None) -> Any:
        seen.append((current[0], span, options))
        return original(span, options) if options is not None else original(span)

    class Plugin:
        @pytest.hookimpl(tryfirst=True)
        def pytest_runtest_setup(self, item: Any) -> None:
            current[0] = item.name

    # Test modules bind map_span at import: the ones already imported are patched too.
    patched = [
        m for name, m in sys.modules.items() if name.startswith("tests.") and vars(m).get("map_span") is original
    ]
    mapping.map_span = recording  # type: ignore[assignment]
    for module in patched:
        module.map_span = recording  # type: ignore[attr-defined]
    try:
        pytest.main(["-q", "-p", "no:cacheprovider", "-x", *HARVESTED_TESTS], plugins=[Plugin()])
    finally:
        mapping.map_span = original  # type: ignore[assignment]
        for module in patched:
            module.map_span = original  # type: ignore[attr-defined]

    by_test: dict[tuple[str, str], Case] = {}
    keys_seen: set[str] = set()
    for test, span, options in seen:
        if options is None:
            options = mapping.MappingOptions()
        try:
            data = span_to_fixture(span)
            json.dumps(data, allow_nan=False).encode("utf-8")
            rebuilt = span_from_fixture(json.loads(json.dumps(data)))
        except (TypeError, ValueError, AttributeError, KeyError, UnicodeEncodeError):
            continue
        if not isinstance(span.start_time, int) or not 0 <= span.start_time // 10**9 <= 253_402_300_799:
            continue  # maps to "now"
        case_options = options_to_json(options)
        pinned = mapping_options(case_options)
        if original(rebuilt, pinned) != original(span, pinned):
            continue  # the fixture does not say everything about this span (odd types)
        ident = json.dumps([data, case_options], sort_keys=True)
        if ident in keys_seen:
            continue
        keys_seen.add(ident)
        name = re.sub(r"[^A-Za-z0-9_]+", "-", test).strip("-")
        group = (name, json.dumps(case_options, sort_keys=True))
        case = by_test.get(group)
        if case is None:
            suffix = "" if not any(g[0] == name for g in by_test) else f"-{sum(g[0] == name for g in by_test) + 1}"
            case = by_test[group] = Case(
                path=CORPUS_DIR / f"tests-{name}{suffix}.json",
                description=f"the spans {test} maps (harvested from the behavioural tests)",
                source="hand-written (tests/test_mapping*.py)",
                options=case_options,
            )
        case.spans.append(data)
    yield from by_test.values()


# --- the real instrumentation drivers -------------------------------------------------------------------------------

DRIVERS = ("official", "openinference", "openllmetry")


def driver_cases() -> Iterator[Case]:
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LUMIQTRACE_", "OTEL_"))}
    env["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "SPAN_ONLY"
    env["TRACELOOP_TRACE_CONTENT"] = "true"
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    for which in DRIVERS:
        done = subprocess.run(
            [sys.executable, str(root / "tests" / "golden" / "drive_openai.py"), which, "--fixtures"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=False,
        )
        if done.returncode != 0:
            print(f"driver {which} failed, skipped:\n{done.stderr[-2000:]}", file=sys.stderr)
            continue
        versions = _versions(which)
        yield Case(
            path=CORPUS_DIR / f"recorded-openai-{which}.json",
            description=f"the real openai client instrumented by the {which} instrumentation against a fake endpoint "
            "(tests/golden/drive_openai.py): chat, streaming chat, embeddings, a 429 and a client timeout",
            source=f"recorded: {versions}",
            options={"environment": "test"},
            spans=json.loads(done.stdout),
        )


def _versions(which: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    dist = {
        "official": "opentelemetry-instrumentation-genai-openai",
        "openinference": "openinference-instrumentation-openai",
        "openllmetry": "opentelemetry-instrumentation-openai",
    }[which]
    out = []
    for name in ("openai", dist):
        try:
            out.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            out.append(f"{name} ?")
    return " + ".join(out)


# --- writing --------------------------------------------------------------------------------------------------------


def expect(case: Case) -> Case:
    """Fill ``case.expected`` with what the current mapping makes of its spans."""
    from opentelemetry_exporter_lumiqtrace.mapping import map_span

    options = mapping_options(case.options)
    case.expected = [map_span(span_from_fixture(s), options) for s in case.spans]
    return case


def write(cases: Iterator[Case], log: Callable[[str], None] = print) -> None:
    for case in cases:
        if not case.spans:
            continue
        expect(case).save()
        log(f"{case.path.relative_to(CORPUS_DIR.parent)}: {len(case.spans)} spans")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.golden.make_corpus", description=__doc__.split("\n")[0])
    parser.add_argument("--drivers", action="store_true", help="record the real instrumentation drivers")
    parser.add_argument("--refresh", action="store_true", help="re-map the spans of every existing file")
    args = parser.parse_args(argv)
    if args.refresh:
        write(iter(all_cases()))
    elif args.drivers:
        write(driver_cases())
    else:
        write(scenario_cases())
        write(identity_cases())
        write(plausible_cases())
        write(harvest_cases())


if __name__ == "__main__":
    main()

# SPDX-License-Identifier: Apache-2.0
"""Unit tests of validate_event, the schema check of the local ingest server."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from opentelemetry_exporter_lumiqtrace.testing import validate_event

# The docs' curl example, verbatim (authentication page).
DOCS_EXAMPLE: dict[str, Any] = {
    "event_id": "550e8400-e29b-41d4-a716-446655440000",
    "trace_id": "trace-001",
    "span_id": "span-001",
    "timestamp": "2026-04-20T10:00:00.000Z",
    "provider": "openai",
    "model": "gpt-4o",
    "operation": "chat",
    "latency_ms": 843,
    "input_tokens": 512,
    "output_tokens": 128,
    "cost_usd": 0.0034,
    "status": "success",
    "stream": False,
    "environment": "production",
    "sdk_version": "1.4.2",
}


def _event(**changes: Any) -> dict[str, Any]:
    event = dict(DOCS_EXAMPLE)
    event.update(changes)
    return event


def _without(name: str) -> dict[str, Any]:
    event = dict(DOCS_EXAMPLE)
    del event[name]
    return event


def test_docs_example_is_valid() -> None:
    assert validate_event(DOCS_EXAMPLE) is None


def test_minimal_event_with_required_fields_only_is_valid() -> None:
    event = {k: DOCS_EXAMPLE[k] for k in ("event_id", "trace_id", "span_id", "timestamp", "provider")}
    assert validate_event(event) is None


def test_all_optional_fields_valid() -> None:
    event = _event(
        parent_span_id="span-000",
        span_kind="retriever",
        ttft_ms=0,
        cached_tokens=3,
        error_code="context_length_exceeded",
        error_message="x" * 500,
        user_id="u",
        session_id="s",
        finish_reason="stop",
        prompt="hi",
        response="hello",
        prompt_hash="a" * 64,
        tags={"otel.span_kind": "CLIENT", "empty": ""},
        cost_usd=0,
        status="rate_limited",
        stream=True,
        unknown_extra_field={"anything": [1, 2]},
    )
    assert validate_event(event) is None


def test_uuid_is_case_insensitive_and_otel_ids_are_fine() -> None:
    event = _event(
        event_id=str(uuid.uuid4()).upper(),
        trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id="b7ad6b7169203331",
    )
    assert validate_event(event) is None


@pytest.mark.parametrize("value", [[], "text", 3, None, True])
def test_non_object_event(value: object) -> None:
    message = validate_event(value)
    assert message is not None
    assert "JSON object" in message


@pytest.mark.parametrize("name", ["event_id", "trace_id", "span_id", "timestamp", "provider"])
def test_missing_required_field_is_named(name: str) -> None:
    assert validate_event(_without(name)) == f"missing required field '{name}'"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("event_id", "not-a-uuid"),
        ("event_id", "550e8400-e29b-11d4-a716-446655440000"),  # version 1
        ("event_id", "550e8400-e29b-41d4-c716-446655440000"),  # wrong variant
        ("event_id", "550e8400-e29b-41d4-a716-446655440000\n"),
        ("event_id", 5),
        ("trace_id", ""),
        ("trace_id", 12),
        ("span_id", None),
        ("timestamp", "2026-04-20T10:00:00Z"),  # no milliseconds
        ("timestamp", "2026-04-20T10:00:00.000000Z"),  # microseconds
        ("timestamp", "2026-04-20T10:00:00.000+00:00"),
        ("timestamp", "2026-04-20 10:00:00.000Z"),
        ("timestamp", "2026-02-30T10:00:00.000Z"),  # not a real date
        ("timestamp", "2026-04-20T25:00:00.000Z"),
        ("timestamp", 1776679200000),
        ("provider", "mistral_ai"),
        ("provider", "OpenAI"),
        ("provider", None),
        ("provider", ["openai"]),
        ("model", None),
        ("model", 4),
        ("parent_span_id", None),
        ("environment", True),
        ("finish_reason", ["stop"]),
        ("operation", "completion"),
        ("span_kind", "chain"),
        ("span_kind", "LLM"),
        ("status", "ok"),
        ("latency_ms", 843.5),
        ("latency_ms", -1),
        ("latency_ms", True),
        ("latency_ms", "843"),
        ("input_tokens", None),
        ("output_tokens", 1.0),
        ("cached_tokens", -2),
        ("ttft_ms", False),
        ("cost_usd", -0.1),
        ("cost_usd", float("nan")),
        ("cost_usd", float("inf")),
        ("cost_usd", "0.1"),
        ("cost_usd", True),
        ("error_message", "x" * 501),
        ("error_message", None),
        ("stream", "false"),
        ("stream", 0),
        ("prompt_hash", "A" * 64),
        ("prompt_hash", "a" * 63),
        ("prompt_hash", None),
        ("tags", {"k": 1}),
        ("tags", {"k": None}),
        ("tags", ["a"]),
        ("tags", None),
    ],
)
def test_invalid_field_is_named(name: str, value: object) -> None:
    message = validate_event(_event(**{name: value}))
    assert message is not None
    assert f"'{name}'" in message


def test_provider_message_lists_allowed_values() -> None:
    assert validate_event(_event(provider="groq")) == (
        "field 'provider' must be one of openai, anthropic, google, custom"
    )


def test_tags_message_names_the_tag_key() -> None:
    message = validate_event(_event(tags={"good": "x", "bad": 3}))
    assert message is not None
    assert "tags['bad']" in message


def test_required_fields_are_checked_before_optional_ones() -> None:
    event = _without("provider")
    event["latency_ms"] = -5
    assert validate_event(event) == "missing required field 'provider'"

# SPDX-License-Identifier: Apache-2.0
"""Builders of real ``ReadableSpan``s shared by the mapping tests (no tests of its own)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from opentelemetry_exporter_lumiqtrace.mapping import MappingOptions, map_span

try:
    from opentelemetry_exporter_lumiqtrace.testing import validate_event
except ImportError:  # pragma: no cover - the validator ships with the local test server
    validate_event = None

START_NS = 1_776_679_200_000_000_000  # 2026-04-20T10:00:00.000Z
TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0x00F067AA0BA902B7
PARENT_ID = 0x53995C3F42CD8AD8
RESOURCE = Resource({"service.name": "checkout"})
SCOPE = InstrumentationScope("test.scope", "9.9")


def make_span(
    attributes: Mapping[str, Any] | None = None,
    *,
    name: str = "span",
    kind: SpanKind = SpanKind.INTERNAL,
    status: Status | None = None,
    events: Sequence[Event] = (),
    start: int | None = START_NS,
    duration_ms: float = 1200,
    resource: Resource | None = RESOURCE,
    parent: bool = True,
    scope: InstrumentationScope | None = SCOPE,
    trace_id: int = TRACE_ID,
    span_id: int = SPAN_ID,
) -> ReadableSpan:
    context = SpanContext(trace_id=trace_id, span_id=span_id, is_remote=False, trace_flags=TraceFlags(1))
    parent_ctx = (
        SpanContext(trace_id=trace_id, span_id=PARENT_ID, is_remote=False, trace_flags=TraceFlags(1))
        if parent
        else None
    )
    return ReadableSpan(
        name=name,
        context=context,
        parent=parent_ctx,
        resource=resource,
        attributes=dict(attributes or {}),
        events=events,
        kind=kind,
        status=status or Status(StatusCode.UNSET),
        start_time=start,
        end_time=None if start is None else start + int(duration_ms * 1_000_000),
        instrumentation_scope=scope,
    )


def event_at(name: str, offset_ms: float, attributes: Mapping[str, Any] | None = None) -> Event:
    return Event(name, attributes=dict(attributes or {}), timestamp=START_NS + int(offset_ms * 1_000_000))


def exception_event(exc_type: str, message: str, *, escaped: bool = False, offset_ms: float = 5) -> Event:
    return event_at(
        "exception",
        offset_ms,
        {"exception.type": exc_type, "exception.message": message, "exception.escaped": str(escaped)},
    )


def check_event(event: dict[str, Any] | None) -> dict[str, Any]:
    """Assert the event is valid on the wire and return it."""
    assert event is not None
    json.dumps(event, allow_nan=False)
    if validate_event is not None:
        assert validate_event(event) is None, validate_event(event)
    return event


def mapped(
    attributes: Mapping[str, Any] | None = None, options: MappingOptions | None = None, **kw: Any
) -> dict[str, Any]:
    span = make_span(attributes, **kw)
    return check_event(map_span(span, options or MappingOptions(compute_cost=False)))

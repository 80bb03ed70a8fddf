# SPDX-License-Identifier: Apache-2.0
"""Count once: tokens and cost of one provider call on exactly one event (``count_once.py``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from opentelemetry_exporter_lumiqtrace.count_once import (
    COUNTED_IN_TAG,
    CountOnce,
    has_counts,
    remove_counts,
    response_id,
)
from opentelemetry_exporter_lumiqtrace.mapping import MappingOptions, map_span
from opentelemetry_exporter_lumiqtrace.testing import LocalIngestServer

OPTIONS = MappingOptions()


@pytest.fixture
def tracing() -> Iterator[tuple[Any, InMemorySpanExporter]]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource({"service.name": "count-once"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    yield provider.get_tracer("tests"), memory
    provider.shutdown()


def _llm(span: Any, *, tokens: tuple[int, int] | None = (12, 5), rid: str | None = None, model: str = "gpt-4o") -> None:
    span.set_attribute("gen_ai.operation.name", "chat")
    span.set_attribute("gen_ai.provider.name", "openai")
    span.set_attribute("gen_ai.request.model", model)
    if tokens is not None:
        span.set_attribute("gen_ai.usage.input_tokens", tokens[0])
        span.set_attribute("gen_ai.usage.output_tokens", tokens[1])
    if rid is not None:
        span.set_attribute("gen_ai.response.id", rid)


def _observe(counter: CountOnce, spans: list[ReadableSpan]) -> list[dict[str, Any]]:
    events = []
    for span in spans:
        event = map_span(span, OPTIONS)
        assert event is not None
        events.append(counter.observe(span, event))
    return events


def _by_name(spans: list[ReadableSpan], events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {span.name: event for span, event in zip(spans, events, strict=True)}


def test_nested_the_innermost_span_keeps_the_counts(tracing: Any) -> None:
    tracer, memory = tracing
    with tracer.start_as_current_span("framework chat") as outer:
        _llm(outer)
        with tracer.start_as_current_span("client chat", kind=SpanKind.CLIENT) as inner:
            _llm(inner)
    spans = list(memory.get_finished_spans())
    assert [s.name for s in spans] == ["client chat", "framework chat"]  # children end first
    events = _by_name(spans, _observe(CountOnce(), spans))
    inner_event, outer_event = events["client chat"], events["framework chat"]
    assert (inner_event["input_tokens"], inner_event["output_tokens"]) == (12, 5)
    assert COUNTED_IN_TAG not in inner_event["tags"]
    assert not has_counts(outer_event)
    assert outer_event["tags"][COUNTED_IN_TAG] == inner_event["event_id"]
    assert outer_event["span_kind"] == "llm"  # still exported whole, kind kept
    assert not any(k.startswith(("tokens.", "cost.")) for k in outer_event["tags"])


def test_nested_through_spans_without_counts_and_across_export_calls(tracing: Any) -> None:
    tracer, memory = tracing
    with tracer.start_as_current_span("agent run"), tracer.start_as_current_span("framework chat") as outer:
        _llm(outer)
        with (
            tracer.start_as_current_span("POST /v1/chat/completions", kind=SpanKind.CLIENT),
            tracer.start_as_current_span("client chat") as inner,
        ):
            _llm(inner)
    spans = list(memory.get_finished_spans())
    counter = CountOnce()
    first = _observe(counter, spans[:2])  # the client span and the HTTP span: one export call
    rest = _observe(counter, spans[2:])  # the framework span and the agent: the next one
    events = _by_name(spans, first + rest)
    assert events["client chat"]["input_tokens"] == 12
    assert not has_counts(events["framework chat"])
    assert events["framework chat"]["tags"][COUNTED_IN_TAG] == events["client chat"]["event_id"]
    assert COUNTED_IN_TAG not in events["agent run"]["tags"]


def test_a_child_arriving_after_its_counted_parent_loses_its_counts(tracing: Any) -> None:
    tracer, memory = tracing
    with tracer.start_as_current_span("framework chat") as outer:
        _llm(outer)
        inner = tracer.start_span("stream read")  # ends after its parent, as a stream read late can
        _llm(inner)
    inner.end()
    spans = list(memory.get_finished_spans())
    assert [s.name for s in spans] == ["framework chat", "stream read"]
    events = _by_name(spans, _observe(CountOnce(), spans))
    assert events["framework chat"]["input_tokens"] == 12
    assert events["stream read"]["tags"][COUNTED_IN_TAG] == events["framework chat"]["event_id"]
    assert not has_counts(events["stream read"])


def test_parallel_spans_with_the_same_response_id_are_one_call(tracing: Any) -> None:
    tracer, memory = tracing
    for name in ("sdk call", "instrumentation call"):  # two traces, no parent link
        with tracer.start_as_current_span(name) as span:
            _llm(span, rid="chatcmpl-abc123")
    spans = list(memory.get_finished_spans())
    assert spans[0].context.trace_id != spans[1].context.trace_id
    events = _by_name(spans, _observe(CountOnce(), spans))
    assert events["sdk call"]["input_tokens"] == 12
    assert events["instrumentation call"]["tags"][COUNTED_IN_TAG] == events["sdk call"]["event_id"]


def test_same_response_id_but_another_model_or_outside_the_window_is_not_merged(tracing: Any) -> None:
    tracer, memory = tracing
    with tracer.start_as_current_span("a") as span:
        _llm(span, rid="chatcmpl-1", model="gpt-4o")
    with tracer.start_as_current_span("b") as span:
        _llm(span, rid="chatcmpl-1", model="gpt-4o-mini")
    spans = list(memory.get_finished_spans())
    assert all(has_counts(e) for e in _observe(CountOnce(), spans))

    with tracer.start_as_current_span("c", start_time=1_000_000_000) as span:
        _llm(span, rid="chatcmpl-2")
    late = tracer.start_span("d", start_time=1_000_000_000)
    _llm(late, rid="chatcmpl-2")
    late.end(end_time=1_000_000_000 + 61 * 10**9)  # 61 s later: beyond the 60 s window
    spans = [s for s in memory.get_finished_spans() if s.name in ("c", "d")]
    assert all(has_counts(e) for e in _observe(CountOnce(parallel_window_s=60), spans))


def test_distinct_response_ids_stay_apart_when_redaction_hides_their_tag(
    tracing: Any, exporter_factory: Callable[..., Any], server: LocalIngestServer
) -> None:
    # redact_keys=["id"] makes both gen_ai.response.id tags "[REDACTED]": two calls, not one.
    tracer, memory = tracing
    for rid in ("chatcmpl-1111", "chatcmpl-2222"):
        with tracer.start_as_current_span("chat gpt-4o") as span:
            _llm(span, rid=rid)
    exporter = exporter_factory(redact_keys=["id"])
    exporter.export(list(memory.get_finished_spans()))
    events = server.events()
    assert [e["tags"]["gen_ai.response.id"] for e in events] == ["[REDACTED]", "[REDACTED]"]
    assert [(e["input_tokens"], e["output_tokens"]) for e in events] == [(12, 5), (12, 5)]
    assert all(COUNTED_IN_TAG not in e["tags"] for e in events)


def test_distinct_response_ids_stay_apart_when_the_tag_value_cap_cuts_them(tracing: Any) -> None:
    tracer, memory = tracing
    for rid in ("chatcmpl-aaaa-1111", "chatcmpl-aaaa-2222", "chatcmpl-aaaa-2222"):  # the last two are one call
        with tracer.start_as_current_span("chat gpt-4o") as span:
            _llm(span, rid=rid)
    options = MappingOptions(max_tag_value_chars=12)
    counter = CountOnce(max_tag_value_chars=12)
    events = []
    for span in memory.get_finished_spans():
        event = map_span(span, options)
        assert event is not None
        events.append(counter.observe(span, event))
    assert [e["tags"]["gen_ai.response.id"] for e in events] == ["chatcmpl-aa…"] * 3
    assert [has_counts(e) for e in events] == [True, True, False]
    assert events[2]["tags"][COUNTED_IN_TAG] == events[1]["event_id"]


def test_two_identical_concurrent_calls_without_a_link_stay_two(tracing: Any) -> None:
    tracer, memory = tracing
    first = tracer.start_span("chat gpt-4o")
    second = tracer.start_span("chat gpt-4o")  # same name, model, tokens, times overlap; no id, no ancestry
    for span in (first, second):
        _llm(span)
    first.end()
    second.end()
    events = _observe(CountOnce(), list(memory.get_finished_spans()))
    assert [(e["input_tokens"], e["output_tokens"]) for e in events] == [(12, 5), (12, 5)]
    assert all(COUNTED_IN_TAG not in e["tags"] for e in events)


def test_memory_is_bounded_and_old_links_are_forgotten(tracing: Any) -> None:
    tracer, memory = tracing
    counter = CountOnce(max_entries=8)
    with tracer.start_as_current_span("early") as span:
        _llm(span, rid="chatcmpl-old")
    _observe(counter, list(memory.get_finished_spans()))
    memory.clear()
    for i in range(20):
        with tracer.start_as_current_span(f"other {i}") as span:
            _llm(span, rid=f"chatcmpl-{i}")
    _observe(counter, list(memory.get_finished_spans()))
    memory.clear()
    with tracer.start_as_current_span("late twin") as span:
        _llm(span, rid="chatcmpl-old")
    (event,) = _observe(counter, list(memory.get_finished_spans()))
    assert has_counts(event)  # forgotten: counted rather than guessed
    for table in (counter._counted_below, counter._counted_spans, counter._by_response):
        assert len(table) <= 8


def test_events_without_counts_pass_unchanged(tracing: Any) -> None:
    tracer, memory = tracing
    with tracer.start_as_current_span("framework chat") as outer:
        _llm(outer, tokens=None)
        with tracer.start_as_current_span("client chat") as inner:
            _llm(inner, tokens=None)
    spans = list(memory.get_finished_spans())
    expected = [map_span(s, OPTIONS) for s in spans]
    assert _observe(CountOnce(), spans) == expected


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"gen_ai.response.id": "msg_1", "output.value": '{"id": "other"}'}, "msg_1"),
        ({"output.value": '{"id":"chatcmpl-9","choices":[]}'}, "chatcmpl-9"),
        ({"output.value": json.dumps({"choices": [], "id": "chatcmpl-7"})}, "chatcmpl-7"),
        ({"output.value": json.dumps({"generations": [], "llm_output": {"id": "chatcmpl-5"}})}, "chatcmpl-5"),
        ({"output.value": json.dumps({"llm_output": None})}, None),
        ({"output.value": "Hello there!"}, None),
        ({"output.value": "{not json"}, None),
        ({"output.value": json.dumps({"pad": "x" * 70_000, "id": "too-deep"})}, None),
        ({}, None),
    ],
)
def test_response_id(attributes: dict[str, Any], expected: str | None) -> None:
    assert response_id(attributes) == expected


def test_remove_counts_keeps_the_tag_cap() -> None:
    event = {"input_tokens": 1, "cost_usd": 0.1, "tags": {f"k{i}": "v" for i in range(4)}}
    remove_counts(event, "evt-1", max_tags=4)
    assert event == {"tags": {"k0": "v", "k1": "v", "k2": "v", COUNTED_IN_TAG: "evt-1"}}


def test_the_exporter_counts_once_across_export_calls(
    tracing: Any, exporter_factory: Callable[..., Any], server: LocalIngestServer
) -> None:
    tracer, memory = tracing
    with tracer.start_as_current_span("framework chat") as outer:
        _llm(outer)
        with tracer.start_as_current_span("client chat") as inner:
            _llm(inner)
    inner_span, outer_span = memory.get_finished_spans()
    exporter = exporter_factory()
    exporter.export([inner_span])
    exporter.export([outer_span])
    events = {e["tags"]["otel.span_name"]: e for e in server.events()}
    assert len(events) == 2
    assert events["client chat"]["input_tokens"] == 12
    assert "input_tokens" not in events["framework chat"]
    assert events["framework chat"]["tags"][COUNTED_IN_TAG] == events["client chat"]["event_id"]


def test_the_exporter_decides_as_observe_one_by_one(
    tracing: Any, exporter_factory: Callable[..., Any], server: LocalIngestServer
) -> None:
    # The exporter counts each event once as it maps it, within one pass over the batch; it must make the decisions
    # observe() makes span after span: nested counts (an uncounted span between them), a parallel response id.
    tracer, memory = tracing
    with tracer.start_as_current_span("agent") as agent:
        _llm(agent)
        with (
            tracer.start_as_current_span("web"),
            tracer.start_as_current_span("client chat", kind=SpanKind.CLIENT) as inner,
        ):
            _llm(inner, rid="resp-1")
    with tracer.start_as_current_span("other trace chat") as twin:
        _llm(twin, rid="resp-1")
    with tracer.start_as_current_span("plain"):
        pass
    spans = list(memory.get_finished_spans())
    one_by_one = _by_name(spans, _observe(CountOnce(), spans))
    exporter = exporter_factory()
    exporter.export(spans)
    sent = {e["tags"]["otel.span_name"]: e for e in server.events()}
    assert sent == json.loads(json.dumps(one_by_one))
    assert has_counts(sent["client chat"])
    assert not has_counts(sent["agent"]) and not has_counts(sent["other trace chat"])
    assert sent["agent"]["tags"][COUNTED_IN_TAG] == sent["client chat"]["event_id"]
    assert COUNTED_IN_TAG not in sent["plain"].get("tags", {})


def _hand_made_llm_span(name: str, trace_id: int, span_id: int, parent_id: int | None = None) -> ReadableSpan:
    from opentelemetry.trace import SpanContext, TraceFlags

    sampled = TraceFlags(TraceFlags.SAMPLED)
    return ReadableSpan(
        name=name,
        context=SpanContext(trace_id, span_id, is_remote=False, trace_flags=sampled),
        parent=SpanContext(trace_id, parent_id, is_remote=False, trace_flags=sampled) if parent_id else None,
        resource=Resource({"service.name": "count-once"}),
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 12,
            "gen_ai.usage.output_tokens": 5,
        },
        start_time=1_000,
        end_time=2_000,
    )


def test_spans_of_two_traces_with_the_same_span_ids_are_never_linked() -> None:
    # Span ids are unique within a trace only: hand-made ids (tests, replays) repeat across traces.
    spans = [
        _hand_made_llm_span("A client", trace_id=0xA, span_id=2, parent_id=1),  # waits for span 1 of trace A
        _hand_made_llm_span("B call", trace_id=0xB, span_id=1),  # span 1 of trace B: not A's parent
        _hand_made_llm_span("B late child", trace_id=0xB, span_id=3, parent_id=2),  # not the child of A's span 2
        _hand_made_llm_span("A framework", trace_id=0xA, span_id=1),  # A's parent, which the counts are below
    ]
    events = _by_name(spans, _observe(CountOnce(), spans))
    for name in ("A client", "B call", "B late child"):
        assert has_counts(events[name]) and COUNTED_IN_TAG not in events[name]["tags"], name
    assert not has_counts(events["A framework"])
    assert events["A framework"]["tags"][COUNTED_IN_TAG] == events["A client"]["event_id"]


@pytest.mark.parametrize(
    ("field", "value"), [("span_id", 7), ("trace_id", None), ("event_id", ["evt"]), ("span_id", ...)]
)
def test_observe_leaves_an_event_without_the_mappings_ids_as_it_is(tracing: Any, field: str, value: Any) -> None:
    # observe() takes any event; observe_mapped() (the exporter's) trusts the mapping's ids and does not check them.
    tracer, memory = tracing
    with tracer.start_as_current_span("framework chat") as outer:
        _llm(outer, rid="chatcmpl-1")
        with tracer.start_as_current_span("client chat") as inner:
            _llm(inner, rid="chatcmpl-1")
    inner_span, outer_span = memory.get_finished_spans()
    counter = CountOnce()
    counter.observe(inner_span, map_span(inner_span, OPTIONS))
    event = map_span(outer_span, OPTIONS)
    assert event is not None
    if value is ...:
        del event[field]
    else:
        event[field] = value
    before = json.loads(json.dumps(event))
    assert counter.observe(outer_span, event) == before  # not linked to the counted span below it
    assert has_counts(event)

# SPDX-License-Identifier: Apache-2.0
"""Quota 429s, the sampling ratchet, whole traces, and LumiqTrace's remote config, against the local server."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.trace import set_span_in_context

from opentelemetry_exporter_lumiqtrace import LumiqTraceSampler
from opentelemetry_exporter_lumiqtrace.sampling import shared_sampling_state
from opentelemetry_exporter_lumiqtrace.testing import LocalIngestServer, Reply

from .conftest import FakeClock, make_spans

QUOTA = Reply(status=429, body={"error": "Monthly quota exceeded"})


def test_quota_429_ratchets_the_rate_pauses_then_probes_and_resumes(
    server: LocalIngestServer, exporter_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    sampler = LumiqTraceSampler(rate=1.0)
    exporter = exporter_factory(_clock=clock, quota_probe_interval=600)
    server.script(QUOTA)
    with caplog.at_level(logging.WARNING, logger="opentelemetry_exporter_lumiqtrace"):
        assert exporter.export(make_spans(150)) is SpanExportResult.FAILURE
    assert sampler.rate == 0.5
    assert "lowered from 1 to 0.5" in caplog.text
    # No retry of that slice, and nothing else of the batch tried either.
    assert len(server.ingest_requests()) == 1
    # Paused: nothing sent, arrivals dropped and counted, not buffered.
    for _ in range(3):
        clock.advance(100)
        exporter.export(make_spans(20, traces=20))
    assert len(server.ingest_requests()) == 1
    stats = exporter.stats()
    assert stats["buffered"] == 0 and stats["dropped"]["quota"] >= 150
    # After the probe interval: one probe; it succeeds, sending resumes, the rate stays ratcheted.
    clock.advance(300)
    exporter.export(make_spans(40, traces=40))
    assert len(server.ingest_requests()) == 2
    exporter.export(make_spans(40, traces=40))
    assert len(server.ingest_requests()) == 3
    assert sampler.rate == 0.5
    # Delivered spans are only those of traces the lowered rate keeps.
    state = shared_sampling_state()
    assert server.events() and all(state.keeps(int(e["trace_id"], 16)) for e in server.events())


def test_repeated_quota_429s_in_one_pause_ratchet_once(server: LocalIngestServer, exporter_factory: Any) -> None:
    clock = FakeClock()
    sampler = LumiqTraceSampler(rate=0.8)
    exporter = exporter_factory(_clock=clock, quota_probe_interval=60)
    server.script(QUOTA, QUOTA, QUOTA)
    exporter.export(make_spans(50, traces=50))
    for _ in range(2):
        clock.advance(61)  # a probe goes out and is refused again: the same episode
        exporter.export(make_spans(50, traces=50))
    assert len(server.ingest_requests()) == 3
    assert sampler.rate == pytest.approx(0.4)
    clock.advance(61)
    exporter.export(make_spans(50, traces=50))  # the probe succeeds: the episode ends
    server.script(QUOTA)
    exporter.export(make_spans(50, traces=50))  # a new episode ratchets again
    assert sampler.rate == pytest.approx(0.2)


def test_quota_rate_factor_and_floor_are_configurable(server: LocalIngestServer, exporter_factory: Any) -> None:
    sampler = LumiqTraceSampler(rate=1.0)
    exporter = exporter_factory(quota_rate_factor=0.01, quota_rate_floor=0.05)
    server.script(QUOTA)
    exporter.export(make_spans(5))
    assert sampler.rate == 0.05


def test_a_trace_spanning_the_ratchet_is_sent_whole_or_dropped_whole(server: LocalIngestServer) -> None:
    from opentelemetry_exporter_lumiqtrace import LumiqTraceSpanExporter

    sampler = LumiqTraceSampler(rate=1.0)
    clock = FakeClock()
    exporter = LumiqTraceSpanExporter(
        api_key=server.api_key, base_url=server.base_url, linger=0, quota_probe_interval=60, _clock=clock
    )
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    open_roots = []
    # 200 traces: each root opened and its first child finished (and exported) before the ratchet...
    for i in range(200):
        root = tracer.start_span(f"root-{i}")
        ctx = set_span_in_context(root)
        tracer.start_span("child-before", context=ctx).end()
        open_roots.append((root, ctx))
    server.script(QUOTA)
    with tracer.start_as_current_span("unlucky"):  # its export meets the quota answer
        pass
    assert sampler.rate == 0.5
    # ...finished after the pause, once a probe (the first export below) succeeded.
    clock.advance(61)
    for root, ctx in open_roots:
        tracer.start_span("child-after", context=ctx).end()
        root.end()
    # And 200 new traces at the lowered rate.
    for i in range(200):
        with tracer.start_as_current_span(f"new-{i}"), tracer.start_as_current_span("new-child"):
            pass
    provider.shutdown()
    by_trace: dict[str, list[str]] = defaultdict(list)
    for event in server.events():
        by_trace[event["trace_id"]].append(event["tags"]["otel.span_name"])
    old = [names for names in by_trace.values() if any(n.startswith("root-") for n in names)]
    new = [names for names in by_trace.values() if any(n.startswith("new-") for n in names)]
    assert len(old) == 200  # already partly sent before the ratchet: finished whole
    assert all(sorted(n.split("-")[0] for n in names) == ["child", "child", "root"] for names in old)
    assert 50 < len(new) < 150  # the lowered rate: about half of the new traces
    assert all(len(names) == 2 for names in new)
    orphans = [names for names in by_trace.values() if len(names) == 1 and names[0] != "unlucky"]
    assert orphans == []


def test_remote_sample_rate_rule_applies_within_one_export_cycle(
    server: LocalIngestServer, exporter_factory: Any
) -> None:
    sampler = LumiqTraceSampler(rate=1.0)
    exporter = exporter_factory()
    server.set_config(rules=[{"type": "sample_rate", "value": 0.1}])
    assert exporter.export(make_spans(3)) is SpanExportResult.SUCCESS
    assert exporter._poller is not None and exporter._poller.wait_idle(5)
    assert sampler.rate == 0.1
    assert len(server.config_requests()) == 1
    assert server.config_requests()[0].headers["x-api-key"] == server.api_key
    exporter.export(make_spans(3))
    assert exporter._poller.wait_idle(5)
    assert len(server.config_requests()) == 1  # cv did not rise: no second fetch


def test_remote_disable_tracing_stops_all_ingest_requests(server: LocalIngestServer, exporter_factory: Any) -> None:
    sampler = LumiqTraceSampler(rate=1.0)
    exporter = exporter_factory()
    server.set_config(rules=[{"type": "disable_tracing", "value": True}])
    exporter.export(make_spans(3))
    assert exporter._poller is not None and exporter._poller.wait_idle(5)
    before = len(server.ingest_requests())
    for _ in range(3):
        assert exporter.export(make_spans(10)) is SpanExportResult.SUCCESS
    assert len(server.ingest_requests()) == before
    assert exporter.stats()["dropped"]["disabled"] == 30
    assert sampler.should_sample(None, 1, "x").decision.is_sampled() is False


def test_remote_redaction_keys_and_log_level(server: LocalIngestServer, exporter_factory: Any) -> None:
    exporter = exporter_factory()
    server.set_config(
        rules=[{"type": "pii_redact_keys", "value": ["customer_ref"]}, {"type": "log_level", "value": "debug"}]
    )
    exporter.export(make_spans(1))
    assert exporter._poller is not None and exporter._poller.wait_idle(5)
    assert logging.getLogger("opentelemetry_exporter_lumiqtrace").level == logging.DEBUG
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("with-pii") as span:
        span.set_attribute("lumiqtrace.tags.customer_ref", "C-12345")
        span.set_attribute("customerRef", "C-12345")
    event = next(e for e in server.events() if e["tags"]["otel.span_name"] == "with-pii")
    assert "C-12345" not in str(event)


def test_garbage_remote_config_changes_nothing(server: LocalIngestServer, exporter_factory: Any) -> None:
    sampler = LumiqTraceSampler(rate=0.7)
    exporter = exporter_factory()
    server.set_config_body(b"<html>definitely not json")
    assert exporter.export(make_spans(30, traces=30)) is SpanExportResult.SUCCESS
    assert exporter._poller is not None and exporter._poller.wait_idle(5)
    assert len(server.config_requests()) == 1
    assert sampler.rate == 0.7 and not shared_sampling_state().disabled


def test_linger_carries_an_undersized_tail_into_the_next_export(
    server: LocalIngestServer, exporter_factory: Any
) -> None:
    exporter = exporter_factory(linger=30)
    exporter.export(make_spans(512))
    assert [len(r.events or []) for r in server.ingest_requests()] == [100] * 5
    assert exporter.stats()["buffered"] == 12
    exporter.export(make_spans(512))
    sizes = [len(r.events or []) for r in server.ingest_requests()]
    assert sizes == [100] * 10  # 12 + 512 = 524: five full requests, 24 held
    assert exporter.stats()["buffered"] == 24
    assert exporter.force_flush()
    assert len(server.events()) == 1024
    # A small export (light load) is never held.
    exporter.export(make_spans(7))
    assert len(server.events()) == 1031


def test_linger_is_bounded_by_a_timer(server: LocalIngestServer, exporter_factory: Any) -> None:
    exporter = exporter_factory(linger=0.2)
    exporter.export(make_spans(512))
    assert len(server.events()) == 500
    assert server.wait_for_events(512, timeout=3)
    assert exporter.stats()["buffered"] == 0


def test_a_processor_flush_sends_everything(server: LocalIngestServer, exporter_factory: Any) -> None:
    exporter = exporter_factory(linger=30)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000, max_queue_size=4096))
    tracer = provider.get_tracer("t")
    for i in range(1100):
        with tracer.start_as_current_span(f"s{i}"):
            pass
    provider.force_flush()  # 512 + 512 + 76: the last, smaller batch picks up the held tails
    assert len(server.events()) == 1100
    assert all(len(r.events or []) == 100 for r in server.ingest_requests()[:-1])
    provider.shutdown()


def test_shutdown_sends_the_held_tail(server: LocalIngestServer, exporter_factory: Any) -> None:
    exporter = exporter_factory(linger=30)
    exporter.export(make_spans(530))
    assert exporter.stats()["buffered"] == 30
    exporter.shutdown()
    assert len(server.events()) == 530


def test_concurrent_ratchet_and_exports_do_not_raise(server: LocalIngestServer, exporter_factory: Any) -> None:
    exporter = exporter_factory()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                exporter.export(make_spans(20, traces=10))
        except BaseException as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    shared_sampling_state().ratchet_down(factor=0.5, floor=0.01)
    for t in threads:
        t.join(10)
    assert errors == []


def test_recent_traces_forget_the_oldest_first() -> None:
    from opentelemetry_exporter_lumiqtrace.exporter import RecentTraces

    recent = RecentTraces(3)
    recent.remember([1, 2, 3])
    recent.remember([2, 4])  # 2 is known and keeps its place; 1 is the oldest and goes
    assert [t in recent for t in (1, 2, 3, 4)] == [False, True, True, True]


def _hand_made_span(name: str, trace_id: int, span_id: int, *, ai: bool, parent_id: int | None = None) -> Any:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanContext, TraceFlags

    sampled = TraceFlags(TraceFlags.SAMPLED)
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai"} if ai else {"http.route": "/"}
    return ReadableSpan(
        name=name,
        context=SpanContext(trace_id, span_id, is_remote=False, trace_flags=sampled),
        parent=SpanContext(trace_id, parent_id, is_remote=False, trace_flags=sampled) if parent_id else None,
        resource=Resource({"service.name": "whole-traces"}),
        attributes=attributes,
        start_time=1_000,
        end_time=2_000,
    )


# Low 64 bits at their maximum: above the threshold of every rate below 1.
_NEVER_KEPT_BELOW_1 = (0x5EED << 64) | (2**64 - 1)


@pytest.mark.parametrize("first", ["filtered", "unmappable"])
def test_a_trace_whose_first_span_was_filtered_or_unmappable_still_counts_as_started(
    server: LocalIngestServer, exporter_factory: Any, first: str
) -> None:
    # Every span past the sampling filter marks its trace as started, also one that ai_only filters out or that
    # cannot be mapped: the trace's later spans are finished, not split, when the rate drops.
    exporter = exporter_factory(ai_only=True)
    if first == "unmappable":
        real_map = exporter._mapper.map_span

        def map_first_badly(span: Any, options: Any) -> Any:
            if span.name == "first":
                raise RuntimeError("broken attribute")
            return real_map(span, options)

        exporter._mapper.map_span = map_first_badly
    exporter.export([_hand_made_span("first", _NEVER_KEPT_BELOW_1, 1, ai=False)])
    shared_sampling_state().set_rate(0.5)
    other_trace = _NEVER_KEPT_BELOW_1 + (1 << 64)
    exporter.export(
        [
            _hand_made_span("late", _NEVER_KEPT_BELOW_1, 2, ai=True, parent_id=1),
            _hand_made_span("new trace", other_trace, 3, ai=True),
        ]
    )
    assert [e["tags"]["otel.span_name"] for e in server.events()] == ["late"]
    stats = exporter.stats()
    assert stats["filtered"] == (2 if first == "filtered" else 1)
    assert stats["dropped"] == ({"mapping_error": 1} if first == "unmappable" else {})


@pytest.mark.parametrize("rate", [1.0, 0.5])
def test_a_span_without_a_context_is_filtered_at_every_rate(
    server: LocalIngestServer, exporter_factory: Any, rate: float
) -> None:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan

    shared_sampling_state().set_rate(rate)
    exporter = exporter_factory()
    kept = _hand_made_span("kept", 1, 1, ai=True)  # low bits 1: kept at both rates
    no_context = ReadableSpan(name="no context", resource=Resource({}), start_time=1_000, end_time=2_000)
    exporter.export([no_context, kept])
    assert [e["tags"]["otel.span_name"] for e in server.events()] == ["kept"]
    assert exporter.stats()["filtered"] == 1


@pytest.mark.parametrize("trace_id", [0, 1, 2**64 - 1, 2**64, 2**127 + 3, 2**128 - 1])
def test_trace_id_hex_is_the_trace_id_the_mapping_writes(trace_id: int) -> None:
    # The exporter remembers started traces by this key and compares it with the events' trace_id.
    from opentelemetry_exporter_lumiqtrace.mapping import MappingOptions, map_span, trace_id_hex

    event = map_span(_hand_made_span("s", trace_id, 7, ai=False), MappingOptions())
    assert event is not None and trace_id_hex(trace_id) == event["trace_id"]

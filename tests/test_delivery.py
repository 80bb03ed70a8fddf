# SPDX-License-Identifier: Apache-2.0
"""Delivery over real HTTP against the local server: the rules of design.md, one by one."""

from __future__ import annotations

import email.utils
import gzip
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

from opentelemetry_exporter_lumiqtrace.backlog import RetryBuffer
from opentelemetry_exporter_lumiqtrace.delivery import RetryPolicy
from opentelemetry_exporter_lumiqtrace.encoding import dumps_event
from opentelemetry_exporter_lumiqtrace.testing import LocalIngestServer, Reply
from opentelemetry_exporter_lumiqtrace.transport import parse_retry_after

from .conftest import FakeClock, make_spans, recovered_server


def _ids(server: LocalIngestServer) -> Counter[str]:
    return Counter(event["span_id"] for event in server.events())


def _ingest_times(server: LocalIngestServer) -> list[float]:
    return [r.time for r in server.ingest_requests()]


def _export_mapped_by(exporter: Any, map_span: Any, spans: Sequence[ReadableSpan]) -> SpanExportResult:
    """``exporter.export(spans)`` with its mapper's ``map_span`` replaced by ``map_span`` for the call."""
    mapper = exporter._mapper
    mapper.map_span = map_span
    try:
        result: SpanExportResult = exporter.export(spans)
    finally:
        del mapper.map_span
    return result


def test_thousand_spans_through_batch_processor_arrive_once_in_requests_of_at_most_100(
    server: LocalIngestServer, exporter_factory: Any
) -> None:
    exporter = exporter_factory()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=512, schedule_delay_millis=50))
    tracer = provider.get_tracer("t")
    for i in range(1000):
        with tracer.start_as_current_span(f"span-{i}") as span:
            span.set_attribute("gen_ai.operation.name", "chat")
    provider.shutdown()

    span_ids = _ids(server)
    assert len(span_ids) == 1000
    assert set(span_ids.values()) == {1}
    requests = server.ingest_requests()
    assert all(r.status == 202 for r in requests)
    assert all(len(r.events or []) <= 100 for r in requests)
    assert sum(len(r.events or []) for r in requests) == 1000
    for request in requests:
        assert request.headers["content-encoding"] == "gzip"
        assert request.headers["content-type"] == "application/x-ndjson"
        assert request.headers["x-api-key"] == server.api_key
        assert request.headers["user-agent"].startswith("opentelemetry-exporter-lumiqtrace/")
        assert gzip.decompress(request.raw_body) == request.body
    assert exporter.stats()["delivered"] == 1000
    assert server.duplicates == 0


def test_compression_none_sends_plain_ndjson(server: LocalIngestServer, exporter_factory: Any) -> None:
    exporter = exporter_factory(compression="none")
    assert exporter.export(make_spans(3)) is SpanExportResult.SUCCESS
    (request,) = server.ingest_requests()
    assert "content-encoding" not in request.headers
    assert request.raw_body == request.body
    lines = request.raw_body.decode().strip().split("\n")
    assert [json.loads(line)["span_id"] for line in lines] == [e["span_id"] for e in server.events()]


def test_rate_limit_429_holds_all_sending_for_retry_after_then_delivers_once(
    server: LocalIngestServer, exporter_factory: Any
) -> None:
    server.script(Reply(status=429, body={"error": "Rate limit exceeded"}, headers={"Retry-After": "1"}))
    exporter = exporter_factory()
    spans = make_spans(250)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    times = _ingest_times(server)
    assert server.ingest_requests()[0].status == 429
    # No request for that key before the second has passed: the retry and every later slice waited.
    assert all(t - times[0] >= 0.99 for t in times[1:])
    assert len(times) == 1 + 3
    assert set(_ids(server).values()) == {1} and len(_ids(server)) == 250


def test_rate_limit_http_date_retry_after(server: LocalIngestServer, exporter_factory: Any) -> None:
    when = email.utils.formatdate(time.time() + 1, usegmt=True)
    server.script(Reply(status=429, body={"error": "Rate limit exceeded"}, headers={"Retry-After": when}))
    exporter = exporter_factory()
    assert exporter.export(make_spans(5)) is SpanExportResult.SUCCESS
    first, second = _ingest_times(server)
    # An HTTP-date has whole-second resolution: the wait is whatever is left of that second, and it is honoured.
    assert second > first
    assert time.time() >= email.utils.parsedate_to_datetime(when).timestamp() - 0.01
    assert len(server.events()) == 5


@pytest.mark.parametrize(
    ("header", "expected"),
    [("3", 3.0), ("0", 0.0), ("-5", 0.0), ("1.5", 1.5), ("soon", None), ("", None), (None, None), ("inf", None)],
)
def test_parse_retry_after_seconds(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_parse_retry_after_http_date() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == pytest.approx(10.0)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0


def test_rate_limit_without_usable_retry_after_uses_default_and_cap(
    server: LocalIngestServer, exporter_factory: Any
) -> None:
    server.script(
        Reply(status=429, body={"error": "Rate limit exceeded"}, headers={"Retry-After": "nonsense"}),
        Reply(status=429, body={"error": "Rate limit exceeded"}, headers={"Retry-After": "999999"}),
    )
    policy = RetryPolicy(initial_backoff_s=0.01, default_retry_after_s=0.3, max_retry_after_s=0.4)
    exporter = exporter_factory(retry_policy=policy)
    assert exporter.export(make_spans(2)) is SpanExportResult.SUCCESS
    t0, t1, t2 = _ingest_times(server)
    assert 0.28 <= t1 - t0 < 1.0  # the default
    assert 0.38 <= t2 - t1 < 1.0  # the cap, not 11 days
    assert len(server.events()) == 2


def test_transient_errors_are_retried_until_delivered_once(server: LocalIngestServer, exporter_factory: Any) -> None:
    server.script(Reply(status=500), Reply(status=503), Reply(drop_connection=True), Reply(status=502))
    exporter = exporter_factory(timeout=5)
    start = time.monotonic()
    assert exporter.export(make_spans(40)) is SpanExportResult.SUCCESS
    assert time.monotonic() - start < 5
    statuses = [r.status for r in server.ingest_requests()]
    assert statuses == [500, 503, None, 502, 202]
    assert len(server.events()) == 40 and set(_ids(server).values()) == {1}
    stats = exporter.stats()
    # The dropped connection was a kept-alive one: the transport sent the request again at once on a new connection
    # (the 502), which counts as a retry like the others.
    assert stats["requests"] == 5 and stats["retries"] == 4
    assert stats["delivered"] == 40 and stats["dropped_total"] == 0


def test_read_timeout_is_retried(server: LocalIngestServer, exporter_factory: Any) -> None:
    server.script(Reply(status=202, delay_s=1.0))
    policy = RetryPolicy(initial_backoff_s=0.01, max_request_timeout_s=0.3)
    exporter = exporter_factory(retry_policy=policy, timeout=3)
    assert exporter.export(make_spans(3)) is SpanExportResult.SUCCESS
    # The slow answer may or may not have been stored before the client gave up; dedup makes both fine.
    assert len(server.events()) == 3
    assert exporter.stats()["retries"] >= 1


def test_one_invalid_event_among_100_is_isolated_and_the_99_delivered(
    server: LocalIngestServer, exporter_factory: Any
) -> None:
    exporter = exporter_factory()
    spans = make_spans(100)
    # A span whose event the server rejects: the mapping never produces one, so break one event after mapping.
    real_map = exporter._mapper.map_span
    bad_span_id = format(spans[37].context.span_id, "016x")

    def map_with_one_bad(span: Any, options: Any) -> Any:
        event = real_map(span, options)
        if event is not None and event["span_id"] == bad_span_id:
            event["provider"] = "not-a-provider"
        return event

    result = _export_mapped_by(exporter, map_with_one_bad, spans)
    assert result is SpanExportResult.FAILURE
    delivered = _ids(server)
    assert len(delivered) == 99 and bad_span_id not in delivered and set(delivered.values()) == {1}
    stats = exporter.stats()
    assert stats["dropped"] == {"bad_request": 1}
    assert "provider" in stats["last_error"]["bad_request"]
    # Never the same bad request twice: every rejected request is a different (smaller) set of events.
    rejected = [tuple(e["span_id"] for e in r.events or []) for r in server.ingest_requests() if r.status == 400]
    assert len(rejected) == len(set(rejected))
    assert len(server.ingest_requests()) <= 1 + 2 * 7


def test_a_span_that_cannot_be_mapped_or_encoded_is_dropped_and_counted_and_nothing_else_lost(
    server: LocalIngestServer, exporter_factory: Any
) -> None:
    exporter = exporter_factory()
    spans = make_spans(20)
    # The mapping neither raises nor makes an event orjson refuses: break three spans around it.
    real_map = exporter._mapper.map_span
    unmappable, unencodable, filtered = (format(spans[i].context.span_id, "016x") for i in (3, 9, 15))

    def map_with_three_bad(span: Any, options: Any) -> Any:
        span_id = format(span.context.span_id, "016x")
        if span_id == unmappable:
            raise RuntimeError("broken attribute")
        if span_id == filtered:
            return None  # what ai_only does to a non-AI span
        event = real_map(span, options)
        if span_id == unencodable:
            event["environment"] = "\ud800"  # a lone surrogate: no UTF-8 for it
        return event

    result = _export_mapped_by(exporter, map_with_three_bad, spans)
    assert result is SpanExportResult.FAILURE
    delivered = _ids(server)
    expected = {format(s.context.span_id, "016x") for s in spans} - {unmappable, unencodable, filtered}
    assert set(delivered) == expected and set(delivered.values()) == {1}
    stats = exporter.stats()
    assert stats["dropped"] == {"mapping_error": 1, "encoding_error": 1}
    assert stats["filtered"] == 1 and stats["delivered"] == 17
    assert "broken attribute" in stats["last_error"]["mapping_error"]


@pytest.mark.parametrize(("status", "reason"), [(401, "unauthorized"), (403, "forbidden")])
def test_credentials_errors_open_the_circuit_until_the_probe_interval(
    server: LocalIngestServer, exporter_factory: Any, status: int, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    key = "lqt_" + "ab" * 32
    server.add_key(key)
    if status == 401:
        server.revoke_key(key)
    else:
        server.forbid_key(key)
    exporter = exporter_factory(api_key=key, auth_probe_interval=60, _clock=clock)
    with caplog.at_level(logging.DEBUG, logger="opentelemetry_exporter_lumiqtrace"):
        assert exporter.export(make_spans(150)) is SpanExportResult.FAILURE
        assert len(server.ingest_requests()) == 1  # sent once, never retried, the rest of the batch not tried
        for _ in range(5):
            clock.advance(10)
            assert exporter.export(make_spans(10)) is SpanExportResult.FAILURE
        assert len(server.ingest_requests()) == 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "LUMIQTRACE_API_KEY" in errors[0].getMessage()
    assert key not in caplog.text
    assert exporter.stats()["dropped"][reason] == 150 + 50

    # The key is fixed: after the probe interval one probe goes out and delivery resumes without a restart.
    server.add_key(key)  # re-enables a revoked or forbidden key
    clock.advance(60)
    assert exporter.export(make_spans(10)) is SpanExportResult.SUCCESS
    assert exporter.export(make_spans(10)) is SpanExportResult.SUCCESS
    assert len(server.events()) == 20


def test_unexpected_status_is_permanent(server: LocalIngestServer, exporter_factory: Any) -> None:
    server.script(Reply(status=404, body={"error": "Not found"}))
    exporter = exporter_factory()
    assert exporter.export(make_spans(5)) is SpanExportResult.FAILURE
    assert len(server.ingest_requests()) == 1
    assert exporter.stats()["dropped"] == {"unexpected_status": 5}


def test_outage_then_recovery_delivers_everything_exactly_once(
    server: LocalIngestServer, exporter_factory: Any
) -> None:
    exporter = exporter_factory(timeout=0.3)
    produced: list[str] = []
    server.set_outage(True)
    for _ in range(4):
        spans = make_spans(120)
        produced += [format(s.context.span_id, "016x") for s in spans]
        assert exporter.export(spans) is SpanExportResult.FAILURE
    assert exporter.stats()["buffered"] == 480
    with recovered_server(server) as recovered:
        assert exporter.force_flush(timeout_millis=5000)
        delivered = _ids(recovered)
    assert sorted(delivered) == sorted(produced) and set(delivered.values()) == {1}
    assert exporter.stats()["buffered"] == 0


def test_server_down_then_up_on_the_same_port(server: LocalIngestServer, exporter_factory: Any) -> None:
    exporter = exporter_factory(timeout=0.3)
    server.stop()
    assert exporter.export(make_spans(30)) is SpanExportResult.FAILURE
    server.start()
    assert exporter.export(make_spans(30)) is SpanExportResult.SUCCESS
    assert len(server.events()) == 60


def test_outage_beyond_buffer_bound_drops_oldest_and_counts(server: LocalIngestServer, exporter_factory: Any) -> None:
    exporter = exporter_factory(timeout=0.2, buffer_max_events=150)
    server.set_outage(True)
    batches = [make_spans(100) for _ in range(3)]
    for spans in batches:
        exporter.export(spans)
    stats = exporter.stats()
    assert stats["buffered"] == 150 and stats["dropped"]["buffer_full"] == 150
    with recovered_server(server) as recovered:
        assert exporter.force_flush(timeout_millis=5000)
        delivered = set(_ids(recovered))
    assert delivered == {format(s.context.span_id, "016x") for s in batches[1][50:] + batches[2]}


def test_retry_buffer_bounds_by_bytes_and_keeps_order() -> None:
    buffer = RetryBuffer(max_events=100, max_bytes=10)
    assert buffer.add([b"aaaa", b"bbbb"]) == []
    assert buffer.add([b"cccc"]) == [b"aaaa"]
    assert buffer.add([b"zzz"], front=True) == [b"zzz"]
    assert buffer.drain() == [b"bbbb", b"cccc"]
    assert len(buffer) == 0 and buffer.size_bytes == 0


def test_provider_shutdown_with_a_hung_server_is_bounded(server: LocalIngestServer) -> None:
    from opentelemetry_exporter_lumiqtrace import LumiqTraceSpanExporter

    server.script(*[Reply(hang=True)] * 10)
    policy = RetryPolicy(initial_backoff_s=0.01, max_request_timeout_s=0.25)
    exporter = LumiqTraceSpanExporter(
        api_key=server.api_key, base_url=server.base_url, timeout=0.5, retry_policy=policy
    )
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
    tracer = provider.get_tracer("t")
    for i in range(10):
        with tracer.start_as_current_span(f"s{i}"):
            pass
    start = time.monotonic()
    provider.shutdown()
    # The processor's final export is bounded by the exporter's deadline (0.5 s), then the exporter's own shutdown
    # makes one bounded attempt (0.25 s per request): a server that never answers cannot hold the process.
    assert time.monotonic() - start < 0.5 + 0.25 + 0.5
    assert exporter.stats()["dropped"] == {"shutdown": 10}


def test_shutdown_budget_is_honoured(server: LocalIngestServer) -> None:
    from opentelemetry_exporter_lumiqtrace import LumiqTraceSpanExporter

    server.script(*[Reply(hang=True)] * 5)
    exporter = LumiqTraceSpanExporter(api_key=server.api_key, base_url=server.base_url, timeout=0.2)
    exporter.export(make_spans(5))  # hangs until its 0.2 s deadline, events kept
    assert exporter.stats()["buffered"] == 5
    start = time.monotonic()
    exporter.shutdown(timeout_millis=500)
    assert time.monotonic() - start < 0.5 + 0.3
    assert exporter.stats()["dropped"] == {"shutdown": 5}


def test_shutdown_cuts_a_back_off_wait_short(server: LocalIngestServer, exporter_factory: Any) -> None:
    server.script(Reply(status=429, body={"error": "Rate limit exceeded"}, headers={"Retry-After": "30"}))
    exporter = exporter_factory(timeout=60, retry_policy=RetryPolicy())
    done = threading.Event()
    thread = threading.Thread(target=lambda: (exporter.export(make_spans(3)), done.set()))
    thread.start()
    assert server.wait_for_requests(1)
    start = time.monotonic()
    exporter.shutdown(timeout_millis=1000)
    assert done.wait(2)
    assert time.monotonic() - start < 1.5


def test_export_after_shutdown_fails_fast(server: LocalIngestServer, exporter_factory: Any) -> None:
    exporter = exporter_factory()
    exporter.shutdown()
    start = time.monotonic()
    assert exporter.export(make_spans(3)) is SpanExportResult.FAILURE
    assert time.monotonic() - start < 0.1
    assert server.ingest_requests() == []
    assert exporter.stats()["dropped"] == {"after_shutdown": 3}
    assert exporter.force_flush() is False


def test_concurrent_exports_deliver_everything_once(server: LocalIngestServer, exporter_factory: Any) -> None:
    exporter = exporter_factory()
    batches = [make_spans(30) for _ in range(16)]
    threads = [threading.Thread(target=exporter.export, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    delivered = _ids(server)
    assert len(delivered) == 16 * 30 and set(delivered.values()) == {1}
    assert exporter.stats()["delivered"] == 480


def test_encoding_error_drops_only_that_event() -> None:
    with pytest.raises(ValueError):
        dumps_event({"tags": {"k": "\ud800"}})


def test_a_large_backlog_is_sent_in_bounded_pieces_oldest_first(
    server: LocalIngestServer, exporter_factory: Any
) -> None:
    from opentelemetry_exporter_lumiqtrace.backlog import MAX_PENDING_PER_CALL

    exporter = exporter_factory(timeout=0.2, buffer_max_events=20_000)
    server.set_outage(True)
    batches = [make_spans(512, traces=64) for _ in range(14)]
    for spans in batches:
        exporter.export(spans)
    assert exporter.stats()["buffered"] == 14 * 512 > MAX_PENDING_PER_CALL
    # While failing, a call retries only the head of the backlog (the oldest slice) until its deadline.
    attempts = len(server.ingest_requests())
    exporter.export(make_spans(1))
    retried = {tuple(e["span_id"] for e in r.events or []) for r in server.ingest_requests()[attempts:]}
    oldest = tuple(format(s.context.span_id, "016x") for s in batches[0][:100])
    assert retried == {oldest}
    with recovered_server(server) as recovered:
        assert exporter.force_flush(timeout_millis=10_000)
        accepted = [[e["span_id"] for e in r.events or []] for r in recovered.ingest_requests() if r.status == 202]
        expected = [format(s.context.span_id, "016x") for spans in batches for s in spans]
        position = {span_id: i for i, span_id in enumerate(expected)}
        backlog = [ids for ids in accepted if ids[0] in position]
        in_order = sorted(backlog, key=lambda ids: position[ids[0]])
        assert [span_id for ids in in_order for span_id in ids][: len(expected)] == expected
        # Slices travel over up to 4 connections at once, so arrivals may interleave; the slices are the backlog's
        # own pieces, oldest first, each delivered once.
        assert len(backlog) == len(in_order)
        assert len(recovered.events()) == 14 * 512 + 1


def test_retry_buffer_drains_a_bounded_head() -> None:
    buffer = RetryBuffer(max_events=10, max_bytes=100)
    buffer.add([b"a", b"bb", b"ccc"])
    assert buffer.drain(2) == [b"a", b"bb"]
    assert len(buffer) == 1 and buffer.size_bytes == 3
    assert buffer.drain(5) == [b"ccc"] and buffer.size_bytes == 0

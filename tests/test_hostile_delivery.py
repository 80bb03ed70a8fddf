# SPDX-License-Identifier: Apache-2.0
"""Delivery against a hostile or distant server (issue 13, delivery side), over real loopback HTTP.

Waits (Retry-After floor, back-off from 1 s, client-side pacing), the quota signal matched exactly, redirects kept
and not followed, ``rejected`` entries of a 2xx answer, shutdown during an export, force_flush from a signal
handler, slices sent over several connections at once, and the accounting identity of ``stats()``.
Wall-clock bounds are generous (2x the budget).
"""

from __future__ import annotations

import email.utils
import logging
import os
import pathlib
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from opentelemetry_exporter_lumiqtrace.delivery import RetryPolicy
from opentelemetry_exporter_lumiqtrace.testing import LocalIngestServer, Reply

from .conftest import FAST_POLICY, make_spans

RATE_LIMITED = {"error": "Rate limit exceeded"}


def _accounted(stats: dict[str, Any]) -> int:
    """Everything ``stats()`` says happened to the spans handed over (see ``LumiqTraceSpanExporter.stats``)."""
    return (
        stats["delivered"]
        + stats["dropped_total"]
        + stats["filtered"]
        + stats["buffered"]
        + stats["in_flight"]
        + stats["spooled"]
        - stats["unspooled"]
    )


# -- waits ---------------------------------------------------------------------------------------------------------


def _past_http_date() -> str:
    return email.utils.formatdate(time.time() - 3600, usegmt=True)


@pytest.mark.parametrize("retry_after", ["0", "-5", "NaN", "past-date"])
def test_retry_after_zero_negative_nan_or_past_holds_at_least_one_second(
    server: LocalIngestServer, exporter_factory: Any, retry_after: str
) -> None:
    header = _past_http_date() if retry_after == "past-date" else retry_after
    server.script(Reply(status=429, body=RATE_LIMITED, headers={"Retry-After": header}))
    exporter = exporter_factory(timeout=0.5)
    start = time.monotonic()
    assert exporter.export(make_spans(5)) is SpanExportResult.FAILURE
    # The minimum hold (1 s) does not fit the 0.5 s deadline: no second request, the events wait in the buffer.
    assert time.monotonic() - start < 1.0
    assert len(server.ingest_requests()) == 1
    stats = exporter.stats()
    assert stats["buffered"] == 5 and stats["dropped_total"] == 0


def test_backoff_starts_at_one_second_and_doubles_with_jitter() -> None:
    policy = RetryPolicy()
    runs = [list(zip(range(5), policy.backoff_delays(), strict=False)) for _ in range(20)]
    firsts = [delays[0][1] for delays in runs]
    assert all(1.0 <= d <= 1.5 for d in firsts)
    assert len(set(firsts)) > 1  # jittered
    for delays in runs:
        values = [d for _, d in delays]
        assert values[1] >= 2.0 and values[2] >= 4.0  # doubling
        assert all(d <= policy.max_backoff_s * 1.5 for d in values)


def test_a_500_is_not_retried_before_one_second(server: LocalIngestServer, exporter_factory: Any) -> None:
    server.script(Reply(status=500))
    exporter = exporter_factory(timeout=0.8, retry_policy=RetryPolicy())
    assert exporter.export(make_spans(3)) is SpanExportResult.FAILURE
    assert len(server.ingest_requests()) == 1
    assert exporter.stats()["buffered"] == 3


def test_requests_are_paced_client_side(server: LocalIngestServer, exporter_factory: Any) -> None:
    # 10 requests per second instead of 1,000 per minute: the same rule, small numbers.
    policy = RetryPolicy(initial_backoff_s=0.01, max_requests_per_window=10, pacing_window_s=1.0)
    exporter = exporter_factory(timeout=1.5, retry_policy=policy)
    start = time.monotonic()
    exporter.export(make_spans(3000, traces=300))
    assert time.monotonic() - start < 3.0
    times = sorted(r.time for r in server.ingest_requests())
    assert 10 < len(times) <= 20
    # Starts are paced; arrival times at the server jitter a little around them.
    assert all(later - earlier >= 0.8 for earlier, later in zip(times, times[10:], strict=False))
    stats = exporter.stats()
    assert stats["delivered"] == 100 * len(times) and stats["buffered"] == 3000 - stats["delivered"]


def test_exporters_of_one_process_share_the_keys_request_budget(
    server: LocalIngestServer, exporter_factory: Any
) -> None:
    # Two exporters, one key: together no more than the key's budget (10 a second here), not 10 each.
    policy = RetryPolicy(initial_backoff_s=0.01, max_requests_per_window=10, pacing_window_s=1.0)
    first, second = (exporter_factory(timeout=1.2, retry_policy=policy) for _ in range(2))
    threads = [threading.Thread(target=e.export, args=(make_spans(2000, traces=200),)) for e in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    times = sorted(r.time for r in server.ingest_requests())
    assert 10 <= len(times) <= 20  # one window's worth at once, then at most one more before the deadlines
    assert all(later - earlier >= 0.8 for earlier, later in zip(times, times[10:], strict=False))
    delivered = first.stats()["delivered"] + second.stats()["delivered"]
    assert delivered == 100 * len(times)


def test_exporters_with_other_keys_have_budgets_of_their_own() -> None:
    from opentelemetry_exporter_lumiqtrace.delivery import shared_pacer

    now = [0.0]
    clock = lambda: now[0]  # noqa: E731 - one clock object for both look-ups
    one = shared_pacer(api_key="lqt_a", limit=1, window_s=60.0, clock=clock)
    assert shared_pacer(api_key="lqt_a", limit=1, window_s=60.0, clock=clock) is one
    other = shared_pacer(api_key="lqt_b", limit=1, window_s=60.0, clock=clock)
    assert one.reserve(deadline=1.0) == 0.0 and one.reserve(deadline=1.0) is None
    assert other.reserve(deadline=1.0) == 0.0


def test_pacer_never_allows_more_than_the_limit_in_a_window() -> None:
    from opentelemetry_exporter_lumiqtrace.delivery import RequestPacer

    now = [0.0]
    pacer = RequestPacer(limit=1000, window_s=60.0, clock=lambda: now[0])
    slots = [pacer.reserve(deadline=1000.0) for _ in range(1001)]
    assert slots[:1000] == [0.0] * 1000 and slots[1000] == 60.0
    assert pacer.reserve(deadline=30.0) is None  # the next free slot is past the deadline: nothing reserved
    now[0] = 61.0
    assert pacer.reserve(deadline=1000.0) == 61.0


# -- answers -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("message", ["Rate limit exceeded; not a monthly quota exceeded", "monthly quota exceeded?"])
def test_a_429_merely_mentioning_the_quota_is_a_rate_limit(
    server: LocalIngestServer, exporter_factory: Any, message: str
) -> None:
    server.script(Reply(status=429, body={"error": message}, headers={"Retry-After": "1"}))
    exporter = exporter_factory(timeout=0.5)
    assert exporter.export(make_spans(4)) is SpanExportResult.FAILURE
    # A rate limit: held (1 s, past this deadline) and kept for the next attempt, not dropped as quota.
    stats = exporter.stats()
    assert stats["dropped_total"] == 0 and stats["buffered"] == 4
    assert exporter.export(make_spans(1)) is SpanExportResult.FAILURE  # the hold is global: nothing sent
    assert len(server.ingest_requests()) == 1


@pytest.mark.parametrize("message", ["Monthly quota exceeded", "  MONTHLY   quota\tEXCEEDED "])
def test_the_documented_quota_message_is_matched_case_and_space_insensitively(
    server: LocalIngestServer, exporter_factory: Any, message: str
) -> None:
    server.script(Reply(status=429, body={"error": message}))
    exporter = exporter_factory()
    assert exporter.export(make_spans(4)) is SpanExportResult.FAILURE
    assert exporter.stats()["dropped"] == {"quota": 4}


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_not_followed_and_the_events_are_kept(
    server: LocalIngestServer, exporter_factory: Any, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    location = "https://ingest.elsewhere.example/v1/ingest"
    server.script(*[Reply(status=status, body=b"", headers={"Location": location})] * 2)
    exporter = exporter_factory(timeout=1)
    with caplog.at_level(logging.WARNING, logger="opentelemetry_exporter_lumiqtrace"):
        assert exporter.export(make_spans(5)) is SpanExportResult.FAILURE
        assert exporter.export(make_spans(5)) is SpanExportResult.FAILURE
    stats = exporter.stats()
    assert stats["dropped_total"] == 0 and stats["buffered"] == 10
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "ingest.elsewhere.example" in warnings[0] and "LUMIQTRACE_BASE_URL" in warnings[0]
    assert server.api_key not in caplog.text
    # The right server answers again: everything kept goes out, nothing twice.
    assert exporter.export(make_spans(5)) is SpanExportResult.SUCCESS
    assert len(server.events()) == 15 and exporter.stats()["delivered"] == 15


def test_rejected_entries_of_a_2xx_answer_are_counted_as_rejected(
    server: LocalIngestServer, exporter_factory: Any
) -> None:
    secret = "lqt_" + "5e" * 32
    body = {
        "accepted": 3,
        "rejected": [
            {"index": 1, "error": f"field provider invalid (key {secret})"},
            {"index": 4, "error": "field timestamp invalid"},
        ],
        "cv": 0,
    }
    server.script(Reply(status=200, body=body))
    exporter = exporter_factory()
    assert exporter.export(make_spans(5)) is SpanExportResult.FAILURE
    stats = exporter.stats()
    assert stats["delivered"] == 3 and stats["dropped"] == {"rejected": 2}
    message = stats["last_error"]["rejected"]
    assert "invalid" in message and secret not in message


# -- shutdown and accounting ----------------------------------------------------------------------------------------


def test_shutdown_waits_for_an_export_cut_short_and_counts_its_events(
    server: LocalIngestServer, exporter_factory: Any
) -> None:
    server.script(Reply(status=429, body=RATE_LIMITED, headers={"Retry-After": "30"}))
    exporter = exporter_factory(timeout=60, retry_policy=RetryPolicy())
    thread = threading.Thread(target=exporter.export, args=(make_spans(3),))
    thread.start()
    assert server.wait_for_requests(1)
    start = time.monotonic()
    exporter.shutdown(timeout_millis=1000)
    assert time.monotonic() - start < 2.0
    # When shutdown returns the export's events are counted, not left in a dead buffer or in flight...
    stats = exporter.stats()
    assert stats["buffered"] == 0 and stats["dropped"] == {"shutdown": 3} and stats["in_flight"] == 0
    # ...and the export call is on its way out (its thread may need a moment to return), not waiting out the 30 s.
    thread.join(timeout=1.0)
    assert not thread.is_alive()


def test_shutdown_during_a_hanging_export_is_bounded_and_loses_nothing_uncounted(
    server: LocalIngestServer, exporter_factory: Any, tmp_path: pathlib.Path
) -> None:
    server.script(Reply(hang=True))
    policy = RetryPolicy(initial_backoff_s=0.01, max_request_timeout_s=2.5)
    exporter = exporter_factory(timeout=2.5, retry_policy=policy, spool_dir=tmp_path)
    thread = threading.Thread(target=exporter.export, args=(make_spans(4),))
    thread.start()
    assert server.wait_for_requests(1)
    start = time.monotonic()
    exporter.shutdown(timeout_millis=500)
    assert time.monotonic() - start < 1.0
    assert exporter.stats()["in_flight"] == 4  # still the export's: counted, not lost
    thread.join(5)
    stats = exporter.stats()
    # What the export brought back after shutdown went to the spool, not to a buffer nobody will send.
    assert stats["buffered"] == 0 and stats["in_flight"] == 0
    assert stats["spooled"] == 4 and stats["spool_pending"] == 4
    assert stats["handed"] == 4 == _accounted(stats)


def test_behind_a_batch_processor_against_a_hanging_server_every_span_is_counted(server: LocalIngestServer) -> None:
    from opentelemetry_exporter_lumiqtrace import LumiqTraceSpanExporter

    server.script(*[Reply(hang=True)] * 50)
    policy = RetryPolicy(initial_backoff_s=0.01, max_request_timeout_s=0.3)
    exporter = LumiqTraceSpanExporter(
        api_key=server.api_key, base_url=server.base_url, timeout=0.3, retry_policy=policy, linger=0
    )
    handed = _CountingExporter(exporter)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(handed, max_queue_size=2048, schedule_delay_millis=50))
    tracer = provider.get_tracer("t")
    for i in range(3000):
        with tracer.start_as_current_span(f"s{i}"):
            pass
    start = time.monotonic()
    provider.force_flush(timeout_millis=1000)
    assert time.monotonic() - start < 2.0 + 0.3 * 2
    provider.shutdown()
    stats = exporter.stats()
    assert stats["handed"] == handed.received > 0
    assert stats["in_flight"] == 0 and stats["buffered"] == 0
    assert _accounted(stats) == stats["handed"]
    assert stats["dropped_total"] == handed.received  # nothing was delivered: all counted as dropped


class _CountingExporter(SpanExporter):
    def __init__(self, exporter: Any) -> None:
        self.exporter = exporter
        self.received = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.received += len(spans)
        result: SpanExportResult = self.exporter.export(spans)
        return result

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        flushed: bool = self.exporter.force_flush(timeout_millis)
        return flushed

    def shutdown(self) -> None:
        self.exporter.shutdown(timeout_millis=500)


def test_stats_account_for_every_span_after_a_mixed_scenario(
    server: LocalIngestServer, exporter_factory: Any, tmp_path: pathlib.Path
) -> None:
    from opentelemetry_exporter_lumiqtrace.sampling import shared_sampling_state

    exporter = exporter_factory(timeout=0.5, buffer_max_events=150, spool_dir=tmp_path)
    server.script(
        Reply(status=200, body={"accepted": 99, "rejected": [{"error": "bad"}], "cv": 0}),
        Reply(status=500),
        Reply(status=429, body=RATE_LIMITED, headers={"Retry-After": "0.01"}),
        Reply(status=400, body={"error": "Invalid event"}),
    )
    handed = 0
    for count in (100, 250, 60):
        exporter.export(make_spans(count, traces=10))
        handed += count
    shared_sampling_state().set_rate(0.5)
    exporter.export(make_spans(200, traces=200))  # about half filtered out by the sampling rate
    handed += 200
    shared_sampling_state().set_rate(1.0)
    server.set_outage(True)
    for _ in range(3):
        exporter.export(make_spans(100, traces=10))  # overflows the buffer into the spool
        handed += 100
    stats = exporter.stats()
    assert stats["spooled"] > 0 and stats["buffered"] == 150
    assert stats["handed"] == handed == _accounted(stats)
    server.set_outage(False)
    exporter.force_flush(timeout_millis=2000)
    exporter.export(make_spans(10))
    handed += 10
    exporter.shutdown(timeout_millis=1000)
    stats = exporter.stats()
    assert stats["handed"] == handed == _accounted(stats)
    assert stats["dropped"]["rejected"] == 1 and stats["filtered"] > 0 and stats["unspooled"] > 0
    assert stats["spool_pending"] == stats["spooled"] - stats["unspooled"]


# -- force_flush from a signal handler -------------------------------------------------------------------------------

_SIGNAL_SCRIPT = """
import signal, sys, time
from opentelemetry_exporter_lumiqtrace import LumiqTraceSpanExporter
from opentelemetry_exporter_lumiqtrace.delivery import RetryPolicy
from opentelemetry_exporter_lumiqtrace.testing import LocalIngestServer, Reply
from tests.conftest import make_spans

server = LocalIngestServer().start()
# A slow server that keeps failing, so the retry buffer stays large and busy.
server.script(*[Reply(status=503, delay_s=0.01)] * 100000)
exporter = LumiqTraceSpanExporter(
    api_key=server.api_key, base_url=server.base_url, timeout=0.05, linger=0, buffer_max_events=8000,
    retry_policy=RetryPolicy(initial_backoff_s=0.005, max_backoff_s=0.01),
)
results = []

def on_alarm(signum, frame):
    results.append(exporter.force_flush(timeout_millis=20))

signal.signal(signal.SIGALRM, on_alarm)
signal.setitimer(signal.ITIMER_REAL, 0.0005, 0.0005)
batches = [make_spans(512, traces=64) for _ in range(4)]
end = time.monotonic() + 3
while time.monotonic() < end:
    for spans in batches:
        exporter.export(spans)
signal.setitimer(signal.ITIMER_REAL, 0, 0)
exporter.shutdown(timeout_millis=200)
server.stop()
print("signals", len(results), "false", results.count(False), flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "win32", reason="SIGALRM and setitimer are POSIX")
def test_force_flush_from_a_signal_handler_during_export_never_deadlocks(tmp_path: pathlib.Path) -> None:
    root = pathlib.Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    try:
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(_SIGNAL_SCRIPT)],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("force_flush from a signal handler deadlocked the exporting thread")
    assert done.returncode == 0, done.stderr[-2000:]
    words = done.stdout.split()
    assert words[0] == "signals" and int(words[1]) > 10  # the handler did run, many times, during exports
    assert int(words[3]) >= 1  # re-entrant calls answer False instead of waiting for the thread they interrupted


# -- throughput ----------------------------------------------------------------------------------------------------


def test_the_slices_of_one_export_travel_over_several_connections_at_once(
    server: LocalIngestServer, exporter_factory: Any
) -> None:
    exporter = exporter_factory(timeout=5)
    # A healthy, distant API first: slices go in parallel only while answers are 2xx and requests are slow.
    server.script(Reply(status=202, delay_s=0.05))
    exporter.export(make_spans(1))
    server.script(*[Reply(status=202, delay_s=0.4)] * 8)
    start = time.monotonic()
    assert exporter.export(make_spans(800, traces=80)) is SpanExportResult.SUCCESS
    elapsed = time.monotonic() - start
    # 8 requests of 0.4 s: 3.2 s one after another, 0.8 s over 4 connections.
    assert elapsed < 1.6
    assert len(server.events()) == 801
    stats = exporter.stats()
    assert stats["delivered"] == 801 and stats["requests"] == 9 and stats["handed"] == 801


def _send_threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name == "LumiqTraceSend"}


def test_a_near_api_gets_the_slices_one_at_a_time_without_helper_threads(
    server: LocalIngestServer, exporter_factory: Any
) -> None:
    # Answers within milliseconds: a second connection buys no time, and each hand-off to a helper thread costs CPU.
    # (A threshold of 0.1 s instead of the default 0.01 s: a loaded CI machine may take 10 ms over a request.)
    exporter = exporter_factory(timeout=5, retry_policy=RetryPolicy(parallel_min_latency_s=0.1))
    exporter.export(make_spans(1))
    before = _send_threads()
    assert exporter.export(make_spans(800, traces=80)) is SpanExportResult.SUCCESS
    assert _send_threads() - before == set()
    assert exporter.stats()["delivered"] == 801 and len(server.events()) == 801
    # The same exporter, once the API answers slowly, opens more connections again.
    server.script(*[Reply(status=202, delay_s=0.2)] * 9)
    exporter.export(make_spans(1))
    start = time.monotonic()
    assert exporter.export(make_spans(800, traces=80)) is SpanExportResult.SUCCESS
    assert time.monotonic() - start < 0.8  # 1.6 s one after another, 0.4 s over 4 connections
    assert exporter.stats()["delivered"] == 1602


def test_concurrent_slices_keep_order_and_accounting_under_failures(
    server: LocalIngestServer, exporter_factory: Any
) -> None:
    exporter = exporter_factory(timeout=3, retry_policy=FAST_POLICY)
    exporter.export(make_spans(1))
    server.script(
        Reply(status=202, delay_s=0.1),
        Reply(status=503, delay_s=0.1),
        Reply(status=202, delay_s=0.1),
        Reply(status=400, body={"error": "Invalid event"}),
    )
    spans = make_spans(600, traces=60)
    exporter.export(spans)
    stats = exporter.stats()
    assert stats["handed"] == 601 == _accounted(stats) and stats["in_flight"] == 0
    delivered = [e["span_id"] for e in server.events()]
    expected = {format(s.context.span_id, "016x") for s in spans}
    assert expected <= set(delivered) and len(delivered) == len(set(delivered)) == 601
    assert stats["delivered"] == 601 and stats["dropped"] == {}

# SPDX-License-Identifier: Apache-2.0
"""The exporter as a user meets it: configuration, the inert path, entry points, fork, self-tracing, metrics."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from opentelemetry_exporter_lumiqtrace import LumiqTraceSpanExporter
from opentelemetry_exporter_lumiqtrace.testing import LocalIngestServer, Reply

from .conftest import make_spans, recovered_server

KEY = "lqt_" + "0123456789abcdef" * 4


def test_zero_argument_construction_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUMIQTRACE_API_KEY", KEY)
    monkeypatch.setenv("LUMIQTRACE_BASE_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("LUMIQTRACE_TIMEOUT", "2.5")
    monkeypatch.setenv("LUMIQTRACE_COMPRESSION", "NONE")
    monkeypatch.setenv("LUMIQTRACE_ENVIRONMENT", "staging")
    exporter = LumiqTraceSpanExporter()
    assert exporter._api_key == KEY
    assert exporter._base_url == "http://127.0.0.1:9"
    assert exporter._timeout == 2.5
    assert exporter._compression == "none"
    assert exporter._mapping_options.environment == "staging"
    exporter.shutdown(timeout_millis=0)


def test_keywords_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUMIQTRACE_API_KEY", KEY)
    monkeypatch.setenv("LUMIQTRACE_TIMEOUT", "2.5")
    monkeypatch.setenv("LUMIQTRACE_COMPRESSION", "none")
    other = "lqt_" + "f" * 64
    exporter = LumiqTraceSpanExporter(api_key=other, timeout=7, compression="gzip", base_url="http://127.0.0.1:1")
    assert (exporter._api_key, exporter._timeout, exporter._compression) == (other, 7, "gzip")
    exporter.shutdown(timeout_millis=0)


@pytest.mark.parametrize(
    ("variable", "value", "attribute", "default"),
    [
        ("LUMIQTRACE_TIMEOUT", "ten", "_timeout", 10.0),
        ("LUMIQTRACE_TIMEOUT", "-1", "_timeout", 10.0),
        ("LUMIQTRACE_TIMEOUT", "nan", "_timeout", 10.0),
        ("LUMIQTRACE_COMPRESSION", "brotli", "_compression", "gzip"),
        ("LUMIQTRACE_BUFFER_MAX_EVENTS", "lots", "_buffer_max_events", 10_000),
    ],
)
def test_a_bad_variable_gets_one_warning_and_the_default(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    variable: str,
    value: str,
    attribute: str,
    default: Any,
) -> None:
    monkeypatch.setenv(variable, value)
    with caplog.at_level(logging.WARNING):
        exporter = LumiqTraceSpanExporter(api_key=KEY)
    assert getattr(exporter, attribute) == default
    warnings = [r.getMessage() for r in caplog.records if variable in r.getMessage()]
    assert len(warnings) == 1 and value in warnings[0]
    exporter.shutdown(timeout_millis=0)


def test_a_key_of_the_wrong_shape_gets_a_warning_that_does_not_show_it(caplog: pytest.LogCaptureFixture) -> None:
    secret = "sk-this-is-not-a-lumiqtrace-key-1234567890"
    with caplog.at_level(logging.WARNING):
        exporter = LumiqTraceSpanExporter(api_key=secret, base_url="http://127.0.0.1:1")
    assert "does not look like a project key" in caplog.text
    assert secret not in caplog.text and secret[4:] not in caplog.text
    exporter.shutdown(timeout_millis=0)


def test_repr_and_logs_never_show_the_key(server: LocalIngestServer, caplog: pytest.LogCaptureFixture) -> None:
    server.script(Reply(status=500), Reply(status=401, body={"error": "Invalid API key"}))
    with caplog.at_level(logging.DEBUG, logger="opentelemetry_exporter_lumiqtrace"):
        exporter = LumiqTraceSpanExporter(api_key=server.api_key, base_url=server.base_url)
        exporter.export(make_spans(3))
        exporter.shutdown()
    assert server.api_key not in repr(exporter)
    assert server.api_key[:8] in repr(exporter)
    assert server.api_key not in caplog.text and server.api_key[8:] not in caplog.text
    assert "401" in caplog.text


def test_without_a_key_the_exporter_is_inert(server: LocalIngestServer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        exporter = LumiqTraceSpanExporter(base_url=server.base_url)
        results = [exporter.export(make_spans(5)) for _ in range(3)]
    assert results == [SpanExportResult.FAILURE] * 3
    assert server.ingest_requests() == [] and server.config_requests() == []
    assert [r.getMessage() for r in caplog.records].count(
        "LUMIQTRACE_API_KEY is not set: the LumiqTrace exporter is inert and will send nothing. "
        "Set the variable or pass api_key= to export spans."
    ) == 1
    assert exporter.stats()["dropped"] == {"no_api_key": 15}
    assert exporter.force_flush() is True
    exporter.shutdown()


def _run(code: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LUMIQTRACE_"))}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_otel_traces_exporter_entry_point_builds_the_exporter_from_the_environment(server: LocalIngestServer) -> None:
    code = """
        from opentelemetry import trace
        from opentelemetry.sdk._configuration import _OTelSDKConfigurator
        _OTelSDKConfigurator().configure()
        provider = trace.get_tracer_provider()
        tracer = trace.get_tracer("entry-point-test")
        with tracer.start_as_current_span("root"):
            with tracer.start_as_current_span("chat gpt-4o") as span:
                span.set_attribute("gen_ai.operation.name", "chat")
                span.set_attribute("gen_ai.provider.name", "openai")
        provider.shutdown()
    """
    result = _run(
        code,
        {
            "OTEL_TRACES_EXPORTER": "lumiqtrace",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_SERVICE_NAME": "entry-point-svc",
            "LUMIQTRACE_API_KEY": server.api_key,
            "LUMIQTRACE_BASE_URL": server.base_url,
        },
    )
    assert result.returncode == 0, result.stderr
    events = server.events()
    assert len(events) == 2
    assert {e["tags"].get("service.name") for e in events} == {"entry-point-svc"}
    assert server.api_key not in result.stderr


def test_fork_child_and_parent_each_deliver_their_own_events_once(server: LocalIngestServer) -> None:
    code = f"""
        import os, sys
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry_exporter_lumiqtrace import LumiqTraceSpanExporter
        from opentelemetry_exporter_lumiqtrace.testing import Reply

        exporter = LumiqTraceSpanExporter(api_key={server.api_key!r}, base_url={server.base_url!r}, timeout=0.2)
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("fork")
        with tracer.start_as_current_span("before-fork"):
            pass
        # Warm the keep-alive connection so the child inherits an open socket.
        pid = os.fork()
        who = "child" if pid == 0 else "parent"
        for i in range(5):
            with tracer.start_as_current_span(f"{{who}}-{{i}}"):
                pass
        if pid == 0:
            exporter.shutdown()
            os._exit(0 if exporter.stats()["delivered"] == 5 else 3)
        _, status = os.waitpid(pid, 0)
        exporter.shutdown()
        sys.exit(os.waitstatus_to_exitcode(status) or (0 if exporter.stats()["delivered"] == 6 else 4))
    """
    result = _run(code, {})
    assert result.returncode == 0, result.stderr
    names = sorted(e["tags"]["otel.span_name"] for e in server.events())
    assert names == sorted(["before-fork"] + [f"{w}-{i}" for w in ("child", "parent") for i in range(5)])
    assert server.duplicates == 0


@pytest.mark.parametrize(
    ("module", "instrumentor_name"),
    [
        ("opentelemetry.instrumentation.requests", "RequestsInstrumentor"),
        # The exporter posts through urllib3's pool: its instrumentation is the one that would see the POST.
        ("opentelemetry.instrumentation.urllib3", "URLLib3Instrumentor"),
    ],
)
def test_the_exporters_own_requests_are_not_traced(
    server: LocalIngestServer, module: str, instrumentor_name: str
) -> None:
    instrumentation = pytest.importorskip(module)
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    exporter = LumiqTraceSpanExporter(api_key=server.api_key, base_url=server.base_url)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = getattr(instrumentation, instrumentor_name)()
    instrumentor.instrument(tracer_provider=provider)
    try:
        import requests

        requests.get(server.base_url + "/_test/stats", timeout=5)  # an application request: traced
        # The exporter's POST runs on this thread inside SimpleSpanProcessor and must not produce a span.
        with provider.get_tracer("t").start_as_current_span("app-work"):
            pass
        exporter.export(make_spans(3))
    finally:
        instrumentor.uninstrument()
    names = [s.name for s in memory.get_finished_spans()]
    assert names.count("GET") == 1
    assert "POST" not in names
    assert len(server.ingest_requests()) >= 3
    provider.shutdown()


def test_self_metrics_follow_the_semantic_conventions(server: LocalIngestServer) -> None:
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    exporter = LumiqTraceSpanExporter(api_key=server.api_key, base_url=server.base_url, meter_provider=meter_provider)
    exporter.export(make_spans(7))
    server.script(Reply(status=400, body={"error": "Invalid event"}))
    exporter.export(make_spans(1))
    data = reader.get_metrics_data()
    metrics: dict[str, Any] = {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    exported = metrics["otel.sdk.exporter.span.exported"].data.data_points
    ok = sum(p.value for p in exported if "error.type" not in p.attributes)
    failed = sum(p.value for p in exported if "error.type" in p.attributes)
    assert (ok, failed) == (7, 1)
    inflight = metrics["otel.sdk.exporter.span.inflight"].data.data_points
    assert sum(p.value for p in inflight) == 0
    duration = metrics["otel.sdk.exporter.operation.duration"].data.data_points
    assert sum(p.count for p in duration) == 2
    exporter.shutdown()


def test_warnings_are_throttled_to_one_per_reason_per_minute(
    server: LocalIngestServer, caplog: pytest.LogCaptureFixture
) -> None:
    from .conftest import FakeClock

    clock = FakeClock()
    exporter = LumiqTraceSpanExporter(api_key=server.api_key, base_url=server.base_url, _clock=clock)
    with caplog.at_level(logging.WARNING, logger="opentelemetry_exporter_lumiqtrace"):
        for _ in range(5):
            server.script(Reply(status=404, body={"error": "Not found"}))
            exporter.export(make_spans(1))
        clock.advance(61)
        server.script(Reply(status=404, body={"error": "Not found"}))
        exporter.export(make_spans(1))
    assert len([r for r in caplog.records if "rejected" in r.getMessage()]) == 2
    assert exporter.stats()["dropped"] == {"unexpected_status": 6}
    exporter.shutdown()


def test_proxy_variables_are_honoured(server: LocalIngestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # The transport reads proxy settings once, at construction, instead of on every request.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("http_proxy", raising=False)
    through_dead_proxy = LumiqTraceSpanExporter(api_key=server.api_key, base_url=server.base_url, timeout=0.3)
    assert through_dead_proxy.export(make_spans(2)) is SpanExportResult.FAILURE
    assert server.ingest_requests() == []
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    direct = LumiqTraceSpanExporter(api_key=server.api_key, base_url=server.base_url)
    assert direct.export(make_spans(2)) is SpanExportResult.SUCCESS
    through_dead_proxy.shutdown(timeout_millis=0)
    direct.shutdown()


def test_a_connection_the_server_dropped_is_replaced_without_losing_a_request(
    server: LocalIngestServer, exporter_factory: Any
) -> None:
    # The pooled keep-alive connection dies when the server restarts (or an idle timeout closes it): the next POST
    # must go out on a new connection at its first attempt, not fail and wait for a retry.
    exporter = exporter_factory()
    assert exporter.export(make_spans(3)) is SpanExportResult.SUCCESS
    with recovered_server(server) as restarted:
        assert exporter.export(make_spans(4)) is SpanExportResult.SUCCESS
        assert len(restarted.events()) == 4
    stats = exporter.stats()
    assert stats["delivered"] == 7
    assert stats["retries"] == 0

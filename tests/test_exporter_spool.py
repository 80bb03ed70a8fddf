# SPDX-License-Identifier: Apache-2.0
"""The disk spool as the exporter uses it: shutdown leftovers and overflow survive into the next process."""

from __future__ import annotations

import logging
import pathlib
from collections import Counter
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SpanExportResult

from opentelemetry_exporter_lumiqtrace.testing import LocalIngestServer

from .conftest import make_spans, recovered_server
from .test_exporter import _run


def _span_ids(server: LocalIngestServer) -> Counter[str]:
    return Counter(e["span_id"] for e in server.events())


def test_a_new_process_delivers_what_a_stopped_process_spooled(
    server: LocalIngestServer, tmp_path: pathlib.Path
) -> None:
    spool = tmp_path / "spool"
    server.stop()  # LumiqTrace unreachable while the first process runs
    code = """
        import json
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry_exporter_lumiqtrace import LumiqTraceSpanExporter

        exporter = LumiqTraceSpanExporter(timeout=0.3)
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        tracer = provider.get_tracer("first-process")
        for i in range(40):
            with tracer.start_as_current_span(f"first-{i}"):
                pass
        provider.shutdown()
        print(json.dumps(exporter.stats()))
    """
    env = {
        "LUMIQTRACE_API_KEY": server.api_key,
        "LUMIQTRACE_BASE_URL": server.base_url,
        "LUMIQTRACE_SPOOL_DIR": str(spool),
    }
    first = _run(code, env)
    assert first.returncode == 0, first.stderr
    assert '"spooled": 40' in first.stdout
    assert server.api_key not in "".join(p.name for p in spool.rglob("*"))

    server.start()
    second = _run(code.replace("first", "second"), env)
    assert second.returncode == 0, second.stderr
    names = Counter(e["tags"]["otel.span_name"].split("-")[0] for e in server.events())
    assert names == {"first": 40, "second": 40}
    assert set(_span_ids(server).values()) == {1}
    assert '"unspooled": 40' in second.stdout


def test_memory_overflow_goes_to_the_spool_and_comes_back(
    server: LocalIngestServer, exporter_factory: Any, tmp_path: pathlib.Path
) -> None:
    exporter = exporter_factory(timeout=0.2, buffer_max_events=50, spool_dir=tmp_path)
    server.set_outage(True)
    produced = []
    for _ in range(3):
        spans = make_spans(40, traces=40)
        produced += [format(s.context.span_id, "016x") for s in spans]
        exporter.export(spans)
    stats = exporter.stats()
    assert stats["buffered"] == 50 and stats["spooled"] == 70 and stats["dropped_total"] == 0
    assert stats["spool_pending"] == 70
    server.set_outage(False)
    assert exporter.force_flush(timeout_millis=5000)
    assert exporter.export(make_spans(1)) is SpanExportResult.SUCCESS  # each call drains one spool batch
    delivered = _span_ids(server)
    assert set(produced) <= set(delivered) and set(delivered.values()) == {1}
    assert exporter.stats()["spool_pending"] == 0


def test_another_key_never_sends_spooled_events(
    server: LocalIngestServer, exporter_factory: Any, tmp_path: pathlib.Path
) -> None:
    exporter = exporter_factory(timeout=0.2, spool_dir=tmp_path)
    server.set_outage(True)
    exporter.export(make_spans(10))
    exporter.shutdown(timeout_millis=200)
    assert exporter.stats()["spooled"] == 10
    with recovered_server(server) as recovered:
        other_key = "lqt_" + "cd" * 32
        recovered.add_key(other_key, project="proj_other")
        other = exporter_factory(api_key=other_key, spool_dir=tmp_path)
        other.export(make_spans(2))
        other.force_flush()
        assert len(recovered.events(project="proj_other")) == 2
        assert recovered.events(project="proj_test") == []


def test_an_unusable_spool_directory_degrades_to_memory_with_one_warning(
    server: LocalIngestServer, exporter_factory: Any, tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with caplog.at_level(logging.WARNING):
        exporter = exporter_factory(spool_dir=not_a_dir)
    assert len([r for r in caplog.records if "spool" in r.getMessage()]) == 1
    assert exporter.export(make_spans(5)) is SpanExportResult.SUCCESS
    assert len(server.events()) == 5

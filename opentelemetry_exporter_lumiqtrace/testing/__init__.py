# SPDX-License-Identifier: Apache-2.0
"""A local LumiqTrace-compatible ingest server for tests and the quick start.

Example::

    from opentelemetry_exporter_lumiqtrace.testing import LocalIngestServer

    with LocalIngestServer() as server:
        exporter = LumiqTraceSpanExporter(api_key=server.api_key, base_url=server.base_url)
        ...
        assert server.wait_for_events(1)
        print(server.events())

Run it standalone with ``python -m opentelemetry_exporter_lumiqtrace.testing``; in pytest, request the
``lumiqtrace_server`` fixture. It also accepts OTLP/HTTP traces on ``/v1/otel`` (``server.otel_url``; needs
``opentelemetry-proto``), recorded as LumiqTrace's OTLP endpoint documents.

Without sockets, :class:`IngestProtocol` runs the same protocol in memory: ``protocol.handle(HttpRequest(...))``
returns the :class:`HttpResponse` the server would send. :class:`Reply` (scripted answers, delays, dropped
connections, hangs) and ``set_outage`` are fault injection for tests, not LumiqTrace behaviour.
"""

from opentelemetry_exporter_lumiqtrace.testing.protocol import (
    DEFAULT_PROJECT,
    MAX_EVENTS_PER_BATCH,
    TEST_API_KEY,
    HttpRequest,
    HttpResponse,
    IngestProtocol,
    RecordedRequest,
    Reply,
)
from opentelemetry_exporter_lumiqtrace.testing.server import LocalIngestServer
from opentelemetry_exporter_lumiqtrace.testing.validation import validate_event

__all__ = [
    "DEFAULT_PROJECT",
    "MAX_EVENTS_PER_BATCH",
    "TEST_API_KEY",
    "HttpRequest",
    "HttpResponse",
    "IngestProtocol",
    "LocalIngestServer",
    "RecordedRequest",
    "Reply",
    "validate_event",
]

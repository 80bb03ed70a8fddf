# SPDX-License-Identifier: Apache-2.0
"""Shared fixtures: spans made by the real SDK, exporters pointed at the local server, isolated state."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trustme
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from opentelemetry_exporter_lumiqtrace import delivery
from opentelemetry_exporter_lumiqtrace.delivery import RetryPolicy
from opentelemetry_exporter_lumiqtrace.sampling import shared_sampling_state
from opentelemetry_exporter_lumiqtrace.testing import LocalIngestServer
from opentelemetry_exporter_lumiqtrace.transport import IngestTransport

# Fast waits for tests: the rules are the same, the numbers small.
FAST_POLICY = RetryPolicy(initial_backoff_s=0.01, max_backoff_s=0.05, default_retry_after_s=0.2)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("LUMIQTRACE_"):
            monkeypatch.delenv(name)
    shared_sampling_state().reset(1.0)
    # Each test is a process of its own as far as the key's request budget goes (the pacer is per key per process).
    delivery._shared_pacers.clear()
    yield
    shared_sampling_state().reset(1.0)
    logging.getLogger("opentelemetry_exporter_lumiqtrace").setLevel(logging.NOTSET)


@pytest.fixture
def server() -> Iterator[LocalIngestServer]:
    with LocalIngestServer() as srv:
        yield srv


def make_spans(count: int, *, traces: int = 1, service: str = "svc") -> list[ReadableSpan]:
    """``count`` GenAI chat spans spread over ``traces`` traces, each trace under one HTTP server span."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("tests")
    per_trace = max(1, count // traces)
    made = 0
    while made < count:
        with tracer.start_as_current_span("GET /chat", kind=SpanKind.SERVER) as root:
            root.set_attribute("http.request.method", "GET")
            made += 1
            for _ in range(min(per_trace - 1, count - made)):
                with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT) as span:
                    span.set_attribute("gen_ai.operation.name", "chat")
                    span.set_attribute("gen_ai.provider.name", "openai")
                    span.set_attribute("gen_ai.request.model", "gpt-4o")
                    span.set_attribute("gen_ai.usage.input_tokens", 12)
                    span.set_attribute("gen_ai.usage.output_tokens", 7)
                made += 1
    provider.shutdown()
    return list(memory.get_finished_spans())


@pytest.fixture
def exporter_for() -> Iterator[Callable[..., Any]]:
    """``exporter_for(server, **kwargs)``: an exporter for any local server (plain or TLS), with fast retries and no
    linger, shut down after the test."""
    from opentelemetry_exporter_lumiqtrace import LumiqTraceSpanExporter

    made: list[LumiqTraceSpanExporter] = []

    def factory(server: LocalIngestServer, **kwargs: Any) -> LumiqTraceSpanExporter:
        kwargs.setdefault("api_key", server.api_key)
        kwargs.setdefault("base_url", server.base_url)
        kwargs.setdefault("retry_policy", FAST_POLICY)
        kwargs.setdefault("linger", 0)  # tests count requests; the linger has tests of its own
        exporter = LumiqTraceSpanExporter(**kwargs)
        made.append(exporter)
        return exporter

    yield factory
    for exporter in made:
        exporter.shutdown(timeout_millis=1000)


@pytest.fixture
def exporter_factory(server: LocalIngestServer, exporter_for: Callable[..., Any]) -> Callable[..., Any]:
    """``exporter_factory(**kwargs)``: ``exporter_for`` bound to the ``server`` fixture."""
    return functools.partial(exporter_for, server)


@contextlib.contextmanager
def recovered_server(server: LocalIngestServer) -> Iterator[LocalIngestServer]:
    """The outage ends on a new server on the same port, with the same key and project.

    Turning the old server's outage off instead races with requests the exporter abandoned at its deadline: a
    server thread still holding one could read the flag after the flip and store events the exporter had already
    given up on (and later evicted). Such leftovers now land on the stopped server, not on the one the test reads.
    """
    port, key = server.port, server.api_key
    server.stop()
    fresh = LocalIngestServer(port=port, api_keys=[key]).start()
    try:
        yield fresh
    finally:
        fresh.stop()


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# -- transports against raw loopback servers (tests/test_hostile_network.py, tests/test_transport_*.py) ------------

TRANSPORT_KEY = "lqt_" + "5e" * 32
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture
def no_ambient_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy from the machine's environment: the tests talk to 127.0.0.1 directly."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def transports() -> Iterator[Callable[..., IngestTransport]]:
    """Makes ``IngestTransport``s (key ``TRANSPORT_KEY``, gzip bodies unless told) and closes them after the test."""
    made: list[IngestTransport] = []

    def factory(base_url: str, **kwargs: Any) -> IngestTransport:
        kwargs.setdefault("api_key", TRANSPORT_KEY)
        kwargs.setdefault("gzip_body", True)
        transport = IngestTransport(base_url=base_url, **kwargs)
        made.append(transport)
        return transport

    yield factory
    for transport in made:
        transport.close()


@pytest.fixture
def trusted_tls_context(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> ssl.SSLContext:
    """A server-side TLS context for 127.0.0.1 whose CA the exporter trusts (``REQUESTS_CA_BUNDLE``)."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    return context

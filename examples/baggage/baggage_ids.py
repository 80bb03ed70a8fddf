# SPDX-License-Identifier: Apache-2.0
"""user.id and session.id on every span with ``opentelemetry-processor-baggage``, including across services.

    python baggage_ids.py

Service A sets the ids once as baggage; every span it starts gets them as attributes (``BaggageSpanProcessor``); the
W3C ``baggage`` header carries them to service B, whose spans get them too. LumiqTrace events then have ``user_id``
and ``session_id``. Prints the events the (local) LumiqTrace server received.
"""

from __future__ import annotations

import json
import os
from contextlib import ExitStack

from opentelemetry import baggage, context
from opentelemetry.processor.baggage import BaggageSpanProcessor
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from opentelemetry_exporter_lumiqtrace import LumiqTraceSpanExporter

# Baggage arrives from outside in a header: copy only the keys meant for spans.
IDENTITY_KEYS = ("user.id", "session.id")


def make_provider(service: str, exporter: LumiqTraceSpanExporter) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BaggageSpanProcessor(lambda key: key in IDENTITY_KEYS))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def main() -> int:
    with ExitStack() as stack:
        server = None
        if not os.environ.get("LUMIQTRACE_API_KEY"):
            from opentelemetry_exporter_lumiqtrace.testing import LocalIngestServer

            server = stack.enter_context(LocalIngestServer())
            os.environ.update(LUMIQTRACE_API_KEY=server.api_key, LUMIQTRACE_BASE_URL=server.base_url)
        exporter = LumiqTraceSpanExporter()
        front, back = make_provider("frontend", exporter), make_provider("llm-service", exporter)

        # Service A: the ids are known once, where the user is authenticated.
        ctx = baggage.set_baggage("session.id", "sess_42", baggage.set_baggage("user.id", "user_4421"))
        token = context.attach(ctx)
        try:
            with front.get_tracer("a").start_as_current_span("POST /ask", kind=SpanKind.SERVER):
                headers: dict[str, str] = {}
                inject(headers)  # traceparent + baggage, as an HTTP client instrumentation does
        finally:
            context.detach(token)

        # Service B: the extracted context carries the baggage; its spans get the ids without any code of its own.
        token = context.attach(extract(headers))
        try:
            tracer = back.get_tracer("b")
            with tracer.start_as_current_span("POST /complete", kind=SpanKind.SERVER):  # noqa: SIM117 (shows the tree)
                with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT) as llm:
                    llm.set_attribute("gen_ai.operation.name", "chat")
                    llm.set_attribute("gen_ai.provider.name", "openai")
                    llm.set_attribute("gen_ai.request.model", "gpt-4o-mini")
        finally:
            context.detach(token)
        front.shutdown()
        back.shutdown()
        print(f"baggage header: {headers.get('baggage')}")
        if server is not None:
            for event in server.events():
                fields = ("user_id", "session_id", "trace_id", "span_id", "parent_span_id")
                print(json.dumps({"span": event["tags"]["otel.span_name"], **{k: event.get(k) for k in fields}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

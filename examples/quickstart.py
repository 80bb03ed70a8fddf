# SPDX-License-Identifier: Apache-2.0
"""Quick start: one realistic LLM trace exported to LumiqTrace.

With LUMIQTRACE_API_KEY set, spans go to LumiqTrace (or LUMIQTRACE_BASE_URL). Without it, the example starts the
bundled local LumiqTrace-compatible server on 127.0.0.1 and exports there, then prints what the server received.

    python examples/quickstart.py
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import ExitStack

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from opentelemetry_exporter_lumiqtrace import LumiqTraceSpanExporter
from opentelemetry_exporter_lumiqtrace.testing import LocalIngestServer


def produce_trace(provider: TracerProvider) -> None:
    """A chat request: the HTTP handler, a streamed GPT call that asks for a tool, the tool, and a Claude call."""
    tracer = provider.get_tracer("quickstart")
    with tracer.start_as_current_span("POST /chat", kind=SpanKind.SERVER) as request:
        request.set_attribute("http.request.method", "POST")
        request.set_attribute("http.route", "/chat")
        request.set_attribute("user.id", "user_4421")
        request.set_attribute("session.id", "sess_42")

        with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT) as llm:
            llm.set_attribute("gen_ai.operation.name", "chat")
            llm.set_attribute("gen_ai.provider.name", "openai")
            llm.set_attribute("gen_ai.request.model", "gpt-4o")
            llm.set_attribute("gen_ai.response.model", "gpt-4o-2024-08-06")
            llm.set_attribute("gen_ai.request.stream", True)
            llm.set_attribute("gen_ai.response.time_to_first_chunk", 0.012)
            llm.set_attribute("gen_ai.usage.input_tokens", 512)
            llm.set_attribute("gen_ai.usage.output_tokens", 48)
            llm.set_attribute("gen_ai.response.finish_reasons", ["tool_calls"])
            llm.set_attribute("session.id", "sess_42")
            llm.set_attribute("user.id", "user_4421")
            time.sleep(0.03)

        with tracer.start_as_current_span("execute_tool get_weather") as tool:
            tool.set_attribute("gen_ai.operation.name", "execute_tool")
            tool.set_attribute("gen_ai.tool.name", "get_weather")
            tool.set_attribute("gen_ai.tool.call.id", "call_1")
            time.sleep(0.01)

        with tracer.start_as_current_span("chat claude-sonnet-4-5", kind=SpanKind.CLIENT) as llm:
            llm.set_attribute("gen_ai.operation.name", "chat")
            llm.set_attribute("gen_ai.provider.name", "anthropic")
            llm.set_attribute("gen_ai.request.model", "claude-sonnet-4-5")
            llm.set_attribute("gen_ai.usage.input_tokens", 830)
            llm.set_attribute("gen_ai.usage.output_tokens", 122)
            llm.set_attribute("gen_ai.usage.cache_read.input_tokens", 600)
            llm.set_attribute("session.id", "sess_42")
            llm.set_attribute("user.id", "user_4421")
            llm.set_status(Status(StatusCode.OK))
            time.sleep(0.02)


def main() -> int:
    with ExitStack() as stack:
        server: LocalIngestServer | None = None
        if os.environ.get("LUMIQTRACE_API_KEY"):
            exporter = LumiqTraceSpanExporter()
            print(f"Exporting to LumiqTrace: {exporter!r}")
        else:
            server = stack.enter_context(LocalIngestServer())
            exporter = LumiqTraceSpanExporter(api_key=server.api_key, base_url=server.base_url)
            print(f"LUMIQTRACE_API_KEY is not set: exporting to the bundled local server at {server.base_url}")

        provider = TracerProvider(resource=Resource.create({"service.name": "quickstart"}))
        provider.add_span_processor(BatchSpanProcessor(exporter))
        produce_trace(provider)
        provider.force_flush()
        stats = exporter.stats()
        provider.shutdown()

        if server is not None:
            events = server.events()
            print(f"The local server received {len(events)} events:")
            for event in events:
                print(json.dumps(event, indent=None, sort_keys=False))
            ok = len(events) == 4
        else:
            ok = stats["delivered"] == 4
        print(
            f"delivered={stats['delivered']} dropped={stats['dropped']} buffered={stats['buffered']}",
            file=sys.stderr if not ok else sys.stdout,
        )
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

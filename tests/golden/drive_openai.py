# SPDX-License-Identifier: Apache-2.0
"""Drive the real ``openai`` client, instrumented by one real instrumentation, against the fake OpenAI endpoint of
``fake_providers.py``.

Run as ``python drive_openai.py <official|openinference|openllmetry> [--fixtures]``: it exports through
``LumiqTraceSpanExporter`` to a ``LocalIngestServer`` and prints the accepted events as JSON on stdout, or with
``--fixtures`` the finished spans as golden-corpus fixtures (``tests/golden/corpus.py``; ``make_corpus`` records
them). Each instrumentation runs in its own process because they patch the same client.

Scenarios are told apart by the requested model, which the fake endpoint also uses to pick its answer:

=========================  ===================================================
``gpt-4o-mini``             chat, answers with model ``gpt-4o-mini-2024-07-18``
``gpt-4o``                  streaming chat (``stream_options.include_usage``)
``text-embedding-3-small``  embeddings
``gpt-4.1-mini``            429 rate limit
``gpt-4.1-nano``            answers too late: client timeout
=========================  ===================================================
"""

from __future__ import annotations

import json
import sys
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from fake_providers import FakeProviderServer  # run as a script: tests/golden is on sys.path
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from opentelemetry_exporter_lumiqtrace.exporter import LumiqTraceSpanExporter
from opentelemetry_exporter_lumiqtrace.testing import LocalIngestServer

SESSION = "sess-golden-1"
CLIENT_TIMEOUT_S = 0.2


class _SessionProcessor(SpanProcessor):
    """What traceloop-sdk does for OpenLLMetry: stamp association properties on every span at start."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        span.set_attribute("traceloop.association.properties.session_id", SESSION)

    def on_end(self, span: ReadableSpan) -> None:
        pass


def _instrument(which: str, provider: TracerProvider) -> tuple[Any, Any]:
    """Instrument openai; return (instrumentor, factory of a context manager that sets the session)."""
    if which == "official":
        from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor
        from opentelemetry.util.genai.handler import TelemetryHandler

        instrumentor = OpenAIInstrumentor()
        instrumentor.instrument(tracer_provider=provider)
        handler = TelemetryHandler(tracer_provider=provider)

        def session() -> AbstractContextManager[Any]:
            return handler.invoke_local_agent(agent_name="golden-agent", conversation_id=SESSION)

        return instrumentor, session
    if which == "openinference":
        from openinference.instrumentation import using_session
        from openinference.instrumentation.openai import OpenAIInstrumentor as OIInstrumentor

        instrumentor = OIInstrumentor()
        instrumentor.instrument(tracer_provider=provider)
        return instrumentor, lambda: using_session(SESSION)
    if which == "openllmetry":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor as OLInstrumentor

        provider.add_span_processor(_SessionProcessor())
        instrumentor = OLInstrumentor()
        instrumentor.instrument(tracer_provider=provider)
        return instrumentor, nullcontext
    raise SystemExit(f"unknown instrumentation {which!r}")


def main(which: str, *, fixtures: bool = False) -> None:
    import openai

    with FakeProviderServer() as fake, LocalIngestServer() as server:
        base_url = fake.openai_base_url
        provider = TracerProvider(resource=Resource({"service.name": f"golden-{which}"}))
        exporter = LumiqTraceSpanExporter(api_key=server.api_key, base_url=server.base_url, environment="test")
        instrumentor, session = _instrument(which, provider)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        recorded = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(recorded))
        client = openai.OpenAI(api_key="sk-golden-test", base_url=base_url, max_retries=0)
        messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]
        try:
            with session():
                client.chat.completions.create(model="gpt-4o-mini", messages=messages)
            with session():
                stream = client.chat.completions.create(
                    model="gpt-4o", messages=messages, stream=True, stream_options={"include_usage": True}
                )
                for _ in stream:
                    pass
            with session():
                client.embeddings.create(model="text-embedding-3-small", input="hello")
            try:
                with session():
                    client.chat.completions.create(model="gpt-4.1-mini", messages=messages)
            except openai.RateLimitError:
                pass
            try:
                with session():
                    client.with_options(timeout=CLIENT_TIMEOUT_S).chat.completions.create(
                        model="gpt-4.1-nano", messages=messages
                    )
            except openai.APITimeoutError:
                pass
        finally:
            instrumentor.uninstrument()
            provider.shutdown()
        if fixtures:
            from tests.golden.corpus import span_to_fixture

            json.dump([span_to_fixture(span) for span in recorded.get_finished_spans()], sys.stdout)
        else:
            json.dump(server.events(), sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], fixtures="--fixtures" in sys.argv[2:])

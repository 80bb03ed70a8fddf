# SPDX-License-Identifier: Apache-2.0
"""Drive the real ``openai`` client, instrumented by one real instrumentation, against a fake OpenAI endpoint.

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
import threading
import time
from contextlib import AbstractContextManager, nullcontext, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from opentelemetry_exporter_lumiqtrace.exporter import LumiqTraceSpanExporter
from opentelemetry_exporter_lumiqtrace.testing import LocalIngestServer

SESSION = "sess-golden-1"
FIRST_CHUNK_DELAY_S = 0.08
TIMEOUT_SERVER_DELAY_S = 0.6
CLIENT_TIMEOUT_S = 0.2


class FakeOpenAI(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep stderr quiet
        pass

    def _json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        request = json.loads(self.rfile.read(length) or b"{}")
        model = request.get("model", "")
        if self.path.endswith("/embeddings"):
            self._json(
                200,
                {
                    "object": "list",
                    "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
                    "model": model,
                    "usage": {"prompt_tokens": 6, "total_tokens": 6},
                },
            )
            return
        if model == "gpt-4.1-mini":
            self._json(
                429,
                {
                    "error": {
                        "message": "Rate limit reached for requests",
                        "type": "requests",
                        "param": None,
                        "code": "rate_limit_exceeded",
                    }
                },
                {"retry-after": "1"},
            )
            return
        if model == "gpt-4.1-nano":
            time.sleep(TIMEOUT_SERVER_DELAY_S)
            with suppress(OSError):
                self._json(500, {"error": {"message": "too late"}})
            return
        if request.get("stream"):
            self._stream(model)
            return
        self._json(
            200,
            {
                "id": "chatcmpl-golden",
                "object": "chat.completion",
                "created": 1776679200,
                "model": "gpt-4o-mini-2024-07-18",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "Hello there!"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": 12,
                    "completion_tokens": 5,
                    "total_tokens": 17,
                    "prompt_tokens_details": {"cached_tokens": 4},
                },
            },
        )

    def _stream(self, model: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        base = {
            "id": "chatcmpl-stream",
            "object": "chat.completion.chunk",
            "created": 1776679200,
            "model": "gpt-4o-2024-08-06",
        }
        time.sleep(FIRST_CHUNK_DELAY_S)
        chunks = [
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
            {**base, "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]},
            {**base, "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": None}]},
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {**base, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}},
        ]
        for chunk in chunks:
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
            time.sleep(0.005)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


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

    fake = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    fake.daemon_threads = True
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{fake.server_address[1]}/v1"

    with LocalIngestServer() as server:
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
            fake.shutdown()
        if fixtures:
            from tests.golden.corpus import span_to_fixture

            json.dump([span_to_fixture(span) for span in recorded.get_finished_spans()], sys.stdout)
        else:
            json.dump(server.events(), sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], fixtures="--fixtures" in sys.argv[2:])

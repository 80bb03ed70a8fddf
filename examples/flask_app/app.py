# SPDX-License-Identifier: Apache-2.0
"""A Flask app with an LLM-calling route, traced to LumiqTrace.

Flask and requests instrumentation make the HTTP spans; the LLM call gets a GenAI span by hand (an OpenAI
instrumentation would make the same one); ``BaggageSpanProcessor`` copies ``user.id`` and ``session.id`` from baggage
onto every span, so each LumiqTrace event carries ``user_id`` and ``session_id``.

    python app.py [--port 5000]

Without ``LUMIQTRACE_API_KEY`` it exports to the bundled local LumiqTrace server; without ``LLM_BASE_URL`` it starts a
fake OpenAI-compatible endpoint on loopback. See README.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from typing import Any

import requests
from flask import Flask, Request, request
from opentelemetry import baggage, context, trace
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.processor.baggage import BaggageSpanProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

from opentelemetry_exporter_lumiqtrace import LumiqTraceSampler, LumiqTraceSpanExporter

MODEL = os.environ.get("LLM_MODEL", "gpt-4o-mini")
# Only these baggage keys become span attributes: baggage arrives from outside in a request header.
IDENTITY_KEYS = ("user.id", "session.id")

app = Flask(__name__)


def setup_tracing(flask_app: Flask, *, service_name: str = "flask-chat") -> TracerProvider:
    """Once per process (per worker under gunicorn: see examples/gunicorn)."""
    provider = TracerProvider(
        resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name)}),
        sampler=LumiqTraceSampler(),
    )
    provider.add_span_processor(BaggageSpanProcessor(lambda key: key in IDENTITY_KEYS))
    provider.add_span_processor(BatchSpanProcessor(LumiqTraceSpanExporter()))  # reads LUMIQTRACE_* variables
    trace.set_tracer_provider(provider)
    FlaskInstrumentor().instrument_app(flask_app)
    RequestsInstrumentor().instrument()
    return provider


@contextmanager
def identified_user(req: Request) -> Iterator[None]:
    """Put the caller's ids on the request span and in baggage, so every span below carries them too."""
    ctx = context.get_current()
    server_span = trace.get_current_span()
    for key, header in (("user.id", "X-User-Id"), ("session.id", "X-Session-Id")):
        value = req.headers.get(header)
        if value:
            # The server span started before the app knew the user: baggage only reaches spans started later.
            server_span.set_attribute(key, value)
            ctx = baggage.set_baggage(key, value, ctx)
    token = context.attach(ctx)
    try:
        yield
    finally:
        context.detach(token)


def call_llm(question: str) -> str:
    """One chat completion, described with the OpenTelemetry GenAI conventions."""
    base_url = os.environ["LLM_BASE_URL"].rstrip("/")
    tracer = trace.get_tracer(__name__)
    with tracer.start_as_current_span(f"chat {MODEL}", kind=SpanKind.CLIENT) as span:
        span.set_attribute("gen_ai.operation.name", "chat")
        span.set_attribute("gen_ai.provider.name", "openai")
        span.set_attribute("gen_ai.request.model", MODEL)
        response = requests.post(
            f"{base_url}/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": question}]},
            timeout=30,
        )
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        span.set_attribute("gen_ai.response.model", data["model"])
        span.set_attribute("gen_ai.usage.input_tokens", data["usage"]["prompt_tokens"])
        span.set_attribute("gen_ai.usage.output_tokens", data["usage"]["completion_tokens"])
        span.set_attribute("gen_ai.response.finish_reasons", [c["finish_reason"] for c in data["choices"]])
        return str(data["choices"][0]["message"]["content"])


@app.post("/chat")
def chat() -> dict[str, str]:
    with identified_user(request):
        payload = request.get_json(silent=True) or {}
        return {"answer": call_llm(str(payload.get("message", "Hello")))}


@app.get("/health")
def health() -> str:
    return "ok"


def _stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # leaves serve_forever() so that the exit stack flushes and stops everything


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5000, help="0 picks a free port")
    port = parser.parse_args().port
    with ExitStack() as stack:
        if not os.environ.get("LUMIQTRACE_API_KEY"):
            from opentelemetry_exporter_lumiqtrace.testing import LocalIngestServer

            ingest = stack.enter_context(LocalIngestServer())
            os.environ.update(LUMIQTRACE_API_KEY=ingest.api_key, LUMIQTRACE_BASE_URL=ingest.base_url)
            print(f"LUMIQTRACE_API_KEY is not set: exporting to the local server, see {ingest.base_url}/_test/events")
        if not os.environ.get("LLM_BASE_URL"):
            import fake_llm

            llm = fake_llm.start()
            stack.callback(llm.shutdown)
            os.environ["LLM_BASE_URL"] = f"http://127.0.0.1:{llm.server_port}"
        provider = setup_tracing(app)
        stack.callback(provider.shutdown)  # flushes the last spans on the way out

        from werkzeug.serving import make_server

        server = make_server("127.0.0.1", port, app, threaded=True)
        signal.signal(signal.SIGTERM, _stop)
        print(f"Serving on http://127.0.0.1:{server.server_port}", flush=True)
        with suppress(KeyboardInterrupt):
            server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())

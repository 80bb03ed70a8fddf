# SPDX-License-Identifier: Apache-2.0
"""A one-file Django project with an LLM-calling view, traced to LumiqTrace.

    python app.py runserver --noreload 127.0.0.1:8000

Tracing is set up from settings (``LUMIQTRACE_SERVICE_NAME`` below) before Django loads its middleware, as a
``manage.py`` or ``wsgi.py`` would. See README.md.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import django
import requests
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import path
from opentelemetry import baggage, context, trace
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.processor.baggage import BaggageSpanProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

from opentelemetry_exporter_lumiqtrace import LumiqTraceSampler, LumiqTraceSpanExporter

MODEL = "gpt-4o-mini"
IDENTITY_KEYS = ("user.id", "session.id")

settings.configure(
    DEBUG=False,
    SECRET_KEY="example-only-not-secret",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    # The exporter itself reads LUMIQTRACE_API_KEY / LUMIQTRACE_BASE_URL; the service name is a Django setting here.
    LUMIQTRACE_SERVICE_NAME=os.environ.get("OTEL_SERVICE_NAME", "django-chat"),
)


def setup_tracing() -> TracerProvider:
    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.LUMIQTRACE_SERVICE_NAME}), sampler=LumiqTraceSampler()
    )
    provider.add_span_processor(BaggageSpanProcessor(lambda key: key in IDENTITY_KEYS))
    provider.add_span_processor(BatchSpanProcessor(LumiqTraceSpanExporter()))
    trace.set_tracer_provider(provider)
    DjangoInstrumentor().instrument()  # before django.setup(): it adds its middleware to settings.MIDDLEWARE
    RequestsInstrumentor().instrument()
    return provider


def call_llm(question: str) -> str:
    base_url = os.environ["LLM_BASE_URL"].rstrip("/")
    with trace.get_tracer(__name__).start_as_current_span(f"chat {MODEL}", kind=SpanKind.CLIENT) as span:
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


def chat(request: HttpRequest) -> JsonResponse:
    ctx = context.get_current()
    for key, header in (("user.id", "X-User-Id"), ("session.id", "X-Session-Id")):
        value = request.headers.get(header)
        if value:
            trace.get_current_span().set_attribute(key, value)  # the request span started before we knew
            ctx = baggage.set_baggage(key, value, ctx)
    token = context.attach(ctx)
    try:
        return JsonResponse({"answer": call_llm(request.GET.get("message", "Hello"))})
    finally:
        context.detach(token)


urlpatterns = [path("chat", chat)]


if __name__ == "__main__":
    import atexit

    if not os.environ.get("LUMIQTRACE_API_KEY"):
        from opentelemetry_exporter_lumiqtrace.testing import LocalIngestServer

        ingest = LocalIngestServer().start()
        os.environ.update(LUMIQTRACE_API_KEY=ingest.api_key, LUMIQTRACE_BASE_URL=ingest.base_url)
        print(f"LUMIQTRACE_API_KEY is not set: exporting to the local server, see {ingest.base_url}/_test/events")
    if not os.environ.get("LLM_BASE_URL"):
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "flask_app"))
        import fake_llm

        os.environ["LLM_BASE_URL"] = f"http://127.0.0.1:{fake_llm.start().server_port}"
    atexit.register(setup_tracing().shutdown)
    django.setup()
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)

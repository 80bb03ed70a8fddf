# SPDX-License-Identifier: Apache-2.0
"""An app with no tracing setup of its own: ``opentelemetry-instrument`` reads ``OTEL_CONFIG_FILE``.

OTEL_CONFIG_FILE=otel-config.yaml opentelemetry-instrument python app.py
"""

from __future__ import annotations

from opentelemetry import trace

tracer = trace.get_tracer("declarative-demo")
with tracer.start_as_current_span("handle request", kind=trace.SpanKind.SERVER):  # noqa: SIM117 (shows the tree)
    with tracer.start_as_current_span("chat gpt-4o-mini", kind=trace.SpanKind.CLIENT) as span:
        span.set_attribute("gen_ai.operation.name", "chat")
        span.set_attribute("gen_ai.provider.name", "openai")
        span.set_attribute("gen_ai.request.model", "gpt-4o-mini")
        span.set_attribute("gen_ai.usage.input_tokens", 20)
        span.set_attribute("gen_ai.usage.output_tokens", 5)
provider = trace.get_tracer_provider()
print(f"sampler: {type(getattr(provider, 'sampler', None)).__name__}", flush=True)

# SPDX-License-Identifier: Apache-2.0
"""OpenTelemetry span exporter for LumiqTrace, the LLM and agent observability service.

Usage::

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry_exporter_lumiqtrace import LumiqTraceSpanExporter

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(LumiqTraceSpanExporter()))  # reads LUMIQTRACE_API_KEY
    trace.set_tracer_provider(provider)

Or with no code at all: ``OTEL_TRACES_EXPORTER=lumiqtrace opentelemetry-instrument python app.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry_exporter_lumiqtrace.version import __version__

if TYPE_CHECKING:
    from opentelemetry_exporter_lumiqtrace.exporter import LumiqTraceSpanExporter
    from opentelemetry_exporter_lumiqtrace.sampling import LumiqTraceSampler

__all__ = ["LumiqTraceSampler", "LumiqTraceSpanExporter", "__version__"]


def __getattr__(name: str) -> Any:
    # Imported on first use so that `opentelemetry_exporter_lumiqtrace.testing` (the local server, stdlib only)
    # does not pay for the SDK and the exporter.
    if name == "LumiqTraceSpanExporter":
        from opentelemetry_exporter_lumiqtrace.exporter import LumiqTraceSpanExporter

        return LumiqTraceSpanExporter
    if name == "LumiqTraceSampler":
        from opentelemetry_exporter_lumiqtrace.sampling import LumiqTraceSampler

        return LumiqTraceSampler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

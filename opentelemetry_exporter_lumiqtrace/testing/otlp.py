# SPDX-License-Identifier: Apache-2.0
"""OTLP/HTTP traces on the local server's ``POST /v1/otel``, recorded as LumiqTrace documents its OTLP endpoint.

LumiqTrace's mapping (``docs.lumiqtrace.com/api-reference/otel``) is the only one applied: span name ->
``operation`` (verbatim, not the ingest enum), ``gen_ai.system`` -> ``provider``, ``gen_ai.request.model`` ->
``model``, ``gen_ai.usage.prompt_tokens`` / ``completion_tokens`` -> ``input_tokens`` / ``output_tokens``,
``gen_ai.response.finish_reasons`` -> ``finish_reason``, and the trace, span and parent ids. What the docs leave out
is left out, so a test sees what this path keeps and loses next to the native exporter; only what an event cannot
lack is filled in: ``timestamp`` (span start), ``event_id`` (derived from the ids, so a resent span is deduplicated)
and ``provider: custom`` when ``gen_ai.system`` is not one of LumiqTrace's four values (non-LLM spans included).

Payloads are read with ``opentelemetry-proto`` (what every OTLP exporter depends on), imported on first use so the
rest of the server works without it.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from opentelemetry_exporter_lumiqtrace.testing.validation import PROVIDERS

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_TRACE_ID_BYTES = 16
_SPAN_ID_BYTES = 8
# OTLP/JSON writes these ids as hex, where protobuf's JSON mapping expects base64.
_ID_FIELDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


class OtlpUnavailable(RuntimeError):
    """``opentelemetry-proto`` is not installed."""


class OtlpUnsupportedMediaType(ValueError):
    """Neither OTLP protobuf nor OTLP JSON."""


def _module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise OtlpUnavailable(
            "OTLP on /v1/otel needs opentelemetry-proto: pip install opentelemetry-proto "
            "(any OTLP exporter, such as opentelemetry-exporter-otlp-proto-http, brings it)"
        ) from None


def _trace_service() -> Any:
    return _module("opentelemetry.proto.collector.trace.v1.trace_service_pb2")


def _hex_ids_to_base64(value: Any) -> Any:
    if isinstance(value, dict):
        converted = {}
        for key, item in value.items():
            if key in _ID_FIELDS and isinstance(item, str):
                try:
                    item = base64.b64encode(bytes.fromhex(item)).decode("ascii")
                except ValueError:
                    raise ValueError(f"OTLP/JSON field '{key}' must be hex, got {item!r}") from None
            converted[key] = _hex_ids_to_base64(item)
        return converted
    if isinstance(value, list):
        return [_hex_ids_to_base64(item) for item in value]
    return value


def _parse_request(body: bytes, media_type: str) -> Any:
    service = _trace_service()
    request = service.ExportTraceServiceRequest()
    if media_type == PROTOBUF:
        decode_error = _module("google.protobuf.message").DecodeError
        try:
            request.ParseFromString(body)
        except decode_error as exc:
            raise ValueError(f"Invalid OTLP protobuf body: {exc}") from None
        return request
    if media_type == JSON:
        json_format = _module("google.protobuf.json_format")
        try:
            document = json.loads(body.decode("utf-8"))
            json_format.ParseDict(_hex_ids_to_base64(document), request, ignore_unknown_fields=True)
        except (ValueError, UnicodeDecodeError, json_format.ParseError) as exc:
            raise ValueError(f"Invalid OTLP JSON body: {exc}") from None
        return request
    raise OtlpUnsupportedMediaType(f"Content-Type must be {PROTOBUF} or {JSON}")


def success_body(media_type: str) -> bytes:
    """An empty ``ExportTraceServiceResponse`` (full success) in the request's encoding."""
    response = _trace_service().ExportTraceServiceResponse()
    if media_type == JSON:
        return b"{}"
    return bytes(response.SerializeToString())


def _value(any_value: Any) -> object:
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(item) for item in any_value.array_value.values]
    if kind == "kvlist_value":
        return {item.key: _value(item.value) for item in any_value.kvlist_value.values}
    return getattr(any_value, kind)


def _timestamp(unix_nano: int) -> str:
    seconds, nanos = divmod(unix_nano, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{nanos // 1_000_000:03d}Z"


def _event_id(trace_id: str, span_id: str) -> str:
    digest = hashlib.sha256(f"otlp:{trace_id}:{span_id}".encode("ascii")).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _count(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def span_to_event(span: Any) -> dict[str, Any]:
    """One OTLP ``Span`` message as the event LumiqTrace's documented OTLP mapping makes of it."""
    if len(span.trace_id) != _TRACE_ID_BYTES or len(span.span_id) != _SPAN_ID_BYTES:
        raise ValueError(
            f"Invalid span {span.name!r}: trace_id must be {_TRACE_ID_BYTES} bytes and span_id {_SPAN_ID_BYTES}"
        )
    trace_id, span_id = bytes(span.trace_id).hex(), bytes(span.span_id).hex()
    attributes = {item.key: _value(item.value) for item in span.attributes}
    system = attributes.get("gen_ai.system")
    event: dict[str, Any] = {
        "event_id": _event_id(trace_id, span_id),
        "trace_id": trace_id,
        "span_id": span_id,
        "timestamp": _timestamp(span.start_time_unix_nano),
        "provider": system if isinstance(system, str) and system in PROVIDERS else "custom",
        "operation": span.name,
    }
    if span.parent_span_id:
        event["parent_span_id"] = bytes(span.parent_span_id).hex()
    model = attributes.get("gen_ai.request.model")
    if isinstance(model, str) and model:
        event["model"] = model
    for source, target in (
        ("gen_ai.usage.prompt_tokens", "input_tokens"),
        ("gen_ai.usage.completion_tokens", "output_tokens"),
    ):
        count = _count(attributes.get(source))
        if count is not None:
            event[target] = count
    reasons = attributes.get("gen_ai.response.finish_reasons")
    if isinstance(reasons, list) and reasons and all(isinstance(reason, str) for reason in reasons):
        event["finish_reason"] = ",".join(reasons)
    elif isinstance(reasons, str) and reasons:
        event["finish_reason"] = reasons
    return event


def _spans(request: Any) -> Iterator[Any]:
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            yield from scope_spans.spans


def events_from_request(body: bytes, media_type: str) -> list[dict[str, Any]]:
    """The events of one ``ExportTraceServiceRequest`` body (already without ``Content-Encoding``).

    Raises :class:`OtlpUnavailable` without ``opentelemetry-proto``, :class:`OtlpUnsupportedMediaType` for another
    ``Content-Type`` and ``ValueError`` (with a message for the 400 answer) for a malformed payload.
    """
    return [span_to_event(span) for span in _spans(_parse_request(body, media_type))]


__all__ = [
    "JSON",
    "PROTOBUF",
    "OtlpUnavailable",
    "OtlpUnsupportedMediaType",
    "events_from_request",
    "span_to_event",
    "success_body",
]

# SPDX-License-Identifier: Apache-2.0
"""Map an OpenTelemetry ``ReadableSpan`` to a LumiqTrace ingest event (a JSON-ready ``dict``).

One implementation, driven by one declarative table of conventions (:mod:`.conventions`: for each event field the
attribute keys in precedence order and the parser of their values, plus the prefix families). It reads the OTel GenAI
conventions (current and deprecated names), OpenInference and OpenLLMetry (current and legacy), plus explicit
``lumiqtrace.*`` overrides, in that precedence (the response model of any convention beats the request model of any
convention). Unknown values are omitted, never sent as ``0`` or ``null``. Every span maps; non-AI spans get
``provider: custom``, ``operation: custom`` and ``span_kind: general`` unless ``MappingOptions.ai_only`` filters
them out.

Explicit overrides (span attributes, highest precedence): ``lumiqtrace.provider``, ``.model``, ``.operation``,
``.span_kind``, ``.user_id``, ``.session_id``, ``.environment``, ``.cost_usd``, ``.input_tokens``,
``.output_tokens``, ``.cached_tokens``, ``.ttft_ms``, ``.stream``, ``.status``, ``.error_code``,
``.finish_reason`` and ``.tags.<key>``.

Modules, one job each: :mod:`.conventions` (the table), :mod:`.values` (value parsers), :mod:`.scan` (the one pass
over a span's attributes), :mod:`.identity` (model, provider, kind), :mod:`.status` (the status ladder and span
events), :mod:`.tags` and :mod:`.redaction`, :mod:`.flat` (flattened message keys, parsed once per key),
:mod:`.content` (prompt and response, ``prompt_hash``), :mod:`.cache` (the bounded memo) and :mod:`.mapper`
(:class:`Mapper`, which owns every memo). Behaviour is pinned by the golden corpus in ``tests/golden/corpus/``.

:func:`map_span` maps one span with a fresh :class:`Mapper` (no state kept between calls); the exporter keeps one
:class:`Mapper` and calls its ``map_span``.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from opentelemetry_exporter_lumiqtrace.mapping.mapper import Mapper, event_id_for, trace_id_hex
from opentelemetry_exporter_lumiqtrace.mapping.options import DEFAULT_MAX_TAGS, MappingOptions
from opentelemetry_exporter_lumiqtrace.mapping.values import (
    DEFAULT_MAX_CONTENT_CHARS,
    DEFAULT_MAX_ERROR_MESSAGE_CHARS,
    DEFAULT_MAX_TAG_KEY_CHARS,
    DEFAULT_MAX_TAG_VALUE_CHARS,
)

__all__ = [
    "DEFAULT_MAX_CONTENT_CHARS",
    "DEFAULT_MAX_ERROR_MESSAGE_CHARS",
    "DEFAULT_MAX_TAGS",
    "DEFAULT_MAX_TAG_KEY_CHARS",
    "DEFAULT_MAX_TAG_VALUE_CHARS",
    "Mapper",
    "MappingOptions",
    "event_id_for",
    "map_span",
    "trace_id_hex",
]

_DEFAULT_OPTIONS = MappingOptions()


def map_span(span: ReadableSpan, options: MappingOptions = _DEFAULT_OPTIONS) -> dict[str, Any] | None:
    """Map one finished span to a LumiqTrace event, or ``None`` when ``options.ai_only`` filters it out."""
    return Mapper().map_span(span, options)

# SPDX-License-Identifier: Apache-2.0
"""Differential tests for what the mapping memoises per attribute-key tuple ("shape").

Spans of one instrumentation repeat their keys, so the mapping keeps per shape the keys each precedence list finds,
a getter for the attribute copy and a memo of an AI span's model, provider and kind by the values they are read
from. These tests map many spans of the *same* few shapes, with values that change between spans (including values
that are equal as dict keys but map differently: ``1``, ``1.0``, ``True``, ``"1"``, and str subclasses), and require
the events of the frozen reference mapping every time.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests.test_mapping_equivalence import OPTION_SETS, PLAUSIBLE, assert_same
from tests.test_mapping_support import make_span


class _Text(str):
    """A str subclass: equal to (and hashing like) the plain string, but its exact type must survive."""


SHAPES: tuple[tuple[str, ...], ...] = (
    (
        "gen_ai.operation.name",
        "gen_ai.provider.name",
        "gen_ai.request.model",
        "server.address",
        "gen_ai.response.model",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.response.finish_reasons",
        "http.response.status_code",
    ),
    ("gen_ai.system", "gen_ai.request.model", "llm.system", "gen_ai.tool.name", "llm.request.type"),
    ("lumiqtrace.model", "lumiqtrace.operation", "lumiqtrace.span_kind", "llm.model_name", "openinference.span.kind"),
    ("gen_ai.request.model",),
    ("gen_ai.usage.input_tokens", "net.peer.name"),
    ("http.request.method", "http.route", "url.path", "server.address", "http.response.status_code", "user.id"),
)

VALUES = PLAUSIBLE | st.sampled_from([1, 1.0, True, "1", _Text("openai"), _Text("gpt-4o"), _Text("chat"), None])


def _sdk_span(span: ReadableSpan) -> ReadableSpan:
    """``span`` with its attributes in the SDK's own BoundedAttributes, as ended SDK spans carry them."""
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=BoundedAttributes(attributes=dict(span.attributes or {}), immutable=True),
        events=span.events,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=st.sampled_from(SHAPES),
    rows=st.lists(st.lists(VALUES, min_size=10, max_size=10), min_size=1, max_size=12),
    kind=st.sampled_from([SpanKind.CLIENT, SpanKind.SERVER, SpanKind.INTERNAL]),
    failed=st.booleans(),
    options_name=st.sampled_from(sorted(OPTION_SETS)),
)
def test_spans_of_one_shape_map_like_the_reference(
    shape: tuple[str, ...], rows: list[list[Any]], kind: SpanKind, failed: bool, options_name: str
) -> None:
    status = Status(StatusCode.ERROR, "RateLimitError: Error code: 429") if failed else None
    for row in rows:
        attrs = dict(zip(shape, row[: len(shape)], strict=True))
        span = make_span(attrs, kind=kind, status=status)
        # Twice each, plain-dict and SDK attributes: the second mapping of a shape and values reads the memos.
        for candidate in (span, _sdk_span(span), span):
            assert_same(candidate, options_name)


def test_equal_values_of_other_types_do_not_share_a_memo_entry() -> None:
    shape = ("gen_ai.provider.name", "gen_ai.request.model", "gen_ai.operation.name")
    for provider in ("openai", _Text("openai"), 1, 1.0, True, "1", "openai"):
        for model in ("gpt-4o", _Text("gpt-4o"), 4, 4.0):
            attrs = dict(zip(shape, (provider, model, "chat"), strict=True))
            assert_same(make_span(attrs, kind=SpanKind.CLIENT), "default")
            assert_same(_sdk_span(make_span(attrs, kind=SpanKind.CLIENT)), "default")

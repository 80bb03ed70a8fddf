# SPDX-License-Identifier: Apache-2.0
"""The generated per-shape fast path (``mapping._generate_fast``) against the hand-written ``_map_fast``.

A shape seen often gets its fast path compiled from the shape's plan. These tests call both on the same inputs and
require the same event (key order and exact types included), and check what the generated source may contain:
positions and names of the mapping module, never an attribute key or value.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from opentelemetry_exporter_lumiqtrace import mapping
from tests.test_mapping_equivalence import OPTION_SETS, PLAUSIBLE, _options, _ordered
from tests.test_mapping_shapes import SHAPES, VALUES, _sdk_span
from tests.test_mapping_support import make_span


def _fast_inputs(span: ReadableSpan) -> tuple[Any, tuple[Any, ...], tuple[Any, ...], int | None, int | None]:
    """(shape, keys, values, latency_ms, start) as map_span hands them to the fast path."""
    keys = tuple(span.attributes or {})
    shape = mapping._shapes.get(keys) or mapping._shape(keys)
    values = shape[7][-2](span.attributes) if shape[7] is not None else ()
    start = span.start_time
    end = span.end_time
    latency_ms = round((end - start) / 1e6) if start is not None and end is not None and end >= start else None
    return shape, keys, values, latency_ms, start


def _both(span: ReadableSpan, options: mapping.MappingOptions) -> tuple[Any, Any]:
    shape, _keys, values, latency_ms, start = _fast_inputs(span)
    assert shape[7] is not None, "the shape must take the fast path"
    generated = mapping._generate_fast(shape)
    expected = mapping._map_fast({}, span, options, shape, shape[7], values, latency_ms, start)
    got = generated({}, span, options, values, latency_ms, start)
    return got, expected


FAST_SHAPES = tuple(s for s in SHAPES if mapping._shape(s)[7] is not None)


def _warm(keys: tuple[str, ...], row: tuple[Any, ...], *, kind: SpanKind) -> None:
    """Map spans of ``keys`` until the shape has its generated function, so what follows goes through it."""
    for _ in range(mapping._GENERATE_AFTER):
        mapping.map_span(_sdk_span(make_span(dict(zip(keys, row, strict=True)), kind=kind)))
    assert callable(mapping._shapes[keys][7][-1][0])


def test_some_shapes_take_the_fast_path() -> None:
    assert len(FAST_SHAPES) >= 3


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=st.sampled_from(FAST_SHAPES),
    row=st.lists((VALUES | PLAUSIBLE).filter(lambda v: v is not None), min_size=10, max_size=10),
    kind=st.sampled_from([SpanKind.CLIENT, SpanKind.SERVER, SpanKind.INTERNAL]),
    options_name=st.sampled_from(sorted(OPTION_SETS)),
)
def test_generated_fast_path_maps_like_map_fast(
    shape: tuple[str, ...], row: list[Any], kind: SpanKind, options_name: str
) -> None:
    span = _sdk_span(make_span(dict(zip(shape, row, strict=False)), kind=kind))
    assume(tuple(span.attributes or {}) == shape)  # the SDK drops values it cannot hold
    options = _options(options_name)[0]
    got, expected = _both(span, options)
    assert _ordered(got) == _ordered(expected)


def test_a_shape_seen_often_maps_through_its_generated_function() -> None:
    keys = ("gen_ai.provider.name", "gen_ai.request.model", "gen_ai.usage.input_tokens", "generated.test.key")
    events = []
    for tokens in range(10, 10 + mapping._GENERATE_AFTER + 3):
        span = _sdk_span(make_span(dict(zip(keys, ("openai", "gpt-4o", tokens, "v"), strict=True))))
        events.append(mapping.map_span(span))
    cell = mapping._shapes[keys][7][-1]
    assert callable(cell[0])
    assert [e["input_tokens"] for e in events if e is not None] == list(range(10, 10 + mapping._GENERATE_AFTER + 3))
    first, *rest = events
    assert first is not None
    for event in rest:
        assert event is not None
        assert list(event) == list(first)


def test_generated_source_holds_no_attribute_key_or_value() -> None:
    odd_key = 'x"); import os; os.system("echo pwned"); ("'
    secret = "value-marker-7f3a"
    attrs = {
        "gen_ai.provider.name": secret,
        "gen_ai.request.model": secret + "-model",
        "gen_ai.usage.input_tokens": 5,
        "server.address": secret + "-host",
        odd_key: secret,
    }
    span = _sdk_span(make_span(attrs, kind=SpanKind.CLIENT))
    shape, keys, *_ = _fast_inputs(span)
    assert shape[7] is not None
    source = mapping._fast_source(shape)
    for key in keys:
        assert key not in source
    assert secret not in source
    got, expected = _both(span, _options("default")[0])
    assert _ordered(got) == _ordered(expected)
    assert got["tags"]["server.address"] == secret + "-host"


def test_identity_memo_keeps_exact_types_and_tells_resources_and_scopes_apart() -> None:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from tests.test_mapping_equivalence import assert_same
    from tests.test_mapping_shapes import _Text

    keys = ("gen_ai.provider.name", "gen_ai.request.model", "gen_ai.operation.name", "server.address")
    resources = [Resource.create({"service.name": name}) for name in ("a", "b", "a")]
    scopes = [InstrumentationScope("lib", version) for version in ("1", None, "1")]
    _warm(keys, ("openai", "gpt-4o", "chat", "api.openai.com"), kind=SpanKind.CLIENT)
    for _ in range(2):
        for name in ("chat", _Text("chat")):
            for provider in ("openai", _Text("openai")):
                for resource in resources:
                    for scope in (*scopes, None):
                        attrs = dict(zip(keys, (provider, "gpt-4o", "chat", "api.openai.com"), strict=True))
                        span = make_span(attrs, name=name, kind=SpanKind.CLIENT, resource=resource, scope=scope)
                        for options_name in ("default", "redact", "few-tags"):
                            assert_same(_sdk_span(span), options_name)
    assert callable(mapping._shapes[keys][7][-1][0])


def test_tags_added_inline_keep_limits_caps_and_first_value_wins() -> None:
    """Tags the generated code adds inline (known plain keys, seen on earlier spans of the same options) against the
    reference under tight tag limits, short value caps, redaction and non-ASCII values, for spans whose identity tags
    fill more or less of the map."""
    from opentelemetry.sdk.resources import Resource

    from tests.golden import reference_mapping as reference
    from tests.test_mapping_equivalence import _ordered

    keys = ("http.request.method", "http.route", "url.path", "server.address", "http.response.status_code")
    rows = [
        ("GET", "/a", "/a/1", "api.example.com", 200),
        ("POST", "/b", "/b/ü", "x", 201),
        ("GET", "/a", "/a/aaaaaaaaaaaaaaaaaaa", "api.example.com", 204),
        ("GET", "/\ud800", "/\ud800/1", "\ud800", 200),  # lone surrogates: cleaned, never sent as is
    ]
    heads = [
        {"resource": None, "scope": None},
        {"resource": Resource.create({"service.name": "svc"}), "scope": None},
        {},
    ]
    _warm(keys, rows[0], kind=SpanKind.SERVER)
    for max_tags in range(9):
        for max_value in (0, 2, 6, 1024):
            for redact in (frozenset(), frozenset({"server.address"})):
                kw: dict[str, Any] = {"max_tags": max_tags, "max_tag_value_chars": max_value, "redact_keys": redact}
                new_options, old_options = mapping.MappingOptions(**kw), reference.MappingOptions(**kw)
                for _ in range(2):
                    for head in heads:
                        for row in rows:
                            attrs = dict(zip(keys, row, strict=True))
                            span = _sdk_span(make_span(attrs, kind=SpanKind.SERVER, **head))
                            expected = reference.map_span(span, old_options)
                            got = mapping.map_span(span, new_options)
                            assert _ordered(got) == _ordered(expected), (kw, head, row)
    assert callable(mapping._shapes[keys][7][-1][0])

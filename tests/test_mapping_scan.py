# SPDX-License-Identifier: Apache-2.0
"""The pass over a span's attributes and the mapper's memo of span origins (resource and scope): the shortcuts they
take for speed (a route per key, ignored keys skipped, origins and identity tags keyed by tuples made once) must
collect and map exactly what the conventions say."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from opentelemetry_exporter_lumiqtrace.mapping import Mapper, MappingOptions
from opentelemetry_exporter_lumiqtrace.mapping import conventions as c
from opentelemetry_exporter_lumiqtrace.mapping.scan import AI_BIT, IGNORED, Scan, classify, new_key_memo
from tests.test_mapping_support import make_span

# Every exact key of the conventions, keys of each prefix family (flattened messages included, and one the message
# reader ignores), lumiqtrace.* context keys, and keys the mapping does not read.
KEYS = sorted(
    {
        *c.known_keys(),
        *(prefix + "team" for prefix, _family in c.PREFIX_FAMILIES),
        "llm.input_messages.0.message.role",
        "llm.output_messages.1.message.content",
        "gen_ai.prompt.0.content",
        "gen_ai.completion.0.finish_reason",
        "lumiqtrace.tags.team",
        "traceloop.association.properties.user_id",
        "lumiqtrace.user_id",
        "gen_ai.request.max_tokens",
        "app.cart.items",
        "server.port",
        "user_agent.original",
    }
)
VALUES = st.sampled_from(["openai", "gpt-4o", "chat", "", 1, 2.5, True, ("stop",), None])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=16), min_size=1, max_size=6))
def test_the_pass_collects_what_the_classification_of_each_key_says(rows: list[dict[str, Any]]) -> None:
    memo = new_key_memo(max_entries=32, max_bytes=2_048)  # small: generations turn within an example
    for attrs in rows:
        info = {key: classify(key) for key in attrs}
        bits = 0
        for key in attrs:
            bits |= info[key].bits
        families: dict[c.Family, list[tuple[str, Any]]] = {}
        messages: dict[c.Family, list[tuple[Any, Any]]] = {}
        for key, value in attrs.items():
            family, part = info[key].family, info[key].part
            if family is not None:
                families.setdefault(family, []).append((info[key].suffix, value))
            if part is not None:
                messages.setdefault(part.family, []).append((part, value))
        for _pass in ("cold", "warm"):
            found = Scan(attrs, memo)
            assert found.present == bits
            assert found.ai == bool(bits & AI_BIT)
            assert found.identity_items == [x for k, v in attrs.items() if info[k].identity for x in (k, v)]
            assert found.context == [
                (info[k].context_rank, k, v) for k, v in attrs.items() if info[k].context_rank >= 0
            ]
            assert (found.families or {}) == families
            assert (found.messages or {}) == messages


def test_a_key_the_conventions_do_not_name_is_ignored_and_every_key_they_name_is_not() -> None:
    for key in ("app.cart.items", "server.port", "http.request.header.x", "gen_ai", "llm", "lumiqtrace"):
        assert classify(key) is IGNORED
    for key in c.known_keys():
        assert classify(key) is not IGNORED, key
    for prefix in (*c.AI_PREFIXES, c.LQT_TAGS_PREFIX, c.ASSOCIATION_PREFIX):
        assert classify(prefix + "x") is not IGNORED, prefix


class _Text(str):
    """A str subclass: an equal memo key, but its exact type must reach the tags."""


def test_one_mapper_tells_the_origins_of_spans_apart() -> None:
    """Spans of one scope under two resources, and of two scopes under one resource, interleaved through one mapper:
    each event has its own resource's environment and service and its own scope, as from a fresh mapper."""
    options = MappingOptions(compute_cost=False)
    shared_scope = InstrumentationScope("lib.one", "1.0")
    other_scope = InstrumentationScope("lib.two", "2.0")
    prod = Resource({"service.name": "checkout", "deployment.environment.name": "prod"})
    staging = Resource({"service.name": "search", "deployment.environment.name": "staging"})
    subclassed = Resource({"service.name": _Text("checkout")})
    spans = [
        make_span({"gen_ai.request.model": "gpt-4o"}, resource=resource, scope=scope)
        for resource, scope in [
            (prod, shared_scope),
            (staging, shared_scope),
            (prod, other_scope),
            (subclassed, shared_scope),
            (prod, None),
            (prod, shared_scope),
            (staging, shared_scope),
        ]
    ]
    mapper = Mapper()
    events = [mapper.map_span(span, options) for span in spans]
    assert events == [Mapper().map_span(span, options) for span in spans]
    seen = [(e.get("environment"), e["tags"]["service.name"], e["tags"].get("otel.scope.name")) for e in events if e]
    assert seen == [
        ("prod", "checkout", "lib.one"),
        ("staging", "search", "lib.one"),
        ("prod", "checkout", "lib.two"),
        (None, "checkout", "lib.one"),
        ("prod", "checkout", None),
        ("prod", "checkout", "lib.one"),
        ("staging", "search", "lib.one"),
    ]
    subclassed_event = events[3]
    assert subclassed_event is not None
    assert type(subclassed_event["tags"]["service.name"]) is _Text

# SPDX-License-Identifier: Apache-2.0
"""Property test: any attribute dictionary maps to a valid, JSON-serialisable event, never an exception."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import Event
from opentelemetry.trace import SpanKind, Status, StatusCode

from opentelemetry_exporter_lumiqtrace.encoding import _dumps_stdlib, encode_events
from opentelemetry_exporter_lumiqtrace.mapping import Mapper, MappingOptions, map_span
from opentelemetry_exporter_lumiqtrace.mapping import conventions as c
from tests.test_mapping_support import START_NS, make_span

try:
    from opentelemetry_exporter_lumiqtrace.testing import validate_event
except ImportError:  # pragma: no cover
    validate_event = None

pytestmark = pytest.mark.skipif(validate_event is None, reason="testing.validate_event is not available")

KNOWN_KEYS = sorted(
    {
        *c.PROVIDER_KEYS,
        *c.RESPONSE_MODEL_KEYS,
        *c.REQUEST_MODEL_KEYS,
        *c.KIND_KEYS,
        *c.INPUT_TOKEN_KEYS,
        *c.OUTPUT_TOKEN_KEYS,
        *c.TOTAL_TOKEN_KEYS,
        *c.CACHE_READ_KEYS,
        *c.CACHE_WRITE_KEYS,
        *c.REASONING_KEYS,
        *c.COST_KEYS,
        *c.TTFT_SECONDS_KEYS,
        *c.STREAM_KEYS,
        *c.ENVIRONMENT_SPAN_KEYS,
        *c.USER_KEYS,
        *c.SESSION_KEYS,
        *c.CONTEXT_TAG_KEYS,
        *c.FINISH_REASON_KEYS,
        *c.HTTP_STATUS_KEYS,
        *c.HTTP_METHOD_KEYS,
        c.LQT_MODEL,
        c.LQT_OPERATION,
        c.LQT_SPAN_KIND,
        c.LQT_STATUS,
        c.LQT_ERROR_CODE,
        c.LQT_TTFT_MS,
        c.ERROR_TYPE,
        c.GRPC_STATUS_KEY,
        c.OI_INVOCATION_PARAMETERS,
        c.LOGFIRE_REQUEST_DATA,
        c.LOGFIRE_SPAN_TYPE,
        c.LOGFIRE_DURATION,
        c.LOGFIRE_MSG_TEMPLATE,
        c.LANGFUSE_COST_DETAILS,
        c.OI_TAGS,
        c.OI_METADATA,
        c.OT_SYSTEM_INSTRUCTIONS,
        c.OT_INPUT_MESSAGES,
        c.OT_OUTPUT_MESSAGES,
        c.OT_TOOL_ARGUMENTS,
        c.OT_TOOL_RESULT,
        c.OI_INPUT_VALUE,
        c.OI_OUTPUT_VALUE,
        c.OL_ENTITY_INPUT,
        c.OL_ENTITY_OUTPUT,
        c.HTTP_TARGET,
        "gen_ai.prompt.0.role",
        "gen_ai.prompt.0.content",
        "gen_ai.prompt.1.tool_calls.0.arguments",
        "gen_ai.completion.0.content",
        "llm.input_messages.0.message.role",
        "llm.input_messages.0.message.contents.0.message_content.text",
        "llm.input_messages.1.message.tool_calls.0.tool_call.function.name",
        "llm.output_messages.0.message.content",
        "llm.prompts.0.prompt.text",
        "llm.choices.0.completion.text",
        "lumiqtrace.tags.team",
        "lumiqtrace.tags.api_key",
        "traceloop.association.properties.tier",
    }
)

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "role",
                    "content",
                    "parts",
                    "type",
                    "text",
                    "name",
                    "arguments",
                    "messages",
                    "stream",
                    "total",
                    "choices",
                    "message",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)
TEXT = st.text(max_size=40) | st.sampled_from(["", " ", "\ud800bad", "gpt-4o", "openai", "chat", "LLM", "429", "true"])
SCALAR = (
    TEXT | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats()  # NaN, inf, -0.0 included
)
ODD = (
    st.binary(max_size=20)
    | JSONISH.map(lambda v: json.dumps(v))
    | st.just("x" * 200_000)
    | st.lists(SCALAR, max_size=5).map(tuple)  # mixed-type sequences
    | st.lists(st.text(max_size=5), max_size=5)
    | st.just(b"\xff\xfe\x00")
    | st.just(object())
    | st.none()
)
VALUE = SCALAR | ODD
KEY = st.sampled_from(KNOWN_KEYS) | st.text(max_size=30)
ATTRS = st.dictionaries(KEY, VALUE, max_size=25)


@st.composite
def events(draw: st.DrawFn) -> list[Event]:
    out = []
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        name = draw(
            st.sampled_from(
                [
                    "exception",
                    "First Token Stream Event",
                    "gen_ai.content.prompt",
                    "gen_ai.content.completion",
                    "llm.content.completion.chunk",
                    "other",
                ]
            )
        )
        attrs = draw(
            st.dictionaries(
                st.sampled_from(
                    ["exception.type", "exception.message", "exception.escaped", "gen_ai.prompt", "gen_ai.completion"]
                ),
                VALUE,
                max_size=4,
            )
        )
        offset = draw(st.integers(min_value=-(10**12), max_value=10**12))
        out.append(Event(name, attributes=attrs, timestamp=START_NS + offset))
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example])
@given(
    attrs=ATTRS,
    span_events=events(),
    kind=st.sampled_from(list(SpanKind)),
    status=st.sampled_from([StatusCode.UNSET, StatusCode.OK, StatusCode.ERROR]),
    description=st.none() | TEXT,
    start=st.none() | st.integers(min_value=-(2**63), max_value=2**63),
    duration=st.floats(min_value=-5000, max_value=10**7, allow_nan=False),
    capture=st.booleans(),
    ai_only=st.booleans(),
)
def test_any_span_maps_to_a_valid_event(
    attrs: dict[str, Any],
    span_events: list[Event],
    kind: SpanKind,
    status: StatusCode,
    description: str | None,
    start: int | None,
    duration: float,
    capture: bool,
    ai_only: bool,
) -> None:
    span = make_span(
        attrs,
        kind=kind,
        status=Status(status, description if status is StatusCode.ERROR else None),
        events=span_events,
        start=start,
        duration_ms=duration,
    )
    options = MappingOptions(capture_content=capture, ai_only=ai_only, max_content_chars=1000, compute_cost=True)
    event = map_span(span, options)
    if event is None:
        assert ai_only
        return
    assert validate_event is not None
    assert validate_event(event) is None, (validate_event(event), event)
    encoded = json.dumps(event, allow_nan=False, ensure_ascii=False)
    encoded.encode("utf-8")  # no lone surrogates reach the wire
    assert None not in event.values()
    for name in ("input_tokens", "output_tokens", "cached_tokens", "latency_ms", "ttft_ms"):
        if name in event:
            assert type(event[name]) is int
    if not capture:
        assert "prompt" not in event
        assert "response" not in event
    # The exporter's fast encoding path relies on this shape: cost_usd is the only float, tags are str -> str.
    assert all(type(v) is not float for k, v in event.items() if k != "cost_usd")
    lines, errors = encode_events([dict(event)], from_mapping=True)
    assert errors == [] and lines == [_dumps_stdlib(event)]


def test_span_without_context_or_times_still_maps() -> None:
    from opentelemetry.sdk.trace import ReadableSpan

    span = ReadableSpan(name="bare")
    event = map_span(span, MappingOptions())
    assert event is not None
    assert validate_event is not None
    assert validate_event(event) is None


# --- memos never change an event ------------------------------------------------------------------------------------


class _Text(str):
    """A str subclass: equal to (and hashing like) the plain string, but its exact type must survive."""


# Values that are equal as dict keys but map differently (1, 1.0, True, "1", str subclasses), and values that hit the
# conventions' branches.
MEMO_VALUES = st.sampled_from(
    [1, 1.0, True, "1", 0, 429, "429", "", " ", "chat", "LLM", "execute_tool", "openai", "azure", "Anthropic"]
) | st.sampled_from(
    [
        "gpt-4o",
        "claude-3-5-sonnet-latest",
        "api.openai.com",
        ("stop", "length"),
        '{"model": "gpt-4o", "stream": true}',
        _Text("openai"),
        _Text("gpt-4o"),
        _Text("chat"),
        None,
    ]
)
SHARED = Mapper()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(st.dictionaries(st.sampled_from(KNOWN_KEYS), MEMO_VALUES, max_size=10), min_size=1, max_size=8),
    kind=st.sampled_from([SpanKind.CLIENT, SpanKind.SERVER, SpanKind.INTERNAL]),
    failed=st.booleans(),
    name=st.sampled_from(["chat", _Text("chat"), "GET /"]),
)
def test_a_warm_mapper_maps_like_a_fresh_one(
    rows: list[dict[str, Any]], kind: SpanKind, failed: bool, name: str
) -> None:
    """One mapper shared by every example (memos of keys, identities and tags warm) against a fresh one per span:
    the same event, key order and exact types included."""
    status = Status(StatusCode.ERROR, "RateLimitError: Error code: 429") if failed else None
    options = MappingOptions(compute_cost=False, redact_keys=frozenset({"route"}))
    for attrs in rows:
        span = make_span(attrs, kind=kind, status=status, name=name)
        for _ in range(2):
            got = SHARED.map_span(span, options)
            expected = Mapper().map_span(span, options)
            assert _typed(got) == _typed(expected)


def _typed(value: Any) -> Any:
    if isinstance(value, dict):
        return [(k, _typed(v)) for k, v in value.items()]
    return (type(value).__name__, value)


_SECRET_PIECES = st.sampled_from(
    [
        *("sk-", "sk-proj-", "lqt_", "lqtp_", "AIza", "AKIA", "ASIA", "xoxb-", "ghp_", "eyJ", "Bearer ", "basic "),
        *("api_key", "API-KEY", "x-api-key", "password", "PassWd", "secret", "access_token", "refresh-token", "TOKEN"),
        *("\u212aey", "pa\u017f\u017fword", "ap\u0130_key", "ey", "ke", "pa", "", " "),
        *("ba\u017f\u0131c ", "BA\u017fIC ", "bas\u0130c ", "BEARER ", "to\u212aen", "\u0131", "\u00e9", "\u03a3"),
    ]
)
_SEPARATORS = st.sampled_from(["", "=", ":", " : ", "='", '":"', " ", "\t"])
_VALUES = st.sampled_from(
    ["abcdefgh", "a1B2c3D4e5F6g7H8i9J0kL", "ABCDEFGHIJKLMNOP", "0123456789abcdefghij", "x.y", "-_", "é", ""]
)
_NOISE = st.text(max_size=4) | st.sampled_from([",", ";", "}", "&", "'", '"', "\n"])
_SECRET_SEGMENT = st.tuples(_NOISE, _SECRET_PIECES, _SEPARATORS, _VALUES, _VALUES).map("".join)


def test_the_hint_text_folds_every_character_re_matches_to_an_ascii_letter() -> None:
    # scrub_secrets skips a (?i) pattern when the hint text lacks its literal: this Python's re must match no other
    # character to an ASCII letter than the ones the hint text folds (Unicode data changes between Pythons).
    from opentelemetry_exporter_lumiqtrace.mapping import redaction

    letter = re.compile("(?i)[a-z]")
    matched = {chr(cp) for cp in range(0x80, sys.maxunicode + 1) if letter.fullmatch(chr(cp))}
    assert matched == {"\u0130", "\u0131", "\u017f", "\u212a"}
    for char in matched:
        assert redaction._hint_text(char) in ("i", "s", "k")


@settings(max_examples=2_000, deadline=None)
@given(st.lists(_SECRET_SEGMENT, max_size=4).map("".join))
def test_scrub_secrets_equals_its_patterns_applied_unconditionally(text: str) -> None:
    # scrub_secrets skips a pattern when a text lacks every literal it needs: the result must not change.
    from opentelemetry_exporter_lumiqtrace.mapping import redaction

    expected = redaction._SECRET_RE.sub(redaction.REDACTED, text)
    expected = redaction._BEARER_RE.sub(r"\1 " + redaction.REDACTED, expected)
    expected = redaction._KV_RE.sub(r"\1" + redaction.REDACTED, expected)
    assert redaction.scrub_secrets(text) == expected


# --- the status ladder's text rungs: every text is judged on its own, whatever the texts around it -------------------

_LADDER_PIECES = st.sampled_from(
    [
        *("abandoned stream", " Abandoned Stream ", "Request timed out.", "request timed out", "Error code: 429"),
        *("Error code: 500", "status_code: 429", "status_code: 4290", "'code': 'rate_limit_exceeded'", "rate_limit"),
        *('"type": "rate_limit_error"', "'code': 'context_length_exceeded'", "'code'", ": ", "code", "\n", " \t "),
        *("x", "\u03a3", "\u212a", "\u0130", "Traceback (most recent call last)", "sk-abcdefghijklmnop"),
    ]
)
_LADDER_TEXTS = st.lists(_LADDER_PIECES, max_size=4).map("".join)


class _AppError(Exception):
    pass


def _expected_outcome(description: str, messages: list[str]) -> tuple[str, str, str | None]:
    """The ladder's text rungs, error code and message as documented, one text at a time (status.py's docstring)."""
    from opentelemetry_exporter_lumiqtrace.mapping import redaction, status

    # Blank texts say nothing (they are not read).
    messages = [m for m in messages if m and not m.isspace()]
    descriptions = [description] if description and not description.isspace() else []
    texts = [*descriptions, *messages]
    lowered = [t.strip().lower() for t in texts]
    if "abandoned stream" in lowered:
        state = "cancelled"
    elif any(t.endswith("request timed out.") for t in lowered):
        state = "timeout"
    elif any(status._says_rate_limited(t) for t in texts):
        state = "rate_limited"
    else:
        state = "error"
    codes = [m.group(1) for m in (status._ERROR_CODE_RE.search(t) for t in texts) if m]
    code = codes[0] if codes else "_AppError"
    message = None
    for source in [*messages[-1:], *(d.split("\n", 1)[0] for d in descriptions)]:
        text = source[:2000].split("Traceback (most recent call last)", 1)[0]
        text = re.sub(r"\s+", " ", text).strip()
        if text:
            message = redaction.scrub_secrets(text)[:500]
            break
    return state, code, message


@settings(max_examples=400, deadline=None)
@given(_LADDER_TEXTS, st.lists(_LADDER_TEXTS, min_size=1, max_size=4))
def test_the_ladder_judges_each_text_on_its_own(description: str, messages: list[str]) -> None:
    # Spans recorded by the real SDK (exception events with BoundedAttributes), several exceptions each.
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("chat", record_exception=False) as span:
        span.set_attribute("gen_ai.operation.name", "chat")
        for text in messages:
            span.record_exception(_AppError(text))
        span.set_status(Status(StatusCode.ERROR, description))
    (finished,) = memory.get_finished_spans()
    event = Mapper().map_span(finished, MappingOptions(compute_cost=False))
    assert event is not None
    state, code, message = _expected_outcome(description, messages)
    assert (event["status"], event.get("error_code")) == (state, code)
    assert event.get("error_message") == message

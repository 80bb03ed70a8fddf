# SPDX-License-Identifier: Apache-2.0
"""The pieces the content extraction is made fast with: flattened keys parsed once, prompt_hash's canonical JSON."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opentelemetry_exporter_lumiqtrace import jsontext
from opentelemetry_exporter_lumiqtrace.mapping import Mapper, MappingOptions, content
from opentelemetry_exporter_lumiqtrace.mapping.content import messages_from_flat, prompt_hash
from opentelemetry_exporter_lumiqtrace.mapping.conventions import Family
from opentelemetry_exporter_lumiqtrace.mapping.flat import FlatPart, PartKind, flat_part
from tests.test_mapping_support import make_span

OI = Family.INPUT_OI


@pytest.mark.parametrize(
    ("suffix", "expected"),
    [
        ("0.message.role", FlatPart(OI, 0, PartKind.ROLE)),
        ("3.message.content", FlatPart(OI, 3, PartKind.CONTENT)),
        ("1.role", FlatPart(OI, 1, PartKind.ROLE)),
        ("1.content", FlatPart(OI, 1, PartKind.CONTENT)),
        ("2.prompt.text", FlatPart(OI, 2, PartKind.CONTENT)),
        ("2.completion.text", FlatPart(OI, 2, PartKind.CONTENT)),
        ("0.message.contents.4.message_content.text", FlatPart(OI, 0, PartKind.PART_TEXT, 4)),
        ("0.message.contents.4.message_content.type", FlatPart(OI, 0, PartKind.PART_TYPE, 4)),
        ("0.message.tool_calls.1.tool_call.function.name", FlatPart(OI, 0, PartKind.CALL_NAME, 1)),
        ("0.message.tool_calls.1.tool_call.function.arguments", FlatPart(OI, 0, PartKind.CALL_ARGUMENTS, 1)),
        ("0.tool_calls.2.id", FlatPart(OI, 0, PartKind.CALL_OTHER, 2)),
        ("0.finish_reason", None),
        ("0.message.contents.x.message_content.text", None),
        ("0.tool_calls.x.name", None),
        ("x.role", None),
        ("\u00b2.role", None),  # a digit int() does not read
        ("0.tool_calls.\u00b2.name", None),
        ("0", None),
        ("", None),
    ],
)
def test_flat_part_names_what_a_suffix_says(suffix: str, expected: FlatPart | None) -> None:
    assert flat_part(OI, suffix) == expected


def _parts(items: list[tuple[str, object]]) -> list[tuple[FlatPart, object]]:
    return [(part, value) for suffix, value in items if (part := flat_part(OI, suffix)) is not None]


def test_flat_messages_in_index_order_with_parts_and_calls() -> None:
    items = _parts(
        [
            ("1.message.role", "Assistant"),
            ("1.message.tool_calls.0.tool_call.function.name", "lookup"),
            ("1.message.tool_calls.0.tool_call.function.arguments", '{"b": 1, "a": 2}'),
            ("0.message.role", "user"),
            ("0.message.contents.1.message_content.type", "image"),
            ("0.message.contents.0.message_content.text", "look at this"),
            ("2.message.contents.0.message_content.type", "text"),  # a text type alone makes no message
            ("3.content", "no role"),
        ]
    )
    assert messages_from_flat(items) == [
        ("user", "look at this\n[image]"),
        ("assistant", 'lookup({"a":2,"b":1})'),
        ("unknown", "no role"),
    ]


def test_a_flattened_key_with_an_odd_index_is_ignored_not_fatal() -> None:
    span = make_span(
        {
            "llm.model_name": "gpt-4o",
            "llm.input_messages.\u00b2.message.role": "user",
            "llm.input_messages.0.message.role": "user",
            "llm.input_messages.0.message.content": "hi",
        }
    )
    event = Mapper().map_span(span, MappingOptions(compute_cost=False))
    assert event is not None
    assert event["prompt_hash"] == prompt_hash([("user", "hi")])


def test_a_part_type_placeholder_never_replaces_its_text() -> None:
    text_first = _parts([("0.contents.0.text", "hello"), ("0.contents.0.type", "image")])
    type_first = _parts([("0.contents.0.type", "image"), ("0.contents.0.text", "hello")])
    assert messages_from_flat(text_first) == messages_from_flat(type_first) == [("unknown", "hello")]


_TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40)
_ROLE = st.one_of(st.sampled_from(["user", "assistant", "system", "tool", "unknown"]), _TEXT)
# A few characters (escaped or not, ASCII or not) spaced by ASCII filler, short or long.
_LONG_TEXTS = st.tuples(
    st.lists(st.sampled_from(["\n", '"', "\\", "\x00", "\x1f", "\x7f", "\t", "\u00e9", "\U0001f600", "."]), max_size=4),
    st.integers(min_value=0, max_value=1_500),
).map(lambda pieces_gap: ("x" * pieces_gap[1]).join(["", *pieces_gap[0], ""]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_ROLE, st.one_of(_TEXT, _LONG_TEXTS)), max_size=6))
def test_prompt_hash_is_sha256_of_the_documented_canonical_json(messages: list[tuple[str, str]]) -> None:
    # prompt_hash writes the canonical JSON with orjson when installed, else piece by piece (long texts escaped by
    # jsontext): either way it must hash exactly the stdlib's bytes, lone surrogates included.
    canonical = json.dumps(
        [{"role": role, "text": text} for role, text in messages],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert prompt_hash(messages) == hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


# --- JSON read with orjson when installed: exactly what json.loads reads ---------------------------------------------

_JSON_NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=2**62, max_value=2**80),
    st.integers(min_value=-(2**80), max_value=-(2**62)),
    st.floats(allow_nan=True, allow_infinity=True),
)
_JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), _JSON_NUMBERS, _TEXT),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)


def _typed(value: Any) -> Any:
    """``value`` with the type of every leaf and float reprs, so that 1 == 1.0 == True and nan != nan do not hide a
    difference."""
    if isinstance(value, dict):
        return ("dict", [(k, _typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [_typed(v) for v in value])
    return (type(value).__name__, repr(value))


def _stdlib(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


@given(_JSON_VALUES, st.booleans())
def test_content_json_is_read_exactly_as_the_stdlib_reads_it(value: Any, ensure_ascii: bool) -> None:
    # orjson reads NaN, 1e400, lone surrogates and integers beyond 64 bits differently or not at all.
    text = json.dumps(value, ensure_ascii=ensure_ascii)
    assert _typed(content._loads(text)) == _typed(_stdlib(text))


@given(st.text(alphabet=st.sampled_from('[]{}",:0123456789.-+eE tfnrulasx\\u\ud800'), max_size=30))
def test_malformed_content_json_is_refused_or_read_as_the_stdlib_does(text: str) -> None:
    assert _typed(content._loads(text)) == _typed(_stdlib(text))


def _stdlib_path_of_loads(text: str) -> Any:
    saved, content._orjson = content._orjson, None
    try:
        return content._loads(text)
    finally:
        content._orjson = saved


@given(
    _JSON_VALUES,
    st.booleans(),
    st.sampled_from(["", " ", "\t\n\r ", "\x0b", "\ufeff"]),
    st.sampled_from(["", " \n", "\x0c", "x"]),
)
def test_without_orjson_content_json_is_read_as_json_loads_reads_it(
    value: Any, ensure_ascii: bool, before: str, after: str
) -> None:
    # Whitespace around the document: JSON's four characters are allowed, anything else is refused, as json.loads does.
    text = before + json.dumps(value, ensure_ascii=ensure_ascii) + after
    assert _typed(_stdlib_path_of_loads(text)) == _typed(_stdlib(text))


@given(st.text(alphabet=st.sampled_from('[]{}",:0123456789.-+eE tfnrulasx\\u\ud800\t\n\r\x0b\ufeff'), max_size=30))
def test_without_orjson_malformed_content_json_is_refused_as_json_loads_refuses_it(text: str) -> None:
    assert _typed(_stdlib_path_of_loads(text)) == _typed(_stdlib(text))


@pytest.mark.parametrize("number", [2**64, 2**64 - 1, -(2**63) - 1, -(2**63), 10**30, -(10**30)])
def test_a_tool_call_argument_beyond_64_bits_hashes_as_the_stdlib_reads_it(number: int) -> None:
    messages = [{"role": "assistant", "parts": [{"type": "tool_call", "name": "lookup", "arguments": {"id": number}}]}]
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai"}
    span = make_span({**attributes, "gen_ai.input.messages": json.dumps(messages)}, name="chat")
    event = Mapper().map_span(span, MappingOptions(capture_content=True))
    assert event is not None
    assert event["prompt"] == f'assistant: lookup({{"id":{number}}})'
    canonical = json.dumps([{"role": "assistant", "text": f'lookup({{"id":{number}}})'}], separators=(",", ":"))
    assert event["prompt_hash"] == hashlib.sha256(canonical.encode()).hexdigest()


# --- the JSON string of a long text without orjson: exactly the stdlib encoder's -------------------------------------


@given(_LONG_TEXTS)
def test_a_json_string_is_what_the_stdlib_encoder_writes(text: str) -> None:
    assert content._json_string(text) == json.encoder.encode_basestring(text)


@given(st.one_of(_LONG_TEXTS, st.text(st.characters(max_codepoint=0x7F), max_size=1_500)))
def test_a_json_string_as_utf8_is_the_stdlib_encoders_bytes(text: str) -> None:
    # The bytes route of jsontext: escaped after encoding (prompt_hash), or encoded, escaped and decoded (ASCII).
    written = json.encoder.encode_basestring(text)
    assert jsontext.json_string_utf8(text) == written.encode("utf-8", "surrogatepass")
    assert jsontext.escape_text(text) == written[1:-1]


def test_a_long_text_with_a_lone_surrogate_is_hashed_as_the_stdlib_writes_it() -> None:
    text = "x" * 2_000 + '"\ud800\n' + "\ud800\n"
    written = json.encoder.encode_basestring(text)
    assert jsontext.json_string_utf8(text) == written.encode("utf-8", "surrogatepass")


@given(st.lists(st.tuples(_ROLE, _LONG_TEXTS), max_size=3))
def test_prompt_hash_without_orjson_is_sha256_of_the_documented_canonical_json(
    messages: list[tuple[str, str]],
) -> None:
    canonical = json.dumps(
        [{"role": role, "text": text} for role, text in messages],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    saved, content._orjson = content._orjson, None
    try:
        digest = prompt_hash(messages)
    finally:
        content._orjson = saved
    assert digest == hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


@pytest.mark.parametrize(
    ("part", "text"),
    [
        ({"type": "text", "content": "a"}, "a"),
        ({"type": "text", "text": "b"}, "b"),
        ({"type": "TEXT", "content": "c"}, "c"),
        ({"type": "text", "content": None, "text": "ignored"}, ""),
        ({"type": "text", "content": 5}, "5"),
        ({"type": "text", "content": ["d", {"type": "text", "content": "e"}]}, "d\ne"),
        ({"type": "image", "content": "aGk="}, "[image]"),
        ({"content": "f"}, "f"),
    ],
)
def test_each_kind_of_message_part_gives_its_text(part: dict[str, Any], text: str) -> None:
    value = json.dumps([{"role": "user", "parts": [part, {"type": "text", "content": "last"}]}])
    assert content.messages_from_json(value) == [("user", f"{text}\nlast" if text else "last")]

# SPDX-License-Identifier: Apache-2.0
"""The pieces the content extraction is made fast with: flattened keys parsed once, prompt_hash's canonical JSON."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opentelemetry_exporter_lumiqtrace.mapping import Mapper, MappingOptions
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


@given(st.lists(st.tuples(_ROLE, _TEXT), max_size=6))
def test_prompt_hash_is_sha256_of_the_documented_canonical_json(messages: list[tuple[str, str]]) -> None:
    canonical = json.dumps(
        [{"role": role, "text": text} for role, text in messages],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert prompt_hash(messages) == hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()

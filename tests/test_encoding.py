# SPDX-License-Identifier: Apache-2.0
"""Encoding: orjson and the stdlib write the same bytes for every event; slices and bodies keep their bounds."""

from __future__ import annotations

import gzip
import json
import math
import os
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from opentelemetry_exporter_lumiqtrace import encoding
from opentelemetry_exporter_lumiqtrace.encoding import (
    EncodingError,
    build_body,
    dumps_event,
    encode_events,
    encode_slices,
)

needs_orjson = pytest.mark.skipif(encoding._orjson is None, reason="orjson (the speedups extra) is not installed")

# Everything an event can hold: str, int, bool, float (cost_usd) and a str->str dict (tags). Text covers all of
# Unicode but lone surrogates (they have a test of their own): control characters, quotes, backslashes, U+2028,
# astral planes.
_text = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=("Cs",)), max_size=40)
_scalar = st.one_of(
    _text,
    st.integers(),  # past 64 bits too: those take the stdlib path
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=0, max_value=1e-3),  # cost-like: 1.5e-05 is where the two libraries differ
)
_events = st.dictionaries(
    _text,
    st.one_of(_scalar, st.dictionaries(_text, _text, max_size=6)),
    max_size=12,
)


def _reference(event: Any) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


@needs_orjson
@settings(max_examples=1000, deadline=None)
@given(st.floats(min_value=encoding._REPR_FLOATS_MIN, max_value=encoding._REPR_FLOATS_MAX, exclude_max=True))
@example(1e-4)
@example(9999999999999998.0)
@example(0.1 + 0.2)
def test_orjson_writes_the_floats_it_is_trusted_with_as_repr_does(value: float) -> None:
    # Such floats go to orjson as they are (no Fragment): it must write them as the stdlib does.
    assert encoding._orjson.dumps(value) == float.__repr__(value).encode()


@needs_orjson
@pytest.mark.parametrize("value", [0.0, -0.0, 4.2e-05, 9.99e-05, 1e16, 1.5e16, -0.5, 5e-324])
def test_floats_outside_that_range_are_written_as_the_stdlib_writes_them(value: float) -> None:
    event = {"event_id": "e", "cost_usd": value, "tags": {}}
    lines, errors = encode_events([dict(event)], from_mapping=True)
    assert errors == [] and lines == [_reference(event)] == [encoding._dumps_orjson(event)]


@needs_orjson
@settings(max_examples=300, deadline=None)
@given(
    # What map_span makes: cost_usd is its only float (tests/test_mapping_properties.py)
    st.dictionaries(_text, st.one_of(_text, st.integers(0, 2**63 - 1), st.booleans()), max_size=12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.dictionaries(_text, _text, max_size=6),
)
@example({}, 1.5e-05, {"cost_usd": "1.5e-05"})
@example({"tags": 1}, 0.0034, {})
def test_the_exporters_path_writes_a_cost_as_the_stdlib_does(
    event: dict[str, Any], cost: float, tags: dict[str, str]
) -> None:
    event = {**event, "cost_usd": cost, "tags": tags}
    lines, errors = encode_events([dict(event)], from_mapping=True)
    assert errors == [] and lines == [_reference(event)]


@needs_orjson
@settings(max_examples=300, deadline=None)
@given(_events)
@example({"cost_usd": 1.5e-05, "tags": {"k": "v"}})
@example({"cost_usd": 1e16, "latency_ms": 2**64, "n": -(2**63) - 1})
@example({"s": '\x00\x1f\x7f\u2028\u2029\ufeff\U0001f600"\\/'})
@example({"cost_usd": -0.0, "x": 5e-324, "y": 1.7976931348623157e308})
def test_orjson_and_stdlib_write_the_same_bytes(event: dict[str, Any]) -> None:
    fast = encoding._dumps_orjson(event)
    slow = encoding._dumps_stdlib(event)
    assert fast == slow == _reference(event)
    assert json.loads(fast) == event


@needs_orjson
def test_a_float_event_uses_orjson_not_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    # Guards the speed: a cost_usd must not push the whole event to the slow path.
    def refuse(event: Any) -> bytes:
        raise AssertionError("stdlib path taken")

    monkeypatch.setattr(encoding, "_dumps_stdlib", refuse)
    event = {"cost_usd": 4.2e-05, "latency_ms": 12, "stream": False, "tags": {"a": "b"}}
    assert encoding._dumps_orjson(event) == b'{"cost_usd":4.2e-05,"latency_ms":12,"stream":false,"tags":{"a":"b"}}'
    assert event["cost_usd"] == 4.2e-05  # the caller's event is not changed


@needs_orjson
@pytest.mark.parametrize(
    "event",
    [
        {"big": 2**64},
        {"neg": -(2**63) - 1},
        {1: "int key"},
        {"tags": {"k": 1}},
        {"tags": {2: "v"}},
        {"list": [1, 2.5e-05]},
        {"none": None},
    ],
)
def test_values_orjson_cannot_match_take_the_stdlib_path(event: dict[Any, Any]) -> None:
    assert encoding._dumps_orjson(event) == _reference(event)


class _Str(str):
    pass


@needs_orjson
def test_subclasses_are_written_like_the_stdlib_writes_them() -> None:
    import enum

    class Level(enum.IntEnum):
        HIGH = 3

    event = {"s": _Str("x"), "n": Level.HIGH, "tags": {"k": _Str("v")}}
    assert encoding._dumps_orjson(event) == _reference(event)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused_on_both_paths(value: float) -> None:
    with pytest.raises(EncodingError):
        encoding._dumps_stdlib({"cost_usd": value})
    if encoding._orjson is not None:
        with pytest.raises(EncodingError):
            encoding._dumps_orjson({"cost_usd": value})


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=5), st.sampled_from(["\ud800", "\udfff", "a\udc80b"]))
def test_lone_surrogates_are_refused_on_both_paths(text: str, surrogate: str) -> None:
    for event in ({"model": text + surrogate}, {"tags": {"k": surrogate}}, {surrogate: text}):
        with pytest.raises(EncodingError):
            encoding._dumps_stdlib(event)
        if encoding._orjson is not None:
            with pytest.raises(EncodingError):
                encoding._dumps_orjson(event)


def test_dumps_event_is_compact_utf8_without_newline() -> None:
    line = dumps_event({"model": "gpt-4o", "prompt": "héllo\n", "cost_usd": 1.5e-05})
    assert line == '{"model":"gpt-4o","prompt":"héllo\\n","cost_usd":1.5e-05}'.encode()


def test_encode_events_leaves_out_only_the_bad_event() -> None:
    lines, errors = encode_events([{"a": 1}, {"b": "\ud800"}, {"c": math.nan}, {"d": True}])
    assert lines == [b'{"a":1}', b'{"d":true}']
    assert len(errors) == 2


def test_encode_slices_caps_events_and_bytes() -> None:
    lines = [b"x" * 9] * 250  # 10 bytes a line with its newline
    by_count = list(encode_slices(lines, max_events=100, max_bytes=10_000))
    assert [len(s) for s in by_count] == [100, 100, 50]
    by_bytes = list(encode_slices(lines, max_events=100, max_bytes=35))
    assert {len(s) for s in by_bytes} == {3, 1} and sum(len(s) for s in by_bytes) == 250
    assert [len(s) for s in encode_slices([b"y" * 100, b"z"], max_events=100, max_bytes=50)] == [1, 1]
    assert list(encode_slices([], max_events=100, max_bytes=50)) == []


def _greedy_slices(lines: list[bytes], max_events: int, max_bytes: int) -> list[list[bytes]]:
    """The slicing rule, line by line: a line joins the current slice while both caps hold."""
    slices: list[list[bytes]] = []
    current: list[bytes] = []
    size = 0
    for line in lines:
        if current and (len(current) >= max_events or size + len(line) + 1 > max_bytes):
            slices.append(current)
            current, size = [], 0
        current.append(line)
        size += len(line) + 1
    return [*slices, current] if current else slices


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.binary(max_size=60), max_size=300),
    st.integers(min_value=1, max_value=120),
    st.integers(min_value=1, max_value=2_000),
)
@example([b"x" * 9] * 250, 100, 10_000)
@example([b"y" * 100, b"z", b"w" * 80], 100, 50)
def test_encode_slices_cuts_where_the_line_by_line_rule_cuts(
    lines: list[bytes], max_events: int, max_bytes: int
) -> None:
    assert list(encode_slices(lines, max_events=max_events, max_bytes=max_bytes)) == _greedy_slices(
        lines, max_events, max_bytes
    )


def test_build_body_is_ndjson_gzip_once_and_reproducible() -> None:
    lines = [dumps_event({"n": i, "tags": {"k": "v" * i}}) for i in range(100)]
    raw = build_body(lines, gzip_body=False)
    assert raw == b"\n".join(lines) + b"\n"
    body = build_body(lines, gzip_body=True)
    assert body[:2] == b"\x1f\x8b"  # a gzip member, not a zlib stream
    assert body[4:8] == b"\x00\x00\x00\x00"  # mtime 0
    assert gzip.decompress(body) == raw
    assert build_body(lines, gzip_body=True) == body
    assert len(body) < len(raw) // 3


@pytest.mark.parametrize("library", ["zlib", "zlib-ng"])
def test_both_gzip_libraries_make_bodies_any_gzip_reader_takes(library: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # With the speedups extra the body comes from zlib-ng: it must stay a plain gzip member of the same content,
    # reproducible, and about as small as zlib's (bytes still cost the user's egress).
    import zlib

    if library == "zlib-ng":
        deflate = pytest.importorskip("zlib_ng.zlib_ng")
        level = 2
    else:
        deflate, level = zlib, 1  # the levels the encoding module picks for each library
    monkeypatch.setattr(encoding, "_deflate", deflate)
    monkeypatch.setattr(encoding, "GZIP_LEVEL", level)
    lines = [
        dumps_event({"event_id": f"{i:036d}", "model": "gpt-4o", "tags": {"k": "v" * (i % 7)}}) for i in range(100)
    ]
    raw = build_body(lines, gzip_body=False)
    body = build_body(lines, gzip_body=True)
    assert body[:2] == b"\x1f\x8b" and body[4:8] == b"\x00\x00\x00\x00"
    assert gzip.decompress(body) == raw
    assert build_body(lines, gzip_body=True) == body
    reference = zlib.compressobj(3, zlib.DEFLATED, 31)
    assert len(body) <= 1.25 * len(reference.compress(raw) + reference.flush())


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(
        st.one_of(st.binary(max_size=300), st.sampled_from([b"", b"{}", b'{"model":"gpt-4o","tags":{}}' * 40])),
        max_size=120,
    ),
    library=st.sampled_from(["zlib", "zlib-ng"]),
)
@example(lines=[b"\x00" * 200_000, b"x" * 70_000], library="zlib")
@example(lines=[b"\x00" * 200_000, b"x" * 70_000], library="zlib-ng")
def test_a_gzip_body_is_the_stream_a_compressor_object_writes(lines: list[bytes], library: str) -> None:
    # build_body compresses in one call where the library allows it; the bytes must be those of compress() + flush()
    # on a compressor object (what it did before, and still does on Python 3.10 without zlib-ng): same level, same
    # container, whatever the lines.
    import zlib

    deflate: Any = zlib
    level = 1
    if library == "zlib-ng":
        deflate, level = pytest.importorskip("zlib_ng.zlib_ng"), 2
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(encoding, "_deflate", deflate)
        patch.setattr(encoding, "GZIP_LEVEL", level)
        body = build_body(lines, gzip_body=True)
    compressor = deflate.compressobj(level, zlib.DEFLATED, 31)
    raw = b"".join(line + b"\n" for line in lines)
    assert body == compressor.compress(raw) + compressor.flush()


def test_the_speedups_in_use_are_the_ones_installed() -> None:
    # tox's nospeedups env uninstalls orjson and zlib-ng and says so here: the package must then really run on the
    # stdlib json and zlib (and not, say, on a copy left behind).
    import importlib.util

    expected = os.environ.get("LUMIQTRACE_TEST_EXPECT_SPEEDUPS")
    has_orjson = importlib.util.find_spec("orjson") is not None
    has_zlib_ng = importlib.util.find_spec("zlib_ng") is not None
    assert (encoding._orjson is not None) is has_orjson
    assert ("zlib-ng" if has_zlib_ng else "zlib") == encoding.GZIP_LIBRARY
    if expected is not None:
        assert has_orjson is has_zlib_ng is (expected == "1")


def test_encoded_lines_hold_about_their_length_in_memory() -> None:
    # The retry buffer bounds memory by summing len(line): a line must not keep a larger allocation alive.
    import tracemalloc

    event = {"model": "m" * 600, "latency_ms": 12, "tags": {"k": "v" * 50}}
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        lines = [dumps_event(event) for _ in range(500)]
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    total = sum(len(line) for line in lines)
    assert held < 1.5 * total


@pytest.mark.parametrize(
    "make",
    [
        lambda i: {"event_id": f"{i:036d}", "model": "m" * 600, "latency_ms": 12, "tags": {"k": "v"}},
        lambda i: {"event_id": f"{i:036d}", "cost_usd": 0.0034 + i, "tags": {"k": "v" * 600}},
    ],
    ids=["plain", "costed"],
)
def test_the_exporters_lines_hold_about_their_length_in_memory(make: Any) -> None:
    # The exporter's fast path copies orjson's answer too: a line holding orjson's whole write buffer (8 KiB for these
    # events) would break the retry buffer's byte bound, and made encoding 3x dearer (fresh pages for every buffer).
    import tracemalloc

    events = [make(i) for i in range(500)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        lines, _ = encode_events(events, from_mapping=True)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 1.5 * sum(len(line) for line in lines)


@pytest.mark.parametrize("cost", [4.2e-05, 0.0034, 1.0, 0.1 + 0.2, 1e-12, 123456789.5])
def test_the_exporters_fast_path_writes_the_stdlib_bytes(cost: float) -> None:
    from opentelemetry_exporter_lumiqtrace.encoding import _dumps_stdlib

    event = {"event_id": "e", "latency_ms": 3, "stream": False, "cost_usd": cost, "tags": {"k": "välue\u2028"}}
    lines, errors = encode_events([dict(event)], from_mapping=True)
    assert errors == [] and lines == [_dumps_stdlib(event)]
    nan_lines, nan_errors = encode_events([{**event, "cost_usd": float("nan")}], from_mapping=True)
    assert nan_lines == [] and len(nan_errors) == 1


def test_the_fast_path_falls_back_for_integers_beyond_64_bits() -> None:
    from opentelemetry_exporter_lumiqtrace.encoding import _dumps_stdlib

    event = {"event_id": "e", "ttft_ms": 2**64, "cost_usd": 4.2e-05}
    lines, errors = encode_events([dict(event)], from_mapping=True)
    assert errors == [] and lines == [_dumps_stdlib(event)]


@settings(max_examples=300, deadline=None)
@given(st.one_of(_events, st.lists(_events, max_size=3)))
@example({"s": '\x00\x1f\x7f\u2028\u2029\ufeff\U0001f600"\\/', "cost_usd": 1.5e-05, "n": 2**70})
def test_the_stdlib_writer_built_once_writes_what_json_dumps_writes(event: Any) -> None:
    # _dumps_stdlib builds its C encoder once instead of per call (json.dumps with keywords); same bytes.
    assert encoding._dumps_stdlib(event) == _reference(event)


def test_the_stdlib_writer_refuses_a_cycle_with_an_encoding_error() -> None:
    event: dict[str, Any] = {"event_id": "e"}
    event["tags"] = event
    with pytest.raises(EncodingError):
        encoding._dumps_stdlib(event)


# Long captured texts (capture_content): without orjson they are escaped by escape_text, the rest of the event by the
# C encoder; the bytes must be the stdlib's.
_long_text = st.builds(
    lambda head, pad: head + ((pad or "x") * encoding.LONG_TEXT_CHARS)[: encoding.LONG_TEXT_CHARS], _text, _text
)


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=80))
@example('\x00\x07\x08\t\n\x0b\x0c\r\x1f\x7f"\\/\u2028\ud800é\U0001f600')
def test_escape_text_writes_what_the_c_encoder_writes(text: str) -> None:
    assert encoding.escape_text(text) == json.dumps(text, ensure_ascii=False)[1:-1]


@settings(max_examples=200, deadline=None)
@given(_events, _long_text, st.one_of(st.none(), _long_text, _text))
def test_long_captured_texts_are_written_as_the_stdlib_writes_them(
    event: dict[str, Any], prompt: str, response: str | None
) -> None:
    event = {**event, "prompt": prompt}
    if response is not None:
        event["response"] = response
    expected = _reference(event)
    assert len(prompt) >= encoding.LONG_TEXT_CHARS
    assert encoding._dumps_mapped_stdlib(dict(event)) == expected


@pytest.mark.parametrize(
    "extra",
    [
        {"tags": {"k": "\x00lumiqtrace:prompt\x00"}},  # the stand-in as a value elsewhere: written twice
        {"\x00lumiqtrace:prompt\x00": "v"},  # as a key
        {"note": 'x"\x00lumiqtrace:prompt\x00"'},  # inside another text, quotes escaped
        {"response": "\x00lumiqtrace:prompt\x00" * 300},  # a long text made of stand-ins
    ],
)
def test_a_stand_in_found_elsewhere_in_the_event_changes_nothing(extra: dict[str, Any]) -> None:
    event = {"event_id": "e", "prompt": "line\n" * 1000, **extra}
    assert encoding._dumps_mapped_stdlib(dict(event)) == _reference(event)


def test_a_lone_surrogate_in_a_long_text_is_refused_and_the_event_kept_as_it_was() -> None:
    event = {"event_id": "e", "prompt": "a" * 5000 + "\ud800", "response": "b" * 3000}
    with pytest.raises(EncodingError):
        encoding._dumps_mapped_stdlib(event)
    assert event == {"event_id": "e", "prompt": "a" * 5000 + "\ud800", "response": "b" * 3000}
    with pytest.raises(EncodingError):
        encoding._dumps_mapped_stdlib({"prompt": "a" * 5000, "n": float("nan")})


def test_without_orjson_the_exporters_path_escapes_long_texts_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encoding, "_orjson", None)
    escaped: list[int] = []
    real = encoding.escape_text
    monkeypatch.setattr(encoding, "escape_text", lambda text: escaped.append(len(text)) or real(text))
    events = [
        {"event_id": "a", "prompt": 'say "hi"\n' * 400, "response": "short", "cost_usd": 0.5, "tags": {"k": "v"}},
        {"event_id": "b", "latency_ms": 3},
        {"event_id": "c", "prompt": "p" * 100, "response": "r\t" * 2000},
    ]
    lines, errors = encode_events([dict(e) for e in events], from_mapping=True)
    assert errors == [] and lines == [_reference(e) for e in events]
    assert escaped == [len(events[0]["prompt"]), len(events[2]["response"])]

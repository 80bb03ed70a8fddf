# SPDX-License-Identifier: Apache-2.0
"""Events to NDJSON request bodies.

An event is encoded once, to one NDJSON line (bytes, no newline). Lines are what the retry buffer keeps and what
slices are cut from, so a retried or split request never re-encodes an event. A body is built (and compressed,
once) per request.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from opentelemetry_exporter_lumiqtrace.jsontext import LONG_TEXT_CHARS, escape_text

_logger = logging.getLogger(__name__)

_orjson: Any
try:  # the optional `speedups` extra
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised by the tox env without speedups
    _orjson = None
# orjson writes floats in its own shortest form (4.2e-05 becomes 0.000042); a Fragment lets the stdlib's repr through
# unchanged. Without Fragment (orjson < 3.9), events holding a float take the stdlib path.
_Fragment: Any = getattr(_orjson, "Fragment", None)

_deflate: Any
try:  # the optional `speedups` extra: zlib-ng, zlib's API and a gzip stream any gzip reader takes
    from zlib_ng import zlib_ng as _deflate
except ImportError:  # pragma: no cover - exercised by the tox env without speedups
    _deflate = zlib

# Levels 1-3 are zlib's fastest family (deflate_fast); they differ in how long a chain of earlier matches they search.
# On varied text (capture_content with 8 KB prompts of prose, code and JSON) level 1 costs ~24 % less CPU than level 3
# (42 against 55 us a span; level 6: 122) for bodies ~9 % larger; on short or repetitive events (today's workload, or
# one prompt on every span) levels 1-3 cost the same. zlib-ng's level 2 makes bodies the size of zlib's level 3 in
# a half to a third of the CPU (its level 1 is another algorithm, with bodies ~28 % larger on varied text). Figures:
# benchmarks/gzip_levels.py. CPU is what an exporter takes from the application; the per-key rate limit counts
# requests, not bytes. Not ISA-L (the `isal` package), though it is faster still: after it runs, the CPU of the thread
# that called it stays ~15 % slower on other code (measured on protobuf encoding and on this exporter's mapping),
# which took back most of its gain; zlib-ng leaves no such trace.
GZIP_LEVEL = 1 if _deflate is zlib else 2
GZIP_LIBRARY = "zlib" if _deflate is zlib else "zlib-ng"

# The floats orjson writes byte for byte as ``float.__repr__`` does: both write the shortest digits that read back
# as the same float, and in this range both write them without an exponent (repr from 1e16 on, orjson below 1e-4
# writes 0.000042 where repr writes 4.2e-05). Checked on ~4 million floats of the range; tests/test_encoding.py
# keeps checking it, and the probe below turns it off for an orjson that writes them otherwise. Such a float needs
# no Fragment, which costs ~0.6 us an event (the repr, the Fragment, and orjson's slower path for it).
_REPR_FLOATS_MIN = 1e-4
_REPR_FLOATS_MAX = 1e16


def _orjson_writes_repr_floats() -> bool:
    probes = (1e-4, 4.2e-04, 0.0007125, 0.1 + 0.2, 1.0, 123456789.5, 9999999999999998.0)
    return _orjson is not None and all(_orjson.dumps(x) == float.__repr__(x).encode() for x in probes)


if not _orjson_writes_repr_floats():  # pragma: no cover - no orjson, or one that formats floats otherwise
    _REPR_FLOATS_MIN, _REPR_FLOATS_MAX = math.inf, -math.inf

# The integers orjson writes natively (i64 min .. u64 max); larger ones take the stdlib path.
_ORJSON_INT_MIN = -(2**63)
_ORJSON_INT_MAX = 2**64 - 1
_GZIP_WBITS = 31  # 16 + 15: a gzip header and trailer around a 32 KiB-window deflate stream
# The stdlib's zlib.compress() takes wbits from Python 3.11 on (zlib-ng's always did).
_STDLIB_COMPRESS_TAKES_WBITS = sys.version_info >= (3, 11)


class EncodingError(ValueError):
    """An event that cannot be written as JSON (for example a lone surrogate in a string)."""


def _stdlib_writer() -> Callable[[Any], str]:
    """``json.dumps(o, ensure_ascii=False, separators=(",", ":"), allow_nan=False)``, built once.

    ``json.dumps`` with keywords builds a new ``JSONEncoder`` and C encoder on every call, about a quarter of its
    time on an event. The C encoder built here is the one ``json.dumps`` builds, so the text is the same; without a
    circular-reference table (an event is a tree; a cycle ends in RecursionError, refused like any bad value).
    """
    encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if make_encoder is None:  # pragma: no cover - CPython without the _json accelerator
        return encoder.encode
    write = make_encoder(None, encoder.default, json.encoder.encode_basestring, None, ":", ",", False, False, False)

    def dumps(value: Any) -> str:
        return "".join(write(value, 0))

    return dumps


_write_stdlib = _stdlib_writer()


def _dumps_stdlib(event: Mapping[str, Any]) -> bytes:
    try:
        return _write_stdlib(event).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError, RecursionError) as exc:
        raise EncodingError(str(exc)) from exc


# The event fields that hold captured texts (prompt and response, up to 32 KiB each with capture_content).
CONTENT_FIELDS = ("prompt", "response")
# Stand-ins for long texts while the C encoder writes the rest of the event: control characters make them
# unlikely in real text, and each must appear exactly once in the written line to be replaced.
_STAND_INS = {name: f"\x00lumiqtrace:{name}\x00" for name in CONTENT_FIELDS}
_WRITTEN_STAND_INS = {name: json.dumps(stand_in) for name, stand_in in _STAND_INS.items()}


def _dumps_mapped_stdlib(event: dict[str, Any]) -> bytes:
    """``_dumps_stdlib`` for an event straight from the mapping, with long captured texts escaped by
    :func:`escape_text` and the rest of the event by the C encoder. Same bytes."""
    if event.keys().isdisjoint(CONTENT_FIELDS):
        return _dumps_stdlib(event)  # no captured text: one C-level check, the usual case
    long_texts: list[tuple[str, str]] = []
    for name in CONTENT_FIELDS:
        text = event.get(name)
        if type(text) is str and len(text) >= LONG_TEXT_CHARS:
            long_texts.append((name, text))
            event[name] = _STAND_INS[name]
    if not long_texts:
        return _dumps_stdlib(event)
    try:
        line = _write_stdlib(event)
    except (TypeError, ValueError, RecursionError):
        line = ""  # the general path below decides, on the event as the mapping made it
    finally:
        for name, text in long_texts:
            event[name] = text
    for name, text in long_texts:
        before, found, after = line.partition(_WRITTEN_STAND_INS[name])
        if not found or _WRITTEN_STAND_INS[name] in after:
            return _dumps_stdlib(event)  # the stand-in is not where only the text can be: take no chance
        line = "".join((before, '"', escape_text(text), '"', after))
    try:
        return line.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate, refused as the stdlib path refuses it
        raise EncodingError(str(exc)) from exc


def _orjson_ready(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """``event`` with floats as stdlib-repr fragments when orjson writes it byte for byte like the stdlib, else None.

    orjson and ``json.dumps(ensure_ascii=False)`` agree on str (escapes included), int within 64 bits, bool and
    str->str dicts, which is everything an event holds except ``cost_usd``; floats are written with the stdlib's
    ``float.__repr__``. Exact type checks: a subclass (an IntEnum, a str subclass) goes to the stdlib, whose output
    is the reference.
    """
    if type(event) is not dict:
        return None
    ready: dict[str, Any] | None = None
    for key, value in event.items():
        if type(key) is not str:
            return None
        kind = type(value)
        if kind is str or kind is bool:
            continue
        if kind is int:
            if _ORJSON_INT_MIN <= value <= _ORJSON_INT_MAX:
                continue
            return None
        if kind is float:
            if _REPR_FLOATS_MIN <= value < _REPR_FLOATS_MAX:
                continue
            if not math.isfinite(value):
                # orjson would write null; the stdlib path refuses. Both paths must agree: refuse.
                raise EncodingError(f"Out of range float values are not JSON compliant: {value!r}")
            if _Fragment is None:
                return None
            if ready is None:
                ready = dict(event)
            ready[key] = _Fragment(float.__repr__(value))
            continue
        if kind is dict:
            for tag_key, tag_value in value.items():
                if type(tag_key) is not str or type(tag_value) is not str:
                    return None
            continue
        return None
    return event if ready is None else ready


def _dumps_orjson(event: Mapping[str, Any]) -> bytes:
    assert _orjson is not None
    ready = _orjson_ready(event)
    if ready is None:
        return _dumps_stdlib(event)
    try:
        line: bytes = _orjson.dumps(ready)
    except TypeError as exc:  # orjson.JSONEncodeError subclasses TypeError (a lone surrogate, for one)
        raise EncodingError(str(exc)) from exc
    # orjson hands back its whole write buffer (at least 4 KiB, 8 KiB for a 700-byte event) with only the length
    # set: kept in the retry buffer, lines would hold 5-10x the bytes the buffer bound counts. One copy (~0.1 us)
    # gives a bytes object whose memory is its length.
    return memoryview(line).tobytes()


def dumps_event(event: Mapping[str, Any]) -> bytes:
    """One event as one compact JSON line (UTF-8 bytes, no trailing newline).

    With orjson installed the bytes are the same as without it (tests/test_encoding.py proves it over generated
    events); orjson is only faster.
    """
    if _orjson is not None:
        return _dumps_orjson(event)
    return _dumps_stdlib(event)


def _dumps_mapped(event: dict[str, Any]) -> bytes:
    """``dumps_event`` for an event straight from ``mapping.map_span``, which it may modify.

    ``map_span`` only produces str, bool, non-negative ints below 2**63, str->str ``tags`` and one float,
    ``cost_usd`` (tests/test_mapping_properties.py pins that through the server's validator), so the per-value type
    guard of the general path is not needed: only a ``cost_usd`` outside the floats orjson writes as repr does becomes
    a repr fragment. Anything else that slipped
    through makes orjson raise, and the general path then encodes it (or refuses it) exactly as it would have.
    """
    assert _orjson is not None and _Fragment is not None
    cost = event.get("cost_usd")
    if cost is not None and not (type(cost) is float and _REPR_FLOATS_MIN <= cost < _REPR_FLOATS_MAX):
        if type(cost) is not float:
            return _dumps_orjson(event)
        if not math.isfinite(cost):
            raise EncodingError(f"Out of range float values are not JSON compliant: {cost!r}")
        event["cost_usd"] = _Fragment(float.__repr__(cost))
    try:
        line: bytes = _orjson.dumps(event)
    except TypeError:
        # Something orjson does not write like the stdlib (an int beyond 64 bits, say): the guarded general path
        # decides, on the event as the mapping made it.
        if cost is not None:
            event["cost_usd"] = cost
        return _dumps_orjson(event)
    # The copy (as in _dumps_orjson) also lets orjson's buffer be freed and reused at once: 2,048 lines each keeping
    # their 8 KiB buffer made encoding 3x dearer (1.6 against 4.9 us a span: fresh pages for every buffer).
    return memoryview(line).tobytes()


def event_encoder(*, from_mapping: bool = False) -> Callable[[dict[str, Any]], bytes]:
    """The function :func:`encode_events` encodes each event with (it raises :class:`EncodingError` for an event that
    cannot be encoded), for a caller that encodes events one at a time as it makes them."""
    if from_mapping:
        if _orjson is None:
            return _dumps_mapped_stdlib
        if _Fragment is not None:
            return _dumps_mapped
    return dumps_event


def encode_events(events: Iterable[Mapping[str, Any]], *, from_mapping: bool = False) -> tuple[list[bytes], list[str]]:
    """Encode each event; an event that cannot be encoded is left out and its error returned, losing nothing else.

    ``from_mapping=True`` says the events are fresh dicts from ``mapping.map_span`` (the exporter's case): encoding
    may then take a faster path and may modify them. The bytes are the same either way.
    """
    dumps: Any = event_encoder(from_mapping=from_mapping)  # events of the general path are any Mapping
    lines: list[bytes] = []
    errors: list[str] = []
    for event in events:
        try:
            lines.append(dumps(event))
        except EncodingError as exc:
            errors.append(str(exc))
    return lines, errors


def encode_slices(lines: Sequence[bytes], *, max_events: int, max_bytes: int) -> Iterator[list[bytes]]:
    """Cut lines into slices of at most ``max_events`` lines and about ``max_bytes`` uncompressed bytes.

    A single line larger than ``max_bytes`` still gets a slice of its own: the server, not the client, decides
    whether it is too large, and an answer of 413 or 400 for that slice then drops only that event.
    """
    max_events = max(1, max_events)
    start, end = 0, len(lines)
    while start < end:
        chunk = lines[start : start + max_events]
        if type(chunk) is not list:
            chunk = list(chunk)
        # Usually the whole run of max_events lines fits the byte cap: one C-level sum instead of a loop per line.
        if sum(map(len, chunk)) + len(chunk) > max_bytes:
            chunk = _fitting_head(chunk, max_bytes)
        yield chunk
        start += len(chunk)


def _fitting_head(chunk: list[bytes], max_bytes: int) -> list[bytes]:
    """The longest head of ``chunk`` (at least one line) whose lines, a newline each, fit in ``max_bytes``."""
    size = 0
    for count, line in enumerate(chunk):
        size += len(line) + 1
        if count and size > max_bytes:
            return chunk[:count]
    return chunk


def build_body(lines: Sequence[bytes], *, gzip_body: bool) -> bytes:
    """One NDJSON request body from encoded lines, gzip-compressed once when asked."""
    raw = b"\n".join([*lines, b""])  # one join, trailing newline included: no second copy of the body
    if gzip_body:
        # The library's own gzip container (wbits=31) writes mtime 0, so the body is a pure function of the events
        # (reproducible, comparable in tests); one pass over the body, and no gzip.GzipFile on Python 3.10.
        body: bytes
        if _deflate is not zlib or _STDLIB_COMPRESS_TAKES_WBITS:
            # One call, no compressor object: the same bytes as compress() + flush() on one (the whole body is there
            # either way; tests/test_encoding.py holds them equal), ~4 us less per 100-event body.
            body = _deflate.compress(raw, GZIP_LEVEL, _GZIP_WBITS)
            return body
        compressor = _deflate.compressobj(GZIP_LEVEL, zlib.DEFLATED, _GZIP_WBITS)
        body = compressor.compress(raw) + compressor.flush()
        return body
    return raw

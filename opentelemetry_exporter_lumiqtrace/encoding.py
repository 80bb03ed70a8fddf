# SPDX-License-Identifier: Apache-2.0
"""Events to NDJSON request bodies.

An event is encoded once, to one NDJSON line (bytes, no newline). Lines are what the retry buffer keeps and what
slices are cut from, so a retried or split request never re-encodes an event. A body is built (and compressed,
once) per request.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

_logger = logging.getLogger(__name__)

_orjson: Any
try:  # the optional `speedups` extra
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised by the tox env without speedups
    _orjson = None

# gzip level 6 costs about half the CPU of level 9 for nearly the same ratio on JSON.
GZIP_LEVEL = 6


class EncodingError(ValueError):
    """An event that cannot be written as JSON (for example a lone surrogate in a string)."""


def _dumps_stdlib(event: Mapping[str, Any]) -> bytes:
    try:
        return json.dumps(event, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError) as exc:
        raise EncodingError(str(exc)) from exc


def _dumps_orjson(event: Mapping[str, Any]) -> bytes:
    assert _orjson is not None
    for value in event.values():
        # orjson silently writes NaN as null; the stdlib path refuses it. Both must agree, and null is not valid
        # for any LumiqTrace field, so refuse here too. Only top-level numbers can be floats in an event.
        if type(value) is float and not math.isfinite(value):
            raise EncodingError(f"non-finite number {value!r}")
    try:
        line: bytes = _orjson.dumps(event)
    except TypeError as exc:  # orjson.JSONEncodeError subclasses TypeError
        raise EncodingError(str(exc)) from exc
    return line


def dumps_event(event: Mapping[str, Any]) -> bytes:
    """One event as one compact JSON line (UTF-8 bytes, no trailing newline)."""
    if _orjson is not None:
        return _dumps_orjson(event)
    return _dumps_stdlib(event)


def encode_events(events: Iterable[Mapping[str, Any]]) -> tuple[list[bytes], list[str]]:
    """Encode each event; an event that cannot be encoded is left out and its error returned, losing nothing else."""
    lines: list[bytes] = []
    errors: list[str] = []
    for event in events:
        try:
            lines.append(dumps_event(event))
        except EncodingError as exc:
            errors.append(str(exc))
    return lines, errors


def encode_slices(lines: Sequence[bytes], *, max_events: int, max_bytes: int) -> Iterator[list[bytes]]:
    """Cut lines into slices of at most ``max_events`` lines and about ``max_bytes`` uncompressed bytes.

    A single line larger than ``max_bytes`` still gets a slice of its own: the server, not the client, decides
    whether it is too large, and an answer of 413 or 400 for that slice then drops only that event.
    """
    current: list[bytes] = []
    size = 0
    for line in lines:
        line_size = len(line) + 1
        if current and (len(current) >= max_events or size + line_size > max_bytes):
            yield current
            current = []
            size = 0
        current.append(line)
        size += line_size
    if current:
        yield current


def build_body(lines: Sequence[bytes], *, gzip_body: bool) -> bytes:
    """One NDJSON request body from encoded lines, gzip-compressed once when asked."""
    raw = b"\n".join(lines) + b"\n"
    if gzip_body:
        # mtime=0 keeps the body a pure function of the events (reproducible, comparable in tests).
        return gzip.compress(raw, compresslevel=GZIP_LEVEL, mtime=0)
    return raw

# SPDX-License-Identifier: Apache-2.0
"""Long texts as JSON strings, written faster than the C encoder writes them and byte for byte the same.

Used where captured prompts and responses are written: ``prompt_hash``'s canonical JSON (mapping, as UTF-8) and,
without orjson, the event's NDJSON line (encoding).
"""

from __future__ import annotations

import json

# From this length a text is escaped by the str methods below rather than by the C encoder, whose per-character loop
# costs about 2 ns a character (16 us for an 8 KB prompt on CPython 3.11): a missing character is found by memchr and
# each character present costs one replace pass. Measured break-even about 600 characters (1 KB: 1.5 against
# 2.1 us; 8 KB: 7.3 against 16 us, before ASCII texts went through bytes); below it the fixed cost of ~34 searches is
# not repaid.
LONG_TEXT_CHARS = 1_024
# JSON's escapes for what must be escaped (ensure_ascii=False writes everything else as is): what the C encoder
# writes, lowercase hex included. The backslash goes first: the other escapes add backslashes of their own.
_SHORT_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
_TEXT_ESCAPES = (
    ("\\", "\\\\"),
    ('"', '\\"'),
    *((chr(code), _SHORT_ESCAPES.get(chr(code), f"\\u{code:04x}")) for code in range(32)),
)
# The same escapes as UTF-8, with the character looked for in the str: ``in`` on a str is a memchr, and
# bytes.replace counts with memchr where str.replace walks every character (2.3 us for 8 KB on CPython 3.11).
_UTF8_ESCAPES = tuple((char, char.encode(), escaped.encode()) for char, escaped in _TEXT_ESCAPES)
# What json.dumps(..., ensure_ascii=False) writes for a str (C when available).
_encode_basestring = json.encoder.encode_basestring


def _escaped_utf8(text: str) -> bytes | None:
    """``escape_text(text).encode("utf-8", "surrogatepass")``, or ``None`` when nothing in ``text`` is escaped.

    Every character JSON escapes is ASCII, and no byte of a multi-byte UTF-8 sequence (surrogates included) is ASCII,
    so escaping the UTF-8 bytes gives the bytes of the escaped text.
    """
    data: bytes | None = None
    for char, raw, escaped in _UTF8_ESCAPES:
        if char in text:
            if data is None:
                data = text.encode("utf-8", "surrogatepass")
            data = data.replace(raw, escaped)
    return data


def escape_text(text: str) -> str:
    """``text`` as the inside of a JSON string, exactly as ``json.dumps(text, ensure_ascii=False)[1:-1]``."""
    if text.isascii():
        # Through bytes, whose encoding and decoding are copies for ASCII: 8 KB with a newline, 3.3 against 7.0 us.
        # A text that is not ASCII costs more to decode than str.replace's walk (8 KB of CJK: 37 against 19 us).
        data = _escaped_utf8(text)
        return text if data is None else data.decode("ascii")
    for char, escaped in _TEXT_ESCAPES:
        if char in text:
            text = text.replace(char, escaped)
    return text


def json_string(text: str) -> str:
    """``text`` as a JSON string, exactly as ``json.dumps(text, ensure_ascii=False)`` writes it."""
    if len(text) < LONG_TEXT_CHARS:
        return _encode_basestring(text)  # type: ignore[no-any-return]
    return '"' + escape_text(text) + '"'


def json_string_utf8(text: str) -> bytes:
    """``json_string(text).encode("utf-8", "surrogatepass")``; a long text is escaped as bytes, after one encode."""
    if len(text) < LONG_TEXT_CHARS:
        return _encode_basestring(text).encode("utf-8", "surrogatepass")  # type: ignore[no-any-return]
    data = _escaped_utf8(text)
    if data is None:
        data = text.encode("utf-8", "surrogatepass")
    return b"".join((b'"', data, b'"'))

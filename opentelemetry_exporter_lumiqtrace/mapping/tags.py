# SPDX-License-Identifier: Apache-2.0
"""Tags: string -> string, first value of a key wins, keys and values capped and cleaned, redacted by key name.

Tags are collected as ``(key, value)`` pairs, most useful first (``lumiqtrace.tags.*``, the span's identity, the
derived LLM tags, HTTP/DB/RPC context, then user metadata), so the ``max_tags`` cap drops user metadata before the
span's identity.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from opentelemetry_exporter_lumiqtrace.mapping.redaction import REDACTED, Redactor
from opentelemetry_exporter_lumiqtrace.mapping.values import DEFAULT_MAX_TAG_KEY_CHARS, cap, clean, tag_value


def fill_tags(
    pairs: Sequence[tuple[str, Any]],
    tags: dict[str, str],
    redactor: Redactor,
    max_tags: int,
    max_value_chars: int,
) -> dict[str, str]:
    """Add the tags of ``pairs`` in order to ``tags`` (the result of earlier pairs) and return it."""
    if max_value_chars < 0:
        max_value_chars = 0
    room = max_tags - len(tags)
    if room <= 0:
        return tags
    # Each pair adds at most one tag: when they all fit, the cap needs no test per tag (a len() call each).
    may_fill = len(pairs) > room
    plain = redactor.plain_tag_keys.young
    for key, value in pairs:
        if key in tags:
            continue
        text: str | None
        if value.__class__ is str:
            text = value
        elif value.__class__ is int:  # exact int: not bool
            text = str(value)
        else:
            text = tag_value(value)
            if text is None:
                continue
        tag_key: str | None
        try:
            # A subscript, not get(): the usual key is known and plain; a miss (a new or a redacted key) costs the
            # exception on top of the calls it makes anyway.
            tag_key = plain[key]
        except KeyError:
            tag_key = redactor.plain_tag_key(key)
            if tag_key is None:
                if not key:
                    continue
                tag_key = key[:DEFAULT_MAX_TAG_KEY_CHARS] if len(key) > DEFAULT_MAX_TAG_KEY_CHARS else key
                if not tag_key.isascii():
                    tag_key = clean(tag_key)
                if redactor.matches(tag_key):
                    tags[tag_key] = REDACTED
                    if may_fill and len(tags) >= max_tags:
                        break
                    continue
                redactor.remember_plain_tag_key(key, tag_key)
            plain = redactor.plain_tag_keys.young
        if len(text) > max_value_chars:
            text = cap(text, max_value_chars)
        if not text.isascii():
            text = clean(text)
        tags[tag_key] = text
        if may_fill and len(tags) >= max_tags:
            break
    return tags


def json_flat_pairs(prefix: str, value: Any, redactor: Redactor, pairs: list[tuple[str, Any]]) -> None:
    """Flatten a JSON object one level (``prefix.key``) into ``pairs``, redacting nested secrets of deeper values."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] != "{":
            pairs.append((prefix, value))
            return
        try:
            parsed = json.loads(stripped)
        except (ValueError, RecursionError):
            pairs.append((prefix, value))
            return
    else:
        parsed = value
    if not isinstance(parsed, dict):
        pairs.append((prefix, value))
        return
    for key, item in parsed.items():
        name = f"{prefix}.{key}"
        if isinstance(item, (dict, list)):
            scrubbed = redactor.scrub_json(item)
            try:
                item = json.dumps(scrubbed, ensure_ascii=False, default=str)
            except (TypeError, ValueError, RecursionError):
                continue
        elif item is None:
            continue
        pairs.append((name, item))

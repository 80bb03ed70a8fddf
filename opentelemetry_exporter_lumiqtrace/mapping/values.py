# SPDX-License-Identifier: Apache-2.0
"""Parsers of attribute values (the ``parse`` of each field in the conventions table) and wire-text helpers.

Every parser takes any attribute value and returns the parsed value or ``None`` when the value is unusable, so the
next key of the field's precedence list is read.
"""

from __future__ import annotations

import json
import math
from typing import Any

DEFAULT_MAX_CONTENT_CHARS = 32_768
DEFAULT_MAX_TAG_VALUE_CHARS = 1_024
DEFAULT_MAX_TAG_KEY_CHARS = 256
DEFAULT_MAX_ERROR_MESSAGE_CHARS = 500

MAX_TOKENS = 2**63 - 1
# A JSON-array string of finish reasons longer than this is not parsed (it is used verbatim, capped).
_MAX_JSON_REASONS_CHARS = 4_096
_ELLIPSIS = "…"


def clean(text: str) -> str:
    """Make ``text`` encodable as UTF-8 (lone surrogates from odd inputs would break the NDJSON encoder)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


def cap(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, the last one an ellipsis when it was cut."""
    if len(text) <= limit:
        return text
    if limit <= 1:
        return text[: max(limit, 0)]
    return text[: limit - 1] + _ELLIPSIS


def fit(text: str) -> str:
    """``text`` as a wire field value: capped at the tag value limit and UTF-8 encodable."""
    if len(text) > DEFAULT_MAX_TAG_VALUE_CHARS:
        text = cap(text, DEFAULT_MAX_TAG_VALUE_CHARS)
    return text if text.isascii() else clean(text)


def as_str(value: Any) -> str | None:
    """A non-empty identifier-like string (ids, names, models), or ``None``."""
    if value.__class__ is str or isinstance(value, str):
        return value if value and not value.isspace() else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    if isinstance(value, (bytes, bytearray)):
        return as_str(bytes(value).decode("utf-8", "replace"))
    return None


def as_int(value: Any) -> int | None:
    """A non-negative int from an int, a finite float or a numeric string; ``None`` otherwise."""
    if value.__class__ is int:  # the usual token count, without the isinstance ladder (bool is not exactly int)
        return value if 0 <= value <= MAX_TOKENS else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= MAX_TOKENS else None
    if isinstance(value, float):
        if math.isfinite(value) and 0 <= value <= MAX_TOKENS:
            return round(value)
        return None
    if isinstance(value, (str, bytes)) and len(value) < 40:
        try:
            return as_int(int(value))
        except ValueError:
            try:
                return as_int(float(value))
            except ValueError:
                return None
    return None


def as_float(value: Any) -> float | None:
    """A finite, non-negative float from a number or a numeric string; ``None`` otherwise."""
    if value.__class__ is float:  # NaN fails both comparisons
        return value if 0.0 <= value < math.inf else None
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            return None
    elif isinstance(value, (str, bytes)) and len(value) < 64:
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
    if isinstance(value, int):
        return bool(value) if value in (0, 1) else None
    return None


def as_value(value: Any) -> Any:
    """Any value that is there (content, JSON blobs read later by their own parsers)."""
    return value


def as_finish_reason(value: Any) -> str | None:
    """The finish reason(s) of one attribute value: a sequence joins its distinct usable reasons with ``,``; so does
    a JSON array of strings given as a string (Logfire stores ``gen_ai.response.finish_reasons`` as ``'["stop"]'``);
    any other string is the reason as it is."""
    if isinstance(value, str) and value[:1] == "[" and value[-1:] == "]" and len(value) <= _MAX_JSON_REASONS_CHARS:
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError):
            parsed = None
        if isinstance(parsed, list):
            from_json = as_finish_reason(parsed)
            if from_json is not None:
                return from_json
        return as_str(value)
    if isinstance(value, (list, tuple)):
        if len(value) == 1:
            return as_str(value[0])
        reasons = [r for r in (as_str(v) for v in value) if r is not None]
        return ",".join(dict.fromkeys(reasons)) if reasons else None
    return as_str(value)


def json_object(value: Any, *, max_chars: int = DEFAULT_MAX_CONTENT_CHARS) -> dict[str, Any] | None:
    """A JSON object given as a string (``llm.invocation_parameters``, cost details), or ``None``."""
    if not isinstance(value, str) or value[:1] != "{" or len(value) > max_chars:
        return None
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def as_cost_details_total(value: Any) -> float | None:
    """The ``total`` of Langfuse's ``cost_details`` JSON object."""
    if not isinstance(value, str) or value[:1] != "{":
        return None
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):
        return None
    return as_float(parsed.get("total")) if isinstance(parsed, dict) else None


def tag_value(value: Any) -> str | None:
    """Any attribute value as a tag string (sequences as JSON)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, (list, tuple)):
        try:
            return json.dumps(list(value), ensure_ascii=False, default=str)
        except (TypeError, ValueError, RecursionError):
            return None
    if value is None:
        return None
    try:
        return str(value)
    except Exception:
        return None

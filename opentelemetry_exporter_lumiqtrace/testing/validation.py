# SPDX-License-Identifier: Apache-2.0
"""Validation of one LumiqTrace ingest event against the documented schema.

The rules are those of the LumiqTrace ingest field table (``POST /v1/ingest``), made strict where the docs
are vague so that an exporter bug (a ``null``, a float token count, a bool where a number belongs) is
caught in tests rather than silently accepted by a lenient fake.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

PROVIDERS = ("openai", "anthropic", "google", "custom")
OPERATIONS = ("chat", "embed", "tool", "agent", "custom")
SPAN_KINDS = ("llm", "agent", "tool", "planning", "handoff", "retriever", "guardrail", "general")
STATUSES = ("success", "error", "timeout", "rate_limited", "cancelled")
MAX_ERROR_MESSAGE_LENGTH = 500

REQUIRED_FIELDS = ("event_id", "trace_id", "span_id", "timestamp", "provider")

_UUID4_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", re.IGNORECASE)
# Exactly the shape of the docs' examples (milliseconds, "Z"); ``[0-9]`` because ``\d`` also matches
# non-ASCII digits.
_TIMESTAMP_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
_SHA256_HEX_RE = re.compile(r"[0-9a-f]{64}")

_OPTIONAL_STRINGS = (
    "parent_span_id",
    "model",
    "error_code",
    "environment",
    "user_id",
    "session_id",
    "sdk_version",
    "finish_reason",
    "prompt",
    "response",
)
_OPTIONAL_ENUMS: dict[str, tuple[str, ...]] = {
    "operation": OPERATIONS,
    "span_kind": SPAN_KINDS,
    "status": STATUSES,
}
_OPTIONAL_NON_NEGATIVE_INTS = ("latency_ms", "ttft_ms", "input_tokens", "output_tokens", "cached_tokens")


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_int(value: object) -> bool:
    # bool is a subclass of int in Python but a different JSON type.
    return isinstance(value, int) and not isinstance(value, bool)


def _check_timestamp(value: object) -> str | None:
    message = "field 'timestamp' must be ISO 8601 UTC with milliseconds, like 2026-04-20T10:00:00.000Z"
    if not isinstance(value, str) or _TIMESTAMP_RE.fullmatch(value) is None:
        return message
    try:
        datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        return f"field 'timestamp' is not a real date: {value}"
    return None


def _check_required(event: Mapping[str, Any]) -> str | None:
    for name in REQUIRED_FIELDS:
        if name not in event:
            return f"missing required field '{name}'"
    if not isinstance(event["event_id"], str) or _UUID4_RE.fullmatch(event["event_id"]) is None:
        return "field 'event_id' must be a UUIDv4 string"
    for name in ("trace_id", "span_id"):
        value = event[name]
        if not isinstance(value, str) or not value:
            return f"field '{name}' must be a non-empty string"
    error = _check_timestamp(event["timestamp"])
    if error is not None:
        return error
    if not isinstance(event["provider"], str) or event["provider"] not in PROVIDERS:
        return f"field 'provider' must be one of {', '.join(PROVIDERS)}"
    return None


def _check_tags(value: object) -> str | None:
    if not isinstance(value, dict):
        return f"field 'tags' must be an object of string to string, not {_type_name(value)}"
    for key, item in value.items():
        if not isinstance(item, str):
            return f"field 'tags' must map strings to strings (tags['{key}'] is {_type_name(item)})"
    return None


def _check_optional(event: Mapping[str, Any]) -> str | None:
    for name in _OPTIONAL_STRINGS:
        if name in event and not isinstance(event[name], str):
            return f"field '{name}' must be a string, not {_type_name(event[name])}"
    for name, allowed in _OPTIONAL_ENUMS.items():
        if name in event and (not isinstance(event[name], str) or event[name] not in allowed):
            return f"field '{name}' must be one of {', '.join(allowed)}"
    for name in _OPTIONAL_NON_NEGATIVE_INTS:
        if name in event:
            value = event[name]
            if not _is_int(value) or value < 0:
                return f"field '{name}' must be a non-negative integer, not {value!r}"
    if "cost_usd" in event:
        cost = event["cost_usd"]
        if not (_is_int(cost) or isinstance(cost, float)) or not math.isfinite(cost) or cost < 0:
            return f"field 'cost_usd' must be a non-negative finite number, not {cost!r}"
    if "error_message" in event:
        message = event["error_message"]
        if not isinstance(message, str):
            return f"field 'error_message' must be a string, not {_type_name(message)}"
        if len(message) > MAX_ERROR_MESSAGE_LENGTH:
            return f"field 'error_message' must be at most {MAX_ERROR_MESSAGE_LENGTH} characters, got {len(message)}"
    if "stream" in event and not isinstance(event["stream"], bool):
        return f"field 'stream' must be a boolean, not {_type_name(event['stream'])}"
    if "prompt_hash" in event:
        prompt_hash = event["prompt_hash"]
        if not isinstance(prompt_hash, str) or _SHA256_HEX_RE.fullmatch(prompt_hash) is None:
            return "field 'prompt_hash' must be 64 lowercase hex characters (SHA-256)"
    if "tags" in event:
        return _check_tags(event["tags"])
    return None


def validate_event(event: object) -> str | None:
    """Check one decoded NDJSON line against the LumiqTrace event schema.

    Returns ``None`` when the event is valid, else a human-readable message that names the offending
    field. Unknown extra fields are accepted; ``null`` is never valid for a documented field (a client
    omits what it does not know).
    """
    if not isinstance(event, dict):
        return f"event must be a JSON object, not {_type_name(event)}"
    return _check_required(event) or _check_optional(event)

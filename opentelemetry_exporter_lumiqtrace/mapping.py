# SPDX-License-Identifier: Apache-2.0
"""Map an OpenTelemetry ``ReadableSpan`` to a LumiqTrace ingest event (a JSON-ready ``dict``).

Pure functions, no I/O. :func:`map_span` reads the OTel GenAI conventions (current and deprecated names),
OpenInference and OpenLLMetry (current and legacy), plus explicit ``lumiqtrace.*`` overrides, in that precedence
(the response model of any convention beats the request model of any convention). Unknown values are omitted,
never sent as ``0`` or ``null``. Every span maps; non-AI spans get ``provider: custom``, ``operation: custom`` and
``span_kind: general`` unless ``MappingOptions.ai_only`` filters them out.

Explicit overrides (span attributes, highest precedence): ``lumiqtrace.provider``, ``.model``, ``.operation``,
``.span_kind``, ``.user_id``, ``.session_id``, ``.environment``, ``.cost_usd``, ``.input_tokens``,
``.output_tokens``, ``.cached_tokens``, ``.ttft_ms``, ``.stream``, ``.status``, ``.error_code``,
``.finish_reason`` and ``.tags.<key>``.

Status ladder (first match wins): ``cancelled`` (``CancelledError``-like error identifiers, "abandoned stream",
HTTP 499, gRPC 1), ``timeout`` (identifiers containing "timeout"/"deadline", "Request timed out.", HTTP 408/504,
gRPC 4), ``rate_limited`` (``RateLimitError``-like identifiers, "429", "Error code: 429", HTTP 429, gRPC 8),
``error`` (span status ERROR, ``error.type``, an escaped exception event, HTTP >= 500, or >= 400 on non-server
spans), else ``success``. Error identifiers are read from ``error.type``, ``exception.type`` events and the
``"Name: message"`` prefix of the status description, and only count when the span failed.

Cost: the mapping runs for every span in the application's process, so it avoids work that cannot apply. The
span's key tuple (spans of one instrumentation repeat it) is memoised as a *shape*: which precedence lists have a key
present (a bit each) and which of their keys, in precedence order, which keys belong to prefix families, which
context tags are there, and an itemgetter that reads all values of the SDK's attribute view in one call. A lookup
only reads the keys the span has, in the same order, so precedence and fall-through on unusable values are
unchanged. An AI span's model, provider and kind are memoised per shape by the exact-str values they come from.
The usual span (at most one key of each list, nothing to parse, no events, not ERROR) takes ``_map_fast``, which
reads only the values its plan uses and each field at a position the shape fixed, without building an attribute dict;
a shape seen often gets that function generated as straight-line code for its plan (``_generate_fast``: positions as
constants, keys only through closed-over tuples, never a value in the source). Anything else takes the general path.
Tags are collected as pairs and filled in one loop; the identity tags (span name, kind, service, scope), with the
derived LLM tags on the fast path, are filled once per distinct identity and options.
``tests/test_mapping_equivalence.py`` and ``tests/test_mapping_shapes.py`` hold both paths to a frozen reference
implementation, key order and types included; ``tests/test_mapping_generated.py`` the generated functions to
``_map_fast``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import operator
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from opentelemetry_exporter_lumiqtrace import _content
from opentelemetry_exporter_lumiqtrace import _conventions as c
from opentelemetry_exporter_lumiqtrace._redaction import REDACTED, Redactor, scrub_secrets
from opentelemetry_exporter_lumiqtrace.pricing import compute_cost, linear_cost, linear_rates_by_raw
from opentelemetry_exporter_lumiqtrace.version import __version__

_T = TypeVar("_T")

_logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MAX_CONTENT_CHARS",
    "DEFAULT_MAX_ERROR_MESSAGE_CHARS",
    "DEFAULT_MAX_TAGS",
    "DEFAULT_MAX_TAG_KEY_CHARS",
    "DEFAULT_MAX_TAG_VALUE_CHARS",
    "MappingOptions",
    "event_id_for",
    "map_span",
]

DEFAULT_MAX_CONTENT_CHARS = 32_768
DEFAULT_MAX_TAGS = 64
DEFAULT_MAX_TAG_VALUE_CHARS = 1_024
DEFAULT_MAX_TAG_KEY_CHARS = 256
DEFAULT_MAX_ERROR_MESSAGE_CHARS = 500

_ELLIPSIS = "…"
_MAX_TOKENS = 2**63 - 1
_MAX_ISO_SECOND = 253_402_300_799  # 9999-12-31T23:59:59Z
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_SPAN_KIND_NAMES = {kind: kind.name.lower() for kind in SpanKind}
# The same by id(): hashing an Enum member runs Python code; members live as long as the process.
_SPAN_KIND_NAMES_BY_ID = {id(kind): name for kind, name in _SPAN_KIND_NAMES.items()}
_ERROR_CODE_RE = re.compile(r"""["']code["']\s*:\s*["']([A-Za-z0-9_.\-]{1,100})["']""")
_HTTP_CODE_RE = re.compile(r"Error code: (\d{3})")
_DESCRIPTION_ID_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*)(?::|$)")
_WS_RE = re.compile(r"\s+")
_SCAN_PREFIXES = (
    c.LQT_PREFIX,
    c.OL_PROMPT_PREFIX,
    c.OL_COMPLETION_PREFIX,
    c.OI_INPUT_MESSAGES_PREFIX,
    c.OI_OUTPUT_MESSAGES_PREFIX,
    c.OI_PROMPTS_PREFIX,
    c.OI_CHOICES_PREFIX,
    c.ASSOCIATION_PREFIX,
    *c.AI_PREFIXES,
)
# Flattened-message prefixes -> bucket index in _Scan.flat.
_FLAT_PREFIXES = (
    c.OL_PROMPT_PREFIX,
    c.OL_COMPLETION_PREFIX,
    c.OI_INPUT_MESSAGES_PREFIX,
    c.OI_OUTPUT_MESSAGES_PREFIX,
    c.OI_PROMPTS_PREFIX,
    c.OI_CHOICES_PREFIX,
)


@dataclass(frozen=True)
class MappingOptions:
    """Settings of the span -> event mapping (built by the exporter, rebuilt when remote config changes)."""

    environment: str | None = None
    capture_content: bool = False
    max_content_chars: int = DEFAULT_MAX_CONTENT_CHARS
    redact_keys: frozenset[str] = frozenset()
    max_tags: int = DEFAULT_MAX_TAGS
    max_tag_value_chars: int = DEFAULT_MAX_TAG_VALUE_CHARS
    ai_only: bool = False
    compute_cost: bool = True
    sdk_version: str = __version__
    _redactor: Redactor = field(init=False, repr=False, compare=False)
    # (span name, kind, service, scope name, scope version) -> their tags, for spans without lumiqtrace.tags.*.
    _head_tags: dict[tuple[Any, ...], dict[str, str]] = field(init=False, repr=False, compare=False)
    # The same for the fast path by the identity of resource and scope: see _span_head.
    _span_heads: dict[tuple[Any, ...], tuple[Any, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        keys = self.redact_keys
        if not isinstance(keys, frozenset):
            keys = frozenset(k for k in (keys or ()) if isinstance(k, str))
            object.__setattr__(self, "redact_keys", keys)
        object.__setattr__(self, "_redactor", Redactor(keys))
        object.__setattr__(self, "_head_tags", {})
        object.__setattr__(self, "_span_heads", {})


_DEFAULT_OPTIONS = MappingOptions()
_MASK_128 = 2**128 - 1
_MASK_64 = 2**64 - 1
_EVENT_ID_HASHER = hashlib.blake2b(digest_size=16, person=b"lumiqtrace-evid")
_UUID_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


def event_id_for(trace_id: int, span_id: int) -> str:
    """Deterministic UUIDv4-shaped event id of a span, so a resent span is deduplicated by LumiqTrace."""
    hasher = _EVENT_ID_HASHER.copy()
    hasher.update((((trace_id & _MASK_128) << 64) | (span_id & _MASK_64)).to_bytes(24, "big"))
    h = hasher.hexdigest()
    # Version nibble 4 (hex digit 12) and variant bits 10xx (top of hex digit 16), written into the hex directly.
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_UUID_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


# --- value coercion -------------------------------------------------------------------------------------------------


def _clean(text: str) -> str:
    """Make ``text`` encodable as UTF-8 (lone surrogates from odd inputs would break the NDJSON encoder)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


def _fit(text: str) -> str:
    """``text`` as a wire field value: capped at the tag value limit and UTF-8 encodable."""
    if len(text) > DEFAULT_MAX_TAG_VALUE_CHARS:
        text = _cap(text, DEFAULT_MAX_TAG_VALUE_CHARS)
    return text if text.isascii() else _clean(text)


def _cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    if limit <= 1:
        return text[: max(limit, 0)]
    return text[: limit - 1] + _ELLIPSIS


def _str(value: Any) -> str | None:
    """A non-empty identifier-like string (ids, names, models), or ``None``."""
    if isinstance(value, str):
        return value if value and not value.isspace() else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    if isinstance(value, (bytes, bytearray)):
        return _str(bytes(value).decode("utf-8", "replace"))
    return None


def _first_str(attrs: Mapping[str, Any], keys: Sequence[str]) -> tuple[str, str] | None:
    for key in keys:
        value = attrs.get(key)
        if value is not None:
            if value.__class__ is str:  # the usual case, without the call
                if value and not value.isspace():
                    return key, value
                continue
            text = _str(value)
            if text is not None:
                return key, text
    return None


def _int(value: Any) -> int | None:
    """A non-negative int from an int, a finite float or a numeric string; ``None`` otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= _MAX_TOKENS else None
    if isinstance(value, float):
        if math.isfinite(value) and 0 <= value <= _MAX_TOKENS:
            return round(value)
        return None
    if isinstance(value, (str, bytes)) and len(value) < 40:
        try:
            return _int(int(value))
        except ValueError:
            try:
                return _int(float(value))
            except ValueError:
                return None
    return None


def _first(attrs: Mapping[str, Any], keys: Sequence[str], parse: Callable[[Any], _T | None]) -> _T | None:
    """The first value under ``keys`` (in precedence order) that ``parse`` accepts."""
    for key in keys:
        value = attrs.get(key)
        if value is not None:
            parsed = parse(value)
            if parsed is not None:
                return parsed
    return None


def _first_int(attrs: Mapping[str, Any], keys: Sequence[str]) -> int | None:
    for key in keys:
        value = attrs.get(key)
        if value is not None:
            if value.__class__ is int and 0 <= value <= _MAX_TOKENS:  # the usual case, without the call
                return value  # type: ignore[no-any-return]
            parsed = _int(value)
            if parsed is not None:
                return parsed
    return None


def _float(value: Any) -> float | None:
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


def _bool(value: Any) -> bool | None:
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


def _tag_value(value: Any) -> str | None:
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


# Epoch second -> its ISO prefix; only valid seconds go in, so map_span can read it before any range check.
_MAX_ISO_SECONDS = 4096
_iso_seconds: dict[int, str] = {}
_MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))


def _timestamp(ns: int) -> str:
    second, rest = divmod(ns, 1_000_000_000)
    if not 0 <= second <= _MAX_ISO_SECOND:
        # Outside what a 4-digit-year ISO timestamp can say: only a corrupt span gets here; "now" is the best guess.
        second, rest = divmod(time.time_ns(), 1_000_000_000)
    prefix = _iso_seconds.get(second)
    if prefix is None:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        if len(_iso_seconds) >= _MAX_ISO_SECONDS:
            _iso_seconds.clear()
        _iso_seconds[second] = prefix
    return prefix + _MILLIS[rest // 1_000_000]


# --- attribute scan -------------------------------------------------------------------------------------------------

# Every precedence tuple (or single key) the mapping reads gets a bit. The one pass over a span's keys ORs the bits of
# the keys present, and a lookup runs only when its bit is set: the lookups themselves are unchanged (same precedence,
# same fall-through on unusable values), they are just skipped when none of their keys can be there.
_GROUPS: tuple[tuple[str, ...], ...] = (
    c.PROVIDER_KEYS,
    c.HOST_KEYS,
    (c.LQT_MODEL,),
    c.RESPONSE_MODEL_KEYS,
    c.REQUEST_MODEL_KEYS,
    (c.OI_INVOCATION_PARAMETERS,),
    (c.LQT_OPERATION, c.LQT_SPAN_KIND, c.OT_OPERATION, *c.KIND_KEYS, *c.TOOL_HINT_KEYS),
    (c.LQT_OPERATION, c.LQT_SPAN_KIND),
    (c.LQT_TTFT_MS, *c.TTFT_SECONDS_KEYS),
    c.INPUT_TOKEN_KEYS,
    c.OUTPUT_TOKEN_KEYS,
    c.TOTAL_TOKEN_KEYS,
    c.CACHE_READ_KEYS,
    c.CACHE_WRITE_KEYS,
    c.REASONING_KEYS,
    c.STREAM_KEYS,
    (*c.COST_KEYS, c.LANGFUSE_COST_DETAILS),
    c.FINISH_REASON_KEYS,
    (
        c.OT_SYSTEM_INSTRUCTIONS,
        c.OT_INPUT_MESSAGES,
        c.OT_OUTPUT_MESSAGES,
        c.OT_TOOL_ARGUMENTS,
        c.OT_TOOL_RESULT,
        c.OI_INPUT_VALUE,
        c.OI_OUTPUT_VALUE,
        c.OL_ENTITY_INPUT,
        c.OL_ENTITY_OUTPUT,
    ),
    (c.ERROR_TYPE, *c.HTTP_STATUS_KEYS, c.GRPC_STATUS_KEY, c.LQT_STATUS, c.LQT_ERROR_CODE),
    (c.ERROR_TYPE, c.GRPC_STATUS_KEY, c.LQT_STATUS, c.LQT_ERROR_CODE),
    c.ENVIRONMENT_SPAN_KEYS,
    c.USER_KEYS,
    c.SESSION_KEYS,
    c.HTTP_METHOD_KEYS,
    (c.HTTP_TARGET,),
    (c.OI_TAGS,),
    (c.OI_METADATA,),
)
(
    _B_PROVIDER,
    _B_HOST,
    _B_LQT_MODEL,
    _B_RESPONSE_MODEL,
    _B_REQUEST_MODEL,
    _B_INVOCATION,
    _B_KIND,
    _B_LQT_KIND,
    _B_TTFT,
    _B_INPUT_TOKENS,
    _B_OUTPUT_TOKENS,
    _B_TOTAL_TOKENS,
    _B_CACHE_READ,
    _B_CACHE_WRITE,
    _B_REASONING,
    _B_STREAM,
    _B_COST,
    _B_FINISH,
    _B_CONTENT,
    _B_STATUS,
    _B_STATUS_NOT_HTTP,
    _B_ENVIRONMENT,
    _B_USER,
    _B_SESSION,
    _B_METHOD,
    _B_TARGET,
    _B_OI_TAGS,
    _B_METADATA,
) = (1 << i for i in range(len(_GROUPS)))


def _key_bits() -> dict[str, int]:
    bits: dict[str, int] = {}
    for i, keys in enumerate(_GROUPS):
        for key in keys:
            bits[key] = bits.get(key, 0) | (1 << i)
    return bits


_KEY_BITS = _key_bits()
_CONTEXT_RANK = {key: rank for rank, key in enumerate(c.CONTEXT_TAG_KEYS)}

# Set in the pass's bits when a key makes the span an AI span (above every group bit).
_B_AI = 1 << len(_GROUPS)

# What the pass does with a key. Most keys only set bits: their entry is that int (0 for keys the mapping never
# reads). Keys with more to do get (bits, family, flat bucket, suffix, context rank).
_FAMILY_NONE = 0
_FAMILY_LQT_TAG = 1
_FAMILY_ASSOC = 2
_FAMILY_FLAT = 3
_MAX_KEY_INFO = 8192
_key_info: dict[Any, int | tuple[int, int, int, str, int]] = {}


def _classify(key: Any) -> int | tuple[int, int, int, str, int]:
    """How the pass treats ``key`` (the prefix rules of the conventions), memoised: span keys repeat."""
    if not isinstance(key, str):
        return 0
    bits = _KEY_BITS.get(key, 0)
    rank = _CONTEXT_RANK.get(key, -1)
    family = _FAMILY_NONE
    bucket = 0
    suffix = ""
    if key.startswith(_SCAN_PREFIXES):
        if key.startswith(c.LQT_PREFIX):
            if key.startswith(c.LQT_TAGS_PREFIX):
                family, suffix = _FAMILY_LQT_TAG, key[len(c.LQT_TAGS_PREFIX) :]
            elif key not in c.LQT_CONTEXT_KEYS:
                bits |= _B_AI
        elif key.startswith(c.ASSOCIATION_PREFIX):
            family, suffix = _FAMILY_ASSOC, key[len(c.ASSOCIATION_PREFIX) :]
        else:
            bits |= _B_AI
            for i, prefix in enumerate(_FLAT_PREFIXES):
                if key.startswith(prefix):
                    family, bucket, suffix = _FAMILY_FLAT, i, key[len(prefix) :]
                    break
    info: int | tuple[int, int, int, str, int] = bits
    if family != _FAMILY_NONE or rank >= 0:
        info = (bits, family, bucket, suffix, rank)
    if len(_key_info) >= _MAX_KEY_INFO:
        # Unbounded key spaces (flattened message indexes, user metadata) must not grow memory forever.
        _key_info.clear()
    _key_info[key] = info
    return info


_NO_FLAT: list[list[tuple[str, Any]] | None] = [None] * len(_FLAT_PREFIXES)


# The precedence lists read with _first_str / _first_int. A shape keeps, for each, the keys the span has, still in
# precedence order: the lookup reads exactly the values it read over the whole list (a missing key reads None and is
# skipped), without the misses.
_LOOKUPS: tuple[tuple[str, ...], ...] = (
    c.PROVIDER_KEYS,
    c.HOST_KEYS,
    (c.LQT_MODEL,),
    c.RESPONSE_MODEL_KEYS,
    c.REQUEST_MODEL_KEYS,
    c.INPUT_TOKEN_KEYS,
    c.OUTPUT_TOKEN_KEYS,
    c.TOTAL_TOKEN_KEYS,
    c.CACHE_READ_KEYS,
    c.CACHE_WRITE_KEYS,
    c.REASONING_KEYS,
    c.FINISH_REASON_KEYS,
    c.HTTP_STATUS_KEYS,
    c.ENVIRONMENT_SPAN_KEYS,
    c.USER_KEYS,
    c.SESSION_KEYS,
    c.HTTP_METHOD_KEYS,
)

# Every key _ai_head may read.
_AI_HEAD_KEYS = frozenset(
    (
        c.LQT_MODEL,
        *c.RESPONSE_MODEL_KEYS,
        *c.REQUEST_MODEL_KEYS,
        *c.PROVIDER_KEYS,
        *c.HOST_KEYS,
        c.OI_SYSTEM,
        c.LQT_OPERATION,
        c.LQT_SPAN_KIND,
        c.OT_OPERATION,
        *c.KIND_KEYS,
        *c.TOOL_HINT_KEYS,
    )
)
# Where the model and provider lists sit in a shape (see _shape).
_SHAPE_MODEL_SLICE = slice(8, 13)
# Shapes with any of these keys take the general path (see _map_fast).
_NOT_FAST = (
    _B_INVOCATION
    | _B_TTFT
    | _B_STREAM
    | _B_COST
    | _B_CONTENT
    | _B_STATUS_NOT_HTTP
    | _B_TARGET
    | _B_OI_TAGS
    | _B_METADATA
)
# The lists _map_fast reads by position (the tail of _LOOKUPS, from the token counts on); a shape with two keys of
# one of them takes the general path.
_FAST_LOOKUPS = _LOOKUPS[_LOOKUPS.index(c.INPUT_TOKEN_KEYS) :]


def _tuple_getter(keys: tuple[Any, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """A getter of the values under ``keys`` that returns a tuple for any number of keys (itemgetter does not)."""
    if len(keys) > 1:
        return operator.itemgetter(*keys)
    if keys:
        key = keys[0]
        return lambda attrs: (attrs[key],)
    return lambda attrs: ()


# A span's key tuple (spans of one instrumentation repeat the same keys in the same order) -> its bits, the keys of
# prefix families whose values the pass collects as (key, family, flat bucket, suffix) in attribute order, the
# context tag keys present (in CONTEXT_TAG_KEYS order), a getter of all the values as a tuple (for the SDK's
# read-only attribute views, see map_span), for AI spans a getter of the values _ai_head reads and the types they
# must have to be memoised, the shape's id in that memo (_ai_heads), the plan of _map_fast (or None), then the
# present keys of each list in _LOOKUPS.
_Shape = tuple[Any, ...]
_MAX_SHAPES = 1024
_shapes: dict[tuple[Any, ...], _Shape] = {}


def _shape(keys: tuple[Any, ...]) -> _Shape:
    bits = 0
    families: list[tuple[Any, int, int, str]] = []
    context: list[tuple[int, str]] = []
    known = _key_info
    for key in keys:
        info = known.get(key)
        if info is None:
            info = _classify(key)
        if isinstance(info, int):
            bits |= info
            continue
        key_bits, family, bucket, suffix, rank = info
        bits |= key_bits
        if family:
            families.append((key, family, bucket, suffix))
        if rank >= 0:
            context.append((rank, key))
    present = frozenset(keys)
    getter = _tuple_getter(keys)
    head_getter: Callable[[Any], tuple[Any, ...]] | None = None
    head_keys: tuple[Any, ...] = ()
    if bits & _B_AI and not bits & _B_INVOCATION:  # invocation parameters are JSON: not memoised
        head_keys = tuple(key for key in keys if key in _AI_HEAD_KEYS)
        head_getter = _tuple_getter(head_keys)
    fast: tuple[Any, ...] | None = None
    if not families and not bits & _NOT_FAST:
        position = {key: i for i, key in enumerate(keys)}
        found = [tuple(key for key in lookup if key in present) for lookup in _FAST_LOOKUPS]
        if all(len(f) <= 1 for f in found):
            # The fast path reads only the values it uses (each read of the SDK's view is a Python call): its
            # positions are in that subset, kept in attribute order.
            used = {position[f[0]] for f in found if f}
            used.update(position[key] for _, key in context)
            used.update(position[key] for key in head_keys)
            fast_keys = tuple(keys[at] for at in sorted(used))
            at_of = {key: i for i, key in enumerate(fast_keys)}
            fast = (
                *(at_of[f[0]] if f else -1 for f in found),
                tuple((key, at_of[key]) for _, key in sorted(context)),
                _tuple_getter(tuple(at_of[key] for key in head_keys)),
                tuple(at_of[key] for key in head_keys),
                fast_keys,
                _tuple_getter(fast_keys),
                [None, 0],  # the generated function (see _generate_fast) and the spans seen before it
            )
    shape: _Shape = (
        bits,
        tuple(families),
        tuple(key for _, key in sorted(context)),
        getter,
        head_getter,
        (str,) * len(head_keys),
        next(_shape_ids),
        fast,
        *(tuple(key for key in lookup if key in present) for lookup in _LOOKUPS),
    )
    if len(_shapes) >= _MAX_SHAPES:
        _shapes.clear()
    _shapes[keys] = shape
    return shape


_Flat = list[list[tuple[str, Any]] | None]


def _collect(
    attrs: dict[Any, Any], families: tuple[tuple[Any, int, int, str], ...]
) -> tuple[list[tuple[str, Any]] | None, list[tuple[str, Any]] | None, _Flat | None]:
    """(lumiqtrace.tags.* items, association property items, flattened-message buckets) as (suffix, value)."""
    lqt_tags: list[tuple[str, Any]] | None = None
    assoc: list[tuple[str, Any]] | None = None
    flat: _Flat | None = None
    for key, family, bucket, suffix in families:
        value = attrs[key]
        if family == _FAMILY_FLAT:
            if flat is None:
                flat = [None] * len(_FLAT_PREFIXES)
            items = flat[bucket]
            if items is None:
                items = flat[bucket] = []
            items.append((suffix, value))
        elif family == _FAMILY_LQT_TAG:
            if lqt_tags is None:
                lqt_tags = []
            lqt_tags.append((suffix, value))
        else:
            if assoc is None:
                assoc = []
            assoc.append((suffix, value))
    return lqt_tags, assoc, flat


# --- events ---------------------------------------------------------------------------------------------------------


class _Events:
    __slots__ = ("chunk_ns", "completion", "exc_escaped", "exc_messages", "exc_types", "prompt")

    def __init__(self) -> None:
        self.chunk_ns: int | None = None
        self.exc_types: list[str] = []
        self.exc_messages: list[str] = []
        self.exc_escaped = False
        self.prompt: Any = None
        self.completion: Any = None


_NO_EVENTS = _Events()  # shared, read only: most spans carry no events


def _read_events(events: Sequence[Any]) -> _Events:
    if not events:
        return _NO_EVENTS
    out = _Events()
    for event in events:
        name = getattr(event, "name", None)
        if name in c.FIRST_CHUNK_EVENTS:
            if out.chunk_ns is None:
                ts = getattr(event, "timestamp", None)
                if isinstance(ts, int):
                    out.chunk_ns = ts
            continue
        if name == "exception":
            ev_attrs = event.attributes or {}
            etype = _str(ev_attrs.get("exception.type"))
            if etype is not None:
                out.exc_types.append(etype)
            message = _str(ev_attrs.get("exception.message"))
            if message is not None:
                out.exc_messages.append(message)
            if _bool(ev_attrs.get("exception.escaped")):
                out.exc_escaped = True
        elif name == c.PROMPT_EVENT:
            if out.prompt is None:
                out.prompt = (event.attributes or {}).get(c.PROMPT_EVENT_ATTR)
        elif name == c.COMPLETION_EVENT and out.completion is None:
            out.completion = (event.attributes or {}).get(c.COMPLETION_EVENT_ATTR)
    return out


# --- fields ---------------------------------------------------------------------------------------------------------

# (model, model as a wire field, request model tag, provider, raw provider, operation, span kind, raw operation,
# (pricing provider, model) as linear_rates_by_raw keys them).
_AiHead = tuple[Any, ...]
# (shape id, exact-str values under its head keys) -> _AiHead. One bounded memo for all shapes: ids are never
# reused, so entries of a forgotten shape only wait for the next clear.
_MAX_AI_HEADS = 4096
_ai_heads: dict[tuple[int, tuple[Any, ...]], _AiHead] = {}
_shape_ids = itertools.count()


def _remember_ai_head(memo_key: tuple[int, tuple[Any, ...]], ai_head: _AiHead) -> None:
    if len(_ai_heads) >= _MAX_AI_HEADS:
        _ai_heads.clear()
    _ai_heads[memo_key] = ai_head


def _ai_head(attrs: Mapping[str, Any], bits: int, shape: _Shape) -> _AiHead:
    """The model, provider and kind of an AI span (see map_span, which memoises this per shape and values)."""
    provider_keys, host_keys, lqt_model_keys, response_model_keys, request_model_keys = shape[_SHAPE_MODEL_SLICE]
    found = _first_str(attrs, lqt_model_keys) if lqt_model_keys else None
    if found is None and response_model_keys:
        found = _first_str(attrs, response_model_keys)
    requested = _first_str(attrs, request_model_keys) if request_model_keys else None
    if requested is None and found is None and bits & _B_INVOCATION:
        # OpenInference sets llm.model_name from the response only; a failed call keeps the requested model
        # in its invocation parameters.
        oi_model = _str(_invocation_parameters(attrs).get("model"))
        if oi_model is not None:
            requested = (c.OI_INVOCATION_PARAMETERS, oi_model)
    model = found[1] if found is not None else (requested[1] if requested is not None else None)
    request_model = None
    if requested is not None and requested[1] != model:
        request_model = requested[1]
    provider, raw_provider = _provider(attrs, model, provider_keys, host_keys)
    operation, span_kind, raw_op = _kind(attrs, model is not None, bits)
    fit_model = _fit(model) if model is not None else None
    price_key = (raw_provider or (provider if provider != "custom" else None), model)
    return model, fit_model, request_model, provider, raw_provider, operation, span_kind, raw_op, price_key


def _provider(
    attrs: Mapping[str, Any], model: str | None, provider_keys: tuple[str, ...], host_keys: tuple[str, ...]
) -> tuple[str, str | None]:
    """(wire provider, raw provider value or None); ``*_keys``: the span's keys of those precedence lists."""
    found = _first_str(attrs, provider_keys) if provider_keys else None
    if found is not None:
        raw = found[1]
        wire = c.PROVIDER_NORMALISATION.get(raw)  # already normalised, as most instrumentations send it
        if wire is not None:
            return wire, raw
        low = raw.strip().lower()
        wire = c.PROVIDER_NORMALISATION.get(low)
        if wire is None and found[0] == "lumiqtrace.provider" and low in c.PROVIDERS:
            wire = low
        if wire is None and low == c.AZURE_RAW:
            system = _str(attrs.get(c.OI_SYSTEM))
            wire = "openai" if system is None or system.lower() == "openai" else "custom"
        return wire or "custom", raw
    host = _first_str(attrs, host_keys) if host_keys else None
    if host is not None:
        name = host[1].lower()
        wire = c.HOST_EXACT.get(name)
        if wire is None:
            for suffix, candidate in c.HOST_SUFFIXES:
                if name.endswith(suffix):
                    wire = candidate
                    break
        if wire is not None:
            return wire, None
    if model is not None:
        low_model = model.lower()
        for prefix, candidate in c.MODEL_PREFIX_PROVIDERS:
            if low_model.startswith(prefix):
                if len(prefix) == 2 and len(low_model) > 2 and low_model[2] not in "-_":
                    continue  # "o1" must be o1 / o1-mini, not e.g. "o1xyz"
                return candidate, None
    return "custom", None


_CHAT_LLM_NO_RAW = ("chat", "llm", None)
# KIND_TABLE by the values instrumentations actually send (exact spelling), skipping strip().lower() for them.
_KIND_BY_VALUE = {
    **c.KIND_TABLE,
    **{key.upper(): value for key, value in c.KIND_TABLE.items()},
    **{key.capitalize(): value for key, value in c.KIND_TABLE.items()},
}
_CUSTOM_GENERAL_NO_RAW = ("custom", "general", None)


def _kind(attrs: Mapping[str, Any], has_model: bool, bits: int) -> tuple[str, str, str | None]:
    """(operation, span_kind, raw operation value or None)."""
    if not bits & _B_KIND:
        return _CHAT_LLM_NO_RAW if has_model else _CUSTOM_GENERAL_NO_RAW
    if bits & _B_LQT_KIND:
        explicit_op = _str(attrs.get(c.LQT_OPERATION))
        explicit_kind = _str(attrs.get(c.LQT_SPAN_KIND))
    else:
        explicit_op = explicit_kind = None
    raw_op = attrs.get(c.OT_OPERATION)
    if raw_op is not None:
        raw_op = _str(raw_op)
    derived: tuple[str, str] | None = None
    for key in c.KIND_KEYS:
        value = attrs.get(key)
        if isinstance(value, str) and value:
            derived = _KIND_BY_VALUE.get(value)
            if derived is None:
                derived = c.KIND_TABLE.get(value.strip().lower())
            if derived is not None:
                break
    if derived is None:
        if any(attrs.get(k) is not None for k in c.TOOL_HINT_KEYS):
            derived = ("tool", "tool")
        elif has_model:
            derived = ("chat", "llm")
        else:
            derived = ("custom", "general")
    operation, span_kind = derived
    if explicit_op is not None:
        low = explicit_op.strip().lower()
        mapped = c.KIND_TABLE.get(low)
        if low in c.OPERATIONS:
            operation = low
        elif mapped is not None:
            operation = mapped[0]
        else:
            operation = "custom"
        if explicit_kind is None:
            span_kind = c.OPERATION_DEFAULT_KIND[operation] if mapped is None else mapped[1]
        raw_op = explicit_op
    if explicit_kind is not None:
        low = explicit_kind.strip().lower()
        if low in c.SPAN_KINDS:
            span_kind = low
        else:
            mapped = c.KIND_TABLE.get(low)
            span_kind = mapped[1] if mapped is not None else "general"
        if explicit_op is None:
            operation = c.KIND_DEFAULT_OPERATION[span_kind]
    return operation, span_kind, raw_op


def _stream(attrs: Mapping[str, Any], bits: int) -> bool | None:
    flag = _first(attrs, c.STREAM_KEYS, _bool) if bits & _B_STREAM else None
    if flag is not None:
        return flag
    params = attrs.get(c.OI_INVOCATION_PARAMETERS)
    if isinstance(params, str) and '"stream"' in params:
        return _bool(_invocation_parameters(attrs).get("stream"))
    return None


def _invocation_parameters(attrs: Mapping[str, Any]) -> Mapping[str, Any]:
    """OpenInference's ``llm.invocation_parameters`` JSON object, or an empty mapping."""
    params = attrs.get(c.OI_INVOCATION_PARAMETERS)
    if not isinstance(params, str) or params[:1] != "{" or len(params) > DEFAULT_MAX_CONTENT_CHARS:
        return {}
    try:
        parsed = json.loads(params)
    except (ValueError, RecursionError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _ttft_ms(attrs: Mapping[str, Any], chunk_ns: int | None, start_ns: int | None) -> int | None:
    explicit = _float(attrs.get(c.LQT_TTFT_MS))
    if explicit is not None:
        return round(explicit)
    seconds = _first(attrs, c.TTFT_SECONDS_KEYS, _float)
    if seconds is not None:
        return round(seconds * 1000)
    if chunk_ns is not None and start_ns is not None and chunk_ns >= start_ns:
        return round((chunk_ns - start_ns) / 1e6)
    return None


def _explicit_cost(attrs: Mapping[str, Any]) -> float | None:
    cost = _first(attrs, c.COST_KEYS, _float)
    if cost is not None:
        return cost
    details = attrs.get(c.LANGFUSE_COST_DETAILS)
    if isinstance(details, str) and details[:1] == "{":
        try:
            parsed = json.loads(details)
        except (ValueError, RecursionError):
            return None
        if isinstance(parsed, dict):
            return _float(parsed.get("total"))
    return None


def _finish_reason(attrs: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    for key in keys:
        value = attrs.get(key)
        if value is not None:
            text = _finish_value(value)
            if text is not None:
                return text
    return None


def _finish_value(value: Any) -> str | None:
    """The finish reason(s) of one attribute value, or ``None`` when it has none (the next key is read)."""
    if isinstance(value, (list, tuple)):
        if len(value) == 1:
            return _str(value[0])
        reasons = [r for r in (_str(v) for v in value) if r is not None]
        return ",".join(dict.fromkeys(reasons)) if reasons else None
    return _str(value)


def _price(
    raw_provider: str | None,
    provider: str,
    model: str,
    input_tokens: int | None,
    output_tokens: int | None,
    cached: int | None,
    cache_write: int | None,
    start: int | None,
) -> float | None:
    """The computed cost of an LLM call (cached linear rates first, then genai-prices)."""
    price_provider = raw_provider or (provider if provider != "custom" else None)
    rates = linear_rates_by_raw.get((price_provider, model))
    if rates is not None:
        return linear_cost(rates, input_tokens, output_tokens, cached, cache_write)
    return compute_cost(
        raw_provider=price_provider,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cached,
        cache_write_tokens=cache_write,
        start_time_ns=start,
    )


def _short_id(identifier: str) -> str:
    return identifier.rsplit(".", 1)[-1].strip().lower()


_SUCCESS: tuple[str, None, None, None] = ("success", None, None, None)


def _status(
    span: ReadableSpan, attrs: Mapping[str, Any], events: _Events, bits: int, http_keys: tuple[str, ...]
) -> tuple[str, str | None, str | None, int | None]:
    """(status, error_code, error_message, http status) following the ladder in the module docstring."""
    status_obj = span.status
    status_code = getattr(status_obj, "status_code", StatusCode.UNSET)
    if status_code is not StatusCode.ERROR and not events.exc_escaped and not bits & _B_STATUS_NOT_HTTP:
        # Not failed and nothing but an HTTP status code to go by (most spans): the HTTP rungs of the ladder.
        if not http_keys:
            return _SUCCESS
        http = _first_int(attrs, http_keys)
        if http is None:
            return _SUCCESS
        if http < 400 or (http < 500 and http not in (408, 429, 499) and span.kind is SpanKind.SERVER):
            return "success", None, None, http
    # _str / _int of a missing value is None: the calls are only made for values that are there.
    description = getattr(status_obj, "description", None)
    if description is not None:
        description = _str(description)
    error_type = attrs.get(c.ERROR_TYPE)
    if error_type is not None:
        error_type = _str(error_type)
    http = _first_int(attrs, http_keys) if http_keys else None
    grpc = attrs.get(c.GRPC_STATUS_KEY)
    if grpc is not None:
        grpc = _int(grpc)
    failed = status_code is StatusCode.ERROR or error_type is not None or events.exc_escaped

    status: str | None = None
    explicit = attrs.get(c.LQT_STATUS)
    if explicit is not None:
        explicit = _str(explicit)
    if not failed:
        # Nothing failed: no error identifiers or messages, so only the explicit status and HTTP count.
        if explicit is not None and explicit.strip().lower() in c.STATUSES:
            status = explicit.strip().lower()
        elif http is None:
            return _SUCCESS
        elif http == 499:
            status = "cancelled"
        elif http in (408, 504):
            status = "timeout"
        elif http == 429:
            status = "rate_limited"
        elif http >= 500 or (http >= 400 and span.kind is not SpanKind.SERVER):
            status = "error"
        else:
            return "success", None, None, http
        if status == "success":
            return status, None, None, http
        return _failure(status, attrs, events, description, error_type, http, [])

    ids: list[str] = []
    messages: list[str] = []
    if failed:
        if error_type is not None:
            ids.append(_short_id(error_type))
        ids.extend(_short_id(t) for t in events.exc_types)
        if description is not None:
            messages.append(description)
            match = _DESCRIPTION_ID_RE.match(description)
            if match:
                ids.append(_short_id(match.group(1)))
        messages.extend(events.exc_messages)

    if explicit is not None and explicit.strip().lower() in c.STATUSES:
        status = explicit.strip().lower()
    elif (
        any(i in c.CANCELLED_IDS for i in ids)
        or any(m.strip().lower() == "abandoned stream" for m in messages)
        or http == 499
        or (failed and grpc == 1)
    ):
        status = "cancelled"
    elif (
        any(i == "timeout" or "timeout" in i or "deadline" in i for i in ids)
        or any(m.strip().lower().endswith(c.TIMEOUT_MESSAGE) for m in messages)
        or http in (408, 504)
        or (failed and grpc == 4)
    ):
        status = "timeout"
    elif (
        any(i in c.RATE_LIMIT_IDS for i in ids)
        or any("Error code: 429" in m for m in messages)
        or http == 429
        or (failed and grpc == 8)
    ):
        status = "rate_limited"
    elif failed or (http is not None and (http >= 500 or (http >= 400 and span.kind is not SpanKind.SERVER))):
        status = "error"
    else:
        status = "success"

    if status == "success":
        return status, None, None, http
    return _failure(status, attrs, events, description, error_type, http, messages)


def _failure(
    status: str,
    attrs: Mapping[str, Any],
    events: _Events,
    description: str | None,
    error_type: str | None,
    http: int | None,
    messages: list[str],
) -> tuple[str, str | None, str | None, int | None]:
    error_code = _str(attrs.get(c.LQT_ERROR_CODE))
    if error_code is None:
        for message in messages:
            match = _ERROR_CODE_RE.search(message)
            if match:
                error_code = match.group(1)
                break
    if error_code is None:
        error_code = error_type
    if error_code is None and events.exc_types:
        error_code = events.exc_types[-1].rsplit(".", 1)[-1]
    if error_code is None and http is not None:
        error_code = str(http)
    if error_code is None:
        for message in messages:
            match = _HTTP_CODE_RE.search(message)
            if match:
                error_code = match.group(1)
                break

    message_src = description
    if message_src is None and events.exc_messages:
        message_src = events.exc_messages[-1]
    if message_src is None:
        message_src = error_type
    error_message = _error_message(message_src) if message_src is not None else None
    return status, error_code, error_message, http


# Raw error message -> scrubbed, capped message (or None). Failures come in storms of the same message (a provider's
# 429s, a dead dependency), and the secret-scrubbing regexes are the dearest part of mapping a failed span.
_MAX_ERROR_MESSAGES = 512
_error_messages: dict[str, str | None] = {}


def _error_message(message_src: str) -> str | None:
    try:
        return _error_messages[message_src]
    except KeyError:
        pass
    error_message = None
    # Scrub on a bounded slice: secrets straddling the cut are cut too, and huge messages stay cheap.
    text = _WS_RE.sub(" ", message_src[: 4 * DEFAULT_MAX_ERROR_MESSAGE_CHARS]).strip()
    if text:
        error_message = _cap(scrub_secrets(text), DEFAULT_MAX_ERROR_MESSAGE_CHARS)
    if len(message_src) <= 4 * DEFAULT_MAX_ERROR_MESSAGE_CHARS:  # huge messages are rare and would pin memory
        if len(_error_messages) >= _MAX_ERROR_MESSAGES:
            _error_messages.clear()
        _error_messages[message_src] = error_message
    return error_message


# --- resource / scope caches ----------------------------------------------------------------------------------------

# id(resource) -> (resource, environment, service name). Resources are shared by every span of a provider; keeping
# the object in the value makes a recycled id() harmless.
_resource_cache: dict[int, tuple[Any, str | None, str | None]] = {}


def _resource_info(resource: Any) -> tuple[str | None, str | None]:
    if resource is None:
        return None, None
    entry = _resource_cache.get(id(resource))
    if entry is not None and entry[0] is resource:
        return entry[1], entry[2]
    attrs = getattr(resource, "attributes", None) or {}
    env = _first_str(attrs, c.ENVIRONMENT_RESOURCE_KEYS)
    service = _str(attrs.get("service.name"))
    if len(_resource_cache) >= 64:
        _resource_cache.clear()
    _resource_cache[id(resource)] = (resource, env[1] if env else None, service)
    return (env[1] if env else None), service


# --- tags -----------------------------------------------------------------------------------------------------------


_MAX_HEAD_TAGS = 1024


def _head_pairs(
    name: Any,
    kind_name: str,
    service_name: str | None,
    scope: object | None,
    scope_name: str | None,
    scope_version: str | None,
    *,
    pairs: list[tuple[str, Any]],
) -> list[tuple[str, Any]]:
    """Append the span's identity tags (the first after any ``lumiqtrace.tags.*``) to ``pairs``."""
    pairs.append(("otel.span_name", name))
    pairs.append(("otel.span_kind", kind_name))
    if service_name is not None:
        pairs.append(("service.name", service_name))
    if scope is not None:
        pairs.append(("otel.scope.name", scope_name))
        if scope_version:
            pairs.append(("otel.scope.version", scope_version))
    return pairs


# The derived tags of a span without any (see _identity_tags).
_NO_DERIVED: tuple[Any, Any, Any, Any] = (None, None, None, None)


def _identity_tags(
    span: ReadableSpan,
    options: MappingOptions,
    service_name: str | None,
    lqt_tags: list[tuple[str, Any]] | None,
    derived: tuple[Any, Any, Any, Any] = _NO_DERIVED,
) -> tuple[dict[str, str] | None, list[tuple[str, Any]]]:
    """(tags filled so far, pairs still to fill) after any ``lumiqtrace.tags.*``, the span's identity tags and the
    derived tags of ``derived`` (raw provider, raw operation, request model, cost source: the values
    ``_add_derived_tags`` takes when there are no reasoning or cache-write tokens)."""
    name = span.name
    span_kind_obj = span.kind
    kind_name = _SPAN_KIND_NAMES_BY_ID.get(id(span_kind_obj)) or _SPAN_KIND_NAMES.get(span_kind_obj, "internal")
    scope = span.instrumentation_scope
    scope_name = scope_version = None
    if scope is not None:
        scope_name = scope.name
        scope_version = scope.version
    if (
        lqt_tags is None
        and name.__class__ is str
        and (scope_name is None or scope_name.__class__ is str)
        and (scope_version is None or scope_version.__class__ is str)
        # Exact str only: a str subclass is an equal key but keeps its type in the tags.
        and (derived[0] is None or derived[0].__class__ is str)
        and (derived[1] is None or derived[1].__class__ is str)
        and (derived[2] is None or derived[2].__class__ is str)
    ):
        # The identity tags repeat across spans (same name, kind, service, scope): filled once per options. A scope
        # without name and version gives the same tags as no scope, so the key need not tell them apart.
        # The derived tags come right after and repeat as much (an AI span's identity is memoised): filled with them.
        head_key = (name, kind_name, service_name, scope_name, scope_version, derived)
        head_tags = options._head_tags.get(head_key)
        if head_tags is None:
            head = _head_pairs(name, kind_name, service_name, scope, scope_name, scope_version, pairs=[])
            raw_provider, raw_op, request_model, cost_source = derived
            _add_derived_tags(head.append, raw_provider, raw_op, request_model, None, None, cost_source)
            head_tags = _fill_tags(head, options)
            if len(options._head_tags) >= _MAX_HEAD_TAGS:
                options._head_tags.clear()
            options._head_tags[head_key] = head_tags
        return head_tags.copy(), []
    pairs = _head_pairs(name, kind_name, service_name, scope, scope_name, scope_version, pairs=lqt_tags or [])
    raw_provider, raw_op, request_model, cost_source = derived
    _add_derived_tags(pairs.append, raw_provider, raw_op, request_model, None, None, cost_source)
    return None, pairs


def _span_head(
    span: ReadableSpan, options: MappingOptions, derived: tuple[Any, Any, Any, Any]
) -> tuple[str | None, dict[str, str] | None, list[tuple[str, Any]]]:
    """(resource environment, tags filled so far, pairs still to fill): ``_resource_info`` and ``_identity_tags``
    for a span without ``lumiqtrace.tags.*``, memoised per options by the identity of the span's resource and scope
    (both immutable and shared by every span of a tracer), its name, kind and ``derived``. The entry keeps the
    objects, so a recycled id() is harmless."""
    resource = span.resource
    scope = span.instrumentation_scope
    name = span.name
    kind = span.kind
    key = (id(resource), id(scope), name, id(kind), derived)
    exact = (
        name.__class__ is str
        # Exact str only: a str subclass is an equal key but keeps its type in the tags.
        and (derived[0] is None or derived[0].__class__ is str)
        and (derived[1] is None or derived[1].__class__ is str)
        and (derived[2] is None or derived[2].__class__ is str)
    )
    if exact:
        entry = options._span_heads.get(key)
        if entry is not None and entry[0] is resource and entry[1] is scope and entry[2] is kind:
            return entry[3], entry[4].copy(), []
    resource_env, service_name = _resource_info(resource)
    tags, pairs = _identity_tags(span, options, service_name, None, derived)
    if exact and tags is not None:
        if len(options._span_heads) >= _MAX_HEAD_TAGS:
            options._span_heads.clear()
        options._span_heads[key] = (resource, scope, kind, resource_env, tags.copy())
    return resource_env, tags, pairs


def _set_general(event: dict[str, Any], latency_ms: int | None) -> None:
    """The fields of a non-AI span (design.md: no invented model)."""
    event["provider"] = "custom"
    event["operation"] = "custom"
    event["span_kind"] = "general"
    if latency_ms is not None:
        event["latency_ms"] = latency_ms


def _set_environment(event: dict[str, Any], environment: str) -> None:
    fits = len(environment) <= DEFAULT_MAX_TAG_VALUE_CHARS and environment.isascii()
    event["environment"] = environment if fits else _fit(environment)


def _add_derived_tags(
    add: Callable[[tuple[str, Any]], None],
    raw_provider: Any,
    raw_op: Any,
    request_model: Any,
    reasoning: Any,
    cache_write: Any,
    cost_source: Any,
) -> None:
    """The tags both mapping paths derive from the LLM fields, in their fixed order (raw values, extra tokens)."""
    if raw_provider is not None:
        add(("gen_ai.provider.name", raw_provider))
    if raw_op is not None:
        add(("gen_ai.operation.name", raw_op))
    if request_model is not None:
        add(("gen_ai.request.model", request_model))
    if reasoning is not None:
        add(("tokens.reasoning", reasoning))
    if cache_write is not None:
        add(("tokens.cache_write", cache_write))
    if cost_source is not None:
        add(("cost.source", cost_source))


def _fill_tags(
    pairs: list[tuple[str, Any]], options: MappingOptions, tags: dict[str, str] | None = None
) -> dict[str, str]:
    """The tags of ``pairs`` in order, added to ``tags`` (the result of earlier pairs): the first value of a key
    wins, keys and values are capped and cleaned, values of redacted keys become ``[REDACTED]``, and the map stops
    growing at ``max_tags``.

    One loop instead of a call per tag: a span has a dozen tags and the call overhead was most of their cost.
    """
    if tags is None:
        tags = {}
    limit = options.max_tags
    max_value = options.max_tag_value_chars
    if max_value < 0:
        max_value = 0
    redactor = options._redactor
    plain_keys = redactor.plain_tag_keys
    # The limit is checked up front and after each insertion (the only time the map grows), not per pair.
    if len(tags) >= limit:
        return tags
    for key, value in pairs:
        if key in tags:
            continue
        text: str | None
        if value.__class__ is str:
            text = value
        elif value.__class__ is int:  # exact int: not bool; the same text as _tag_value
            text = str(value)
        else:
            text = _tag_value(value)
            if text is None:
                continue
        tag_key = plain_keys.get(key)
        if tag_key is None:
            # First sight of this key (or a redacted one): cap, clean, decide redaction.
            if not key:
                continue
            tag_key = key[:DEFAULT_MAX_TAG_KEY_CHARS] if len(key) > DEFAULT_MAX_TAG_KEY_CHARS else key
            if not tag_key.isascii():
                tag_key = _clean(tag_key)
            if redactor.matches(tag_key):
                tags[tag_key] = REDACTED
                if len(tags) >= limit:
                    break
                continue
            redactor.remember_plain_tag_key(key, tag_key)
        if len(text) > max_value:
            text = _cap(text, max_value)
        if not text.isascii():
            text = _clean(text)
        tags[tag_key] = text
        if len(tags) >= limit:
            break
    return tags


def _json_flat_pairs(prefix: str, value: Any, redactor: Redactor, pairs: list[tuple[str, Any]]) -> None:
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


# --- the mapping ----------------------------------------------------------------------------------------------------


def map_span(span: ReadableSpan, options: MappingOptions = _DEFAULT_OPTIONS) -> dict[str, Any] | None:
    """Map one finished span to a LumiqTrace event, or ``None`` when ``options.ai_only`` filters it out."""
    raw_attrs = span.attributes
    # One copy up front: the SDK hands out a MappingProxyType over BoundedAttributes, whose every lookup (and every
    # miss, through Mapping.get and KeyError) runs Python code; a plain dict makes the lookups below C-speed. The
    # copy takes the keys (one iteration) and then all values through the shape's itemgetter, which skips the
    # generator dict() would run over the view.
    attrs: dict[Any, Any] | None = None
    if raw_attrs is None:
        attrs = {}
        keys: tuple[Any, ...] = ()
    elif raw_attrs.__class__ is dict:
        attrs = raw_attrs  # type: ignore[assignment]
        keys = tuple(attrs)
    else:
        keys = tuple(raw_attrs)
    shape = _shapes.get(keys)
    if shape is None:
        shape = _shape(keys)
    bits = shape[0]
    fast = shape[7]
    is_ai = bits & _B_AI
    if options.ai_only and not is_ai:
        return None
    values: tuple[Any, ...] = ()
    span_events = span.events
    fast_ok = False
    if attrs is None:
        if fast is not None and not span_events:
            status_code = getattr(span.status, "status_code", None)
            fast_ok = status_code is not None and status_code is not StatusCode.ERROR
        try:
            # The fast path's subset of the values, or all of them.
            values = fast[-2](raw_attrs) if fast_ok else shape[3](raw_attrs)
        except KeyError:  # a mapping that changed under us (never an ended SDK span): the plain copy
            attrs = dict(raw_attrs)  # type: ignore[arg-type]
            fast_ok = False

    ctx = span.context
    start_ns = span.start_time
    end_ns = span.end_time
    if ctx is not None:
        # event_id_for inlined: the hashed bytes are also the trace and span ids in hex.
        raw_ids = (((ctx.trace_id & _MASK_128) << 64) | (ctx.span_id & _MASK_64)).to_bytes(24, "big")
        hasher = _EVENT_ID_HASHER.copy()
        hasher.update(raw_ids)
        h = hasher.hexdigest()
        hex_ids = raw_ids.hex()
        event: dict[str, Any] = {
            "event_id": f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_UUID_VARIANT[h[16]]}{h[17:20]}-{h[20:]}",
            "trace_id": hex_ids[:32],
            "span_id": hex_ids[32:],
        }
    else:
        event = {"event_id": event_id_for(0, 0), "trace_id": _ZERO_TRACE, "span_id": _ZERO_SPAN}
    parent = span.parent
    if parent is not None and parent.span_id:
        event["parent_span_id"] = (parent.span_id & _MASK_64).to_bytes(8, "big").hex()
    start: int | None = start_ns if isinstance(start_ns, int) else None
    # _timestamp inlined for a second seen before (spans come in bursts).
    prefix = _iso_seconds.get(start // 1_000_000_000) if start is not None else None
    if prefix is not None:
        event["timestamp"] = prefix + _MILLIS[start // 1_000_000 % 1000]  # type: ignore[operator]
    else:
        event["timestamp"] = _timestamp(start if start is not None else time.time_ns())
    latency_ms: int | None = None
    if start is not None and isinstance(end_ns, int) and end_ns >= start:
        latency_ms = round((end_ns - start) / 1e6)

    if fast_ok:
        generated = fast[-1]
        fn = generated[0]
        if fn is not None:
            return fn(event, span, options, values, latency_ms, start)  # type: ignore[no-any-return]
        generated[1] += 1
        if generated[1] >= _GENERATE_AFTER:
            generated[0] = _generate_fast(shape)
        return _map_fast(event, span, options, shape, fast, values, latency_ms, start)
    if attrs is None:
        attrs = dict(zip(keys, values, strict=True))
    # The rest of the shape, for the general path only.
    (
        _bits,
        families,
        context_keys,
        _getter,
        head_getter,
        head_types,
        shape_id,
        _fast,
        _provider_keys,  # the five lists _ai_head reads from the shape itself
        _host_keys,
        _lqt_model_keys,
        _response_model_keys,
        _request_model_keys,
        input_keys,
        output_keys,
        total_keys,
        cache_read_keys,
        cache_write_keys,
        reasoning_keys,
        finish_keys,
        http_keys,
        environment_keys,
        user_keys,
        session_keys,
        method_keys,
    ) = shape
    lqt_tags = assoc = flat = None
    if families:
        lqt_tags, assoc, flat = _collect(attrs, families)
    events = _read_events(span_events) if span_events else _NO_EVENTS

    raw_provider: str | None = None
    raw_op: str | None = None
    request_model: str | None = None
    reasoning = cache_write = None
    cost_source: str | None = None
    if is_ai:
        # The span's identity (model, provider, kind) is a function of the values under the head keys: spans of
        # one shape repeat a handful of them, so it is memoised per shape by those values when all are exact str
        # (other types and str subclasses must reach the parsers: 1, 1.0 and True are equal dict keys).
        ai_head: _AiHead | None = None
        if head_getter is not None:
            head_values = head_getter(attrs)
            if tuple(map(type, head_values)) == head_types:
                memo_key = (shape_id, head_values)
                ai_head = _ai_heads.get(memo_key)
                if ai_head is None:
                    ai_head = _ai_head(attrs, bits, shape)
                    _remember_ai_head(memo_key, ai_head)
        if ai_head is None:
            ai_head = _ai_head(attrs, bits, shape)
        model, fit_model, request_model, provider, raw_provider, operation, span_kind, raw_op, _ = ai_head
        event["provider"] = provider
        if fit_model is not None:
            event["model"] = fit_model
        event["operation"] = operation
        event["span_kind"] = span_kind
        if latency_ms is not None:
            event["latency_ms"] = latency_ms

        ttft = _ttft_ms(attrs, events.chunk_ns, start) if bits & _B_TTFT or events.chunk_ns is not None else None
        if ttft is not None:
            event["ttft_ms"] = min(max(ttft, 0), latency_ms) if latency_ms is not None else max(ttft, 0)

        # One key of the list present with an exact in-range int (the usual case): read inline, else _first_int.
        input_tokens = attrs[input_keys[0]] if len(input_keys) == 1 else None
        if not (input_tokens.__class__ is int and 0 <= input_tokens <= _MAX_TOKENS):  # type: ignore[operator]
            input_tokens = _first_int(attrs, input_keys) if input_keys else None
        output_tokens = attrs[output_keys[0]] if len(output_keys) == 1 else None
        if not (output_tokens.__class__ is int and 0 <= output_tokens <= _MAX_TOKENS):  # type: ignore[operator]
            output_tokens = _first_int(attrs, output_keys) if output_keys else None
        if input_tokens is None and output_tokens is not None and total_keys:
            total = _first_int(attrs, total_keys)
            if total is not None and total >= output_tokens:
                input_tokens = total - output_tokens
        cached = _first_int(attrs, cache_read_keys) if cache_read_keys else None
        cache_write = _first_int(attrs, cache_write_keys) if cache_write_keys else None
        reasoning = _first_int(attrs, reasoning_keys) if reasoning_keys else None
        if input_tokens is not None:
            event["input_tokens"] = input_tokens
        if output_tokens is not None:
            event["output_tokens"] = output_tokens
        if cached is not None:
            event["cached_tokens"] = cached

        stream = _stream(attrs, bits) if bits & (_B_STREAM | _B_INVOCATION) else None
        if stream is None and (ttft is not None or events.chunk_ns is not None):
            stream = True
        if stream is None and span_kind == "llm":
            stream = False
        if stream is not None:
            event["stream"] = stream

        cost = _explicit_cost(attrs) if bits & _B_COST else None
        if cost is not None:
            cost_source = "span"
        elif (
            options.compute_cost
            and model is not None
            and span_kind == "llm"
            and (input_tokens is not None or output_tokens is not None)
        ):
            # Agent and workflow spans that aggregate their children's usage are never priced (double counting).
            cost = _price(raw_provider, provider, model, input_tokens, output_tokens, cached, cache_write, start)
            if cost is not None:
                cost_source = "genai-prices"
        if cost is not None:
            event["cost_usd"] = cost

        if finish_keys:
            # A one-element tuple of a short ASCII reason under the one key present (the usual case) inline.
            reasons = attrs[finish_keys[0]] if len(finish_keys) == 1 else None
            finish = reasons[0] if reasons.__class__ is tuple and len(reasons) == 1 else None
            if (
                finish.__class__ is str
                and finish
                and len(finish) <= DEFAULT_MAX_TAG_VALUE_CHARS
                and finish.isascii()
                and not finish.isspace()
            ):
                event["finish_reason"] = finish
            else:
                finish = _finish_reason(attrs, finish_keys)
                if finish is not None:
                    event["finish_reason"] = _fit(finish)

        if bits & _B_CONTENT or flat is not None or events.prompt is not None or events.completion is not None:
            _add_content(event, attrs, flat or _NO_FLAT, events, span_kind, options)
    else:
        _set_general(event, latency_ms)

    # The first rungs of _status inlined for the usual span: not failed, at most one HTTP status code, an exact int.
    http: int | None = None
    status_code = getattr(span.status, "status_code", None)
    if (
        status_code is not StatusCode.ERROR
        and status_code is not None
        and not events.exc_escaped
        and not bits & _B_STATUS_NOT_HTTP
        and len(http_keys) < 2
    ):
        if http_keys:
            http = attrs[http_keys[0]]
            if not (http.__class__ is int and 0 <= http < 400):  # type: ignore[union-attr]
                http = -1  # the whole ladder below
        if http is not None and http < 0:
            status, error_code, error_message, http = _status(span, attrs, events, bits, http_keys)
        else:
            status = "success"
            error_code = error_message = None
    else:
        status, error_code, error_message, http = _status(span, attrs, events, bits, http_keys)
    event["status"] = status
    if error_code is not None:
        event["error_code"] = _fit(error_code)
    if error_message is not None:
        event["error_message"] = _clean(error_message)

    resource_env, service_name = _resource_info(span.resource)  # memoised per resource object
    env = _first_str(attrs, environment_keys) if environment_keys else None
    environment = env[1] if env is not None else resource_env or options.environment
    if environment:
        _set_environment(event, environment)
    if user_keys:
        user = _first_str(attrs, user_keys)
        if user is not None:
            event["user_id"] = _fit(user[1])
    if session_keys:
        session = _first_str(attrs, session_keys)
        if session is not None:
            event["session_id"] = _fit(session[1])

    # Tags, most useful first so the cap drops user metadata before the span's identity.
    tags, pairs = _identity_tags(span, options, service_name, lqt_tags)
    add = pairs.append
    _add_derived_tags(add, raw_provider, raw_op, request_model, reasoning, cache_write, cost_source)
    if method_keys:
        method = _first_str(attrs, method_keys)
        if method is not None:
            add(("http.request.method", method[1]))
    if http is not None:
        add(("http.response.status_code", http))
    for key in context_keys:
        value = attrs[key]
        if value is not None:
            add((key, value))
    if bits & _B_TARGET and "http.route" not in attrs:
        target = attrs.get(c.HTTP_TARGET)
        if isinstance(target, str) and target:
            add(("http.route", target.split("?", 1)[0]))
    if bits & _B_OI_TAGS:
        oi_tags = attrs.get(c.OI_TAGS)
        if oi_tags is not None:
            if isinstance(oi_tags, (list, tuple)):
                joined = ",".join(t for t in (_str(v) for v in oi_tags) if t is not None)
                if joined:
                    add(("tags", joined))
            else:
                add(("tags", oi_tags))
    if bits & _B_METADATA:
        metadata = attrs.get(c.OI_METADATA)
        if metadata is not None:
            _json_flat_pairs("metadata", metadata, options._redactor, pairs)
    if assoc is not None:
        for suffix, value in assoc:
            if suffix not in c.ASSOCIATION_CONTEXT_SUFFIXES:
                add((suffix, value))
    tags = _fill_tags(pairs, options, tags)
    if tags:
        event["tags"] = tags
    event["sdk_version"] = options.sdk_version
    return event


def _str_of(value: Any) -> str | None:
    """``_first_str`` of one value (``None`` when missing or unusable)."""
    if value.__class__ is str:
        return value if value and not value.isspace() else None  # type: ignore[no-any-return]
    return None if value is None else _str(value)


def _int_of(value: Any) -> int | None:
    """``_first_int`` of one value (``None`` when missing or unusable)."""
    if value.__class__ is int and 0 <= value <= _MAX_TOKENS:
        return value  # type: ignore[no-any-return]
    return None if value is None else _int(value)


def _map_fast(
    event: dict[str, Any],
    span: ReadableSpan,
    options: MappingOptions,
    shape: _Shape,
    fast: tuple[Any, ...],
    values: tuple[Any, ...],
    latency_ms: int | None,
    start: int | None,
) -> dict[str, Any]:
    """The rest of map_span for the usual span: its shape has at most one key of each precedence list read here,
    none of the conventions that need parsing (content, invocation parameters, explicit cost, stream or TTFT, error
    attributes, prefix families), no events and a status other than ERROR.

    Every field is read from ``values`` (the values of the keys the plan uses, in attribute order) at a position
    the shape fixed, so the span needs no attribute dict (the model and status helpers read only those keys); each
    step is the general path's with what cannot apply left out, and the event comes out the same, key order included
    (the differential tests hold both paths to the reference).
    """
    (
        input_at,
        output_at,
        total_at,
        cache_read_at,
        cache_write_at,
        reasoning_at,
        finish_at,
        http_at,
        environment_at,
        user_at,
        session_at,
        method_at,
        context_at,
        head_at,
        _head_positions,
        keys,
        _getter,
        _generated,
    ) = fast
    bits = shape[0]
    raw_provider = raw_op = request_model = reasoning = cache_write = cost_source = None
    if bits & _B_AI:
        memo_key = (shape[6], head_at(values))
        memoisable = tuple(map(type, memo_key[1])) == shape[5]  # as in map_span
        ai_head: _AiHead | None = _ai_heads.get(memo_key) if memoisable else None
        if ai_head is None:
            ai_head = _ai_head(dict(zip(keys, values, strict=True)), bits, shape)
            if memoisable:
                _remember_ai_head(memo_key, ai_head)
        model, fit_model, request_model, provider, raw_provider, operation, span_kind, raw_op, price_key = ai_head
        event["provider"] = provider
        if fit_model is not None:
            event["model"] = fit_model
        event["operation"] = operation
        event["span_kind"] = span_kind
        if latency_ms is not None:
            event["latency_ms"] = latency_ms

        input_tokens = _int_of(values[input_at]) if input_at >= 0 else None
        output_tokens = _int_of(values[output_at]) if output_at >= 0 else None
        if input_tokens is None and output_tokens is not None and total_at >= 0:
            total = _int_of(values[total_at])
            if total is not None and total >= output_tokens:
                input_tokens = total - output_tokens
        cached = _int_of(values[cache_read_at]) if cache_read_at >= 0 else None
        cache_write = _int_of(values[cache_write_at]) if cache_write_at >= 0 else None
        reasoning = _int_of(values[reasoning_at]) if reasoning_at >= 0 else None
        if input_tokens is not None:
            event["input_tokens"] = input_tokens
        if output_tokens is not None:
            event["output_tokens"] = output_tokens
        if cached is not None:
            event["cached_tokens"] = cached

        # No stream flag, TTFT or chunk event can be there: only an LLM span's default.
        if span_kind == "llm":
            event["stream"] = False

        if (
            options.compute_cost
            and model is not None
            and span_kind == "llm"
            and (input_tokens is not None or output_tokens is not None)
        ):
            rates = linear_rates_by_raw.get(price_key)
            if rates is not None:
                cost = linear_cost(rates, input_tokens, output_tokens, cached, cache_write)
            else:
                cost = _price(raw_provider, provider, model, input_tokens, output_tokens, cached, cache_write, start)
            if cost is not None:
                cost_source = "genai-prices"
                event["cost_usd"] = cost

        if finish_at >= 0:
            reasons = values[finish_at]
            finish = reasons[0] if reasons.__class__ is tuple and len(reasons) == 1 else None
            if (
                finish.__class__ is str
                and finish
                and len(finish) <= DEFAULT_MAX_TAG_VALUE_CHARS
                and finish.isascii()
                and not finish.isspace()
            ):
                event["finish_reason"] = finish
            elif reasons is not None:
                finish = _finish_value(reasons)
                if finish is not None:
                    event["finish_reason"] = _fit(finish)
    else:
        _set_general(event, latency_ms)

    # The status did not fail and nothing but an HTTP status code can say otherwise.
    http = _int_of(values[http_at]) if http_at >= 0 else None
    if http is None or http < 400 or (http < 500 and http not in (408, 429, 499) and span.kind is SpanKind.SERVER):
        event["status"] = "success"
    else:
        attrs = dict(zip(keys, values, strict=True))
        http_keys = tuple(key for key in c.HTTP_STATUS_KEYS if key in attrs)
        status, error_code, error_message, http = _status(span, attrs, _NO_EVENTS, bits, http_keys)
        event["status"] = status
        if error_code is not None:
            event["error_code"] = _fit(error_code)
        if error_message is not None:
            event["error_message"] = _clean(error_message)

    resource_env, service_name = _resource_info(span.resource)  # memoised per resource object
    environment = (_str_of(values[environment_at]) if environment_at >= 0 else None) or resource_env
    environment = environment or options.environment
    if environment:
        _set_environment(event, environment)
    if user_at >= 0:
        user = _str_of(values[user_at])
        if user is not None:
            event["user_id"] = _fit(user)
    if session_at >= 0:
        session = _str_of(values[session_at])
        if session is not None:
            event["session_id"] = _fit(session)

    if reasoning is None and cache_write is None:
        tags, pairs = _identity_tags(
            span, options, service_name, None, (raw_provider, raw_op, request_model, cost_source)
        )
        add = pairs.append
    else:
        tags, pairs = _identity_tags(span, options, service_name, None)
        add = pairs.append
        _add_derived_tags(add, raw_provider, raw_op, request_model, reasoning, cache_write, cost_source)
    if method_at >= 0:
        method = _str_of(values[method_at])
        if method is not None:
            add(("http.request.method", method))
    if http is not None:
        add(("http.response.status_code", http))
    for key, at in context_at:
        value = values[at]
        if value is not None:
            add((key, value))
    tags = _fill_tags(pairs, options, tags)
    if tags:
        event["tags"] = tags
    event["sdk_version"] = options.sdk_version
    return event


# --- generated fast paths -------------------------------------------------------------------------------------------

# A shape's _map_fast as straight-line code: the positions its plan fixed become constant indexes and the steps that
# cannot apply to the shape are left out. Generated once a shape has mapped _GENERATE_AFTER spans (the compile costs
# about 0.7 ms, the price of a few hundred spans: key sets that come and go are not worth it), cached in the shape, so
# bounded with the shapes. Only ints computed from the plan (positions) and names of
# this module go into the source: attribute keys reach the code through the KEYS / CONTEXT_KEYS tuples it closes over,
# attribute values only through ``values`` at run time.
_GENERATE_AFTER = 16
_FastFn = Callable[[dict[str, Any], ReadableSpan, MappingOptions, tuple[Any, ...], int | None, int | None], Any]


def _int_src(target: str, at: int) -> list[str]:
    """Source of ``target = _int_of(values[at])`` with the exact-int case inline."""
    return [
        f"v = values[{at:d}]",
        f"{target} = v if v.__class__ is int and 0 <= v <= _MAX_TOKENS else (None if v is None else _int(v))",
    ]


def _str_src(target: str, at: int) -> list[str]:
    """Source of ``target = _str_of(values[at])`` with the exact-str case inline."""
    return [
        f"v = values[{at:d}]",
        "if v.__class__ is str:",
        f"    {target} = v if v and not v.isspace() else None",
        "else:",
        f"    {target} = None if v is None else _str(v)",
    ]


def _fast_source(shape: _Shape) -> str:
    """The source of the generated _map_fast of ``shape`` (see _generate_fast)."""
    bits = shape[0]
    (
        input_at,
        output_at,
        total_at,
        cache_read_at,
        cache_write_at,
        reasoning_at,
        finish_at,
        http_at,
        environment_at,
        user_at,
        session_at,
        method_at,
        context_at,
        _head_at,
        head_positions,
        _keys,
        _getter,
        _cell,
    ) = shape[7]
    body: list[str] = []
    emit = body.append
    if bits & _B_AI:
        head = "".join(f"values[{at:d}], " for at in head_positions)
        memoisable = " and ".join(f"type(values[{at:d}]) is str" for at in head_positions) or "True"
        emit(f"memo_key = (SHAPE_ID, ({head}))")
        emit(f"memoisable = {memoisable}")
        emit("ai_head = _ai_heads.get(memo_key) if memoisable else None")
        emit("if ai_head is None:")
        emit("    ai_head = _ai_head(dict(zip(KEYS, values, strict=True)), BITS, SHAPE)")
        emit("    if memoisable:")
        emit("        _remember_ai_head(memo_key, ai_head)")
        emit(
            "model, fit_model, request_model, provider, raw_provider, operation, span_kind, raw_op, price_key = ai_head"
        )
        emit('event["provider"] = provider')
        emit("if fit_model is not None:")
        emit('    event["model"] = fit_model')
        emit('event["operation"] = operation')
        emit('event["span_kind"] = span_kind')
        emit("if latency_ms is not None:")
        emit('    event["latency_ms"] = latency_ms')
        for target, at in (
            ("input_tokens", input_at),
            ("output_tokens", output_at),
            ("cached", cache_read_at),
            ("cache_write", cache_write_at),
            ("reasoning", reasoning_at),
        ):
            body.extend(_int_src(target, at) if at >= 0 else [f"{target} = None"])
            if target == "output_tokens" and total_at >= 0:
                emit("if input_tokens is None and output_tokens is not None:")
                body.extend("    " + line for line in _int_src("total", total_at))
                emit("    if total is not None and total >= output_tokens:")
                emit("        input_tokens = total - output_tokens")
        emit("if input_tokens is not None:")
        emit('    event["input_tokens"] = input_tokens')
        emit("if output_tokens is not None:")
        emit('    event["output_tokens"] = output_tokens')
        emit("if cached is not None:")
        emit('    event["cached_tokens"] = cached')
        emit('if span_kind == "llm":')
        emit('    event["stream"] = False')
        emit("cost_source = None")
        emit("if (")
        emit("    options.compute_cost")
        emit("    and model is not None")
        emit('    and span_kind == "llm"')
        emit("    and (input_tokens is not None or output_tokens is not None)")
        emit("):")
        emit("    rates = linear_rates_by_raw.get(price_key)")
        emit("    if rates is not None:")
        emit("        cost = linear_cost(rates, input_tokens, output_tokens, cached, cache_write)")
        emit("    else:")
        emit("        cost = _price(")
        emit("            raw_provider, provider, model, input_tokens, output_tokens, cached, cache_write, start")
        emit("        )")
        emit("    if cost is not None:")
        emit('        cost_source = "genai-prices"')
        emit('        event["cost_usd"] = cost')
        if finish_at >= 0:
            emit(f"reasons = values[{finish_at:d}]")
            emit("finish = reasons[0] if reasons.__class__ is tuple and len(reasons) == 1 else None")
            emit("if (")
            emit("    finish.__class__ is str")
            emit("    and finish")
            emit("    and len(finish) <= DEFAULT_MAX_TAG_VALUE_CHARS")
            emit("    and finish.isascii()")
            emit("    and not finish.isspace()")
            emit("):")
            emit('    event["finish_reason"] = finish')
            emit("elif reasons is not None:")
            emit("    finish = _finish_value(reasons)")
            emit("    if finish is not None:")
            emit('        event["finish_reason"] = _fit(finish)')
    else:
        emit('event["provider"] = "custom"')
        emit('event["operation"] = "custom"')
        emit('event["span_kind"] = "general"')
        emit("if latency_ms is not None:")
        emit('    event["latency_ms"] = latency_ms')
    if http_at >= 0:
        body.extend(_int_src("http", http_at))
        emit("if http is None or http < 400 or (")
        emit("    http < 500 and http not in (408, 429, 499) and span.kind is SpanKind.SERVER")
        emit("):")
        emit('    event["status"] = "success"')
        emit("else:")
        emit("    attrs = dict(zip(KEYS, values, strict=True))")
        emit("    http_keys = tuple(key for key in c.HTTP_STATUS_KEYS if key in attrs)")
        emit("    status, error_code, error_message, http = _status(span, attrs, _NO_EVENTS, BITS, http_keys)")
        emit('    event["status"] = status')
        emit("    if error_code is not None:")
        emit('        event["error_code"] = _fit(error_code)')
        emit("    if error_message is not None:")
        emit('        event["error_message"] = _clean(error_message)')
    else:
        emit('event["status"] = "success"')
    # The resource environment and the identity (and derived) tags in one memo (see _span_head); the tags are only
    # used at the end, so reading them here changes nothing in the event.
    if bits & _B_AI:
        emit("if reasoning is None and cache_write is None:")
        emit("    resource_env, tags, pairs = _span_head(")
        emit("        span, options, (raw_provider, raw_op, request_model, cost_source)")
        emit("    )")
        emit("else:")
        emit("    resource_env, service_name = _resource_info(span.resource)")
        emit("    tags, pairs = _identity_tags(span, options, service_name, None)")
        emit("    _add_derived_tags(")
        emit("        pairs.append, raw_provider, raw_op, request_model, reasoning, cache_write, cost_source")
        emit("    )")
    else:
        emit("resource_env, tags, pairs = _span_head(span, options, _NO_DERIVED)")
    if environment_at >= 0:
        body.extend(_str_src("environment", environment_at))
        emit("environment = environment or resource_env or options.environment")
    else:
        emit("environment = resource_env or options.environment")
    emit("if environment:")
    emit("    if len(environment) <= DEFAULT_MAX_TAG_VALUE_CHARS and environment.isascii():")
    emit('        event["environment"] = environment')
    emit("    else:")
    emit('        event["environment"] = _fit(environment)')
    for target, at in (("user_id", user_at), ("session_id", session_at)):
        if at >= 0:
            body.extend(_str_src("found", at))
            emit("if found is not None:")
            emit(f'    event["{target}"] = _fit(found)')
    if method_at >= 0:
        body.extend(_str_src("method", method_at))
    # The last pairs: (source of the tag key, name of the local holding the value).
    last: list[tuple[str, str]] = []
    if method_at >= 0:
        last.append(('"http.request.method"', "method"))
    if http_at >= 0:
        last.append(('"http.response.status_code"', "http"))
    for i, (_key, at) in enumerate(context_at):
        emit(f"value_{i:d} = values[{at:d}]")
        last.append((f"CONTEXT_KEYS[{i:d}]", f"value_{i:d}"))
    emit("if pairs or tags is None:  # identity not memoised: every pair through the one loop")
    for key_src, name in last:
        emit(f"    if {name} is not None:")
        emit(f"        pairs.append(({key_src}, {name}))")
    emit("    tags = _fill_tags(pairs, options, tags)")
    if last:
        # _fill_tags one pair at a time is _fill_tags over all of them; the usual tag (a str or int value, a known
        # plain key, short ASCII text, room left, key not taken) is added inline, anything else goes through it.
        emit("else:")
        emit("    plain_keys = options._redactor.plain_tag_keys")
        emit("    limit = options.max_tags")
        emit("    max_value = options.max_tag_value_chars")
        for key_src, name in last:
            emit(f"    if {name} is not None:")
            emit(f"        key = {key_src}")
            emit(f"        text = {name} if {name}.__class__ is str else None")
            emit(f"        if {name}.__class__ is int:  # exact int: not bool; the text _fill_tags gives it")
            emit(f"            text = str({name})")
            emit("        tag_key = plain_keys.get(key)")
            emit("        if (")
            emit("            text is not None")
            emit("            and tag_key is not None")
            emit("            and len(tags) < limit")
            emit("            and key not in tags")
            emit("            and len(text) <= max_value")
            emit("            and text.isascii()")
            emit("        ):")
            emit("            tags[tag_key] = text")
            emit("        else:")
            emit(f"            tags = _fill_tags([(key, {name})], options, tags)")
    emit("if tags:")
    emit('    event["tags"] = tags')
    emit('event["sdk_version"] = options.sdk_version')
    emit("return event")
    lines = [
        "def _make(SHAPE, SHAPE_ID, BITS, KEYS, CONTEXT_KEYS):",
        "    def _map_generated(event, span, options, values, latency_ms, start):",
        *("        " + line for line in body),
        "    return _map_generated",
    ]
    return "\n".join(lines) + "\n"


def _generate_fast(shape: _Shape) -> _FastFn:
    """Compile the generated _map_fast of ``shape``."""
    namespace: dict[str, Any] = {}
    exec(compile(_fast_source(shape), "<lumiqtrace generated mapping>", "exec"), globals(), namespace)
    context_keys = tuple(key for key, _ in shape[7][12])
    fn: _FastFn = namespace["_make"](shape, shape[6], shape[0], shape[7][15], context_keys)
    return fn


def _add_content(
    event: dict[str, Any],
    attrs: Mapping[str, Any],
    flat: _Flat,
    events: _Events,
    span_kind: str,
    options: MappingOptions,
) -> None:
    """Set ``prompt_hash`` (whenever prompt content is visible) and, on opt-in, ``prompt`` and ``response``."""
    prompt: list[_content.Message] | None = None
    system = attrs.get(c.OT_SYSTEM_INSTRUCTIONS)
    ot_input = attrs.get(c.OT_INPUT_MESSAGES)
    if ot_input is not None or system is not None:
        prompt = _content.messages_from_json(ot_input) if ot_input is not None else None
        sys_msg = _content.system_message(system) if system is not None else None
        if sys_msg is not None:
            prompt = [sys_msg, *(prompt or ())]
    # OpenInference before OpenLLMetry (design precedence); the canonical form makes the hash the same anyway.
    for idx in (2, 4, 0):
        bucket = flat[idx]
        if prompt is None and bucket is not None:
            prompt = _content.messages_from_flat(bucket)
    if prompt is None and events.prompt is not None:
        prompt = _content.messages_from_json(events.prompt)
    hashable = prompt is not None
    if prompt is None:
        if span_kind == "tool" and attrs.get(c.OT_TOOL_ARGUMENTS) is not None:
            prompt = _content.messages_from_value(attrs.get(c.OT_TOOL_ARGUMENTS))
        else:
            for key in (c.OI_INPUT_VALUE, c.OL_ENTITY_INPUT):
                value = attrs.get(key)
                if value is not None:
                    prompt = _content.messages_from_value(value)
                    # Opaque inputs only count as "the prompt" on LLM spans; elsewhere they are chain/tool inputs.
                    hashable = span_kind == "llm"
                    break
    if prompt:
        if hashable:
            event["prompt_hash"] = _content.prompt_hash(prompt)
        if options.capture_content:
            event["prompt"] = _clean(_cap(_content.render_prompt(prompt), options.max_content_chars))
    if not options.capture_content:
        return
    response: str | None = None
    ot_output = attrs.get(c.OT_OUTPUT_MESSAGES)
    if ot_output is not None:
        msgs = _content.messages_from_json(ot_output)
        response = _content.render_response(msgs) if msgs else None
    if response is None:
        for idx in (3, 5, 1):
            bucket = flat[idx]
            if bucket is not None:
                msgs = _content.messages_from_flat(bucket)
                if msgs:
                    response = _content.render_response(msgs)
                    break
    if response is None and events.completion is not None:
        msgs = _content.messages_from_json(events.completion)
        response = _content.render_response(msgs) if msgs else None
    if response is None:
        keys = (c.OT_TOOL_RESULT, c.OI_OUTPUT_VALUE, c.OL_ENTITY_OUTPUT)
        if span_kind != "tool":
            keys = (c.OI_OUTPUT_VALUE, c.OL_ENTITY_OUTPUT, c.OT_TOOL_RESULT)
        for key in keys:
            value = attrs.get(key)
            if value is not None:
                response = _content.response_from_value(value)
                if response is not None:
                    break
    if response:
        event["response"] = _clean(_cap(response, options.max_content_chars))

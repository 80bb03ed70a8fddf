# SPDX-License-Identifier: Apache-2.0
"""Frozen copy of ``opentelemetry_exporter_lumiqtrace.mapping`` as of commit 8dd8ae2, before the CPU rewrite.

The differential tests (``tests/test_mapping_equivalence.py``) map the same spans with this module and with the
package and require identical events, so the faster mapping cannot drift from the behaviour the older tests pinned.
Do not "fix" anything here: it is the oracle, not code that ships.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, TypeVar

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from opentelemetry_exporter_lumiqtrace import _content
from opentelemetry_exporter_lumiqtrace import _conventions as c
from opentelemetry_exporter_lumiqtrace._redaction import REDACTED, Redactor, scrub_secrets
from opentelemetry_exporter_lumiqtrace.pricing import compute_cost
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

    def __post_init__(self) -> None:
        keys = self.redact_keys
        if not isinstance(keys, frozenset):
            keys = frozenset(k for k in (keys or ()) if isinstance(k, str))
            object.__setattr__(self, "redact_keys", keys)
        object.__setattr__(self, "_redactor", Redactor(keys))


_DEFAULT_OPTIONS = MappingOptions()


def event_id_for(trace_id: int, span_id: int) -> str:
    """Deterministic UUIDv4-shaped event id of a span, so a resent span is deduplicated by LumiqTrace."""
    raw = (trace_id & (2**128 - 1)).to_bytes(16, "big") + (span_id & (2**64 - 1)).to_bytes(8, "big")
    digest = bytearray(hashlib.blake2b(raw, digest_size=16, person=b"lumiqtrace-evid").digest())
    digest[6] = (digest[6] & 0x0F) | 0x40  # version 4
    digest[8] = (digest[8] & 0x3F) | 0x80  # variant 10xx
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


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
    return _first(attrs, keys, _int)


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


@lru_cache(maxsize=4096)
def _iso_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def _timestamp(ns: int) -> str:
    second, rest = divmod(ns, 1_000_000_000)
    if not 0 <= second <= _MAX_ISO_SECOND:
        # Outside what a 4-digit-year ISO timestamp can say: only a corrupt span gets here; "now" is the best guess.
        second, rest = divmod(time.time_ns(), 1_000_000_000)
    head = _iso_second(second)
    return f"{head}.{rest // 1_000_000:03d}Z"


# --- attribute scan -------------------------------------------------------------------------------------------------


class _Scan:
    """Result of the one pass over attribute keys that prefix-based conventions need."""

    __slots__ = ("assoc", "flat", "is_ai", "lqt_tags")

    def __init__(self) -> None:
        self.is_ai = False
        self.lqt_tags: list[tuple[str, Any]] = []
        self.assoc: list[tuple[str, Any]] = []
        self.flat: list[list[tuple[str, Any]] | None] = [None] * len(_FLAT_PREFIXES)


def _scan(attrs: Mapping[str, Any]) -> _Scan:
    scan = _Scan()
    for key in attrs:
        if not isinstance(key, str) or not key.startswith(_SCAN_PREFIXES):
            continue
        if key.startswith(c.LQT_PREFIX):
            if key.startswith(c.LQT_TAGS_PREFIX):
                scan.lqt_tags.append((key[len(c.LQT_TAGS_PREFIX) :], attrs[key]))
            elif key not in c.LQT_CONTEXT_KEYS:
                scan.is_ai = True
            continue
        if key.startswith(c.ASSOCIATION_PREFIX):
            scan.assoc.append((key[len(c.ASSOCIATION_PREFIX) :], attrs[key]))
            continue
        scan.is_ai = True
        if key.startswith(_FLAT_PREFIXES):
            for i, prefix in enumerate(_FLAT_PREFIXES):
                if key.startswith(prefix):
                    bucket = scan.flat[i]
                    if bucket is None:
                        bucket = scan.flat[i] = []
                    bucket.append((key[len(prefix) :], attrs[key]))
                    break
    return scan


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


def _read_events(events: Sequence[Any]) -> _Events:
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


def _provider(attrs: Mapping[str, Any], model: str | None) -> tuple[str, str | None]:
    """(wire provider, raw provider value or None)."""
    found = _first_str(attrs, c.PROVIDER_KEYS)
    if found is not None:
        raw = found[1]
        low = raw.strip().lower()
        wire = c.PROVIDER_NORMALISATION.get(low)
        if wire is None and found[0] == "lumiqtrace.provider" and low in c.PROVIDERS:
            wire = low
        if wire is None and low == c.AZURE_RAW:
            system = _str(attrs.get(c.OI_SYSTEM))
            wire = "openai" if system is None or system.lower() == "openai" else "custom"
        return wire or "custom", raw
    host = _first_str(attrs, c.HOST_KEYS)
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


def _kind(attrs: Mapping[str, Any], has_model: bool) -> tuple[str, str, str | None]:
    """(operation, span_kind, raw operation value or None)."""
    explicit_op = _str(attrs.get(c.LQT_OPERATION))
    explicit_kind = _str(attrs.get(c.LQT_SPAN_KIND))
    raw_op = _str(attrs.get(c.OT_OPERATION))
    derived: tuple[str, str] | None = None
    for key in c.KIND_KEYS:
        value = attrs.get(key)
        if isinstance(value, str) and value:
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


def _stream(attrs: Mapping[str, Any]) -> bool | None:
    flag = _first(attrs, c.STREAM_KEYS, _bool)
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


def _finish_reason(attrs: Mapping[str, Any]) -> str | None:
    for key in c.FINISH_REASON_KEYS:
        value = attrs.get(key)
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            reasons = [r for r in (_str(v) for v in value) if r is not None]
            if reasons:
                return ",".join(dict.fromkeys(reasons))
            continue
        text = _str(value)
        if text is not None:
            return text
    return None


def _short_id(identifier: str) -> str:
    return identifier.rsplit(".", 1)[-1].strip().lower()


def _status(
    span: ReadableSpan, attrs: Mapping[str, Any], events: _Events
) -> tuple[str, str | None, str | None, int | None]:
    """(status, error_code, error_message, http status) following the ladder in the module docstring."""
    status_obj = span.status
    status_code = getattr(status_obj, "status_code", StatusCode.UNSET)
    description = _str(getattr(status_obj, "description", None))
    error_type = _str(attrs.get(c.ERROR_TYPE))
    http = _first_int(attrs, c.HTTP_STATUS_KEYS)
    grpc = _int(attrs.get(c.GRPC_STATUS_KEY))
    failed = status_code is StatusCode.ERROR or error_type is not None or events.exc_escaped

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

    status: str | None = None
    explicit = _str(attrs.get(c.LQT_STATUS))
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
    error_message = None
    if message_src is not None:
        # Scrub on a bounded slice: secrets straddling the cut are cut too, and huge messages stay cheap.
        text = _WS_RE.sub(" ", message_src[: 4 * DEFAULT_MAX_ERROR_MESSAGE_CHARS]).strip()
        if text:
            error_message = _cap(scrub_secrets(text), DEFAULT_MAX_ERROR_MESSAGE_CHARS)
    return status, error_code, error_message, http


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


class _Tags:
    __slots__ = ("_max", "_max_value", "_redactor", "full", "tags")

    def __init__(self, options: MappingOptions) -> None:
        self.tags: dict[str, str] = {}
        self._max = max(options.max_tags, 0)
        self._max_value = max(options.max_tag_value_chars, 0)
        self._redactor = options._redactor
        self.full = self._max == 0

    def add(self, key: str, value: Any) -> None:
        if self.full or not key or key in self.tags:
            return
        text = _tag_value(value)
        if text is None:
            return
        if len(key) > DEFAULT_MAX_TAG_KEY_CHARS:
            key = key[:DEFAULT_MAX_TAG_KEY_CHARS]
        key = _clean(key)
        text = REDACTED if self._redactor.matches(key) else _clean(_cap(text, self._max_value))
        self.tags[key] = text
        if len(self.tags) >= self._max:
            self.full = True

    def add_json_flat(self, prefix: str, value: Any) -> None:
        """Flatten a JSON object one level (``prefix.key``), redacting nested secrets of deeper values."""
        if isinstance(value, str):
            stripped = value.strip()
            if stripped[:1] != "{":
                self.add(prefix, value)
                return
            try:
                parsed = json.loads(stripped)
            except (ValueError, RecursionError):
                self.add(prefix, value)
                return
        else:
            parsed = value
        if not isinstance(parsed, dict):
            self.add(prefix, value)
            return
        for key, item in parsed.items():
            if self.full:
                return
            name = f"{prefix}.{key}"
            if isinstance(item, (dict, list)):
                scrubbed = self._redactor.scrub_json(item)
                try:
                    item = json.dumps(scrubbed, ensure_ascii=False, default=str)
                except (TypeError, ValueError, RecursionError):
                    continue
            elif item is None:
                continue
            self.add(name, item)


# --- the mapping ----------------------------------------------------------------------------------------------------


def map_span(span: ReadableSpan, options: MappingOptions = _DEFAULT_OPTIONS) -> dict[str, Any] | None:
    """Map one finished span to a LumiqTrace event, or ``None`` when ``options.ai_only`` filters it out."""
    attrs: Mapping[str, Any] = span.attributes or {}
    scan = _scan(attrs)
    if options.ai_only and not scan.is_ai:
        return None

    ctx = span.context
    trace_id = ctx.trace_id if ctx is not None else 0
    span_id = ctx.span_id if ctx is not None else 0
    start_ns = span.start_time
    end_ns = span.end_time
    event: dict[str, Any] = {
        "event_id": event_id_for(trace_id, span_id),
        "trace_id": format(trace_id & (2**128 - 1), "032x") if ctx is not None else _ZERO_TRACE,
        "span_id": format(span_id & (2**64 - 1), "016x") if ctx is not None else _ZERO_SPAN,
    }
    parent = span.parent
    if parent is not None and parent.span_id:
        event["parent_span_id"] = format(parent.span_id & (2**64 - 1), "016x")
    event["timestamp"] = _timestamp(start_ns if isinstance(start_ns, int) else time.time_ns())
    latency_ms: int | None = None
    if isinstance(start_ns, int) and isinstance(end_ns, int) and end_ns >= start_ns:
        latency_ms = round((end_ns - start_ns) / 1e6)

    events = _read_events(span.events)
    tags = _Tags(options)
    for key, value in scan.lqt_tags:
        tags.add(key, value)

    raw_provider: str | None = None
    raw_op: str | None = None
    request_model: str | None = None
    reasoning = cache_write = None
    cost_source: str | None = None
    if scan.is_ai:
        found = _first_str(attrs, (c.LQT_MODEL,)) or _first_str(attrs, c.RESPONSE_MODEL_KEYS)
        requested = _first_str(attrs, c.REQUEST_MODEL_KEYS)
        if requested is None and found is None:
            # OpenInference sets llm.model_name from the response only; a failed call keeps the requested model
            # in its invocation parameters.
            oi_model = _str(_invocation_parameters(attrs).get("model"))
            if oi_model is not None:
                requested = (c.OI_INVOCATION_PARAMETERS, oi_model)
        model = found[1] if found is not None else (requested[1] if requested is not None else None)
        if requested is not None and requested[1] != model:
            request_model = requested[1]
        provider, raw_provider = _provider(attrs, model)
        operation, span_kind, raw_op = _kind(attrs, model is not None)
        event["provider"] = provider
        if model is not None:
            event["model"] = _clean(_cap(model, DEFAULT_MAX_TAG_VALUE_CHARS))
        event["operation"] = operation
        event["span_kind"] = span_kind
        if latency_ms is not None:
            event["latency_ms"] = latency_ms

        ttft = _ttft_ms(attrs, events.chunk_ns, start_ns if isinstance(start_ns, int) else None)
        if ttft is not None:
            event["ttft_ms"] = min(max(ttft, 0), latency_ms) if latency_ms is not None else max(ttft, 0)

        input_tokens = _first_int(attrs, c.INPUT_TOKEN_KEYS)
        output_tokens = _first_int(attrs, c.OUTPUT_TOKEN_KEYS)
        if input_tokens is None and output_tokens is not None:
            total = _first_int(attrs, c.TOTAL_TOKEN_KEYS)
            if total is not None and total >= output_tokens:
                input_tokens = total - output_tokens
        cached = _first_int(attrs, c.CACHE_READ_KEYS)
        cache_write = _first_int(attrs, c.CACHE_WRITE_KEYS)
        reasoning = _first_int(attrs, c.REASONING_KEYS)
        if input_tokens is not None:
            event["input_tokens"] = input_tokens
        if output_tokens is not None:
            event["output_tokens"] = output_tokens
        if cached is not None:
            event["cached_tokens"] = cached

        stream = _stream(attrs)
        if stream is None and (ttft is not None or events.chunk_ns is not None):
            stream = True
        if stream is None and span_kind == "llm":
            stream = False
        if stream is not None:
            event["stream"] = stream

        cost = _explicit_cost(attrs)
        if cost is not None:
            cost_source = "span"
        elif (
            options.compute_cost
            and model is not None
            and span_kind == "llm"
            and (input_tokens is not None or output_tokens is not None)
        ):
            # Agent and workflow spans that aggregate their children's usage are never priced (double counting).
            cost = compute_cost(
                raw_provider=raw_provider or (provider if provider != "custom" else None),
                model=model,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cache_read_tokens=cached,
                cache_write_tokens=cache_write,
                start_time_ns=start_ns if isinstance(start_ns, int) else None,
            )
            if cost is not None:
                cost_source = "genai-prices"
        if cost is not None:
            event["cost_usd"] = cost

        finish = _finish_reason(attrs)
        if finish is not None:
            event["finish_reason"] = _clean(_cap(finish, DEFAULT_MAX_TAG_VALUE_CHARS))

        _add_content(event, attrs, scan, events, span_kind, options)
    else:
        event["provider"] = "custom"
        event["operation"] = "custom"
        event["span_kind"] = "general"
        if latency_ms is not None:
            event["latency_ms"] = latency_ms

    status, error_code, error_message, http = _status(span, attrs, events)
    event["status"] = status
    if error_code is not None:
        event["error_code"] = _clean(_cap(error_code, DEFAULT_MAX_TAG_VALUE_CHARS))
    if error_message is not None:
        event["error_message"] = _clean(error_message)

    resource_env, service_name = _resource_info(span.resource)
    env = _first_str(attrs, c.ENVIRONMENT_SPAN_KEYS)
    environment = env[1] if env is not None else resource_env or options.environment
    if environment:
        event["environment"] = _clean(_cap(environment, DEFAULT_MAX_TAG_VALUE_CHARS))
    user = _first_str(attrs, c.USER_KEYS)
    if user is not None:
        event["user_id"] = _clean(_cap(user[1], DEFAULT_MAX_TAG_VALUE_CHARS))
    session = _first_str(attrs, c.SESSION_KEYS)
    if session is not None:
        event["session_id"] = _clean(_cap(session[1], DEFAULT_MAX_TAG_VALUE_CHARS))

    # Tags, most useful first so the cap drops user metadata before the span's identity.
    tags.add("otel.span_name", span.name)
    tags.add("otel.span_kind", _SPAN_KIND_NAMES.get(span.kind, "internal"))
    if service_name is not None:
        tags.add("service.name", service_name)
    scope = span.instrumentation_scope
    if scope is not None:
        tags.add("otel.scope.name", scope.name)
        if scope.version:
            tags.add("otel.scope.version", scope.version)
    if raw_provider is not None:
        tags.add("gen_ai.provider.name", raw_provider)
    if raw_op is not None:
        tags.add("gen_ai.operation.name", raw_op)
    if request_model is not None:
        tags.add("gen_ai.request.model", request_model)
    if reasoning is not None:
        tags.add("tokens.reasoning", reasoning)
    if cache_write is not None:
        tags.add("tokens.cache_write", cache_write)
    if cost_source is not None:
        tags.add("cost.source", cost_source)
    method = _first_str(attrs, c.HTTP_METHOD_KEYS)
    if method is not None:
        tags.add("http.request.method", method[1])
    if http is not None:
        tags.add("http.response.status_code", http)
    for key in c.CONTEXT_TAG_KEYS:
        value = attrs.get(key)
        if value is not None:
            tags.add(key, value)
    if "http.route" not in attrs:
        target = attrs.get(c.HTTP_TARGET)
        if isinstance(target, str) and target:
            tags.add("http.route", target.split("?", 1)[0])
    oi_tags = attrs.get(c.OI_TAGS)
    if oi_tags is not None:
        if isinstance(oi_tags, (list, tuple)):
            joined = ",".join(t for t in (_str(v) for v in oi_tags) if t is not None)
            if joined:
                tags.add("tags", joined)
        else:
            tags.add("tags", oi_tags)
    metadata = attrs.get(c.OI_METADATA)
    if metadata is not None:
        tags.add_json_flat("metadata", metadata)
    for suffix, value in scan.assoc:
        if suffix not in c.ASSOCIATION_CONTEXT_SUFFIXES:
            tags.add(suffix, value)
    if tags.tags:
        event["tags"] = tags.tags
    event["sdk_version"] = options.sdk_version
    return event


def _add_content(
    event: dict[str, Any],
    attrs: Mapping[str, Any],
    scan: _Scan,
    events: _Events,
    span_kind: str,
    options: MappingOptions,
) -> None:
    """Set ``prompt_hash`` (whenever prompt content is visible) and, on opt-in, ``prompt`` and ``response``."""
    flat = scan.flat
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

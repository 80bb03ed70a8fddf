# SPDX-License-Identifier: Apache-2.0
"""The mapper: one finished span -> one LumiqTrace event, read top to bottom in :meth:`Mapper.map_span`.

A :class:`Mapper` owns every memo of the mapping, each bounded in entries and in bytes and forgetting gradually
(:mod:`.cache`): the classification of attribute keys (per distinct key), an AI span's identity (by the values it is
read from), the identity tags (by span name, kind, service and scope), ISO timestamps (by second), resources, error
messages, and per options the redaction decisions. No memo is keyed by a span's whole key set, so a span of a key
set never seen before costs what a known one does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from operator import itemgetter
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from opentelemetry_exporter_lumiqtrace.mapping import conventions as c
from opentelemetry_exporter_lumiqtrace.mapping.cache import GenerationalMemo
from opentelemetry_exporter_lumiqtrace.mapping.content import add_content
from opentelemetry_exporter_lumiqtrace.mapping.identity import Identity, identify
from opentelemetry_exporter_lumiqtrace.mapping.options import MappingOptions
from opentelemetry_exporter_lumiqtrace.mapping.pricing import (
    DEFAULT_MAX_CACHED_KEY_CHARS,
    plan_cost,
    price_plan,
    round_cost,
)
from opentelemetry_exporter_lumiqtrace.mapping.redaction import Redactor
from opentelemetry_exporter_lumiqtrace.mapping.scan import Scan, new_key_memo
from opentelemetry_exporter_lumiqtrace.mapping.status import NO_EVENTS, new_message_memo, outcome, read_events
from opentelemetry_exporter_lumiqtrace.mapping.tags import fill_tags, json_flat_pairs
from opentelemetry_exporter_lumiqtrace.mapping.values import as_bool, as_str, clean, fit, json_object

F = c.FIELDS
_CACHE_READ_TOKENS = F["cache_read_tokens"]
_CACHE_WRITE_TOKENS = F["cache_write_tokens"]
_COST_DETAILS = F["cost_details"]
_COST_USD = F["cost_usd"]
_ENVIRONMENT = F["environment"]
_FINISH_REASON = F["finish_reason"]
_HTTP_METHOD = F["http_method"]
_HTTP_TARGET = F["http_target"]
_INPUT_TOKENS = F["input_tokens"]
_INVOCATION_PARAMETERS = F["invocation_parameters"]
_LOGFIRE_DURATION = F["logfire_duration"]
_LOGFIRE_MSG_TEMPLATE = F["logfire_msg_template"]
_LOGFIRE_SPAN_TYPE = F["logfire_span_type"]
_METADATA_USER_ID = F["metadata_user_id"]
_REQUEST_DATA = F["request_data"]
_METADATA = F["metadata"]
_OI_TAGS = F["oi_tags"]
_OUTPUT_TOKENS = F["output_tokens"]
_REASONING_TOKENS = F["reasoning_tokens"]
_SESSION_ID = F["session_id"]
_STREAM = F["stream"]
_TOTAL_TOKENS = F["total_tokens"]
_TTFT_MS = F["ttft_ms"]
_TTFT_SECONDS = F["ttft_seconds"]
_USER_ID = F["user_id"]

DEFAULT_MAX_MEMO_ENTRIES = 8_192
DEFAULT_MAX_MEMO_BYTES = 1_024 * 1_024
DEFAULT_MAX_PLANS = 1_024

_MASK_128 = 2**128 - 1
_MASK_64 = 2**64 - 1
_UUID_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}
_MAX_ISO_SECOND = 253_402_300_799  # 9999-12-31T23:59:59Z
_MAX_LATENCY_MS = 2**63 - 1
_MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))
# By id(): hashing an Enum member runs Python code; members live as long as the process.
_SPAN_KIND_NAMES = {id(kind): kind.name.lower() for kind in SpanKind}
# design.md: a non-AI span gets no invented model.
_NON_AI_FIELDS = {"provider": "custom", "operation": "custom", "span_kind": "general"}
_NO_IDENTITY_TAGS = (None, None, None)  # a non-AI span's identity part of the identity tags memo key
_LQT_TAG = c.Family.LQT_TAG  # Enum members read once (see status.py)
_ASSOCIATION = c.Family.ASSOCIATION
_KEY_AND_VALUE = itemgetter(1, 2)  # of a scan's (rank, key, value) context entry
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_CONTENT_BITS = 0
for _name in c.CONTENT_FIELDS:
    _CONTENT_BITS |= F[_name].bit
_TTFT_BITS = F["ttft_ms"].bit | F["ttft_seconds"].bit
_COST_BITS = F["cost_usd"].bit | F["cost_details"].bit
_STREAM_BITS = F["stream"].bit | F["invocation_parameters"].bit | F["request_data"].bit | F["logfire_msg_template"].bit
_USAGE_BITS = 0
for _name in ("input_tokens", "output_tokens", "total_tokens", "cache_read_tokens", "cache_write_tokens"):
    _USAGE_BITS |= F[_name].bit
_USAGE_BITS |= F["reasoning_tokens"].bit
_DETAIL_USAGE_BITS = F["cache_read_tokens"].bit | F["cache_write_tokens"].bit | F["reasoning_tokens"].bit
_CONTEXT_BITS = F["environment"].bit | F["user_id"].bit | F["session_id"].bit | F["metadata_user_id"].bit
_HTTP_METHOD_BIT = F["http_method"].bit
_EXPLICIT_KIND_BITS = F["explicit_operation"].bit | F["explicit_span_kind"].bit
_USER_METADATA_BITS = F["http_target"].bit | F["oi_tags"].bit | F["metadata"].bit


def event_id_for(trace_id: int, span_id: int) -> str:
    """Deterministic UUIDv4-shaped event id of a span, so a resent span is deduplicated by LumiqTrace.

    It is the span's own ids laid out as a UUIDv4, not a hash of them: the whole span id, then the low 58 bits of the
    trace id (W3C's random part of a trace id is its low 56 bits), with the version nibble 4 and the variant bits 10
    where a UUIDv4 has them. Two spans of one trace never share an event id; spans of two traces share one only when
    their span ids are equal and their trace ids agree in the low 58 bits, which random ids never do in practice. A
    hash bought nothing more for random ids and cost a fifth of the ids' CPU, 0.3 us a span (issue 11).
    """
    return _event_id_of_hex(f"{trace_id_hex(trace_id)}{span_id & _MASK_64:016x}")


def trace_id_hex(trace_id: int) -> str:
    """A trace id as the events carry it (their ``trace_id``): 32 lowercase hex digits. ``Mapper._ids`` writes the
    same digits in one conversion together with the span id's."""
    return f"{trace_id & _MASK_128:032x}"


def _event_id_of_hex(ids: str) -> str:
    """:func:`event_id_for` of the 48 hex digits of the trace id and span id (``Mapper._ids`` has them anyway)."""
    return f"{ids[32:40]}-{ids[40:44]}-4{ids[44:47]}-{_UUID_VARIANT[ids[17]]}{ids[47]}{ids[18:20]}-{ids[20:32]}"


@dataclass(frozen=True, slots=True)
class _Origin:
    """What the mapping reads from a span's resource and instrumentation scope (shared by the spans of one tracer)."""

    resource: Any  # both kept so that a recycled id() is told apart
    scope: Any
    environment: str | None  # as the event's field (fit)
    service_name: str | None
    scope_name: str | None
    scope_version: str | None
    # (service, scope name, scope version), the origin's part of the identity tags memo key; None when one is a str
    # subclass.
    tag_values: tuple[str | None, str | None, str | None] | None


class _OptionsState:
    """What the mapper derives from one ``MappingOptions``: the redactor, the identity tags memo, the environment."""

    __slots__ = ("environment", "head_tags", "options", "redactor")

    def __init__(self, options: MappingOptions, *, max_entries: int, max_bytes: int) -> None:
        self.options = options
        self.environment = fit(options.environment) if options.environment else None  # as the event's field
        self.redactor = Redactor(options.redact_keys)
        # (span name, kind, the origin's and the identity's tag values) -> their tags, for spans without
        # lumiqtrace.tags.*.
        self.head_tags: GenerationalMemo[tuple[Any, ...], dict[str, str]] = GenerationalMemo(
            max_entries=max_entries, max_bytes=max_bytes, weigh=_strings_weight
        )


# No span's resource or scope is this object: the last origin before the first span.
_NO_ORIGIN = _Origin(
    resource=object(),
    scope=object(),
    environment=None,
    service_name=None,
    scope_name=None,
    scope_version=None,
    tag_values=None,
)


def _strings_weight(key: tuple[Any, ...]) -> int:
    return sum(
        len(part) if isinstance(part, str) else _strings_weight(part) if isinstance(part, tuple) else 8 for part in key
    )


class Mapper:
    """Maps finished spans to LumiqTrace events; owns the mapping's memos (one per exporter).

    Thread-safe in the way the exporter needs it: memos only ever hold complete entries, so two threads mapping at
    once at worst compute an entry twice.
    """

    def __init__(
        self, *, max_memo_entries: int = DEFAULT_MAX_MEMO_ENTRIES, max_memo_bytes: int = DEFAULT_MAX_MEMO_BYTES
    ) -> None:
        self._max_entries = max_memo_entries
        self._max_bytes = max_memo_bytes
        self._keys = new_key_memo(max_entries=max_memo_entries, max_bytes=max_memo_bytes)
        self._identities: GenerationalMemo[tuple[Any, ...], Identity] = GenerationalMemo(
            max_entries=max_memo_entries, max_bytes=max_memo_bytes, weigh=_strings_weight, max_entry_bytes=1_024
        )
        self._seconds: GenerationalMemo[int, str] = GenerationalMemo(
            max_entries=4_096, max_bytes=4_096 * 24, weigh=lambda _second: 24
        )
        self._origins: GenerationalMemo[tuple[int, int], _Origin] = GenerationalMemo(
            max_entries=64, max_bytes=64 * 64, weigh=lambda _ids: 64
        )
        # The origin of the span mapped last: the spans of a batch come from one or a few tracers, so the memo's
        # two id() calls, key tuple and lookup are mostly skipped. One attribute, so threads read a whole entry.
        self._last_origin = _NO_ORIGIN
        self._messages = new_message_memo(max_entries=512, max_bytes=max_memo_bytes)
        # (provider, model) -> price plan, in front of the pricing module's process-wide plans: a dict read per priced
        # span instead of that cache's lookup and reordering.
        self._plans: GenerationalMemo[tuple[str | None, str], Any] = GenerationalMemo(
            max_entries=DEFAULT_MAX_PLANS,
            max_bytes=max_memo_bytes,
            weigh=_strings_weight,
            max_entry_bytes=DEFAULT_MAX_CACHED_KEY_CHARS,
        )
        self._state: _OptionsState | None = None

    def map_span(self, span: ReadableSpan, options: MappingOptions) -> dict[str, Any] | None:
        """Map one finished span to a LumiqTrace event, or ``None`` when ``options.ai_only`` filters it out."""
        attrs = _plain_attributes(span.attributes)
        found = Scan(attrs, self._keys)
        if options.ai_only and not found.ai:
            return None
        state = self._state
        if state is None or state.options is not options:
            state = self._state = _OptionsState(options, max_entries=self._max_entries, max_bytes=self._max_bytes)

        event = self._ids(span)
        start = span.start_time
        if start.__class__ is not int:
            start = start if isinstance(start, int) else None
        ns = start if start is not None else time.time_ns()
        # The memo holds valid seconds only, so a hit needs no range check.
        prefix = self._seconds.young.get(ns // 1_000_000_000)
        event["timestamp"] = (
            prefix + _MILLIS[ns % 1_000_000_000 // 1_000_000] if prefix is not None else self._timestamp(ns)
        )
        end = span.end_time
        latency_ms = round((end - start) / 1e6) if start is not None and isinstance(end, int) and end >= start else None
        span_events = span.events
        events = read_events(span_events) if span_events else NO_EVENTS

        identity: Identity | None = None
        cost_source: str | None = None
        reasoning = cache_write = None
        present = found.present
        if found.ai:
            identity = self._identity(found)
            if (
                identity.span_kind == "tool"
                and not present & _EXPLICIT_KIND_BITS
                and isinstance(span.name, str)
                and span.name.startswith(c.HANDOFF_NAME_PREFIX)
            ):
                identity = _as_handoff(identity)
            event.update(identity.event_fields)
            if latency_ms == 0 and present & _LOGFIRE_DURATION.bit:
                latency_ms = _logfire_log_latency_ms(found)
            if latency_ms is not None:
                event["latency_ms"] = latency_ms
            first_chunk_ns = events.first_chunk_ns
            ttft = None
            if present & _TTFT_BITS or first_chunk_ns is not None:
                ttft = _ttft_ms(found, first_chunk_ns, start)
                if ttft is not None:
                    event["ttft_ms"] = min(max(ttft, 0), latency_ms) if latency_ms is not None else max(ttft, 0)

            input_tokens = output_tokens = cached = None
            if present & _USAGE_BITS:
                # Each read only when its bit says a key of the field is there: a call saved per absent field.
                if present & _INPUT_TOKENS.bit:
                    input_tokens = found.first(_INPUT_TOKENS)
                if present & _OUTPUT_TOKENS.bit:
                    output_tokens = found.first(_OUTPUT_TOKENS)
                if input_tokens is None and output_tokens is not None and present & _TOTAL_TOKENS.bit:
                    total = found.first(_TOTAL_TOKENS)
                    if total is not None and total >= output_tokens:
                        input_tokens = total - output_tokens
                if present & _DETAIL_USAGE_BITS:
                    if present & _CACHE_READ_TOKENS.bit:
                        cached = found.first(_CACHE_READ_TOKENS)
                    if present & _CACHE_WRITE_TOKENS.bit:
                        cache_write = found.first(_CACHE_WRITE_TOKENS)
                    if present & _REASONING_TOKENS.bit:
                        reasoning = found.first(_REASONING_TOKENS)
                if input_tokens is not None:
                    event["input_tokens"] = input_tokens
                if output_tokens is not None:
                    event["output_tokens"] = output_tokens
                if cached is not None:
                    event["cached_tokens"] = cached

            if present & _STREAM_BITS or ttft is not None or first_chunk_ns is not None:
                stream = _stream(found) if present & _STREAM_BITS else None
                # Only evidence sets it: a span that says nothing about streaming has no stream field.
                if stream is None and (ttft is not None or first_chunk_ns is not None):
                    stream = True
                if stream is not None:
                    event["stream"] = stream

            cost = _explicit_cost(found) if present & _COST_BITS else None
            if cost is not None:
                event["cost_usd"] = cost
                cost_source = "span"
            elif (
                options.compute_cost
                and identity.pricing_key is not None
                and (input_tokens is not None or output_tokens is not None)
            ):
                plan = self._plans.young.get(identity.pricing_key)
                if plan is None:
                    plan = self._price_plan(identity.pricing_key)
                if plan is not None:
                    cost = plan_cost(plan, input_tokens, output_tokens, cached, cache_write, start)
                    if cost is not None:
                        event["cost_usd"] = cost
                        cost_source = "genai-prices"

            if present & _FINISH_REASON.bit:
                finish = found.first(_FINISH_REASON)
                if finish is not None:
                    event["finish_reason"] = fit(finish)

            if (
                present & _CONTENT_BITS
                or found.messages is not None
                or (events is not NO_EVENTS and (events.prompt is not None or events.completion is not None))
            ):
                add_content(
                    event,
                    found,
                    events,
                    identity.span_kind,
                    capture=options.capture_content,
                    max_chars=options.max_content_chars,
                )
        else:
            event.update(_NON_AI_FIELDS)
            if latency_ms is not None:
                event["latency_ms"] = latency_ms

        result = outcome(span, found, events, self._messages)
        event["status"] = result.status
        if result.error_code is not None:
            event["error_code"] = fit(result.error_code)
        if result.error_message is not None:
            event["error_message"] = clean(result.error_message)

        span_resource = span.resource
        scope = span.instrumentation_scope
        origin = self._last_origin
        if origin.resource is not span_resource or origin.scope is not scope:
            remembered = self._origins.young.get((id(span_resource), id(scope)))
            if remembered is None or remembered.resource is not span_resource or remembered.scope is not scope:
                remembered = self._origin(span_resource, scope)
            origin = self._last_origin = remembered
        environment = origin.environment or state.environment
        if present & _CONTEXT_BITS:
            explicit_environment = found.first(_ENVIRONMENT)
            if explicit_environment is not None:
                environment = fit(explicit_environment)
            user = found.first(_USER_ID)
            if user is None:
                user = found.first(_METADATA_USER_ID)
            session = found.first(_SESSION_ID)
            if environment:
                event["environment"] = environment
            if user is not None:
                event["user_id"] = fit(user)
            if session is not None:
                event["session_id"] = fit(session)
        elif environment:
            event["environment"] = environment

        tags = self._identity_tags(span, found, state, origin, identity)
        # The token counts without an event field, and where the cost came from.
        pairs: list[tuple[str, Any]] = []
        if reasoning is not None:
            pairs.append(("tokens.reasoning", reasoning))
        if cache_write is not None:
            pairs.append(("tokens.cache_write", cache_write))
        if cost_source is not None:
            pairs.append(("cost.source", cost_source))
        _add_context_tags(found, state, result.http_status, pairs)
        if pairs:
            tags = fill_tags(pairs, tags, state.redactor, options.max_tags, options.max_tag_value_chars)
        if tags:
            event["tags"] = tags
        event["sdk_version"] = options.sdk_version
        return event

    # --- the parts of map_span ---------------------------------------------------------------------------------------

    @staticmethod
    def _ids(span: ReadableSpan) -> dict[str, Any]:
        ctx = span.context
        if ctx is not None:
            ids = (((ctx.trace_id & _MASK_128) << 64) | (ctx.span_id & _MASK_64)).to_bytes(24, "big").hex()
            event: dict[str, Any] = {
                "event_id": _event_id_of_hex(ids),
                "trace_id": ids[:32],
                "span_id": ids[32:],
            }
        else:
            event = {"event_id": event_id_for(0, 0), "trace_id": _ZERO_TRACE, "span_id": _ZERO_SPAN}
        parent = span.parent
        if parent is not None:
            parent_span_id = parent.span_id
            if parent_span_id:
                event["parent_span_id"] = (parent_span_id & _MASK_64).to_bytes(8, "big").hex()
        return event

    def _timestamp(self, ns: int) -> str:
        second, rest = divmod(ns, 1_000_000_000)
        if not 0 <= second <= _MAX_ISO_SECOND:
            # Outside what a 4-digit-year ISO timestamp can say: only a corrupt span gets here; "now" is the best guess.
            second, rest = divmod(time.time_ns(), 1_000_000_000)
        prefix = self._seconds.young.get(second)
        if prefix is None:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._seconds.put(second, prefix)
        return prefix + _MILLIS[rest // 1_000_000]

    def _identity(self, found: Scan) -> Identity:
        """The span's model, provider and kind, memoised by the values they are read from when all are exact str
        (other types and str subclasses must reach the parsers: 1, 1.0 and True are equal dict keys)."""
        items = found.identity_items
        for value in items[1::2]:
            if value.__class__ is not str:
                return identify(found)
        memo_key = tuple(items)
        identity = self._identities.young.get(memo_key)
        if identity is None:
            identity = self._identities.get(memo_key)
            if identity is None:
                identity = identify(found)
                self._identities.put(memo_key, identity)
        return identity

    def _price_plan(self, key: tuple[str | None, str]) -> Any:
        """The plan of a (provider, model) not in the young generation of the plans memo; ``None`` while
        genai-prices is unavailable or still importing (not remembered: asked again on the next span)."""
        plan = self._plans.get(key)
        if plan is None:
            plan = price_plan(*key)
            if plan is not None:
                self._plans.put(key, plan)
        return plan

    def _origin(self, resource: Any, scope: Any) -> _Origin:
        attrs = getattr(resource, "attributes", None) or {}
        environment = None
        for key in c.ENVIRONMENT_RESOURCE_KEYS:
            value = attrs.get(key)
            environment = as_str(value) if value is not None else None
            if environment is not None:
                break
        service = attrs.get("service.name")
        service_name = as_str(service) if service is not None else None
        scope_name = scope.name if scope is not None else None
        scope_version = scope.version if scope is not None else None
        tag_values = (service_name, scope_name, scope_version)
        entry = _Origin(
            resource=resource,
            scope=scope,
            environment=fit(environment) if environment is not None else None,
            service_name=service_name,
            scope_name=scope_name,
            scope_version=scope_version,
            tag_values=tag_values if all(v is None or v.__class__ is str for v in tag_values) else None,
        )
        if resource is not None:
            self._origins.put((id(resource), id(scope)), entry)
        return entry

    def _identity_tags(
        self, span: ReadableSpan, found: Scan, state: _OptionsState, origin: _Origin, identity: Identity | None
    ) -> dict[str, str]:
        """``lumiqtrace.tags.*``, the identity tags (span name, kind, service, scope) and the raw values of an AI
        span's identity that the wire enums lose (provider, operation, requested model)."""
        name = span.name
        kind_name = _SPAN_KIND_NAMES.get(id(span.kind), "internal")
        lqt_tags = found.family(_LQT_TAG) if found.families is not None else None
        identity_values = identity.tag_values if identity is not None else _NO_IDENTITY_TAGS
        # These tags repeat across spans: filled once per options, keyed by the values they are made of (the origin's
        # and the identity's values are tuples made once per origin and identity). Exact str only: a str subclass is
        # an equal key but keeps its type in the tags. A scope without name and version gives the tags of no scope.
        memo_key = None
        if lqt_tags is None and name.__class__ is str and origin.tag_values is not None and identity_values is not None:
            memo_key = (name, kind_name, origin.tag_values, identity_values)
            cached = state.head_tags.young.get(memo_key)
            if cached is None:
                cached = state.head_tags.get(memo_key)
            if cached is not None:
                return cached.copy()
        pairs: list[tuple[str, Any]] = [*(lqt_tags or ()), ("otel.span_name", name), ("otel.span_kind", kind_name)]
        if origin.service_name is not None:
            pairs.append(("service.name", origin.service_name))
        if origin.scope is not None:
            pairs.append(("otel.scope.name", origin.scope_name))
            if origin.scope_version:
                pairs.append(("otel.scope.version", origin.scope_version))
        if identity is not None:
            if identity.raw_provider is not None:
                pairs.append(("gen_ai.provider.name", identity.raw_provider))
            if identity.raw_operation is not None:
                pairs.append(("gen_ai.operation.name", identity.raw_operation))
            if identity.request_model is not None:
                pairs.append(("gen_ai.request.model", identity.request_model))
        tags = self._fill(state, pairs, {})
        if memo_key is not None:
            state.head_tags.put(memo_key, tags.copy())
        return tags

    @staticmethod
    def _fill(state: _OptionsState, pairs: list[tuple[str, Any]], tags: dict[str, str]) -> dict[str, str]:
        options = state.options
        return fill_tags(pairs, tags, state.redactor, options.max_tags, options.max_tag_value_chars)


def _add_context_tags(found: Scan, state: _OptionsState, http_status: int | None, pairs: list[tuple[str, Any]]) -> None:
    """The HTTP/DB/RPC and AI context tags, then user metadata (OpenInference tags and metadata, association
    properties)."""
    if found.present & _HTTP_METHOD_BIT:
        method = found.first(_HTTP_METHOD)
        if method is not None:
            pairs.append(("http.request.method", method))
    if http_status is not None:
        pairs.append(("http.response.status_code", http_status))
    context = found.context
    if context:
        context.sort()  # CONTEXT_TAG_KEYS order: ranks are distinct, so values are never compared
        # (key, value) of each, made in C; fill_tags skips a None value as it skips any value without a tag text.
        pairs += map(_KEY_AND_VALUE, context)
    if not found.present & _USER_METADATA_BITS and found.families is None:
        return
    attrs = found.attrs
    if found.has(_HTTP_TARGET) and "http.route" not in attrs:
        target = attrs.get(c.HTTP_TARGET)
        if isinstance(target, str) and target:
            pairs.append(("http.route", target.split("?", 1)[0]))
    oi_tags = found.first(_OI_TAGS)
    if oi_tags is not None:
        if isinstance(oi_tags, (list, tuple)):
            joined = ",".join(t for t in (as_str(v) for v in oi_tags) if t is not None)
            if joined:
                pairs.append(("tags", joined))
        else:
            pairs.append(("tags", oi_tags))
    metadata = found.first(_METADATA)
    if metadata is not None:
        json_flat_pairs("metadata", metadata, state.redactor, pairs)
    for suffix, value in found.family(_ASSOCIATION) or ():
        if suffix not in c.ASSOCIATION_CONTEXT_SUFFIXES:
            pairs.append((suffix, value))


def _plain_attributes(attributes: Any) -> dict[Any, Any]:
    """The span's attributes as a plain dict, copied in C where possible.

    An ended SDK span hands out a ``MappingProxyType`` over ``BoundedAttributes``, whose every lookup runs Python
    code; the proxy's ``copy()`` is the underlying mapping's, which for ``BoundedAttributes`` is a C dict copy.
    """
    if attributes is None:
        return {}
    if attributes.__class__ is dict:
        return attributes  # type: ignore[no-any-return]
    try:
        copied = attributes.copy()
    except Exception:  # a mapping without copy(), or one that raises: the generic path
        copied = None
    if copied.__class__ is dict:
        return copied  # type: ignore[no-any-return]
    return dict(attributes)


def _ttft_ms(found: Scan, first_chunk_ns: int | None, start_ns: int | None) -> int | None:
    if found.present & _TTFT_BITS:
        explicit: float | None = found.first(_TTFT_MS)
        if explicit is not None:
            return round(explicit)
        seconds: float | None = found.first(_TTFT_SECONDS)
        if seconds is not None:
            return round(seconds * 1000)
    if first_chunk_ns is not None and start_ns is not None and first_chunk_ns >= start_ns:
        return round((first_chunk_ns - start_ns) / 1e6)
    return None


def _stream(found: Scan) -> bool | None:
    flag: bool | None = found.first(_STREAM)
    if flag is not None:
        return flag
    for params_field in (_INVOCATION_PARAMETERS, _REQUEST_DATA):
        params = found.first(params_field)
        if isinstance(params, str) and '"stream"' in params:
            parsed = json_object(params)
            flag = as_bool(parsed.get("stream")) if parsed is not None else None
            if flag is not None:
                return flag
    template: str | None = found.first(_LOGFIRE_MSG_TEMPLATE)
    if template is not None and template.lower().startswith(c.STREAMING_TEMPLATE_PREFIXES):
        return True
    return None


def _logfire_log_latency_ms(found: Scan) -> int:
    """A Logfire log's latency: a streamed call's result is logged at one instant, its seconds in ``duration``."""
    if found.first(_LOGFIRE_SPAN_TYPE) != c.LOGFIRE_LOG:
        return 0
    seconds: float | None = found.first(_LOGFIRE_DURATION)
    if seconds is None or seconds * 1000 > _MAX_LATENCY_MS:  # 1e308 seconds is no latency (and round(inf) raises)
        return 0
    return round(seconds * 1000)


def _as_handoff(identity: Identity) -> Identity:
    """A TOOL span named "handoff to <agent>" (OpenInference's openai-agents) is a handoff."""
    operation, span_kind = c.KIND_TABLE["handoff"]
    return replace(identity, operation=operation, span_kind=span_kind)


def _explicit_cost(found: Scan) -> float | None:
    cost: float | None = found.first(_COST_USD)
    if cost is None:
        cost = found.first(_COST_DETAILS)
    # The same 12 significant digits as a computed cost (issue 14): float sums like 2.5500000000000003e-06 are noise.
    return round_cost(cost) if cost is not None else None


__all__ = ["Mapper", "event_id_for", "trace_id_hex"]

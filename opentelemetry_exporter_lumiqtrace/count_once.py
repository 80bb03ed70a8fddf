# SPDX-License-Identifier: Apache-2.0
"""Count once: the tokens and cost of one provider call stay on exactly one event.

When several instrumentations describe the same provider call (a framework's span and the client library's span
below it; the Anthropic SDK's own tracing beside OpenLLMetry's), each span carries the call's token counts, and a
dashboard summing tokens or cost would show them twice. :class:`CountOnce` looks at each (span, mapped event) pair
after the mapping, in the order the exporter receives them, and removes ``input_tokens``, ``output_tokens``,
``cached_tokens`` and ``cost_usd`` (and the tags that only describe them) from every event but one. The others stay
exported, whole, with the tag ``lumiqtrace.counted_in`` naming the ``event_id`` that carries the counts.

The rule. Two events with counts describe the same call when

* **nested**: one span is an ancestor of the other in the same trace (a span with counts below a span with
  counts: the framework's call span above the client's), or
* **parallel**: both spans carry the same response id (``gen_ai.response.id``; for OpenInference, which has no
  such attribute, the ``id`` of the provider's JSON answer in ``output.value``), the same provider and model
  (response model first), and ended within :data:`DEFAULT_PARALLEL_WINDOW_S` of each other.

The event that arrives first keeps the counts. The SDK hands spans to the exporter in the order they end, and a
span ends after everything it wraps: the span that arrives first is the innermost, the one closest to the wire
(the client library's span, the Anthropic SDK's own span). This is deterministic for a given end order. A child
that arrives after its parent already kept the counts (a span ended late, e.g. a stream read after its call span
ended) loses them to the parent instead: what was sent cannot be taken back.

Where nothing links two spans (no ancestry, no shared response id) they are never merged: two identical
concurrent calls stay two calls with two sets of counts.

Limits (what it cannot see):

* Memory is bounded (:data:`DEFAULT_MAX_ENTRIES` per table, oldest forgotten first), so two spans of one call that
  reach the exporter more than that many counted spans apart, or more than the window apart, are both counted.
* Ancestry is followed through spans the exporter receives. A span filtered out before the mapping (sampling) or
  exported by another process breaks the chain, and so does a parent link to a span in another trace.
* An OpenInference span with hidden outputs (``OPENINFERENCE_HIDE_OUTPUTS``) has no response id: beside a span in
  another trace it cannot be matched (LangChain's ``ChatOpenAI`` beside OpenInference-openai's ``ChatCompletion``).
* A provider that reuses response ids (some local OpenAI-compatible servers number them in a small range) may
  have two calls of the same model, ending within the window, merged.
* An ancestor span with counts is taken to describe its counted descendants' call(s); where an instrumentation
  puts counts on a wrapper of several calls, the wrapper loses them and the tag names one of the calls.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from opentelemetry_exporter_lumiqtrace.mapping import DEFAULT_MAX_TAGS

_logger = logging.getLogger(__name__)

# The event fields that count a provider call.
COUNT_FIELDS = ("input_tokens", "output_tokens", "cached_tokens", "cost_usd")
# Tags that only describe those fields (``tokens.cache_write``, ``cost.source``…) go with them.
_COUNT_TAG_PREFIXES = ("tokens.", "cost.")
# The tag an event without its counts gets: the event_id of the event that carries them.
COUNTED_IN_TAG = "lumiqtrace.counted_in"

# Response-id attributes, highest first. OpenInference has none: its ``output.value`` holds the provider's answer.
RESPONSE_ID_KEYS = ("gen_ai.response.id", "llm.response.id")
_OUTPUT_VALUE_KEY = "output.value"
# The provider's JSON answer usually starts with its id (OpenAI chat/Responses, Anthropic, as OpenInference records
# them): read without parsing. Otherwise the answer is parsed, if short enough: its top-level ``id``, or LangChain's
# ``llm_output.id``.
_LEADING_ID = re.compile(r'\A\s*\{\s*"id"\s*:\s*"([^"\\]{1,256})"')
_MAX_PARSED_CHARS = 64 * 1024

DEFAULT_MAX_ENTRIES = 4_096
DEFAULT_PARALLEL_WINDOW_S = 60.0


def has_counts(event: Mapping[str, Any]) -> bool:
    # Spelled out: this runs for every span.
    return "input_tokens" in event or "output_tokens" in event or "cached_tokens" in event or "cost_usd" in event


def response_id(attributes: Mapping[str, Any]) -> str | None:
    """The provider's response id as the span records it, or None."""
    for key in RESPONSE_ID_KEYS:
        value = attributes.get(key)
        if isinstance(value, str) and value:
            return value
    output = attributes.get(_OUTPUT_VALUE_KEY)
    if not isinstance(output, str):
        return None
    match = _LEADING_ID.match(output)
    if match is not None:
        return match.group(1)
    if len(output) > _MAX_PARSED_CHARS or not output.lstrip().startswith("{"):
        return None
    try:
        answer = json.loads(output)
    except ValueError:
        return None
    if not isinstance(answer, dict):
        return None
    found = answer.get("id")
    if not isinstance(found, str):
        llm_output = answer.get("llm_output")
        found = llm_output.get("id") if isinstance(llm_output, dict) else None
    return found if isinstance(found, str) and found else None


def remove_counts(event: dict[str, Any], counted_in: str, *, max_tags: int = DEFAULT_MAX_TAGS) -> None:
    """Take the counts off ``event`` (in place) and tag it with the event that carries them."""
    for name in COUNT_FIELDS:
        event.pop(name, None)
    tags = event.get("tags")
    if not isinstance(tags, dict):
        tags = event["tags"] = {}
    for key in [k for k in tags if k.startswith(_COUNT_TAG_PREFIXES)]:
        del tags[key]
    if len(tags) >= max_tags:
        del tags[next(reversed(tags))]  # the tag cap holds; the link matters more than the last tag
    tags[COUNTED_IN_TAG] = counted_in


class _Bounded:
    """An insertion-ordered map that forgets its oldest entries past ``max_entries``.

    A plain dict trimmed in batches (an eighth of slack), so an insertion costs a dict store, not a reordering.
    """

    __slots__ = ("_items", "_limit", "max_entries")

    def __init__(self, max_entries: int) -> None:
        self._items: dict[Any, Any] = {}
        self.max_entries = max_entries
        self._limit = max_entries + max(1, max_entries >> 3)

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Any) -> Any:
        return self._items.get(key)

    def pop(self, key: Any) -> Any:
        return self._items.pop(key, None)

    def put(self, key: Any, value: Any) -> None:
        items = self._items
        items[key] = value
        if len(items) > self._limit:
            for old in list(itertools.islice(items, len(items) - self.max_entries)):
                del items[old]


class CountOnce:
    """Keeps the counts of each provider call on one event, across export calls, in bounded memory.

    Call :meth:`observe` with every (span, event) pair after the mapping, in the order the spans arrived. It edits
    the event in place and returns it. Thread-safe (``SimpleSpanProcessor`` exports from the application's threads).
    """

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        parallel_window_s: float = DEFAULT_PARALLEL_WINDOW_S,
        max_tags: int = DEFAULT_MAX_TAGS,
    ) -> None:
        self._max_tags = max_tags
        self._window_ns = int(parallel_window_s * 1e9)
        self._lock = threading.Lock()
        # (trace id, span id) of a span not yet seen -> event_id of a counted event below it.
        self._counted_below = _Bounded(max_entries)
        # (trace id, span id) of a span whose event kept counts -> its event_id (for children arriving late).
        self._counted_spans = _Bounded(max_entries)
        # (provider, model, response id) -> (event_id, span end in ns) of the event that kept the counts.
        self._by_response = _Bounded(max_entries)

    def observe(self, span: ReadableSpan, event: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._observe(span, event)
        return event

    def observe_all(self, spans: Sequence[ReadableSpan], events: Sequence[dict[str, Any]]) -> None:
        """:meth:`observe` of each (span, event) pair in order, under one acquisition of the lock (the exporter's
        case: one call per export batch)."""
        observe = self._observe
        with self._lock:
            for span, event in zip(spans, events, strict=True):
                observe(span, event)

    def _observe(self, span: ReadableSpan, event: dict[str, Any]) -> None:
        """The rule, for one pair; the caller holds the lock."""
        context = span.context
        if context is None:
            return
        trace_id = context.trace_id
        carrier = self._counted_below.pop((trace_id, context.span_id))
        counted = has_counts(event)
        if carrier is None and not counted:
            return  # most spans: no counts, nothing counted below them; one dict pop and done
        parent = span.parent
        parent_key = (trace_id, parent.span_id) if parent is not None else None
        if counted:
            if carrier is None and parent_key is not None:
                carrier = self._counted_spans.get(parent_key)  # a child that ended after its counted parent
            response_key = _response_key(span, event) if carrier is None else None
            if response_key is not None:
                carrier = self._parallel_match(response_key, span.end_time)
            if carrier is None:
                carrier = event.get("event_id")
                self._counted_spans.put((trace_id, context.span_id), carrier)
                if response_key is not None:
                    self._by_response.put(response_key, (carrier, span.end_time))
            else:
                remove_counts(event, carrier, max_tags=self._max_tags)
        if carrier is not None and parent_key is not None:
            self._counted_below.put(parent_key, carrier)

    def _parallel_match(self, key: tuple[Any, Any, str], end_ns: int | None) -> str | None:
        found = self._by_response.get(key)
        if found is None:
            return None
        event_id, kept_end_ns = found
        if end_ns is not None and kept_end_ns is not None and abs(end_ns - kept_end_ns) > self._window_ns:
            return None
        _logger.debug("Counts of response %s are on event %s", key[2], event_id)
        return str(event_id)


def _response_key(span: ReadableSpan, event: Mapping[str, Any]) -> tuple[Any, Any, str] | None:
    tags = event.get("tags")
    # The mapping copies gen_ai.response.id into the tags: a dict lookup, cheaper than the span's attribute mapping.
    rid = tags.get(RESPONSE_ID_KEYS[0]) if isinstance(tags, dict) else None
    if not isinstance(rid, str) or not rid:
        attributes = span.attributes
        rid = response_id(attributes) if attributes is not None else None
    if rid is None:
        return None
    return (event.get("provider"), event.get("model"), rid)

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

import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
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

_SpanKey = tuple[int, int]


def has_counts(event: Mapping[str, Any]) -> bool:
    return any(name in event for name in COUNT_FIELDS)


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


class _Bounded(OrderedDict[Any, Any]):
    """An insertion-ordered map that forgets its oldest entries past ``max_entries``."""

    def __init__(self, max_entries: int) -> None:
        super().__init__()
        self.max_entries = max_entries

    def put(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.max_entries:
            self.popitem(last=False)


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
        self._counted_below: _Bounded = _Bounded(max_entries)
        # (trace id, span id) of a span whose event kept counts -> its event_id (for children arriving late).
        self._counted_spans: _Bounded = _Bounded(max_entries)
        # (provider, model, response id) -> (event_id, span end in ns) of the event that kept the counts.
        self._by_response: _Bounded = _Bounded(max_entries)

    def observe(self, span: ReadableSpan, event: dict[str, Any]) -> dict[str, Any]:
        context = span.context
        if context is None:
            return event
        trace_id = context.trace_id
        parent = span.parent
        parent_key = (trace_id, parent.span_id) if parent is not None else None
        with self._lock:
            carrier = self._counted_below.pop((trace_id, context.span_id), None)
            if has_counts(event):
                if carrier is None and parent_key is not None:
                    carrier = self._counted_spans.get(parent_key)  # a child that ended after its counted parent
                if carrier is None:
                    carrier = self._parallel_match(span, event)
                if carrier is None:
                    carrier = event.get("event_id")
                    self._keep(span, event, (trace_id, context.span_id))
                else:
                    remove_counts(event, carrier, max_tags=self._max_tags)
            if carrier is not None and parent_key is not None:
                self._counted_below.put(parent_key, carrier)
        return event

    def _response_key(self, span: ReadableSpan, event: Mapping[str, Any]) -> tuple[Any, Any, str] | None:
        rid = response_id(span.attributes or {})
        if rid is None:
            return None
        return (event.get("provider"), event.get("model"), rid)

    def _parallel_match(self, span: ReadableSpan, event: Mapping[str, Any]) -> str | None:
        key = self._response_key(span, event)
        if key is None:
            return None
        found = self._by_response.get(key)
        if found is None:
            return None
        event_id, end_ns = found
        if span.end_time is not None and end_ns is not None and abs(span.end_time - end_ns) > self._window_ns:
            return None
        _logger.debug("Counts of %r are on event %s (same response id)", span.name, event_id)
        return str(event_id)

    def _keep(self, span: ReadableSpan, event: Mapping[str, Any], span_key: _SpanKey) -> None:
        event_id = event.get("event_id")
        self._counted_spans.put(span_key, event_id)
        key = self._response_key(span, event)
        if key is not None:
            self._by_response.put(key, (event_id, span.end_time))

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
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from opentelemetry_exporter_lumiqtrace.mapping import DEFAULT_MAX_TAG_VALUE_CHARS, DEFAULT_MAX_TAGS
from opentelemetry_exporter_lumiqtrace.mapping.redaction import REDACTED

_logger = logging.getLogger(__name__)

# The event fields that count a provider call.
COUNT_FIELDS = ("input_tokens", "output_tokens", "cached_tokens", "cost_usd")
# Tags that only describe those fields (``tokens.cache_write``, ``cost.source``…) go with them.
_COUNT_TAG_PREFIXES = ("tokens.", "cost.")
# The tag an event without its counts gets: the event_id of the event that carries them.
COUNTED_IN_TAG = "lumiqtrace.counted_in"

# Response-id attributes, highest first. OpenInference has none: its ``output.value`` holds the provider's answer.
RESPONSE_ID_KEYS = ("gen_ai.response.id", "llm.response.id")
_RESPONSE_ID_TAG = RESPONSE_ID_KEYS[0]
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


# (trace id, event_id, span end in ns) of an event that kept its counts. The ids are the event's own hex strings.
_Record = tuple[str, str, int | None]
# W3C's invalid span id: what the mapping writes for a span without a context; such a span links to nothing.
_INVALID_SPAN_ID = "0" * 16


def _forget_oldest(table: dict[Any, Any], count: int) -> None:
    for key in list(itertools.islice(table, count)):
        del table[key]


class CountOnce:
    """Keeps the counts of each provider call on one event, across export calls, in bounded memory.

    Call :meth:`observe` with every (span, event) pair after the mapping, in the order the spans arrived; it edits
    the event in place. The exporter calls :meth:`observe_mapped`, which trusts the ids of the mapping's events.
    Thread-safe (``SimpleSpanProcessor`` exports from the application's threads).

    The spans that take part pay for it. The links are read from the event the mapping made (its ``trace_id``,
    ``span_id`` and ``parent_span_id``: dict reads, and strings whose hash Python keeps), not from the span's
    properties. A span without counts takes no lock unless a counted span waits for it. Each counted event has one
    record, shared by every table that refers to it, so what outlives the batch is one small tuple per counted event
    (and its response key). Every hit compares the record's trace id, so spans of two traces are never linked,
    whatever their span ids.
    """

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        parallel_window_s: float = DEFAULT_PARALLEL_WINDOW_S,
        max_tags: int = DEFAULT_MAX_TAGS,
        max_tag_value_chars: int = DEFAULT_MAX_TAG_VALUE_CHARS,
    ) -> None:
        self._max_tags = max_tags
        self._max_tag_value_chars = max_tag_value_chars
        self._window_ns = int(parallel_window_s * 1e9)
        self.max_entries = max_entries
        # Tables are trimmed past an eighth of slack: a store costs a dict store, not a reordering.
        self._trim_above = max_entries + max(1, max_entries >> 3)
        self._lock = threading.Lock()
        self._acquire, self._release = self._lock.acquire, self._lock.release
        # Span id of a span not seen yet -> record of a counted event below it.
        self._counted_below: dict[str, _Record] = {}
        # Span id of a span whose event kept its counts -> its record (for children arriving late).
        self._counted_spans: dict[str, _Record] = {}
        # (provider, model, response id) -> record of the event that kept the counts.
        self._by_response: dict[tuple[Any, Any, str], _Record] = {}

    def observe(self, span: ReadableSpan, event: dict[str, Any]) -> dict[str, Any]:
        """Apply the rule to one (span, event) pair (editing the event in place) and return the event.

        Any event: one whose ids are not the strings the mapping writes (``span_id``, ``trace_id``, and ``event_id``
        when it has counts) is returned as it is, since nothing could link to it or name it in a counted_in tag.
        """
        if type(event.get("span_id")) is not str or type(event.get("trace_id")) is not str:
            return event
        if has_counts(event) and type(event.get("event_id")) is not str:
            return event
        return self.observe_mapped(span, event)

    def observe_mapped(self, span: ReadableSpan, event: dict[str, Any]) -> dict[str, Any]:
        """:meth:`observe` for an event of the mapping (the exporter's case): its ids are strings, unchecked.

        The exporter calls it for each event as soon as it is mapped, so the event is encoded while it is still in
        the CPU's caches and freed right after.
        """
        # One function, the rule spelled out (has_counts too): it runs for every span, and a call costs more than
        # the test.
        if "input_tokens" in event or "output_tokens" in event or "cached_tokens" in event or "cost_usd" in event:
            span_id = event["span_id"]
            if span_id == _INVALID_SPAN_ID:
                return event  # a span without a context
            trace_id = event["trace_id"]
            parent_id = event.get("parent_span_id")
            counted_below = self._counted_below
            counted_spans = self._counted_spans
            # acquire/release bound once: a with-statement makes two method objects per span.
            self._acquire()
            try:
                # Membership tests before reads: most counted spans have nothing waiting below and no counted parent.
                record = None
                if span_id in counted_below:
                    record = counted_below.pop(span_id)
                    if record[0] != trace_id:
                        counted_below[span_id] = record  # another trace's span with this id: not ours
                        record = None
                if record is None and parent_id in counted_spans:  # None is never a key
                    record = counted_spans[parent_id]  # a child that ended after its counted parent
                    if record[0] != trace_id:
                        record = None
                if record is None:
                    # The mapping copies gen_ai.response.id into the tags: a dict lookup, cheaper than the span's
                    # attribute mapping.
                    tags = event.get("tags")
                    rid = tags.get(_RESPONSE_ID_TAG) if isinstance(tags, dict) else None
                    # The tag is the span's response id unless redaction replaced it or the tag value cap cut it
                    # (either would make different calls look like one): then the span's attributes say.
                    if not isinstance(rid, str) or not rid or rid == REDACTED or len(rid) >= self._max_tag_value_chars:
                        attributes = span.attributes
                        rid = response_id(attributes) if attributes is not None else None
                    by_response = self._by_response
                    if rid is None:
                        response_key = end_ns = None  # no parallel span can find this record: its end is never read
                    else:
                        response_key = (event.get("provider"), event.get("model"), rid)
                        end_ns = span.end_time
                        record = by_response.get(response_key)
                        if record is not None:  # a parallel span of the same response: within the window?
                            kept_end_ns = record[2]
                            if (
                                end_ns is not None
                                and kept_end_ns is not None
                                and abs(end_ns - kept_end_ns) > self._window_ns
                            ):
                                record = None
                            else:
                                _logger.debug("Counts of response %s are on event %s", rid, record[1])
                    if record is None:
                        record = (trace_id, event["event_id"], end_ns)  # this event keeps its counts
                        counted_spans[span_id] = record
                        if response_key is not None:
                            by_response[response_key] = record
                        if parent_id is not None:
                            counted_below[parent_id] = record
                        trim_above = self._trim_above
                        if len(counted_spans) > trim_above or len(by_response) > trim_above:
                            self._trim()
                        return event
                remove_counts(event, record[1], max_tags=self._max_tags)
                if parent_id is not None:
                    self._pass_up(parent_id, trace_id, record)
            finally:
                self._release()
        elif self._counted_below:  # read without the lock: a concurrent export's child may land just after either way
            span_id = event["span_id"]
            # Most spans have no counted span waiting below them: a membership test, no lock.
            if span_id in self._counted_below:
                self._acquire()
                try:
                    record = self._counted_below.pop(span_id, None)
                    if record is not None:
                        trace_id = event["trace_id"]
                        if record[0] != trace_id:
                            self._counted_below[span_id] = record  # another trace's span with this id: not ours
                        else:
                            parent_id = event.get("parent_span_id")
                            if parent_id is not None:
                                self._pass_up(parent_id, trace_id, record)
                finally:
                    self._release()
        return event

    def _pass_up(self, parent_id: str, trace_id: str, record: _Record) -> None:
        """Tell the parent span which event below it carries the counts; lock held."""
        if record[0] != trace_id:  # a parallel twin's record: the link up this trace needs this trace's id
            record = (trace_id, record[1], record[2])
        self._counted_below[parent_id] = record
        if len(self._counted_below) > self._trim_above:
            self._trim()

    def _trim(self) -> None:
        """Forget the oldest entries of each table past its slack; lock held."""
        limit = self._trim_above
        for table in (self._counted_below, self._counted_spans, self._by_response):
            if len(table) > limit:
                _forget_oldest(table, len(table) - self.max_entries)

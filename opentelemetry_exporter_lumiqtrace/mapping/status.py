# SPDX-License-Identifier: Apache-2.0
"""The status ladder (``spec/genai-conventions.md`` §6), error codes and error messages, and the span events read.

Ladder, first match wins: ``cancelled`` (``CancelledError``-like error identifiers, "abandoned stream", HTTP 499,
gRPC 1), ``timeout`` (identifiers containing "timeout"/"deadline", "Request timed out.", HTTP 408/504, gRPC 4),
``rate_limited`` (``RateLimitError``-like identifiers and any ending in ``ratelimiterror``, "429", "Error code: 429"
or "status_code: 429" in an error text, a ``rate_limit_exceeded``/``rate_limit_error`` code or type in the error body
it quotes, HTTP 429, gRPC 8), ``error`` (span status ERROR, ``error.type``, an escaped exception event, HTTP >= 500,
or >= 400 on non-server spans), else ``success``. An explicit ``lumiqtrace.status`` beats the ladder. Error
identifiers are read from ``error.type``, ``exception.type`` events and the ``"Name: message"`` prefix of the status
description, and only count when the span failed.

The error message is the last exception event's ``exception.message``, else the status description's first line,
else ``error.type``; cut where a traceback starts, whitespace collapsed, secrets scrubbed, at most 500 characters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from opentelemetry_exporter_lumiqtrace.mapping import conventions as c
from opentelemetry_exporter_lumiqtrace.mapping.cache import GenerationalMemo
from opentelemetry_exporter_lumiqtrace.mapping.redaction import scrub_secrets
from opentelemetry_exporter_lumiqtrace.mapping.scan import Scan
from opentelemetry_exporter_lumiqtrace.mapping.values import DEFAULT_MAX_ERROR_MESSAGE_CHARS, as_bool, as_str, cap

F = c.FIELDS
_ERROR_CODE_RE = re.compile(r"""["']code["']\s*:\s*["']([A-Za-z0-9_.\-]{1,100})["']""")
_HTTP_CODE_RE = re.compile(r"Error code: (\d{3})")
# pydantic-ai's model errors: "status_code: 429, model_name: ..."
_RATE_LIMIT_STATUS_RE = re.compile(r"\bstatus_code: 429\b")
# An error body's code or type ('code': 'rate_limit_exceeded', "type": "rate_limit_error").
_BODY_CODE_RE = re.compile(r"""["'](?:code|type)["']\s*:\s*["']([A-Za-z0-9_.\-]{1,100})["']""")
_DESCRIPTION_ID_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*)(?::|$)")
_TIMEOUT = c.TIMEOUT_MESSAGE
_HTTP_STATUS = F["http_status"]
# Fields besides the HTTP status code that can change a span's status.
_NOT_HTTP_BITS = F["error_type"].bit | F["grpc_status"].bit | F["explicit_status"].bit | F["explicit_error_code"].bit
# Error messages are scrubbed on a slice this long (secrets straddling the cut are cut too).
_MESSAGE_SCAN_CHARS = 4 * DEFAULT_MAX_ERROR_MESSAGE_CHARS
# Enum members read once: on Python 3.11 reading one off its class costs ~10x a module global (~65 ns; twice a span).
_UNSET = StatusCode.UNSET
_ERROR = StatusCode.ERROR
_SERVER = SpanKind.SERVER


@dataclass(slots=True)
class SpanEvents:
    """What the mapping reads from span events."""

    first_chunk_ns: int | None = None
    exception_types: list[str] = field(default_factory=list)
    exception_messages: list[str] = field(default_factory=list)
    exception_escaped: bool = False
    prompt: Any = None
    completion: Any = None


NO_EVENTS = SpanEvents()  # shared, read only: most spans carry no events


def read_events(events: Sequence[Any]) -> SpanEvents:
    if not events:
        return NO_EVENTS
    out = SpanEvents()
    for event in events:
        name = getattr(event, "name", None)
        if name == "exception":
            ev_attrs = event.attributes
            if ev_attrs is None:
                continue
            # An SDK event's attributes are a BoundedAttributes, whose every .get runs two Python frames; its copy()
            # is a C dict copy.
            ev_attrs = ev_attrs.copy() if ev_attrs.__class__ is BoundedAttributes else ev_attrs
            etype = as_str(ev_attrs.get("exception.type"))
            if etype is not None:
                out.exception_types.append(etype)
            message = as_str(ev_attrs.get("exception.message"))
            if message is not None:
                out.exception_messages.append(message)
            if as_bool(ev_attrs.get("exception.escaped")):
                out.exception_escaped = True
        elif name in c.FIRST_CHUNK_EVENTS:
            if out.first_chunk_ns is None:
                ts = getattr(event, "timestamp", None)
                if isinstance(ts, int):
                    out.first_chunk_ns = ts
        elif name == c.PROMPT_EVENT:
            if out.prompt is None:
                out.prompt = (event.attributes or {}).get(c.PROMPT_EVENT_ATTR)
        elif name == c.COMPLETION_EVENT and out.completion is None:
            out.completion = (event.attributes or {}).get(c.COMPLETION_EVENT_ATTR)
    return out


@dataclass(slots=True)
class Outcome:
    status: str
    error_code: str | None = None
    error_message: str | None = None
    http_status: int | None = None  # the HTTP status code read (a tag)


SUCCESS = Outcome("success")
# The successes of the usual HTTP status codes, shared (outcomes are never changed after they are made).
_HTTP_SUCCESS = {code: Outcome("success", http_status=code) for code in range(100, 500)}


def new_message_memo(*, max_entries: int, max_bytes: int) -> GenerationalMemo[str, str | None]:
    return GenerationalMemo(
        max_entries=max_entries, max_bytes=max_bytes, weigh=len, max_entry_bytes=_MESSAGE_SCAN_CHARS
    )


def outcome(span: ReadableSpan, scan: Scan, events: SpanEvents, messages: GenerationalMemo[str, str | None]) -> Outcome:
    status_obj = span.status
    status_code = getattr(status_obj, "status_code", _UNSET)
    present = scan.present
    http = None
    if present & _HTTP_STATUS.bit:
        http = scan.attrs.get("http.response.status_code")  # the usual key and type, without the generic read
        if not (http.__class__ is int and 0 <= http < 1000):  # type: ignore[operator]
            http = scan.first(_HTTP_STATUS)
    if status_code is not _ERROR and not events.exception_escaped and not present & _NOT_HTTP_BITS:
        # Not failed and nothing but an HTTP status code to go by (most spans): the HTTP rungs of the ladder.
        if http is None:
            return SUCCESS
        if http < 400 or (http < 500 and http not in (408, 429, 499) and span.kind is _SERVER):
            return _HTTP_SUCCESS.get(http) or Outcome("success", http_status=http)
    description = getattr(status_obj, "description", None)
    if description is not None:
        description = as_str(description)
    error_type = scan.first(F["error_type"])
    grpc = scan.first(F["grpc_status"])
    explicit = scan.first(F["explicit_status"])
    failed = status_code is _ERROR or error_type is not None or events.exception_escaped

    ids: list[str] = []
    texts: list[str] = []
    if failed:
        if error_type is not None:
            ids.append(_short_id(error_type))
        # Retries record one exception type many times: the ladder only asks whether any identifier matches.
        ids.extend(_short_id(t) for t in dict.fromkeys(events.exception_types))
        if description is not None:
            texts.append(description)
            match = _DESCRIPTION_ID_RE.match(description)
            if match:
                ids.append(_short_id(match.group(1)))
        # Retries record one message many times too; order is kept (the first text quoting a code gives the code).
        texts.extend(dict.fromkeys(events.exception_messages))
    # Every text rung needs a literal: one search of all texts at once (the separator is in none of the literals, so
    # a literal found is in one text) decides whether the rung looks at the texts one by one.
    blob = "\n".join(texts) if len(texts) > 1 else texts[0] if texts else ""
    low_blob = blob.lower() if blob else blob
    lowered = [m.strip().lower() for m in texts] if "abandoned stream" in low_blob or _TIMEOUT in low_blob else []

    if explicit is not None and explicit.strip().lower() in c.STATUSES:
        status = explicit.strip().lower()
    elif not c.CANCELLED_IDS.isdisjoint(ids) or "abandoned stream" in lowered or http == 499 or (failed and grpc == 1):
        status = "cancelled"
    elif (
        any(i == "timeout" or "timeout" in i or "deadline" in i for i in ids)
        or (lowered and any(m.endswith(_TIMEOUT) for m in lowered))
        or http in (408, 504)
        or (failed and grpc == 4)
    ):
        status = "timeout"
    elif (
        not c.RATE_LIMIT_IDS.isdisjoint(ids)
        or any(i.endswith(c.RATE_LIMIT_ID_SUFFIXES) for i in ids)
        or (_may_say_rate_limited(blob) and any(_says_rate_limited(m) for m in texts))
        or http == 429
        or (failed and grpc == 8)
    ):
        status = "rate_limited"
    elif failed or (http is not None and (http >= 500 or (http >= 400 and span.kind is not _SERVER))):
        status = "error"
    else:
        status = "success"
    if status == "success":
        return Outcome("success", http_status=http) if http is not None else SUCCESS
    return Outcome(
        status,
        error_code=_error_code(scan, events, error_type, http, grpc, texts, blob),
        error_message=_error_message(description, events, error_type, messages),
        http_status=http,
    )


def _says_rate_limited(text: str) -> bool:
    """An error text that names a rate limit: "Error code: 429" (openai/anthropic SDKs), "status_code: 429"
    (pydantic-ai), or a rate-limit code or type in the error body it quotes."""
    # The literal first: the regex's leading \b makes it try every position of a text that cannot match.
    if "Error code: 429" in text or ("status_code: 429" in text and _RATE_LIMIT_STATUS_RE.search(text)):
        return True
    return "rate_limit" in text and any(m in c.RATE_LIMIT_CODES for m in _BODY_CODE_RE.findall(text))


def _may_say_rate_limited(text: str) -> bool:
    """Whether ``text`` has a literal that every text :func:`_says_rate_limited` accepts has."""
    return "Error code: 429" in text or "status_code: 429" in text or "rate_limit" in text


def _short_id(identifier: str) -> str:
    return identifier.rsplit(".", 1)[-1].strip().lower()


def _class_name(error_type: str) -> str:
    """``error.type`` as the error code: a dotted class path (``openai.RateLimitError``, util-genai's form) becomes
    its class name (``RateLimitError``, OpenLLMetry's and OpenInference's form), so one failure has one code whatever
    the instrumentation; other values (``timeout``, ``500``, ``_OTHER``) stay as they are."""
    head, dot, last = error_type.rpartition(".")
    return last if dot and head and last[:1].isupper() and last.isidentifier() else error_type


def _error_code(
    scan: Scan,
    events: SpanEvents,
    error_type: str | None,
    http: int | None,
    grpc: int | None,
    texts: list[str],
    blob: str,
) -> str | None:
    """``blob`` is the texts joined by a newline (see :func:`outcome`)."""
    code: str | None = scan.first(F["explicit_error_code"])
    if code is None and "code" in blob:
        for text in texts:
            match = _ERROR_CODE_RE.search(text) if "code" in text else None  # the literal every match has
            if match:
                return match.group(1)
    if code is None and error_type is not None:
        code = _class_name(error_type)
    if code is None and events.exception_types:
        code = events.exception_types[-1].rsplit(".", 1)[-1]
    if code is None and http is not None:
        code = str(http)
    if code is None and grpc is not None:
        code = c.GRPC_STATUS_NAMES.get(grpc)
    if code is None and "Error code: " in blob:
        for text in texts:
            match = _HTTP_CODE_RE.search(text)
            if match:
                return match.group(1)
    return code


def _error_message(
    description: str | None, events: SpanEvents, error_type: str | None, memo: GenerationalMemo[str, str | None]
) -> str | None:
    """The exception's own message, else the description's first line, else ``error.type``: a description may hold
    a whole traceback (OpenInference LangChain appends one) with file paths of the user's machine. Any text is cut
    where a traceback starts; the first source left non-empty wins."""
    if events.exception_messages:
        message = _message(events.exception_messages[-1], memo)
        if message is not None:
            return message
    if description is not None:
        message = _message(description.split("\n", 1)[0], memo)
        if message is not None:
            return message
    return _message(error_type, memo) if error_type is not None else None


def _message(source: str, memo: GenerationalMemo[str, str | None]) -> str | None:
    # Failures come in storms of one message, and the secret-scrubbing regexes are the dearest part of a failed span.
    found = memo.young.get(source)
    if found is not None:
        return found
    text = source[:_MESSAGE_SCAN_CHARS]
    for marker in c.TRACEBACK_MARKERS:
        cut = text.find(marker)
        if cut >= 0:
            text = text[:cut]
    text = " ".join(text.split())  # whitespace runs collapsed, ends stripped: what re's \s+ and strip() do, 4x faster
    message = cap(scrub_secrets(text), DEFAULT_MAX_ERROR_MESSAGE_CHARS) if text else None
    if message is not None:
        memo.put(source, message)
    return message

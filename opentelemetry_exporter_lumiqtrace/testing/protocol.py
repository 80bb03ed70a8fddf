# SPDX-License-Identifier: Apache-2.0
"""The local server's protocol: everything it decides, apart from sockets.

:class:`IngestProtocol` implements the documented contract of ``POST /v1/ingest`` (``x-api-key``, NDJSON, gzip, at
most 100 events, dedup on ``event_id``, per-key rate limit with ``Retry-After``, monthly quota, ``cv``),
``GET /v1/sdk/config``, OTLP/HTTP traces on ``POST /v1/otel`` (see :mod:`.otlp`), the read side (``events()``,
``GET /_test/events``) and fault-injection scripting. It takes an :class:`HttpRequest` and returns an
:class:`HttpResponse`, so a test can run the protocol in memory, without a socket::

    protocol = IngestProtocol()
    response = protocol.handle(HttpRequest("POST", "/v1/ingest", {"x-api-key": TEST_API_KEY,
                                           "content-type": "application/x-ndjson"}, body))
    assert response.status == 202 and response.json()["accepted"] == 1

:class:`~opentelemetry_exporter_lumiqtrace.testing.LocalIngestServer` is this protocol served over real HTTP on
loopback. Fault injection (:class:`Reply`: scripted answers, delays, dropped connections, hangs; ``set_outage``) is a
test tool, not part of LumiqTrace's contract: in memory a dropped or hanging reply is ``handle()`` returning ``None``.
Where the LumiqTrace docs are silent the behaviour is the project's choice and is configurable.
"""

from __future__ import annotations

import copy
import gzip
import json
import logging
import math
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from opentelemetry_exporter_lumiqtrace.testing import otlp
from opentelemetry_exporter_lumiqtrace.testing.validation import validate_event

_logger = logging.getLogger(__name__)

# "lqt_" + 64 lowercase hex characters, the documented key format ("7e57" reads "test").
TEST_API_KEY = "lqt_" + "7e57" * 16
DEFAULT_PROJECT = "proj_test"
DEFAULT_SUCCESS_STATUS = 202
DEFAULT_RATE_LIMIT_REQUESTS = 1000
DEFAULT_RATE_LIMIT_WINDOW_S = 60.0
MAX_EVENTS_PER_BATCH = 100

INGEST_PATH = "/v1/ingest"
CONFIG_PATH = "/v1/sdk/config"
OTEL_PATH = "/v1/otel"
TEST_EVENTS_PATH = "/_test/events"
TEST_STATS_PATH = "/_test/stats"
# The OTLP endpoint documents 202 Accepted.
OTEL_SUCCESS_STATUS = 202

InvalidEventMode = Literal["reject_batch", "drop_line"]

_DEFAULT_ERROR_MESSAGES = {
    401: "Invalid API key",
    403: "Not a member of this organization",
    429: "Rate limit exceeded",
    503: "Service unavailable",
}


@dataclass(frozen=True)
class HttpRequest:
    """One HTTP request as the protocol sees it: ``path`` may carry a query; header names in any case."""

    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class HttpResponse:
    """The protocol's answer: status, headers (``Content-Type`` included) and the body bytes."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    """A scripted answer for the next ingest request (see ``LocalIngestServer.script``).

    ``body``: a dict (or any JSON value) is sent as JSON, ``bytes`` raw; ``None`` means normal processing
    with ``status`` when ``status`` is 2xx, else ``{"error": <default message>}``. ``delay_s`` waits before
    answering (cut short when the server stops), ``drop_connection`` closes the socket without any
    response, ``hang`` never answers until the server stops.
    """

    status: int = 200
    body: object = None
    headers: Mapping[str, str] | None = None
    delay_s: float = 0.0
    drop_connection: bool = False
    hang: bool = False

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP status code, got {self.status}")
        if self.delay_s < 0 or not math.isfinite(self.delay_s):
            raise ValueError(f"delay_s must be a non-negative number, got {self.delay_s}")

    @property
    def passes_through(self) -> bool:
        """True when this reply only changes the success status of normal processing."""
        return 200 <= self.status < 300 and self.body is None and not self.drop_connection and not self.hang


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it, and what it answered.

    ``headers`` has lower-cased names; ``raw_body`` is the bytes received, ``body`` the bytes after
    ``Content-Encoding`` (``raw_body`` when it could not be decoded); ``events`` the parsed NDJSON lines,
    ``None`` when the body could not be decoded or a line is not a JSON object; ``status`` and ``response``
    what was answered (``None`` when the connection was dropped or left hanging); ``time`` the server clock
    when the request arrived.
    """

    method: str
    path: str
    headers: dict[str, str]
    raw_body: bytes
    body: bytes
    events: list[dict[str, Any]] | None
    status: int | None
    response: dict[str, Any] | None
    time: float


@dataclass
class _Answer:
    status: int
    payload: dict[str, Any] | None = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def encode(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return json.dumps(self.payload).encode("utf-8")

    def to_response(self) -> HttpResponse:
        body = self.encode()
        headers = {"Content-Type": self.content_type}
        names = {name.lower() for name in self.headers}
        if "content-type" in names:
            headers = {}
        headers.update(self.headers)
        return HttpResponse(self.status, headers, body)


@dataclass
class _Decoded:
    """The request body after Content-Encoding and NDJSON parsing (done outside the state lock)."""

    body: bytes
    error: _Answer | None = None
    # (line number, parsed value or _NOT_JSON) for every non-blank line
    lines: list[tuple[int, object]] = field(default_factory=list)

    @property
    def events(self) -> list[dict[str, Any]] | None:
        if self.error is not None or any(not isinstance(value, dict) for _, value in self.lines):
            return None
        return [cast(dict[str, Any], value) for _, value in self.lines]


_NOT_JSON = object()


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> _Answer:
    return _Answer(status, {"error": message}, headers=headers or {})


def _reject_constant(name: str) -> object:
    # NaN and Infinity are not JSON; Python's json would accept them silently.
    raise ValueError(f"invalid JSON constant {name}")


def _parse_line(line: bytes) -> object:
    try:
        return json.loads(line.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _decode_body(headers: Mapping[str, str], raw: bytes) -> tuple[bytes, _Answer | None]:
    """The body after ``Content-Encoding`` (gzip or identity), or an error answer."""
    encoding = headers.get("content-encoding", "").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        try:
            return gzip.decompress(raw), None
        except (OSError, EOFError, zlib.error):
            return raw, _error(400, "Invalid gzip body")
    if encoding in ("", "identity"):
        return raw, None
    return raw, _error(415, "Content-Encoding must be gzip or identity")


def _decode(headers: Mapping[str, str], raw: bytes, *, strict_content_type: bool) -> _Decoded:
    if strict_content_type:
        media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type != "application/x-ndjson":
            return _Decoded(raw, _error(415, "Content-Type must be application/x-ndjson"))
    body, error = _decode_body(headers, raw)
    if error is not None:
        return _Decoded(raw, error)
    decoded = _Decoded(body)
    for number, line in enumerate(body.split(b"\n"), start=1):
        if line.strip():
            decoded.lines.append((number, _parse_line(line)))
    return decoded


class _RateWindow:
    __slots__ = ("count", "start")

    def __init__(self, start: float) -> None:
        self.start = start
        self.count = 0


class IngestProtocol:
    """LumiqTrace's ingest protocol in memory: state, validation, answers, limits, config, OTLP, fault scripting.

    :meth:`handle` answers one :class:`HttpRequest`; everything else reads or changes the state. All methods are
    thread-safe. ``clock`` (seconds, monotonic) drives the rate-limit windows and ``RecordedRequest.time``.
    """

    def __init__(
        self,
        *,
        api_keys: Mapping[str, str] | Iterable[str] | None = None,
        success_status: int = DEFAULT_SUCCESS_STATUS,
        strict_content_type: bool = True,
        invalid_event_mode: InvalidEventMode = "reject_batch",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if invalid_event_mode not in ("reject_batch", "drop_line"):
            raise ValueError(f"invalid_event_mode must be 'reject_batch' or 'drop_line', got {invalid_event_mode!r}")
        if not 200 <= success_status < 300:
            raise ValueError(f"success_status must be 2xx, got {success_status}")
        self._success_status = success_status
        self._strict_content_type = strict_content_type
        self._invalid_event_mode: InvalidEventMode = invalid_event_mode
        self._clock = clock

        # One condition guards all mutable state below; wait_for_events() waits on it.
        self._lock = threading.Condition()
        self._keys: dict[str, str] = {}
        if api_keys is None:
            self._keys[TEST_API_KEY] = DEFAULT_PROJECT
        elif isinstance(api_keys, Mapping):
            self._keys.update(api_keys)
        else:
            self._keys.update(dict.fromkeys(api_keys, DEFAULT_PROJECT))
        self._first_key = next(iter(self._keys), TEST_API_KEY)
        self._revoked: set[str] = set()
        self._forbidden: set[str] = set()
        self._cv = 0
        self._rules: list[Any] = []
        self._config_raw: bytes | None = None
        self._config_status = 200
        self._init_state()

    def _init_state(self) -> None:
        self._events: list[dict[str, Any]] = []
        self._event_projects: list[str] = []
        self._seen: dict[str, set[str]] = {}
        self._stored: dict[str, int] = {}
        self._duplicates = 0
        self._dropped_invalid = 0
        self._requests: list[RecordedRequest] = []
        self._config_requests: list[RecordedRequest] = []
        self._otel_requests: list[RecordedRequest] = []
        self._script: deque[Reply] = deque()
        self._outage = False
        self._quota: int | None = None
        self._rate_limit = DEFAULT_RATE_LIMIT_REQUESTS
        self._rate_window_s = DEFAULT_RATE_LIMIT_WINDOW_S
        self._windows: dict[str, _RateWindow] = {}

    @property
    def api_key(self) -> str:
        """The default key: ``TEST_API_KEY`` unless other keys were given to the constructor."""
        return self._first_key

    # -- read side ---------------------------------------------------------------------------------

    def events(self, *, project: str | None = None) -> list[dict[str, Any]]:
        """Accepted events (after dedup) in arrival order; a deep copy."""
        with self._lock:
            if project is None:
                return copy.deepcopy(self._events)
            return copy.deepcopy([e for e, p in zip(self._events, self._event_projects, strict=True) if p == project])

    def events_by_trace(self) -> dict[str, list[dict[str, Any]]]:
        grouped: dict[str, list[dict[str, Any]]] = {}
        for event in self.events():
            grouped.setdefault(event["trace_id"], []).append(event)
        return grouped

    def ingest_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def config_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._config_requests)

    def otel_requests(self) -> list[RecordedRequest]:
        """``POST /v1/otel`` requests; ``events`` holds the events the OTLP mapping made of each."""
        with self._lock:
            return list(self._otel_requests)

    def wait_for_events(self, n: int, timeout: float = 5.0) -> bool:
        """Block until at least ``n`` events were accepted or ``timeout`` seconds passed."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self._events) >= n, timeout)

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> bool:
        """Block until at least ``n`` ingest requests were answered (or dropped) or ``timeout`` passed."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self._requests) >= n, timeout)

    @property
    def duplicates(self) -> int:
        """Events not stored because their ``event_id`` was already stored in the project."""
        with self._lock:
            return self._duplicates

    @property
    def dropped_invalid(self) -> int:
        """Lines skipped in ``drop_line`` mode."""
        with self._lock:
            return self._dropped_invalid

    def stats(self) -> dict[str, Any]:
        """Counters, as served by ``GET /_test/stats``."""
        with self._lock:
            by_status: dict[str, int] = {}
            for request in self._requests:
                key = "dropped" if request.status is None else str(request.status)
                by_status[key] = by_status.get(key, 0) + 1
            return {
                "requests": len(self._requests),
                "accepted": len(self._events),
                "duplicates": self._duplicates,
                "dropped_invalid": self._dropped_invalid,
                "by_status": by_status,
                "config_requests": len(self._config_requests),
                "otel_requests": len(self._otel_requests),
                "cv": self._cv,
            }

    # -- keys --------------------------------------------------------------------------------------

    def add_key(self, key: str, project: str = DEFAULT_PROJECT) -> None:
        """Register (or re-enable) a key for ``project``."""
        with self._lock:
            self._keys[key] = project
            self._revoked.discard(key)
            self._forbidden.discard(key)

    def revoke_key(self, key: str) -> None:
        """Revoked keys get 401 ``Invalid API key`` at once, like unknown ones."""
        with self._lock:
            self._revoked.add(key)

    def forbid_key(self, key: str) -> None:
        """The key stays valid but gets 403 ``Not a member of this organization``."""
        with self._lock:
            self._keys.setdefault(key, DEFAULT_PROJECT)
            self._forbidden.add(key)

    # -- fault injection and limits ----------------------------------------------------------------

    def script(self, *replies: Reply) -> None:
        """Queue answers for the next ingest requests, one each, in order; then normal processing.

        Fault injection for tests (``POST /v1/ingest`` only), not LumiqTrace behaviour."""
        with self._lock:
            self._script.extend(replies)

    def set_outage(self, outage: bool) -> None:
        """While on, every ingest request gets 503 ``Service unavailable`` and nothing is stored (fault injection)."""
        with self._lock:
            self._outage = outage

    def set_rate_limit(
        self, requests: int = DEFAULT_RATE_LIMIT_REQUESTS, window_s: float = DEFAULT_RATE_LIMIT_WINDOW_S
    ) -> None:
        """Per-key fixed window: at most ``requests`` ingest requests per ``window_s`` seconds of the clock."""
        if requests < 0 or window_s <= 0:
            raise ValueError("requests must be >= 0 and window_s > 0")
        with self._lock:
            self._rate_limit = requests
            self._rate_window_s = window_s
            self._windows.clear()

    def set_quota(self, events: int | None) -> None:
        """Per-project cap on stored events; ``None`` removes it."""
        with self._lock:
            self._quota = events

    def reset(self) -> None:
        """Forget events, requests, script, outage, quota and rate-limit state; keys and config are kept."""
        with self._lock:
            self._init_state()

    # -- remote config -----------------------------------------------------------------------------

    @property
    def cv(self) -> int:
        """The config version sent as ``cv`` in every successful ingest answer."""
        with self._lock:
            return self._cv

    def bump_cv(self) -> int:
        with self._lock:
            self._cv += 1
            return self._cv

    def set_config(self, *, rules: Sequence[Any] = ()) -> int:
        """Serve ``{"cv": <cv>, "rules": rules}`` on ``GET /v1/sdk/config``; bumps and returns ``cv``."""
        with self._lock:
            self._rules = copy.deepcopy(list(rules))
            self._config_raw = None
            self._config_status = 200
            self._cv += 1
            return self._cv

    def set_config_body(self, body: bytes, *, status: int = 200) -> int:
        """Serve ``body`` verbatim (with ``status``) on ``GET /v1/sdk/config``; bumps and returns ``cv``."""
        with self._lock:
            self._config_raw = bytes(body)
            self._config_status = status
            self._cv += 1
            return self._cv

    # -- request handling (thread-safe; the HTTP server calls it from its connection threads) ----------

    def handle(self, request: HttpRequest, *, cancel: threading.Event | None = None) -> HttpResponse | None:
        """Answer one request. ``None`` means: no response at all (a scripted dropped connection or hang).

        ``cancel`` cuts scripted delays short and ends a scripted hang (the HTTP server passes its stop event); in
        memory, without it, a delay really waits and a hang returns ``None`` at once.
        """
        headers = {name.lower(): value for name, value in request.headers.items()}
        path = urlsplit(request.path).path
        method = request.method.upper()
        answer: _Answer | None
        if method == "POST" and path == INGEST_PATH:
            answer = self._handle_ingest(request, headers, cancel)
        elif method == "POST" and path == OTEL_PATH:
            answer = self._handle_otel(request, headers)
        elif method == "GET" and path == CONFIG_PATH:
            answer = self._handle_config(request, headers)
        elif method == "GET" and path == TEST_EVENTS_PATH:
            answer = _Answer(200, {"events": self.events()})
        elif method == "GET" and path == TEST_STATS_PATH:
            answer = _Answer(200, self.stats())
        else:
            answer = _error(404, "Not found")
        return None if answer is None else answer.to_response()

    def _auth(self, key: str | None) -> tuple[str | None, _Answer | None]:
        """Return (project, None) for a usable key, else (None, error answer). Call with the lock held."""
        if key is None or key not in self._keys or key in self._revoked:
            return None, _error(401, "Invalid API key")
        if key in self._forbidden:
            return None, _error(403, "Not a member of this organization")
        return self._keys[key], None

    def _rate_limited(self, key: str, now: float) -> _Answer | None:
        window = self._windows.get(key)
        if window is None or now >= window.start + self._rate_window_s:
            window = self._windows[key] = _RateWindow(now)
        if window.count >= self._rate_limit:
            retry_after = max(1, math.ceil(window.start + self._rate_window_s - now))
            return _error(429, "Rate limit exceeded", {"Retry-After": str(retry_after)})
        window.count += 1
        return None

    def _process_ingest(self, headers: Mapping[str, str], decoded: _Decoded, now: float, status: int) -> _Answer:
        with self._lock:
            project, auth_error = self._auth(headers.get("x-api-key"))
            if auth_error is not None or project is None:
                return auth_error or _error(401, "Invalid API key")
            limited = self._rate_limited(headers["x-api-key"], now)
            if limited is not None:
                return limited
        if decoded.error is not None:
            return decoded.error
        objects: list[tuple[int, dict[str, Any]]] = []
        dropped = 0
        for number, value in decoded.lines:
            if isinstance(value, dict):
                objects.append((number, value))
            elif self._invalid_event_mode == "reject_batch":
                return _error(400, f"Invalid JSON at line {number}")
            else:
                dropped += 1
        if len(decoded.lines) > MAX_EVENTS_PER_BATCH:
            return _error(400, f"Max {MAX_EVENTS_PER_BATCH} events per batch")
        if not decoded.lines:
            return _error(400, "Empty batch")
        valid: list[dict[str, Any]] = []
        for number, event in objects:
            message = validate_event(event)
            if message is None:
                valid.append(event)
            elif self._invalid_event_mode == "reject_batch":
                return _error(400, f"Invalid event at line {number}: {message}")
            else:
                dropped += 1
        return self._store(project, valid, dropped, status)

    def _store(self, project: str, events: list[dict[str, Any]], dropped: int, status: int) -> _Answer:
        with self._lock:
            seen = self._seen.setdefault(project, set())
            new: list[dict[str, Any]] = []
            new_ids: set[str] = set()
            for event in events:
                # UUIDs compare case-insensitively.
                event_id = event["event_id"].lower()
                if event_id not in seen and event_id not in new_ids:
                    new_ids.add(event_id)
                    new.append(event)
            stored = self._stored.get(project, 0)
            if self._quota is not None and stored + len(new) > self._quota:
                return _error(429, "Monthly quota exceeded")
            seen.update(new_ids)
            self._events.extend(new)
            self._event_projects.extend([project] * len(new))
            self._stored[project] = stored + len(new)
            self._duplicates += len(events) - len(new)
            self._dropped_invalid += dropped
            self._lock.notify_all()
            return _Answer(status, {"accepted": len(new), "cv": self._cv})

    def _handle_ingest(
        self, request: HttpRequest, headers: dict[str, str], cancel: threading.Event | None
    ) -> _Answer | None:
        """Answer one ingest request; ``None`` means: close the connection without a response."""
        now = self._clock()
        raw = request.body
        decoded = _decode(headers, raw, strict_content_type=self._strict_content_type)

        def record(answer: _Answer | None) -> None:
            with self._lock:
                self._requests.append(
                    RecordedRequest(
                        method=request.method,
                        path=request.path,
                        headers=headers,
                        raw_body=raw,
                        body=decoded.body,
                        events=decoded.events,
                        status=None if answer is None else answer.status,
                        response=None if answer is None else answer.payload,
                        time=now,
                    )
                )
                self._lock.notify_all()
            if answer is None:
                _logger.debug("POST %s dropped (events=%s)", INGEST_PATH, len(decoded.lines))
            else:
                _logger.debug(
                    "POST %s -> %s events=%s accepted=%s",
                    INGEST_PATH,
                    answer.status,
                    len(decoded.lines),
                    (answer.payload or {}).get("accepted", 0),
                )

        with self._lock:
            reply = self._script.popleft() if self._script else None
            outage = self._outage
        status = self._success_status
        extra_headers: dict[str, str] = {}
        if reply is not None:
            if reply.delay_s > 0 and _wait(cancel, reply.delay_s):
                record(None)
                return None
            if reply.hang or reply.drop_connection:
                record(None)
                if reply.hang and cancel is not None:
                    cancel.wait()
                return None
            if not reply.passes_through:
                answer = _scripted_answer(reply)
                record(answer)
                return answer
            status = reply.status
            extra_headers = dict(reply.headers or {})
        elif outage:
            answer = _error(503, "Service unavailable")
            record(answer)
            return answer
        answer = self._process_ingest(headers, decoded, now, status)
        if 200 <= answer.status < 300:
            answer.headers.update(extra_headers)
        record(answer)
        return answer

    def _handle_otel(self, request: HttpRequest, headers: dict[str, str]) -> _Answer:
        """``POST /v1/otel``: OTLP/HTTP traces (protobuf or JSON, gzip or not), mapped as LumiqTrace documents."""
        now = self._clock()
        body, decode_error = _decode_body(headers, request.body)
        answer, events = self._process_otel(headers, body, decode_error, now)
        with self._lock:
            self._otel_requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.path,
                    headers=headers,
                    raw_body=request.body,
                    body=body,
                    events=events,
                    status=answer.status,
                    response=answer.payload,
                    time=now,
                )
            )
            self._lock.notify_all()
        _logger.debug("POST %s -> %s spans=%s", OTEL_PATH, answer.status, len(events or ()))
        return answer

    def _process_otel(
        self, headers: Mapping[str, str], body: bytes, decode_error: _Answer | None, now: float
    ) -> tuple[_Answer, list[dict[str, Any]] | None]:
        with self._lock:
            project, auth_error = self._auth(headers.get("x-api-key"))
            if auth_error is not None or project is None:
                return auth_error or _error(401, "Invalid API key"), None
            limited = self._rate_limited(headers["x-api-key"], now)
            if limited is not None:
                return limited, None
        if decode_error is not None:
            return decode_error, None
        media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        try:
            events = otlp.events_from_request(body, media_type)
        except otlp.OtlpUnavailable as exc:
            return _error(501, str(exc)), None
        except otlp.OtlpUnsupportedMediaType as exc:
            return _error(415, str(exc)), None
        except ValueError as exc:
            return _error(400, str(exc)), None
        stored = self._store(project, events, 0, OTEL_SUCCESS_STATUS)
        if stored.status != OTEL_SUCCESS_STATUS:
            return stored, events
        # OTLP/HTTP answers an ExportTraceServiceResponse in the request's encoding.
        return _Answer(OTEL_SUCCESS_STATUS, raw=otlp.success_body(media_type), content_type=media_type), events

    def _handle_config(self, request: HttpRequest, headers: dict[str, str]) -> _Answer:
        now = self._clock()
        with self._lock:
            _, answer = self._auth(headers.get("x-api-key"))
            if answer is None:
                if self._config_raw is not None:
                    answer = _Answer(self._config_status, raw=self._config_raw)
                else:
                    answer = _Answer(200, {"cv": self._cv, "rules": copy.deepcopy(self._rules)})
            self._config_requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.path,
                    headers=headers,
                    raw_body=request.body,
                    body=request.body,
                    events=None,
                    status=answer.status,
                    response=answer.payload,
                    time=now,
                )
            )
        _logger.debug("GET %s -> %s", CONFIG_PATH, answer.status)
        return answer


def _wait(cancel: threading.Event | None, seconds: float) -> bool:
    """Wait ``seconds``; True when ``cancel`` was set meanwhile."""
    if cancel is None:
        time.sleep(seconds)
        return False
    return cancel.wait(seconds)


def _scripted_answer(reply: Reply) -> _Answer:
    headers = dict(reply.headers or {})
    if isinstance(reply.body, (bytes, bytearray)):
        return _Answer(reply.status, raw=bytes(reply.body), headers=headers)
    if reply.body is None:
        try:
            default = _DEFAULT_ERROR_MESSAGES.get(reply.status) or HTTPStatus(reply.status).phrase
        except ValueError:
            default = "Error"
        return _Answer(reply.status, {"error": default}, headers=headers)
    payload = reply.body if isinstance(reply.body, dict) else None
    return _Answer(reply.status, payload, raw=json.dumps(reply.body).encode("utf-8"), headers=headers)

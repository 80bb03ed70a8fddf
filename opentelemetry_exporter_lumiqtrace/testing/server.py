# SPDX-License-Identifier: Apache-2.0
"""A local, LumiqTrace-compatible ingest server (stdlib only) for tests and the quick start.

It speaks real HTTP on loopback and implements the documented contract of ``POST /v1/ingest``
(``x-api-key``, NDJSON, gzip, at most 100 events, dedup on ``event_id``, per-key rate limit with
``Retry-After``, monthly quota, ``cv``) and ``GET /v1/sdk/config``, plus fault injection (scripted
replies, delays, dropped connections, outages) and a read side (``server.events()``, ``GET /_test/events``).
It serves plain HTTP, or HTTPS when given a server-side ``ssl.SSLContext``.
Where the LumiqTrace docs are silent the behaviour is the project's choice and is configurable.
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import json
import logging
import math
import socket
import socketserver
import ssl
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from opentelemetry_exporter_lumiqtrace.testing.validation import validate_event

_logger = logging.getLogger(__name__)

# "lqt_" + 64 lowercase hex characters, the documented key format ("7e57" reads "test").
TEST_API_KEY = "lqt_" + "7e57" * 16
DEFAULT_PROJECT = "proj_test"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_SUCCESS_STATUS = 202
DEFAULT_RATE_LIMIT_REQUESTS = 1000
DEFAULT_RATE_LIMIT_WINDOW_S = 60.0
MAX_EVENTS_PER_BATCH = 100

INGEST_PATH = "/v1/ingest"
CONFIG_PATH = "/v1/sdk/config"
TEST_EVENTS_PATH = "/_test/events"
TEST_STATS_PATH = "/_test/stats"

InvalidEventMode = Literal["reject_batch", "drop_line"]

# Bounds every wait in stop(): a stuck client must not make a test hang.
_STOP_JOIN_TIMEOUT_S = 2.0
_SERVE_POLL_INTERVAL_S = 0.05
_MAX_CHUNK_LINE = 65537

_DEFAULT_ERROR_MESSAGES = {
    401: "Invalid API key",
    403: "Not a member of this organization",
    429: "Rate limit exceeded",
    503: "Service unavailable",
}


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

    def encode(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return json.dumps(self.payload).encode("utf-8")


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


def _decode(headers: Mapping[str, str], raw: bytes, *, strict_content_type: bool) -> _Decoded:
    if strict_content_type:
        media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type != "application/x-ndjson":
            return _Decoded(raw, _error(415, "Content-Type must be application/x-ndjson"))
    encoding = headers.get("content-encoding", "").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        try:
            body = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error):
            return _Decoded(raw, _error(400, "Invalid gzip body"))
    elif encoding in ("", "identity"):
        body = raw
    else:
        return _Decoded(raw, _error(415, "Content-Encoding must be gzip or identity"))
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


class LocalIngestServer:
    """A LumiqTrace-compatible ingest server on loopback, run in daemon threads.

    Use as a context manager or with ``start()`` / ``stop()``; ``stop()`` then ``start()`` reuses the
    same port and keeps what was stored. All methods are thread-safe.

    ``ssl_context``: a server-side :class:`ssl.SSLContext` with a certificate chain loaded (for example
    ``ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)`` then ``load_cert_chain(...)``). When given, the
    server speaks HTTPS only and ``base_url`` starts with ``https://``; clients must trust the certificate
    (with ``requests``: ``REQUESTS_CA_BUNDLE`` or ``verify=``). Each TLS handshake runs in the connection's
    own thread, so a client that never completes one holds up nobody else.
    """

    def __init__(
        self,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        api_keys: Mapping[str, str] | Iterable[str] | None = None,
        success_status: int = DEFAULT_SUCCESS_STATUS,
        strict_content_type: bool = True,
        invalid_event_mode: InvalidEventMode = "reject_batch",
        clock: Callable[[], float] = time.monotonic,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
            raise TypeError(f"ssl_context must be an ssl.SSLContext or None, got {type(ssl_context).__name__}")
        if invalid_event_mode not in ("reject_batch", "drop_line"):
            raise ValueError(f"invalid_event_mode must be 'reject_batch' or 'drop_line', got {invalid_event_mode!r}")
        if not 200 <= success_status < 300:
            raise ValueError(f"success_status must be 2xx, got {success_status}")
        self._host = host
        self._port = port
        self._success_status = success_status
        self._strict_content_type = strict_content_type
        self._invalid_event_mode: InvalidEventMode = invalid_event_mode
        self._clock = clock
        self._ssl_context = ssl_context

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

        self._lifecycle_lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._stop_event = threading.Event()
        self._connections: dict[socket.socket, threading.Thread] = {}

    def _init_state(self) -> None:
        self._events: list[dict[str, Any]] = []
        self._event_projects: list[str] = []
        self._seen: dict[str, set[str]] = {}
        self._stored: dict[str, int] = {}
        self._duplicates = 0
        self._dropped_invalid = 0
        self._requests: list[RecordedRequest] = []
        self._config_requests: list[RecordedRequest] = []
        self._script: deque[Reply] = deque()
        self._outage = False
        self._quota: int | None = None
        self._rate_limit = DEFAULT_RATE_LIMIT_REQUESTS
        self._rate_window_s = DEFAULT_RATE_LIMIT_WINDOW_S
        self._windows: dict[str, _RateWindow] = {}

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> LocalIngestServer:
        """Bind and serve in a daemon thread; a restarted server binds the port it had before."""
        with self._lifecycle_lock:
            if self._httpd is not None:
                return self
            server_class = _HTTPServer6 if ":" in self._host else _HTTPServer
            httpd = server_class((self._host, self._port), _Handler)
            if self._ssl_context is not None:
                # No handshake in accept(): it would run in the serving thread, where one silent client stalls
                # every other connection. _Handler.handle() does it in the connection's thread instead.
                httpd.socket = self._ssl_context.wrap_socket(
                    httpd.socket, server_side=True, do_handshake_on_connect=False
                )
            httpd.owner = self
            self._port = httpd.server_address[1]
            self._stop_event = threading.Event()
            httpd.stop_event = self._stop_event
            self._httpd = httpd
            self._serve_thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": _SERVE_POLL_INTERVAL_S},
                name=f"lumiqtrace-local-server-{self._port}",
                daemon=True,
            )
            self._serve_thread.start()
            _logger.debug("Local LumiqTrace ingest server listening on %s", self.base_url)
            return self

    def stop(self) -> None:
        """Stop serving, close every connection (also keep-alive and hanging ones), join threads (bounded)."""
        with self._lifecycle_lock:
            httpd, serve_thread = self._httpd, self._serve_thread
            if httpd is None:
                return
            self._httpd = self._serve_thread = None
            with self._lock:
                self._stop_event.set()
                connections = dict(self._connections)
            httpd.shutdown()
            httpd.server_close()
            for sock in connections:
                _shutdown_socket(sock)
            deadline = time.monotonic() + _STOP_JOIN_TIMEOUT_S
            for thread in [*connections.values(), serve_thread]:
                if thread is not None and thread is not threading.current_thread():
                    thread.join(max(0.0, deadline - time.monotonic()))
            _logger.debug("Local LumiqTrace ingest server on port %s stopped", self._port)

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def __enter__(self) -> LocalIngestServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _register_connection(self, sock: socket.socket, stop_event: threading.Event) -> bool:
        with self._lock:
            if stop_event.is_set():
                return False
            self._connections[sock] = threading.current_thread()
            return True

    def _unregister_connection(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.pop(sock, None)

    # -- addresses ---------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        if self._port == 0:
            raise RuntimeError("the server has no port until it is started")
        return self._port

    @property
    def scheme(self) -> str:
        """``https`` when the server was given an ``ssl_context``, else ``http``."""
        return "http" if self._ssl_context is None else "https"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` (``https://`` with an ``ssl_context``); the exporter posts to
        ``base_url + "/v1/ingest"``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def ingest_url(self) -> str:
        return self.base_url + INGEST_PATH

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
        """Queue answers for the next ingest requests, one each, in order; then normal processing."""
        with self._lock:
            self._script.extend(replies)

    def set_outage(self, outage: bool) -> None:
        """While on, every ingest request gets 503 ``Service unavailable`` and nothing is stored."""
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

    # -- request handling (called from handler threads) --------------------------------------------

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

    def _handle_ingest(self, handler: _Handler, raw: bytes) -> _Answer | None:
        """Answer one ingest request; ``None`` means: close the connection without a response."""
        now = self._clock()
        headers = _lower_headers(handler)
        decoded = _decode(headers, raw, strict_content_type=self._strict_content_type)
        stop_event = handler.stop_event

        def record(answer: _Answer | None) -> None:
            with self._lock:
                self._requests.append(
                    RecordedRequest(
                        method=handler.command,
                        path=handler.path,
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
            if reply.delay_s > 0 and stop_event.wait(reply.delay_s):
                record(None)
                return None
            if reply.hang or reply.drop_connection:
                record(None)
                if reply.hang:
                    stop_event.wait()
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

    def _handle_config(self, handler: _Handler, raw: bytes) -> _Answer:
        now = self._clock()
        headers = _lower_headers(handler)
        with self._lock:
            _, answer = self._auth(headers.get("x-api-key"))
            if answer is None:
                if self._config_raw is not None:
                    answer = _Answer(self._config_status, raw=self._config_raw)
                else:
                    answer = _Answer(200, {"cv": self._cv, "rules": copy.deepcopy(self._rules)})
            self._config_requests.append(
                RecordedRequest(
                    method=handler.command,
                    path=handler.path,
                    headers=headers,
                    raw_body=raw,
                    body=raw,
                    events=None,
                    status=answer.status,
                    response=answer.payload,
                    time=now,
                )
            )
        _logger.debug("GET %s -> %s", CONFIG_PATH, answer.status)
        return answer

    def _route(self, handler: _Handler, raw: bytes) -> _Answer | None:
        path = urlsplit(handler.path).path
        method = handler.command
        if method == "POST" and path == INGEST_PATH:
            return self._handle_ingest(handler, raw)
        if method == "GET" and path == CONFIG_PATH:
            return self._handle_config(handler, raw)
        if method == "GET" and path == TEST_EVENTS_PATH:
            return _Answer(200, {"events": self.events()})
        if method == "GET" and path == TEST_STATS_PATH:
            return _Answer(200, self.stats())
        return _error(404, "Not found")


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


def _lower_headers(handler: BaseHTTPRequestHandler) -> dict[str, str]:
    # Repeated headers: the last one wins, like most frameworks' dict views.
    return {name.lower(): value for name, value in handler.headers.items()}


def _shutdown_socket(sock: socket.socket) -> None:
    # The plain socket's shutdown also for TLS sockets: SSLSocket.shutdown() would drop the TLS state under the
    # feet of the thread still reading from it; this only wakes that thread with EOF.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128
    owner: LocalIngestServer
    stop_event: threading.Event

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (getfqdn), which can stall without DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: object, client_address: object) -> None:
        _logger.debug("Error while serving %s", client_address, exc_info=True)


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "lumiqtrace-local-ingest"
    # Headers and body go out in two writes; with Nagle on, delayed ACKs would add ~40 ms to each answer.
    disable_nagle_algorithm = True
    server: _HTTPServer

    @property
    def stop_event(self) -> threading.Event:
        return self.server.stop_event

    def setup(self) -> None:
        super().setup()
        if not self.server.owner._register_connection(self.connection, self.stop_event):
            # Accepted while stopping: answer nothing.
            _shutdown_socket(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._unregister_connection(self.connection)

    def handle(self) -> None:
        try:
            if isinstance(self.connection, ssl.SSLSocket):
                # A failed handshake (an untrusting client, plain HTTP on the TLS port) raises SSLError, an OSError.
                self.connection.do_handshake()
            super().handle()
        except OSError:
            # Client went away or the server is stopping: nothing to answer.
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        # The server logs one line per ingest request itself; the access log would duplicate it.
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        raw = self._read_body()
        if raw is None:
            self.close_connection = True
            return
        answer = self.server.owner._route(self, raw)
        if answer is None or self.stop_event.is_set():
            self.close_connection = True
            _shutdown_socket(self.connection)
            return
        self._send(answer)

    def _read_body(self) -> bytes | None:
        """Read exactly the request body (Content-Length or chunked); ``None`` if it is malformed or cut."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            return b""
        try:
            length = int(length_header)
        except ValueError:
            length = -1
        if length < 0:
            self._send(_error(400, "Invalid Content-Length"))
            return None
        raw = self.rfile.read(length)
        return raw if len(raw) == length else None

    def _read_chunked(self) -> bytes | None:
        chunks: list[bytes] = []
        while True:
            line = self.rfile.readline(_MAX_CHUNK_LINE)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                return None
            if size == 0:
                # Skip trailers up to the blank line that ends the message.
                while self.rfile.readline(_MAX_CHUNK_LINE) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunk = self.rfile.read(size)
            if len(chunk) != size:
                return None
            chunks.append(chunk)
            self.rfile.readline(_MAX_CHUNK_LINE)

    def _send(self, answer: _Answer) -> None:
        body = answer.encode()
        self.send_response(answer.status)
        names = {name.lower() for name in answer.headers}
        if "content-type" not in names:
            self.send_header("Content-Type", "application/json")
        if "content-length" not in names:
            self.send_header("Content-Length", str(len(body)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

# SPDX-License-Identifier: Apache-2.0
"""HTTP to LumiqTrace: the one client for everything the exporter sends, answers turned into plain values.

The transport knows nothing about spans or retry policy. It posts a body to ``/v1/ingest`` (or gets a path such as
``/v1/sdk/config``) and reports what came back, never raising. Every request, whatever it is, follows the same rules:

- requests' TLS and proxy resolution (``REQUESTS_CA_BUNDLE``, ``HTTPS_PROXY``, ``NO_PROXY``, CONNECT tunnels);
- redirects are never followed: a 3xx is an answer like any other, so the key never travels to a second host;
- no compressed answers: ``Accept-Encoding: identity`` is sent and a ``Content-Encoding`` is never decoded, so a
  "gzip bomb" costs what its bytes cost;
- answer bodies are capped (``max_answer_bytes``, 64 KiB): the rest is not read and the connection is closed;
- one wall-clock deadline per request covers DNS, connect, TLS, sending and every byte of the answer. A new
  connection is made in a worker thread: the caller waits for it until the deadline and then shuts its socket down
  (which ends a blocked handshake or tunnel read), and a worker stuck where no socket exists yet (a DNS lookup) is
  abandoned, never waited for. The exchange itself runs in the caller's thread (:mod:`._http1`): every socket
  operation waits at most for the time left, so a server that drips its headers or body, or floods
  ``100 Continue``, cannot hold it either.
- kept-alive connections are reused (at most ``max_connections`` idle) and closed on any doubt; one the server
  closed while it was idle is noticed before it is used, and a request it reset at once goes again on a new one.
- server text (``{"error": ...}`` and every other string of an answer, and exception messages) is scrubbed of
  secrets and capped before anyone can log it or keep it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.utils
import json
import logging
import math
import os
import re
import select
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
import requests.adapters
import urllib3
from opentelemetry import context as otel_context
from urllib3.util import wait_for_read as _urllib3_wait_for_read
from urllib3.util.proxy import connection_requires_http_tunnel

from opentelemetry_exporter_lumiqtrace import _http1
from opentelemetry_exporter_lumiqtrace._config import INGEST_PATH
from opentelemetry_exporter_lumiqtrace._workers import WorkerThreads
from opentelemetry_exporter_lumiqtrace.mapping.redaction import REDACTED, scrub_secrets
from opentelemetry_exporter_lumiqtrace.version import __version__

_logger = logging.getLogger(__name__)

_json_loads: Callable[[bytes], Any]
try:  # the optional `speedups` extra
    from orjson import loads as _json_loads
except ImportError:  # pragma: no cover - exercised by the tox env without speedups
    _json_loads = json.loads

USER_AGENT = f"opentelemetry-exporter-lumiqtrace/{__version__} (Python; requests/{requests.__version__})"

# Connections kept alive per transport: the slices of one export may travel over a few at once.
DEFAULT_MAX_CONNECTIONS = 4
# LumiqTrace answers are small JSON documents; nothing legitimate comes near this.
DEFAULT_MAX_ANSWER_BYTES = 64 * 1024
# Server text kept in answers (and so in logs and ``last_error``) at most.
MAX_MESSAGE_CHARS = 500
# A request never outlives this, whatever timeout a caller passes (an infinite wait cannot be armed).
_MAX_REQUEST_S = 3600.0

_SUPPRESS_KEYS: tuple[str, ...] = tuple(
    key
    for key in (
        getattr(otel_context, "_SUPPRESS_INSTRUMENTATION_KEY", None),
        getattr(otel_context, "_SUPPRESS_HTTP_INSTRUMENTATION_KEY", None),
    )
    if key is not None
)

# The JSON values that carry no text to scrub, as orjson and json return them.
_JSON_SCALARS = frozenset({int, float, bool, type(None)})


def _working_poll() -> Callable[[], Any] | None:
    """``select.poll`` where it exists and works (urllib3 makes the same test), else None."""
    try:
        select.poll().poll(0)
    except (AttributeError, OSError):
        return None
    return select.poll


_poll = _working_poll()


def wait_for_read(sock: Any, timeout: float) -> bool:
    """True when ``sock`` is readable within ``timeout`` seconds: urllib3's ``wait_for_read`` in one call instead of
    three (it runs before every request on a kept-alive connection)."""
    if _poll is None:
        return _urllib3_wait_for_read(sock, timeout)
    poller = _poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(timeout * 1000))


# Credentials in URLs that exception messages echo (a proxy URL with user:password@, for instance).
_URL_USERINFO_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@?#]+@")


def suppressed_context() -> otel_context.Context:
    """A context in which OpenTelemetry instrumentations (requests, urllib3, ...) do not trace our own calls.

    Attached in every thread that makes a request, not only the batch processor's: an exporter whose HTTP calls
    are traced feeds its own spans back into itself forever.
    """
    ctx = otel_context.get_current()
    for key in _SUPPRESS_KEYS:
        ctx = otel_context.set_value(key, True, ctx)
    return ctx


def scrub_text(text: str, *, secret: str | None = None, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` fit to log or keep: the exact ``secret`` (the API key), URL credentials and obvious secrets
    (``_redaction.scrub_secrets``) replaced by ``[REDACTED]``, and at most ``limit`` characters."""
    if secret:
        # Also as exception messages quote it: a key with a control character fails as "Invalid header value b'...'".
        for form in {secret, repr(secret)[1:-1]}:
            text = text.replace(form, REDACTED)
    text = scrub_secrets(_URL_USERINFO_RE.sub(r"\1" + REDACTED + "@", text))
    return text if len(text) <= limit else text[:limit] + "..."


@dataclass(frozen=True)
class Answer:
    """What one HTTP attempt produced. ``status`` is None when no HTTP answer arrived (``error`` says why).

    ``body`` is the answer's JSON object with every string scrubbed (see :func:`scrub_text`); None when the answer
    was not a JSON object or was larger than the cap (``truncated``). ``raw`` holds the answer's bytes as received
    (at most the cap) for :meth:`IngestTransport.get` only, whose caller parses them; it is never logged.
    ``resent``: the request went twice, the first time on a kept-alive connection the server had closed meanwhile.
    """

    status: int | None
    body: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None
    timed_out: bool = False
    truncated: bool = False
    raw: bytes = b""
    resent: bool = False

    @property
    def message(self) -> str:
        """The server's ``{"error": ...}`` text (scrubbed), or a short description of the failure."""
        if self.body is not None and isinstance(self.body.get("error"), str):
            return str(self.body["error"])
        if self.error is not None:
            return self.error
        return f"HTTP {self.status}"


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date. None when absent or unusable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None or when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


class IngestTransport:
    """The exporter's HTTP client: ``post()`` to ``{base_url}/v1/ingest``, ``get()`` of any path under ``base_url``.

    requests decides how to reach the endpoint: its ``HTTPAdapter`` builds the urllib3 pool with requests' TLS
    settings (certifi or ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE``, hostname checks), its proxy manager for
    ``HTTP(S)_PROXY`` / ``NO_PROXY`` (CONNECT tunnels, Proxy-Authorization) and its request target. That pool is
    used only to make connections; each request then runs on the connection's socket through :mod:`._http1`.

    Thread-safe: concurrent requests use up to ``max_connections`` kept-alive connections (more concurrent callers
    get a connection of their own, closed after use). Fork-safe: a child process gets new connections and new
    workers on first use instead of sharing the parent's sockets.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        gzip_body: bool,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
        user_agent: str = USER_AGENT,
    ) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
            # _config.resolve_base_url refuses these with a clear message; requests would send userinfo as Basic auth.
            raise ValueError("IngestTransport needs an http(s) base URL with a host and no credentials")
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + INGEST_PATH
        self._api_key = api_key
        self._max_connections = max(1, int(max_connections))
        self._max_answer_bytes = max(1, int(max_answer_bytes))
        self._headers = {
            "x-api-key": api_key,
            "User-Agent": user_agent,
            "Accept": "application/json",
            # Said explicitly: without the header any coding is acceptable to the server (RFC 9110).
            "Accept-Encoding": "identity",
            "Connection": "keep-alive",
        }
        self._post_headers = {**self._headers, "Content-Type": "application/x-ndjson"}
        if gzip_body:
            self._post_headers["Content-Encoding"] = "gzip"
        # requests re-reads proxy variables and CA-bundle variables on every request when trust_env is on.
        # They are read once here instead: the same behaviour, paid once.
        self._proxies: dict[str, str] = requests.utils.get_environ_proxies(self.url)
        self._verify: str | bool = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self.after_fork_in_child()

    def __repr__(self) -> str:
        return f"IngestTransport(url={self.url!r})"

    def after_fork_in_child(self) -> None:
        """Start afresh: the parent's pool, sockets and worker threads are not this process's."""
        # Re-entrant: a signal handler that flushes may interrupt this thread inside a critical section.
        self._lock = threading.RLock()
        self._session: requests.Session | None = None
        self._routes: dict[tuple[str, str], _Route] = {}
        self._idle: dict[Any, list[Any]] = {}  # per urllib3 pool: kept-alive connections, the last used last
        self._workers = WorkerThreads(max_idle=self._max_connections, name="lumiqtrace-http")
        self._pid = os.getpid()

    # -- requests ---------------------------------------------------------------------------------------------

    def post(self, body: bytes, *, timeout: float) -> Answer:
        """POST ``body`` to the ingest URL; the whole request (answer included) ends within ``timeout`` seconds."""
        return self._request("POST", self.url, body, self._post_headers, timeout, keep_raw=False)

    def get(self, path: str, *, timeout: float) -> Answer:
        """GET ``{base_url}{path}`` within ``timeout`` seconds. ``answer.raw`` holds the (capped) body."""
        if not path.startswith("/") or "://" in path:
            # The key goes to the configured origin only.
            return Answer(status=None, error="refused: not a path under the configured base URL")
        return self._request("GET", self.base_url + path, None, self._headers, timeout, keep_raw=True)

    def close(self) -> None:
        with self._lock:
            session, self._session, self._routes = self._session, None, {}
            idle, self._idle = self._idle, {}
        self._workers.dismiss_idle()
        if self._pid == os.getpid():  # a forked child leaves the parent's sockets alone
            for connections in idle.values():
                for conn in connections:
                    _close(conn)
            if session is not None:
                session.close()

    def _request(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str], timeout: float, *, keep_raw: bool
    ) -> Answer:
        if self._pid != os.getpid():
            self.after_fork_in_child()
        # NaN means no usable time left, like zero; +inf is capped.
        seconds = min(max(0.001, timeout), _MAX_REQUEST_S) if not math.isnan(timeout) else 0.001
        deadline = time.monotonic() + seconds
        try:
            route = self._route(method, url, headers)
        except Exception as exc:
            return self._failure(exc)
        if body is None:
            request = route.head + b"\r\n"
        else:
            request = b"".join((route.head, b"Content-Length: %d\r\n\r\n" % len(body), body))
        # No instrumentation sees the exchange (it never goes through requests or urllib3's request methods), so
        # suppressing it is left to the worker that makes connections with urllib3.
        reply, resent = self._exchange(route, request, deadline, seconds)
        if isinstance(reply, Answer):
            return dataclasses.replace(reply, resent=True) if resent else reply
        return Answer(
            status=reply.status,
            body=None if reply.truncated else self._json_body(reply.body),
            headers=reply.headers,
            truncated=reply.truncated,
            raw=reply.body if keep_raw else b"",
            resent=resent,
        )

    def _exchange(
        self, route: _Route, request: bytes, deadline: float, seconds: float
    ) -> tuple[_http1.Reply | Answer, bool]:
        """The request on a kept-alive connection (or a new one), in this thread: every socket operation waits at
        most until the deadline, so nothing here outlives it; making a new connection runs in a worker. Also says
        whether the request went twice (see below)."""
        conn = self._checkout(route.pool)
        reused = conn is not None
        resent = False
        while True:
            if conn is None:
                made = self._connect(route, deadline, seconds)
                if isinstance(made, Answer):
                    return made, resent
                conn = made
            try:
                reply = _http1.exchange(conn.sock, request, deadline=deadline, max_body_bytes=self._max_answer_bytes)
            except (_http1.RequestNotSent, _http1.NoAnswer) as exc:
                _close(conn)
                if reused:
                    # A kept-alive connection the server closed while it was idle: the close crossed the request on
                    # the wire (reset at once, or closed without a byte of answer). It goes once more on a new
                    # connection, within the same deadline. Safe even if the server did read it: ingest is
                    # deduplicated by event_id, and a GET changes nothing.
                    _logger.debug("LumiqTrace: kept-alive connection was gone (%s); reconnecting", exc)
                    conn, reused, resent = None, False, True
                    continue
                return Answer(status=None, error=self._scrub(f"connection error: {exc}")), resent
            except TimeoutError:
                _close(conn)
                timed_out = f"timed out: no complete answer within {seconds:g} s"
                return Answer(status=None, error=timed_out, timed_out=True), resent
            except Exception as exc:
                _close(conn)
                return self._failure(exc), resent
            except BaseException:
                _close(conn)
                raise
            if reply.reusable:
                self._checkin(route.pool, conn)
            else:
                _close(conn)
            return reply, resent

    def _failure(self, exc: Exception) -> Answer:
        """What an exception means as an answer: a timeout, a connection error (with the reason the user must fix:
        an untrusted certificate, a proxy that refuses, a CA-bundle path that does not exist), or unexpected."""
        if isinstance(exc, TimeoutError):
            return Answer(status=None, error=f"timed out: {exc}", timed_out=True)
        if isinstance(exc, _http1.ProtocolError):
            return Answer(status=None, error=self._scrub(f"connection error: {exc}"))
        if isinstance(exc, (OSError, urllib3.exceptions.HTTPError)):
            # Scrubbed: a proxy URL in the message may carry credentials.
            return Answer(status=None, error=self._scrub(f"connection error: {type(exc).__name__}: {exc}"))
        return Answer(status=None, error=self._scrub(f"unexpected error: {type(exc).__name__}: {exc}"))

    # -- connections ------------------------------------------------------------------------------------------

    def _checkout(self, pool: Any) -> Any:
        """A kept-alive connection to ``pool``'s endpoint that is still open and quiet, or None."""
        while True:
            with self._lock:
                idle = self._idle.get(pool)
                if not idle:
                    return None
                conn = idle.pop()
            sock = conn.sock
            # Readable while idle means the server closed it (or sent what no request asked for): either way it
            # cannot carry a request. An SSL socket may also hold decrypted bytes no select() sees.
            if sock is not None and not getattr(sock, "pending", _nothing_pending)() and not wait_for_read(sock, 0.0):
                return conn
            _close(conn)

    def _checkin(self, pool: Any, conn: Any) -> None:
        with self._lock:
            idle = self._idle.setdefault(pool, [])
            if len(idle) < self._max_connections:
                idle.append(conn)
                return
        _close(conn)

    def _connect(self, route: _Route, deadline: float, seconds: float) -> Any:
        """A new connection (DNS, TCP, proxy tunnel, TLS) by the deadline, or the Answer saying why there is none.

        It is made in a worker thread: a DNS lookup cannot be bounded in time, so the caller waits for the worker
        until the deadline and then shuts the connection's socket down (which ends a blocked handshake or tunnel
        read) or, before there is a socket, abandons the worker.
        """
        call = _Call(deadline)
        pool, tunnel = route.pool, route.tunnel

        def job() -> None:
            token = otel_context.attach(suppressed_context())
            _current.call = call
            conn = None
            result: Any
            try:
                conn = pool._new_conn()
                # Each socket operation of the connect is bounded too; the caller's cut bounds them all together.
                conn.timeout = max(0.001, call.deadline - time.monotonic())
                if tunnel:
                    pool._prepare_proxy(conn)  # CONNECT with requests' Proxy-Authorization, then TLS through it
                else:
                    conn.connect()
                result = conn
            except Exception as exc:
                result = exc
                if conn is not None:
                    _close(conn)
            finally:
                _current.call = None
                otel_context.detach(token)
            if not call.finish(result) and result is conn:
                _close(conn)  # the caller gave up meanwhile

        if not self._workers.submit(job):
            # No thread can be started (interpreter shutdown): connect here. Each socket operation stays bounded by
            # the deadline; a DNS lookup only by the resolver.
            job()
        elif not call.done.wait(max(0.0, deadline - time.monotonic())) and not call.cancel():
            return Answer(status=None, error=f"timed out: no connection within {seconds:g} s", timed_out=True)
        result = call.result
        if isinstance(result, Exception):
            return self._failure(result)
        return result

    def _route(self, method: str, url: str, headers: dict[str, str]) -> _Route:
        route = self._routes.get((method, url))  # built once, then only read: no lock needed to find it
        if route is not None:
            return route
        with self._lock:
            session = self._session
            if session is None:
                session = requests.Session()
                session.trust_env = False
                session.headers.clear()  # requests' defaults ask for compressed answers
                pooled = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=self._max_connections)
                session.mount("https://", pooled)
                session.mount("http://", pooled)
                self._session = session
            request = session.prepare_request(requests.Request(method, url))
            adapter = session.get_adapter(url)
            if not isinstance(adapter, requests.adapters.HTTPAdapter):  # pragma: no cover - never mounted here
                raise TypeError(f"no HTTP adapter for {url!r}")
            proxies = self._proxies
            pool: Any = adapter.get_connection_with_tls_context(request, self._verify, proxies=proxies)
            # Also refuses a CA-bundle path that does not exist, with requests' own message.
            adapter.cert_verify(pool, url, self._verify, None)  # type: ignore[no-untyped-call]
            if not issubclass(pool.ConnectionCls, _WatchedConnection):
                pool.ConnectionCls = _watched(pool.ConnectionCls)
            proxy = pool.proxy
            tunnel = proxy is not None and connection_requires_http_tunnel(proxy, pool.proxy_config, pool.scheme)
            # Not the prepared request's headers: with no body, no cookies and no URL credentials (refused above)
            # requests adds only a Content-Length, which the exchange writes itself.
            fixed: dict[str, str] = {}
            if proxy is not None and not tunnel:
                # Proxy-Authorization for a forwarding proxy, from requests; a tunnel's go with its CONNECT.
                fixed.update(pool.proxy_headers)
            fixed.update(headers)
            assert request.url is not None
            target = adapter.request_url(request, proxies)
            head = _http1.request_head(method, target, urllib.parse.urlsplit(request.url).netloc, fixed)
            route = _Route(pool=pool, tunnel=tunnel, head=head)
            self._routes[(method, url)] = route
            return route

    def _scrub(self, text: str) -> str:
        return scrub_text(text, secret=self._api_key)

    def _json_body(self, data: bytes) -> Mapping[str, Any] | None:
        try:
            body = _json_loads(data) if data else None
        except ValueError:  # orjson's JSONDecodeError too
            return None
        if not isinstance(body, dict):
            return None
        # The top level here, its numbers kept as they are without a call each ({"accepted": 100}, the usual answer).
        return {key: item if type(item) in _JSON_SCALARS else self._scrub_json(item, 1) for key, item in body.items()}

    def _scrub_json(self, value: Any, depth: int) -> Any:
        if isinstance(value, str):
            return self._scrub(value)
        if depth > 16:
            return None
        if isinstance(value, dict):
            return {key: self._scrub_json(item, depth + 1) for key, item in value.items()}
        if isinstance(value, list):
            return [self._scrub_json(item, depth + 1) for item in value]
        return value


@dataclass(frozen=True)
class _Route:
    """Where a request goes: requests' pool for the endpoint (TLS and proxy applied, used to make connections),
    whether a connection needs a CONNECT tunnel first, and the request's head up to its Content-Length."""

    pool: Any
    tunnel: bool
    head: bytes


def _nothing_pending() -> int:
    return 0


def _close(conn: Any) -> None:
    # Closing a broken connection may fail; it is discarded either way.
    with contextlib.suppress(Exception):
        conn.close()


class _Call:
    """One connect's deadline, shared by the caller (who may give up) and the worker making the connection."""

    __slots__ = ("_cancelled", "_lock", "_sock", "deadline", "done", "result")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.result: Any = None
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None  # a duplicate of the socket the worker waits on
        self._cancelled = False

    def watch(self, sock: Any) -> None:
        """The worker is about to wait on ``sock``: let :meth:`cancel` cut it.

        A duplicate descriptor is kept, not the socket object: shutting the duplicate down ends reads on the
        original too (TLS included), and it cannot be closed and its number reused under our feet.
        """
        try:
            dup = socket.socket(sock.family, sock.type, sock.proto, fileno=os.dup(sock.fileno()))
        except (OSError, ValueError, AttributeError):
            return
        with self._lock:
            old, self._sock = self._sock, dup
            if self._cancelled:
                _shutdown(dup)
        if old is not None:
            old.close()

    def cancel(self) -> bool:
        """The caller's deadline passed: True if the result arrived meanwhile, else False and the socket is cut."""
        with self._lock:
            if self.done.is_set():
                return True
            self._cancelled = True
            if self._sock is not None:
                _shutdown(self._sock)
        return False

    def finish(self, result: Any) -> bool:
        """The worker is done: True if the caller still takes the result."""
        with self._lock:
            self.result = result
            taken = not self._cancelled
            sock, self._sock = self._sock, None
            self.done.set()
        if sock is not None:
            sock.close()
        return taken


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


# The connect a worker thread is running, for the connection hook below.
_current = threading.local()


class _WatchedConnection:
    """Mixed into urllib3's connection classes: hands each new socket to the connect's _Call before any TLS
    handshake or proxy tunnel runs on it, so that the caller can cut it at the deadline."""

    def _new_conn(self) -> Any:
        sock = super()._new_conn()  # type: ignore[misc]
        call = getattr(_current, "call", None)
        if call is not None:
            call.watch(sock)
        return sock


_watched_classes: dict[type, type] = {}


def _watched(base: type) -> type:
    cls = _watched_classes.get(base)
    if cls is None:
        cls = type(f"Watched{base.__name__}", (_WatchedConnection, base), {})
        _watched_classes[base] = cls
    return cls

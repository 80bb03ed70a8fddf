# SPDX-License-Identifier: Apache-2.0
"""HTTP to LumiqTrace: the one client for everything the exporter sends, answers turned into plain values.

The transport knows nothing about spans or retry policy. It posts a body to ``/v1/ingest`` (or gets a path such as
``/v1/sdk/config``) and reports what came back, never raising. Every request, whatever it is, follows the same rules:

- requests' TLS and proxy resolution (``REQUESTS_CA_BUNDLE``, ``HTTPS_PROXY``, ``NO_PROXY``, CONNECT tunnels);
- redirects are never followed: a 3xx is an answer like any other, so the key never travels to a second host;
- no compressed answers: ``Accept-Encoding: identity`` is sent and a ``Content-Encoding`` is never decoded, so a
  "gzip bomb" costs what its bytes cost;
- answer bodies are capped (``max_answer_bytes``, 64 KiB): the rest is not read and the connection is closed;
- one wall-clock deadline per request covers DNS, connect, TLS, sending and every byte of the answer. urllib3's
  timeouts bound each socket operation, not the request, so a server that drips its headers or body, or floods
  ``100 Continue``, would hold a request forever. The I/O therefore runs in a worker thread; the caller waits
  for it until the deadline and then shuts the connection's socket down (which ends the worker's blocked read)
  and answers "timed out". A worker stuck where no socket exists yet (a DNS lookup) is abandoned, never waited for.
- server text (``{"error": ...}`` and every other string of an answer, and exception messages) is scrubbed of
  secrets and capped before anyone can log it or keep it.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import math
import os
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
import requests.adapters
import urllib3
from opentelemetry import context as otel_context

from opentelemetry_exporter_lumiqtrace._config import INGEST_PATH
from opentelemetry_exporter_lumiqtrace._workers import WorkerThreads
from opentelemetry_exporter_lumiqtrace.mapping.redaction import REDACTED, scrub_secrets
from opentelemetry_exporter_lumiqtrace.version import __version__

_logger = logging.getLogger(__name__)

USER_AGENT = f"opentelemetry-exporter-lumiqtrace/{__version__} (Python; requests/{requests.__version__})"

# Connections kept alive per transport: the slices of one export may travel over a few at once.
DEFAULT_MAX_CONNECTIONS = 4
# LumiqTrace answers are small JSON documents; nothing legitimate comes near this.
DEFAULT_MAX_ANSWER_BYTES = 64 * 1024
# Server text kept in answers (and so in logs and ``last_error``) at most.
MAX_MESSAGE_CHARS = 500
_READ_CHUNK = 16 * 1024
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
    """

    status: int | None
    body: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None
    timed_out: bool = False
    truncated: bool = False
    raw: bytes = b""

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
    ``HTTP(S)_PROXY`` / ``NO_PROXY`` (CONNECT tunnels included) and its request target. Each request then goes
    straight to that pool, as ``HTTPAdapter.send`` itself does, without the ``Session``/``Response`` layers around
    it (hooks, cookies, redirects, a ``Response`` object): those took half the CPU of a request.

    Thread-safe: concurrent requests share up to ``max_connections`` keep-alive connections (more concurrent
    callers get a connection of their own, closed after use). Fork-safe: a child process gets a new pool and new
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
        self._routes: dict[str, _Route] = {}
        self._workers = WorkerThreads(max_idle=self._max_connections, name="lumiqtrace-http")
        self._pid = os.getpid()

    # -- requests ---------------------------------------------------------------------------------------------

    def post(self, body: bytes, *, timeout: float) -> Answer:
        """POST ``body`` to the ingest URL; the whole request (answer included) ends within ``timeout`` seconds."""
        headers = self._post_headers.copy()
        headers["Content-Length"] = str(len(body))
        return self._request("POST", self.url, body, headers, timeout, keep_raw=False)

    def get(self, path: str, *, timeout: float) -> Answer:
        """GET ``{base_url}{path}`` within ``timeout`` seconds. ``answer.raw`` holds the (capped) body."""
        if not path.startswith("/") or "://" in path:
            # The key goes to the configured origin only.
            return Answer(status=None, error="refused: not a path under the configured base URL")
        return self._request("GET", self.base_url + path, None, self._headers, timeout, keep_raw=True)

    def close(self) -> None:
        with self._lock:
            session, self._session, self._routes = self._session, None, {}
        self._workers.dismiss_idle()
        if session is not None and self._pid == os.getpid():
            session.close()

    def _request(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str], timeout: float, *, keep_raw: bool
    ) -> Answer:
        if self._pid != os.getpid():
            self.after_fork_in_child()
        # NaN means no usable time left, like zero; +inf is capped.
        seconds = min(max(0.001, timeout), _MAX_REQUEST_S) if not math.isnan(timeout) else 0.001
        call = _Call(time.monotonic() + seconds)

        def job() -> None:
            call.finish(self._exchange(method, url, body, headers, call, keep_raw=keep_raw))

        if not self._workers.submit(job):
            # No thread can be started (interpreter shutdown): do it here. Each socket operation stays bounded by
            # the deadline, the request as a whole only as far as reads return.
            job()
        elif not call.done.wait(max(0.0, call.deadline - time.monotonic())):
            late = call.cancel()
            if late is None:
                return Answer(status=None, error=f"timed out: no complete answer within {seconds:g} s", timed_out=True)
        answer = call.answer
        assert answer is not None
        return answer

    def _exchange(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: dict[str, str],
        call: _Call,
        *,
        keep_raw: bool,
    ) -> Answer:
        """One request and its answer, in a worker thread (or the caller's when no worker could start)."""
        token = otel_context.attach(suppressed_context())
        _current.call = call
        response: Any = None
        reusable = False
        try:
            remaining = call.deadline - time.monotonic()
            if remaining <= 0:
                return Answer(status=None, error="timed out before the request started", timed_out=True)
            route = self._route(url)
            response = route.pool.urlopen(
                method,
                route.target,
                body=body,
                headers={**route.headers, **headers},
                retries=False,  # the delivery policy retries, within the export deadline
                redirect=False,  # a 3xx is an answer: following it would send the key to another URL
                assert_same_host=False,
                timeout=urllib3.Timeout(connect=remaining, read=remaining),
                preload_content=False,
                decode_content=False,
            )
            data, truncated = self._read_capped(response, call)
            reusable = not truncated
            status = response.status
            answer_headers = {k.lower(): v for k, v in response.headers.items()}
        except _DeadlinePassed:
            return Answer(status=None, error="timed out while reading the answer", timed_out=True)
        except urllib3.exceptions.ClosedPoolError as exc:
            with self._lock:  # the next attempt builds a new pool
                self._routes = {}
            return Answer(status=None, error=f"connection error: {type(exc).__name__}")
        except urllib3.exceptions.NewConnectionError as exc:  # a subclass of ConnectTimeoutError, but refused
            return Answer(status=None, error=f"connection error: {type(exc).__name__}")
        except urllib3.exceptions.TimeoutError as exc:
            return Answer(status=None, error=f"timed out: {type(exc).__name__}", timed_out=True)
        except (urllib3.exceptions.SSLError, urllib3.exceptions.ProxyError, OSError) as exc:
            # The reason is what the user must fix (an untrusted certificate, a proxy that refuses, a CA-bundle
            # path that does not exist): keep it, scrubbed (a proxy URL may carry credentials).
            return Answer(status=None, error=self._scrub(f"connection error: {type(exc).__name__}: {exc}"))
        except urllib3.exceptions.HTTPError as exc:
            return Answer(status=None, error=f"connection error: {type(exc).__name__}")
        except Exception as exc:  # never raise into the exporter, whatever the HTTP stack does
            return Answer(status=None, error=self._scrub(f"unexpected error: {type(exc).__name__}: {exc}"))
        finally:
            if response is not None:
                _finish_response(response, reusable=reusable and not call.cancelled)
            _current.call = None
            otel_context.detach(token)
        return Answer(
            status=status,
            body=None if truncated else self._json_body(data),
            headers=answer_headers,
            truncated=truncated,
            raw=bytes(data) if keep_raw and not truncated else b"",
        )

    def _read_capped(self, response: Any, call: _Call) -> tuple[bytearray, bool]:
        """The answer's bytes as sent (never decoded), at most the cap; True when there was more."""
        data = bytearray()
        limit = self._max_answer_bytes
        while True:
            if time.monotonic() >= call.deadline or call.cancelled:
                raise _DeadlinePassed
            chunk = response.read(min(_READ_CHUNK, limit + 1 - len(data)), decode_content=False)
            if not chunk:
                return data, False
            data += chunk
            if len(data) > limit:
                del data[limit:]
                return data, True

    def _route(self, url: str) -> _Route:
        with self._lock:
            route = self._routes.get(url)
            if route is not None:
                return route
            session = self._session
            if session is None:
                session = requests.Session()
                session.trust_env = False
                session.headers.clear()  # requests' defaults ask for compressed answers
                pooled = requests.adapters.HTTPAdapter(
                    pool_connections=1, pool_maxsize=self._max_connections, pool_block=False
                )
                session.mount("https://", pooled)
                session.mount("http://", pooled)
                self._session = session
            request = session.prepare_request(requests.Request("GET", url))
            adapter = session.get_adapter(url)
            if not isinstance(adapter, requests.adapters.HTTPAdapter):  # pragma: no cover - never mounted here
                raise TypeError(f"no HTTP adapter for {url!r}")
            proxies = self._proxies
            pool: Any = adapter.get_connection_with_tls_context(request, self._verify, proxies=proxies)
            # Also refuses a CA-bundle path that does not exist, with requests' own message.
            adapter.cert_verify(pool, url, self._verify, None)  # type: ignore[no-untyped-call]
            if not issubclass(pool.ConnectionCls, _WatchedConnection):
                pool.ConnectionCls = _watched(pool.ConnectionCls)
            headers = dict(request.headers)
            # Proxy-Authorization for a forwarding proxy comes from requests; a URL's own userinfo never does.
            headers.pop("Authorization", None)
            route = _Route(pool=pool, target=adapter.request_url(request, proxies), headers=headers)
            self._routes[url] = route
            return route

    def _scrub(self, text: str) -> str:
        return scrub_text(text, secret=self._api_key)

    def _json_body(self, data: bytes | bytearray) -> Mapping[str, Any] | None:
        try:
            body = json.loads(data) if data else None
        except ValueError:
            return None
        if not isinstance(body, dict):
            return None
        scrubbed = self._scrub_json(body, 0)
        return scrubbed if isinstance(scrubbed, dict) else None

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
    """Where a request goes: requests' pool for the endpoint (TLS and proxy applied), the request target, headers."""

    pool: Any
    target: str
    headers: dict[str, str]


class _DeadlinePassed(Exception):
    pass


def _finish_response(response: Any, *, reusable: bool) -> None:
    """Return a fully read connection to the pool; close any other (unread rest, cut by the deadline)."""
    # Closing a broken connection may fail; it is discarded either way.
    with contextlib.suppress(Exception):
        if not reusable:
            response.close()
    with contextlib.suppress(Exception):
        response.release_conn()


class _Call:
    """One request's deadline, shared by the caller (who may give up) and the worker doing the I/O."""

    __slots__ = ("_cancelled", "_lock", "_sock", "answer", "deadline", "done")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.answer: Answer | None = None
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None  # a duplicate of the socket the worker waits on
        self._cancelled = False

    @property
    def cancelled(self) -> bool:
        return self._cancelled

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

    def cancel(self) -> Answer | None:
        """The caller's deadline passed: the answer if it arrived meanwhile, else None and the connection is cut."""
        with self._lock:
            if self.answer is not None:
                return self.answer
            self._cancelled = True
            if self._sock is not None:
                _shutdown(self._sock)
        return None

    def finish(self, answer: Answer) -> None:
        with self._lock:
            self.answer = answer
            sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        self.done.set()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


# The request a worker thread is running, for the connection hooks below.
_current = threading.local()


class _WatchedConnection:
    """Mixed into urllib3's connection classes: hands each socket the request waits on to that request's _Call,
    and sends a request's head and (bytes) body in one ``sendall``.

    urllib3 sends the head and then the body: two system calls and two TCP segments per request where one does
    (on loopback the receiving side's processing runs in the sender's system call, so each costs the sender's CPU).
    """

    _body_with_head: bytes | None = None  # the body to send together with the next head
    _body_sent: bytes | None = None  # the body already sent with the head: its own send() is skipped

    def _new_conn(self) -> Any:
        sock = super()._new_conn()  # type: ignore[misc]
        _watch_current(sock)  # before any TLS handshake or proxy tunnel
        return sock

    def request(self, method: str, url: str, body: Any = None, *args: Any, **kwargs: Any) -> Any:
        _watch_current(getattr(self, "sock", None))  # a kept-alive connection: its socket is already there
        self._body_with_head = body if type(body) is bytes and body else None
        self._body_sent = None
        try:
            return super().request(method, url, body, *args, **kwargs)  # type: ignore[misc]
        finally:
            self._body_with_head = self._body_sent = None

    def send(self, data: Any) -> None:
        body, self._body_with_head = self._body_with_head, None  # cleared first: connect() may send (a tunnel)
        if body is not None:
            # The first send() of a request is its head (http.client buffers the request line and headers).
            self._body_sent = body
            super().send(data + body)  # type: ignore[misc]
        elif data is not None and data is self._body_sent:
            self._body_sent = None
        else:
            super().send(data)  # type: ignore[misc]


def _watch_current(sock: Any) -> None:
    call = getattr(_current, "call", None)
    if call is not None and sock is not None:
        call.watch(sock)


_watched_classes: dict[type, type] = {}


def _watched(base: type) -> type:
    cls = _watched_classes.get(base)
    if cls is None:
        cls = type(f"Watched{base.__name__}", (_WatchedConnection, base), {})
        _watched_classes[base] = cls
    return cls

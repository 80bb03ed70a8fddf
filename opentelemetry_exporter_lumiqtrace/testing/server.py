# SPDX-License-Identifier: Apache-2.0
"""A local, LumiqTrace-compatible ingest server (stdlib only) for tests and the quick start.

:class:`LocalIngestServer` serves :class:`~.protocol.IngestProtocol` (everything the server decides: validation,
answers, rate limit, quota, config, OTLP, fault scripting) over real HTTP on loopback; this module is only the
socket side: binding, threads, reading bodies (``Content-Length`` or chunked), TLS, and stopping cleanly.
It serves plain HTTP, or HTTPS when given a server-side ``ssl.SSLContext``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry_exporter_lumiqtrace.testing.protocol import (
    CONFIG_PATH,
    DEFAULT_PROJECT,
    DEFAULT_RATE_LIMIT_REQUESTS,
    DEFAULT_RATE_LIMIT_WINDOW_S,
    DEFAULT_SUCCESS_STATUS,
    INGEST_PATH,
    MAX_EVENTS_PER_BATCH,
    OTEL_PATH,
    TEST_API_KEY,
    TEST_EVENTS_PATH,
    TEST_STATS_PATH,
    HttpRequest,
    HttpResponse,
    IngestProtocol,
    InvalidEventMode,
    RecordedRequest,
    Reply,
)

__all__ = [
    "CONFIG_PATH",
    "DEFAULT_HOST",
    "DEFAULT_PROJECT",
    "DEFAULT_RATE_LIMIT_REQUESTS",
    "DEFAULT_RATE_LIMIT_WINDOW_S",
    "DEFAULT_SUCCESS_STATUS",
    "INGEST_PATH",
    "MAX_EVENTS_PER_BATCH",
    "OTEL_PATH",
    "TEST_API_KEY",
    "TEST_EVENTS_PATH",
    "TEST_STATS_PATH",
    "LocalIngestServer",
    "RecordedRequest",
    "Reply",
]

_logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"

# Bounds every wait in stop(): a stuck client must not make a test hang.
_STOP_JOIN_TIMEOUT_S = 2.0
_SERVE_POLL_INTERVAL_S = 0.05
_MAX_CHUNK_LINE = 65537


class LocalIngestServer(IngestProtocol):
    """A LumiqTrace-compatible ingest server on loopback, run in daemon threads.

    Use as a context manager or with ``start()`` / ``stop()``; ``stop()`` then ``start()`` reuses the
    same port and keeps what was stored. All methods are thread-safe. Everything but the sockets (the read side,
    keys, limits, config, fault injection) is :class:`~.protocol.IngestProtocol`'s.

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
        super().__init__(
            api_keys=api_keys,
            success_status=success_status,
            strict_content_type=strict_content_type,
            invalid_event_mode=invalid_event_mode,
            clock=clock,
        )
        self._host = host
        self._port = port
        self._ssl_context = ssl_context
        self._lifecycle_lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._stop_event = threading.Event()
        self._connections: dict[socket.socket, threading.Thread] = {}

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
    def otel_url(self) -> str:
        """``base_url + "/v1/otel"``: where an OTLP/HTTP traces exporter (or a Collector) sends."""
        return self.base_url + OTEL_PATH


def _lower_headers(handler: BaseHTTPRequestHandler) -> dict[str, str]:
    # Repeated headers: the last one wins, like most frameworks' dict views.
    return {name.lower(): value for name, value in handler.headers.items()}


def _shutdown_socket(sock: socket.socket) -> None:
    # The plain socket's shutdown also for TLS sockets: SSLSocket.shutdown() would drop the TLS state under the
    # feet of the thread still reading from it; this only wakes that thread with EOF.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


_INVALID_CONTENT_LENGTH = HttpResponse(
    400, {"Content-Type": "application/json"}, b'{"error": "Invalid Content-Length"}'
)


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
        request = HttpRequest(self.command, self.path, _lower_headers(self), raw)
        answer = self.server.owner.handle(request, cancel=self.stop_event)
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
            self._send(_INVALID_CONTENT_LENGTH)
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

    def _send(self, answer: HttpResponse) -> None:
        self.send_response(answer.status)
        names = {name.lower() for name in answer.headers}
        if "content-length" not in names:
            self.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(answer.body)

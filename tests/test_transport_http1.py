# SPDX-License-Identifier: Apache-2.0
"""The transport's own HTTP/1.1 exchange against raw loopback servers: every way an answer can be framed, folded,
oversized, dripped or cut short, and when a kept-alive connection is reused or closed.

The servers are test_hostile_network's ``RawServer`` (a TCP socket on 127.0.0.1 and a behaviour function per
request); each test drives ``IngestTransport`` (or the exporter) and checks what the caller gets back and what the
server saw: requests, connections, hang-ups.
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SpanExportResult

from opentelemetry_exporter_lumiqtrace import _http1
from opentelemetry_exporter_lumiqtrace import transport as transport_module
from opentelemetry_exporter_lumiqtrace.testing import LocalIngestServer, Reply
from opentelemetry_exporter_lumiqtrace.transport import IngestTransport

from .conftest import make_spans
from .test_hostile_network import (
    Behaviour,
    RawRequest,
    RawServer,
    _events_in,
    _exporter,
    eventually,
    timed,
)

pytestmark = pytest.mark.usefixtures("no_ambient_proxy")

TIMEOUT_S = 5.0
# An answer that fails fast must not wait for the deadline: well under it, generous for a busy machine.
FAST_S = 2.0
ACCEPTED = b'{"accepted": 1, "cv": 3}'


def answers(*raw: bytes, keep_open: bool = True) -> Behaviour:
    """Sends ``raw[i]`` to the i-th request (the last one again after that); keeps the connection unless told not."""
    sent = [0]

    def behaviour(server: RawServer, conn: socket.socket, request: RawRequest) -> bool:
        index = min(sent[0], len(raw) - 1)
        sent[0] += 1
        return server.send(conn, raw[index]) and keep_open

    return behaviour


def framed(status: int = 202, *headers: str, body: bytes = ACCEPTED, version: str = "1.1") -> bytes:
    lines = [f"HTTP/{version} {status} Whatever", "Content-Type: application/json", *headers]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(body: bytes, *, sizes: tuple[int, ...] = (3, 7, 1000), trailer: bytes = b"") -> bytes:
    out = [b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"]
    rest, index = body, 0
    while rest:
        size = sizes[index % len(sizes)]
        out.append(b"%x;name=value\r\n%s\r\n" % (len(rest[:size]), rest[:size]))
        rest, index = rest[size:], index + 1
    out.append(b"0\r\n" + trailer + b"\r\n")
    return b"".join(out)


def post(transport: IngestTransport, timeout: float = TIMEOUT_S) -> Any:
    return transport.post(b'{"event_id": "e"}\n', timeout=timeout)


# -- framing ---------------------------------------------------------------------------------------------------


def test_a_content_length_answer_keeps_the_connection(transports: Callable[..., IngestTransport]) -> None:
    with RawServer(answers(framed())) as server:
        transport = transports(server.url)
        for _ in range(3):
            answer = post(transport)
            assert (answer.status, answer.body, answer.error) == (202, {"accepted": 1, "cv": 3}, None)
        assert server.connections == 1 and len(server.requests) == 3


def test_a_chunked_answer_is_read_whole_and_keeps_the_connection(transports: Callable[..., IngestTransport]) -> None:
    body = json.dumps({"accepted": 1, "cv": 3, "note": "x" * 300}).encode()
    with RawServer(answers(chunked(body, sizes=(3, 7, 50), trailer=b"X-Checksum: abc\r\n"))) as server:
        transport = transports(server.url)
        for _ in range(2):
            answer = post(transport)
            assert answer.status == 202 and answer.body == json.loads(body)
            assert "x-checksum" not in answer.headers  # trailers are not headers
        assert server.connections == 1


def test_a_chunked_answer_over_the_cap_is_cut_and_its_connection_closed(
    transports: Callable[..., IngestTransport],
) -> None:
    body = json.dumps({"error": "y" * 5000}).encode()
    with RawServer(answers(chunked(body, sizes=(1024,)))) as server:
        transport = transports(server.url, max_answer_bytes=2048)
        answer = post(transport)
        assert answer.status == 202 and answer.truncated and answer.body is None
        assert post(transport).truncated
        assert server.connections == 2  # the half-read connection was not reused


def test_an_answer_without_length_ends_with_the_connection(transports: Callable[..., IngestTransport]) -> None:
    unframed = b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n" + ACCEPTED
    with RawServer(answers(unframed, keep_open=False)) as server:
        transport = transports(server.url)
        for _ in range(2):
            answer = post(transport)
            assert (answer.status, answer.body) == (202, {"accepted": 1, "cv": 3})
        assert server.connections == 2


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(framed(202, "Connection: close"), id="connection-close"),
        pytest.param(framed(202, "Connection: keep-alive, Close"), id="close-among-tokens"),
        pytest.param(framed(202, version="1.0"), id="http-1.0"),
        pytest.param(framed() + b"HTTP/1.1 202 Unasked\r\n\r\n", id="bytes-after-the-answer"),
        pytest.param(
            b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: gzip\r\n\r\n" + ACCEPTED, id="not-chunked-coding-last"
        ),
    ],
)
def test_any_doubt_closes_the_connection(transports: Callable[..., IngestTransport], raw: bytes) -> None:
    close_after = b"Transfer-Encoding: gzip" in raw  # its body ends only when the server closes
    with RawServer(answers(raw, keep_open=not close_after)) as server:
        transport = transports(server.url)
        assert [post(transport).status for _ in range(2)] == [202, 202]
        assert server.connections == 2


def test_an_answer_without_body_keeps_the_connection(transports: Callable[..., IngestTransport]) -> None:
    with RawServer(answers(b"HTTP/1.1 204 No Content\r\nX-Request: 1\r\n\r\n")) as server:
        transport = transports(server.url)
        answers_seen = [post(transport) for _ in range(2)]
        assert [(a.status, a.body, a.raw) for a in answers_seen] == [(204, None, b"")] * 2
        assert server.connections == 1


# -- headers ---------------------------------------------------------------------------------------------------


def test_folded_and_repeated_headers(transports: Callable[..., IngestTransport]) -> None:
    raw = (
        b"HTTP/1.1 429 Too Many\r\n"
        b"Content-Type: application/json\r\n"
        b"X-Note: part one\r\n"
        b"\t  part two\r\n"  # obsolete line folding
        b"Retry-After: 3\r\n"
        b"retry-after: 7\r\n"  # repeated: the last one is kept
        b"Content-Length: 24\r\n"
        b"Content-Length: 24\r\n"  # repeated but equal: still one length
        b"\r\n" + ACCEPTED
    )
    with RawServer(answers(raw)) as server:
        transport = transports(server.url)
        answer = post(transport)
        assert answer.status == 429 and answer.body == {"accepted": 1, "cv": 3}
        assert answer.headers["x-note"] == "part one part two"
        assert answer.headers["retry-after"] == "7"
        assert post(transport).status == 429
        assert server.connections == 1


def test_lines_ending_in_a_bare_lf_are_read(transports: Callable[..., IngestTransport]) -> None:
    raw = b"HTTP/1.1 202 OK\nContent-Type: application/json\nContent-Length: 24\n\n" + ACCEPTED
    with RawServer(answers(raw)) as server:
        answer = post(transports(server.url))
        assert answer.status == 202 and answer.body == {"accepted": 1, "cv": 3}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param(framed(202, "Content-Length: 99"), "Content-Length", id="conflicting-lengths"),
        pytest.param(b"HTTP/1.1 202 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length", id="negative-length"),
        pytest.param(b"HTTP/1.1 202 OK\r\nContent-Length: 1e3\r\n\r\n", "Content-Length", id="not-digits"),
        pytest.param(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "status line", id="not-http"),
        pytest.param(b"HTTP/2 200\r\n\r\n", "status line", id="http-2"),
        pytest.param(b"HTTP/1.1 202 OK\r\nBad Header: x\r\n\r\n", "header line", id="space-in-a-name"),
        pytest.param(b"HTTP/1.1 202 OK\r\nno colon here\r\n\r\n", "header line", id="no-colon"),
        pytest.param(b"HTTP/1.1 202 OK\r\n  folded first\r\n\r\n", "continuation", id="fold-first"),
        pytest.param(b"HTTP/1.1 202 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size", id="bad-chunk-size"),
        pytest.param(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", "101", id="unasked-upgrade"),
    ],
)
def test_an_unreadable_answer_fails_at_once_and_closes_the_connection(
    transports: Callable[..., IngestTransport], raw: bytes, reason: str
) -> None:
    with RawServer(answers(raw, framed())) as server:
        transport = transports(server.url)
        answer, seconds = timed(lambda: post(transport))
        assert answer.status is None and not answer.timed_out
        assert reason in (answer.error or ""), answer.error
        assert seconds < FAST_S
        # The next request gets a new connection and a good answer.
        assert post(transport).status == 202
        assert server.connections == 2


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", id="one-huge-header"),
        pytest.param(b"HTTP/1.1 200 OK\r\n" + b"X-Many: b\r\n" * 150 + b"\r\n", id="too-many-lines"),
        pytest.param(b"HTTP/1.1 200 OK\r\nX-Endless: " + b"c" * 200_000, id="never-ending"),
    ],
)
def test_an_oversized_header_block_is_refused_without_reading_on(
    transports: Callable[..., IngestTransport], head: bytes
) -> None:
    with RawServer(answers(head + b"x" * 1000)) as server:
        answer, seconds = timed(lambda: post(transports(server.url)))
        assert answer.status is None and not answer.timed_out
        assert "header" in (answer.error or "")
        assert seconds < FAST_S
        assert eventually(lambda: server.hangups >= 1 or server.bytes_sent == len(head) + 1000, within=1.0)


def test_interim_answers_are_skipped(transports: Callable[..., IngestTransport]) -> None:
    raw = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 102 Processing\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n" + framed(202, "X-Final: yes")
    )
    with RawServer(answers(raw)) as server:
        transport = transports(server.url)
        for _ in range(2):
            answer = post(transport)
            assert answer.status == 202 and answer.body == {"accepted": 1, "cv": 3}
            assert answer.headers["x-final"] == "yes" and "link" not in answer.headers
        assert server.connections == 1


# -- slow and cut answers --------------------------------------------------------------------------------------


def drip(raw: bytes, *, pause: float = 0.002) -> Behaviour:
    """Sends the whole answer one byte at a time."""

    def behaviour(server: RawServer, conn: socket.socket, request: RawRequest) -> bool:
        for index in range(len(raw)):
            if not server.send(conn, raw[index : index + 1]) or not server.pause(pause):
                return False
        return True

    return behaviour


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(framed(202, "X-Note: a\r\n folded"), id="content-length"),
        pytest.param(chunked(ACCEPTED, sizes=(5,), trailer=b"X-T: 1\r\n"), id="chunked"),
        pytest.param(b"HTTP/1.1 100 Continue\r\n\r\n" + framed(202), id="after-100-continue"),
    ],
)
def test_an_answer_dripping_byte_by_byte_is_read_whole(transports: Callable[..., IngestTransport], raw: bytes) -> None:
    with RawServer(drip(raw)) as server:
        transport = transports(server.url)
        answer = post(transport)
        assert (answer.status, answer.body) == (202, {"accepted": 1, "cv": 3})
        assert post(transport).status == 202
        assert server.connections == 1


def cut(raw: bytes) -> Behaviour:
    """Sends ``raw`` and closes the connection."""

    def behaviour(server: RawServer, conn: socket.socket, request: RawRequest) -> bool:
        server.send(conn, raw)
        return False

    return behaviour


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param(b"", "before any answer", id="before-any-byte"),
        pytest.param(b"HTTP/1.1 202 Acc", "headers", id="mid-status-line"),
        pytest.param(b"HTTP/1.1 202 Accepted\r\nContent-Type: appl", "headers", id="mid-headers"),
        pytest.param(framed()[:-10], "body", id="mid-body"),
        pytest.param(chunked(ACCEPTED, sizes=(5,))[:-20], "body", id="mid-chunk"),
    ],
)
def test_an_answer_cut_short_fails_at_once(transports: Callable[..., IngestTransport], raw: bytes, reason: str) -> None:
    with RawServer(cut(raw)) as server:
        answer, seconds = timed(lambda: post(transports(server.url)))
        assert answer.status is None and not answer.timed_out
        assert reason in (answer.error or ""), answer.error
        assert seconds < FAST_S
        assert len(server.requests) == 1  # failed, not resent: the delivery policy decides about retries


def test_a_cut_answer_through_the_exporter_keeps_the_spans_for_a_retry() -> None:
    with RawServer(cut(framed()[:-10])) as server:
        exporter = _exporter(server.url, timeout=0.5)
        assert exporter.export(make_spans(3)) is SpanExportResult.FAILURE
        stats = exporter.stats()
        assert stats["delivered"] == 0 and stats["buffered"] == 3
        exporter.shutdown(timeout_millis=0)


# -- kept-alive connections ------------------------------------------------------------------------------------


class ClosingServer(RawServer):
    """Keeps its connections alive until told to close every one (as a server's keep-alive timeout does), with a FIN
    or with a reset."""

    def __init__(self, *, reset: bool = False) -> None:
        self.reset = reset
        self._guard = threading.Lock()
        self._open: list[socket.socket] = []
        self.closed = 0
        super().__init__(self._answer)

    def _answer(self, server: RawServer, conn: socket.socket, request: RawRequest) -> bool:
        with self._guard:
            if conn not in self._open:
                self._open.append(conn)
        return server.send(conn, framed(202, body=json.dumps({"accepted": _events_in(request)}).encode()))

    def _serve(self, conn: socket.socket) -> None:
        try:
            super()._serve(conn)
        finally:
            with self._guard:
                self.closed += 1

    def close_idle(self) -> None:
        """Close every open connection and wait until they are closed."""
        with self._guard:
            conns, self._open = self._open, []
            expected = self.closed + len(conns)
        for conn in conns:
            if self.reset:  # the serving thread's close then sends a RST instead of a FIN
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.shutdown(socket.SHUT_RD)
            else:
                conn.shutdown(socket.SHUT_RDWR)
        assert eventually(lambda: self.closed >= expected, within=2.0)
        time.sleep(0.05)  # the FIN or RST reaches the client's socket


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "reset"])
def test_a_kept_alive_connection_the_server_closed_meanwhile_is_replaced_cleanly(
    transports: Callable[..., IngestTransport], reset: bool
) -> None:
    with ClosingServer(reset=reset) as server:
        transport = transports(server.url)
        assert post(transport).status == 202
        server.close_idle()
        answer = post(transport)
        assert (answer.status, answer.error) == (202, None)
        # One clean reconnect: each request sent once, over a new connection.
        assert server.connections == 2 and len(server.requests) == 2


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "reset"])
def test_a_request_on_a_reused_connection_the_server_closed_goes_once_more_on_a_new_one(
    transports: Callable[..., IngestTransport], monkeypatch: pytest.MonkeyPatch, reset: bool
) -> None:
    # The server's idle close arrives after the reuse check (a race a check cannot close) and crosses the request on
    # the wire: a reset makes the send fail, a FIN makes the answer an end of connection without a byte. Either way
    # the request goes again on a new connection; resending is safe, as ingest is deduplicated by event_id.
    with ClosingServer(reset=reset) as server:
        transport = transports(server.url)
        assert post(transport).status == 202
        server.close_idle()
        monkeypatch.setattr(transport_module, "wait_for_read", lambda sock, timeout: False)
        answer = post(transport)
        assert (answer.status, answer.error, answer.resent) == (202, None, True)
        assert server.connections == 2 and len(server.requests) == 2


def test_a_new_connection_closed_without_an_answer_is_not_resent(transports: Callable[..., IngestTransport]) -> None:
    # Only a kept-alive connection can have been closed by the server before the request: on a new one, no answer
    # is the server's doing, and retrying is the delivery policy's decision (with back-off), not the transport's.
    with LocalIngestServer() as server:
        server.script(Reply(drop_connection=True))
        transport = transports(server.base_url)
        answer = post(transport)
        assert answer.status is None and not answer.resent and "before any answer" in (answer.error or "")
        assert [r.status for r in server.ingest_requests()] == [None]


def test_the_exporter_delivers_after_the_server_closed_its_idle_connection() -> None:
    with ClosingServer() as server:
        exporter = _exporter(server.url)
        assert exporter.export(make_spans(4)) is SpanExportResult.SUCCESS
        server.close_idle()
        assert exporter.export(make_spans(3)) is SpanExportResult.SUCCESS
        stats = exporter.stats()
        assert stats["delivered"] == 7 and stats["retries"] == 0 and stats["dropped_total"] == 0
        assert server.connections == 2
        exporter.shutdown(timeout_millis=0)


class CountingServer(RawServer):
    """A RawServer that also counts the connections the client closed between requests."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.client_closed = 0
        super().__init__(behaviour)

    def _read_request(self, conn: socket.socket) -> RawRequest | None:
        request = super()._read_request(conn)
        if request is None and self.alive():
            self.client_closed += 1
        return request


def test_at_most_max_connections_stay_open(transports: Callable[..., IngestTransport]) -> None:
    def slow_accept(server: RawServer, conn: socket.socket, request: RawRequest) -> bool:
        server.pause(0.2)
        return server.send(conn, framed())

    with CountingServer(slow_accept) as server:
        transport = transports(server.url, max_connections=2)
        threads = [threading.Thread(target=lambda: post(transport)) for _ in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert len(server.requests) == 5 and server.connections == 5
        # Two kept for the next requests; the other three closed by the client.
        assert eventually(lambda: server.client_closed == 3, within=2.0), server.client_closed
        for _ in range(3):
            assert post(transport).status == 202
        assert server.connections == 5


# -- the deadline covers the name lookup -----------------------------------------------------------------------


def test_a_slow_name_lookup_never_holds_the_caller_past_the_deadline(
    transports: Callable[..., IngestTransport], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = socket.getaddrinfo
    released = threading.Event()

    def slow_resolver(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "slow-dns.lumiqtrace.test":
            released.wait(3.0)  # a resolver that answers late
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow_resolver)
    with RawServer(answers(framed())) as server:
        transport = transports(f"http://slow-dns.lumiqtrace.test:{server.port}")
        answer, seconds = timed(lambda: post(transport, timeout=0.5))
        released.set()
        assert answer.status is None and answer.timed_out
        assert seconds < 1.0


def test_an_answer_sent_before_the_request_was_read_whole_is_reported(
    transports: Callable[..., IngestTransport],
) -> None:
    # The server reads the head only, answers 413 and closes: the client's send of 32 MB (more than socket buffers
    # hold) fails, and the answer is still there to read.
    refused = threading.Event()

    def refuse_early(conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        conn.sendall(framed(413, body=b'{"error": "Payload too large"}'))
        conn.shutdown(socket.SHUT_WR)
        refused.set()
        time.sleep(0.2)  # the client's send fails on a connection that reads no more
        conn.close()

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            refuse_early(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        transport = transports(f"http://127.0.0.1:{port}")
        answer, seconds = timed(lambda: transport.post(b"x" * (32 << 20), timeout=TIMEOUT_S))
        assert refused.is_set()
        assert (answer.status, answer.message) == (413, "Payload too large")
        assert seconds < FAST_S
    finally:
        thread.join(5)
        listener.close()


def test_tls_connections_are_kept_alive_and_replaced_when_closed(
    transports: Callable[..., IngestTransport], trusted_tls_context: ssl.SSLContext
) -> None:
    context = trusted_tls_context
    served = [0]

    def three_per_connection(server: RawServer, conn: socket.socket, request: RawRequest) -> bool:
        served[0] += 1
        return server.send(conn, framed()) and served[0] % 3 != 0  # then closes, as a keep-alive limit does

    with RawServer(three_per_connection, ssl_context=context) as server:
        transport = transports(server.url)
        statuses = []
        for _ in range(6):
            statuses.append(post(transport).status)
            time.sleep(0.02)  # the close (TLS close_notify, then FIN) reaches the client
        assert statuses == [202] * 6
        assert server.connections == 2 and len(server.requests) == 6


def test_bytes_that_arrived_by_the_deadline_are_taken_once_without_waiting() -> None:
    # The thread ran late: the deadline passed while the answer was arriving. What is already there is read (one
    # receive, no wait); a server that keeps sending (a flood of interim answers) gets no more than that one read.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
        with client, server:
            late = time.monotonic() - 1.0
            server.sendall(framed())
            time.sleep(0.05)
            reply = _http1._AnswerReader(client, late).read(65536)
            assert (reply.status, reply.body, reply.reusable) == (202, ACCEPTED, True)
            server.sendall(b"HTTP/1.1 100 Continue\r\n\r\n" * 1000)
            time.sleep(0.05)
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                _http1._AnswerReader(client, late).read(65536)
            with pytest.raises(TimeoutError):  # nothing at all arrived: no wait either
                _http1._AnswerReader(client, late).read(65536)
            assert time.monotonic() - started < 0.5

# SPDX-License-Identifier: Apache-2.0
"""A hostile network: every request ends at its deadline, answers cannot flood memory, and the key stays on its path.

The servers here are raw loopback sockets driven by small behaviour functions (a dripping body, dripping headers,
a flood of ``100 Continue``, silence, a gzip bomb, a huge body, redirects), each connection in a thread, every
server bounded in time so that it stops by itself even when a client never lets go. Each case runs through
``IngestTransport`` directly and through ``LumiqTraceSpanExporter.export()``; wall-clock bounds are twice the
budget so that they never flake on a busy machine.
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import logging
import os
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

from opentelemetry_exporter_lumiqtrace import LumiqTraceSpanExporter
from opentelemetry_exporter_lumiqtrace.check import run_check
from opentelemetry_exporter_lumiqtrace.transport import Answer, IngestTransport

from .conftest import TRANSPORT_KEY, make_spans

pytestmark = pytest.mark.usefixtures("no_ambient_proxy")

KEY = TRANSPORT_KEY
EXPORT_TIMEOUT_S = 2.0
EXPORT_BOUND_S = 3.0
SHUTDOWN_MILLIS = 1000
SHUTDOWN_BOUND_S = 1.5
DIRECT_TIMEOUT_S = 1.0
DIRECT_BOUND_S = 2.0 * DIRECT_TIMEOUT_S
# Long enough for every phase of a test; short enough that a client which never lets go (the code before this
# suite) still sees the server go away and the test end.
SERVER_LIFETIME_S = 12.0
RSS_ALLOWANCE = 100 * 1024 * 1024
_POLL_S = 0.05


# -- raw loopback servers --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


# Answers one request on ``conn``; True keeps the connection open for another request.
Behaviour = Callable[["RawServer", socket.socket, RawRequest], bool]


class RawServer:
    """A TCP server on 127.0.0.1 that hands every request to ``behaviour``; it stops by itself after ``lifetime``."""

    def __init__(
        self,
        behaviour: Behaviour,
        *,
        lifetime: float = SERVER_LIFETIME_S,
        ssl_context: ssl.SSLContext | None = None,
        inline: bool = False,
    ) -> None:
        self._behaviour = behaviour
        self._ssl_context = ssl_context
        self._inline = inline  # serve each connection in the accepting thread (no thread per connection)
        self._until = time.monotonic() + lifetime
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._requests: list[RawRequest] = []
        self.connections = 0
        self.bytes_sent = 0
        self.hangups = 0  # connections the client closed while this server was still answering
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(_POLL_S)
        self.port: int = self._listener.getsockname()[1]
        self.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._accept, name="raw-server", daemon=True)
        self._thread.start()

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def requests(self) -> list[RawRequest]:
        with self._lock:
            return list(self._requests)

    def alive(self) -> bool:
        return not self._stop.is_set() and time.monotonic() < self._until

    def pause(self, seconds: float) -> bool:
        """Wait ``seconds``; True while the server should go on."""
        self._stop.wait(seconds)
        return self.alive()

    def send(self, conn: socket.socket, data: bytes) -> bool:
        """Send all of ``data``; False when the client hung up (counted) or the server is stopping."""
        view = memoryview(data)
        while view:
            if not self.alive():
                return False
            try:
                sent = conn.send(view)
            except TimeoutError:
                continue
            except OSError:
                self._hung_up()
                return False
            view = view[sent:]
            with self._lock:
                self.bytes_sent += sent
        return True

    def wait_for_hangup(self, conn: socket.socket) -> None:
        """Say nothing until the client hangs up (or the server's time is over)."""
        while self.alive():
            try:
                if conn.recv(1, socket.MSG_PEEK) == b"":
                    self._hung_up()
                    return
            except TimeoutError:
                continue
            except OSError:
                self._hung_up()
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def _hung_up(self) -> None:
        with self._lock:
            self.hangups += 1

    def _accept(self) -> None:
        try:
            while self.alive():
                try:
                    conn, _ = self._listener.accept()
                except TimeoutError:
                    continue
                with self._lock:
                    self.connections += 1
                if self._inline:
                    self._serve(conn)
                else:
                    threading.Thread(target=self._serve, args=(conn,), name="raw-server-conn", daemon=True).start()
        finally:
            self._listener.close()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self._ssl_context is not None:
                conn.settimeout(2.0)
                conn = self._ssl_context.wrap_socket(conn, server_side=True)
            conn.settimeout(_POLL_S)
            while self.alive():
                request = self._read_request(conn)
                if request is None:
                    return
                with self._lock:
                    self._requests.append(request)
                if not self._behaviour(self, conn, request):
                    return
        except OSError:
            pass
        finally:
            conn.close()

    def _read_request(self, conn: socket.socket) -> RawRequest | None:
        data = b""
        while b"\r\n\r\n" not in data:
            if not self.alive() or len(data) > 65536:
                return None
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                return None
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            if not self.alive():
                return None
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                return None
            rest += chunk
        return RawRequest(method, path, headers, rest[:length])


def _head(status: int, *headers: str, length: int | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} Whatever", "Content-Type: application/json", *headers]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def json_answer(status: int, body: dict[str, Any], *headers: str) -> bytes:
    payload = json.dumps(body).encode()
    return _head(status, *headers, length=len(payload)) + payload


def _events_in(request: RawRequest) -> int:
    body = request.body
    if request.headers.get("content-encoding") == "gzip" and body.startswith(b"\x1f\x8b"):
        body = gzip.decompress(body)
    return len([line for line in body.split(b"\n") if line.strip()])


def accept_everything(server: RawServer, conn: socket.socket, request: RawRequest) -> bool:
    if request.method == "POST":
        return server.send(conn, json_answer(202, {"accepted": _events_in(request), "cv": 1}))
    return server.send(conn, json_answer(200, {"cv": 1, "rules": []}))


def drip_body(server: RawServer, conn: socket.socket, request: RawRequest) -> bool:
    if server.send(conn, _head(200, length=100_000) + b'{"accepted": '):
        while server.pause(_POLL_S) and server.send(conn, b" "):
            pass
    return False


def drip_headers(server: RawServer, conn: socket.socket, request: RawRequest) -> bool:
    if server.send(conn, b"HTTP/1.1 200 OK\r\nX-Slow: "):
        while server.pause(_POLL_S) and server.send(conn, b"a"):
            pass
    return False


def flood_continue(server: RawServer, conn: socket.socket, request: RawRequest) -> bool:
    while server.send(conn, b"HTTP/1.1 100 Continue\r\n\r\n" * 20) and server.pause(0.002):
        pass
    return False


def silence_after_headers(server: RawServer, conn: socket.socket, request: RawRequest) -> bool:
    if server.send(conn, _head(200, length=100)):
        server.wait_for_hangup(conn)
    return False


@functools.cache
def gzip_bomb() -> bytes:
    """About 4 MB that inflate to 4 GiB: 4,096 gzip members of 1 MiB of zeros (a gzip stream may hold many)."""
    member = gzip.compress(bytes(1 << 20), compresslevel=9)
    return member * 4096


def send_gzip_bomb(server: RawServer, conn: socket.socket, request: RawRequest) -> bool:
    bomb = gzip_bomb()
    server.send(conn, _head(200, "Content-Encoding: gzip", length=len(bomb)) + bomb)
    return False


HUGE_BODY_BYTES = 100 * 1024 * 1024


def send_huge_body(server: RawServer, conn: socket.socket, request: RawRequest) -> bool:
    if server.send(conn, _head(200, length=HUGE_BODY_BYTES)):
        block = b"7" * (1 << 20)
        for _ in range(HUGE_BODY_BYTES // len(block)):
            if not server.send(conn, block):
                break
    return False


def redirect(status: int, location: str, *, only_path: str | None = None) -> Behaviour:
    """Answer ``status`` with ``Location`` (to ``only_path`` requests; the others are accepted)."""

    def behaviour(server: RawServer, conn: socket.socket, request: RawRequest) -> bool:
        if only_path is not None and not request.path.endswith(only_path):
            return accept_everything(server, conn, request)
        return server.send(conn, json_answer(status, {"error": "moved"}, f"Location: {location}"))

    return behaviour


HANGS: dict[str, Behaviour] = {
    "dripping-body": drip_body,
    "dripping-headers": drip_headers,
    "100-continue-flood": flood_continue,
    "headers-then-silence": silence_after_headers,
}


# -- helpers ---------------------------------------------------------------------------------------------------


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def eventually(condition: Callable[[], bool], within: float) -> bool:
    until = time.monotonic() + within
    while time.monotonic() < until:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRss:
    """The process's resident memory above its level at entry, sampled every few milliseconds (Linux)."""

    def __init__(self) -> None:
        self.baseline = _rss_bytes()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())

    @property
    def growth(self) -> int:
        return self.peak - self.baseline

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_bytes())


needs_proc = pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads RSS from /proc")


def _exporter(base_url: str, **kwargs: Any) -> LumiqTraceSpanExporter:
    kwargs.setdefault("api_key", KEY)
    kwargs.setdefault("timeout", EXPORT_TIMEOUT_S)
    kwargs.setdefault("linger", 0)
    return LumiqTraceSpanExporter(base_url=base_url, **kwargs)


def accounted(exporter: LumiqTraceSpanExporter) -> int:
    stats = exporter.stats()
    return int(stats["delivered"] + stats["dropped_total"] + stats["buffered"] + stats["spooled"] + stats["filtered"])


def export_then_shut_down(exporter: LumiqTraceSpanExporter, spans: int = 5) -> SpanExportResult:
    """Export within its budget, then shut down within its budget; every span stays accounted for."""
    result, seconds = timed(lambda: exporter.export(make_spans(spans)))
    assert isinstance(result, SpanExportResult)  # returned, did not raise
    assert seconds < EXPORT_BOUND_S, f"export(timeout={EXPORT_TIMEOUT_S}) took {seconds:.2f} s"
    assert accounted(exporter) == spans
    _, seconds = timed(lambda: exporter.shutdown(timeout_millis=SHUTDOWN_MILLIS))
    assert seconds < SHUTDOWN_BOUND_S, f"shutdown(timeout_millis={SHUTDOWN_MILLIS}) took {seconds:.2f} s"
    stats = exporter.stats()
    assert stats["buffered"] == 0
    assert accounted(exporter) == spans
    return result


# -- every request ends at its deadline ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["post", "get"])
@pytest.mark.parametrize("hang", list(HANGS))
def test_a_request_ends_at_its_deadline_and_cuts_the_connection(
    transports: Callable[..., IngestTransport], hang: str, method: str
) -> None:
    with RawServer(HANGS[hang]) as server:
        transport = transports(server.url)
        if method == "post":
            answer, seconds = timed(lambda: transport.post(b"{}\n", timeout=DIRECT_TIMEOUT_S))
        else:
            answer, seconds = timed(lambda: transport.get("/v1/sdk/config", timeout=DIRECT_TIMEOUT_S))
        assert seconds < DIRECT_BOUND_S, f"{hang}: {method} took {seconds:.2f} s"
        assert seconds >= DIRECT_TIMEOUT_S * 0.9
        assert isinstance(answer, Answer)
        assert answer.status is None and answer.timed_out, answer
        # Cut, not abandoned: the server sees the connection go within moments of the deadline.
        assert eventually(lambda: server.hangups >= 1, within=1.0)


@pytest.mark.parametrize("hang", list(HANGS))
def test_export_and_shutdown_keep_their_budgets_against_a_hanging_server(hang: str) -> None:
    with RawServer(HANGS[hang]) as server:
        exporter = _exporter(server.url)
        assert export_then_shut_down(exporter) is SpanExportResult.FAILURE
        stats = exporter.stats()
        assert stats["delivered"] == 0
        assert stats["dropped"].get("shutdown", 0) + stats["spooled"] == 5


@pytest.mark.parametrize("hang", ["dripping-body", "100-continue-flood"])
def test_the_config_fetch_ends_at_its_deadline(hang: str) -> None:
    behaviour = HANGS[hang]

    def ingest_ok_config_hangs(server: RawServer, conn: socket.socket, request: RawRequest) -> bool:
        if request.path.endswith("/v1/sdk/config"):
            return behaviour(server, conn, request)
        return accept_everything(server, conn, request)

    with RawServer(ingest_ok_config_hangs) as server:
        exporter = _exporter(server.url)
        assert exporter.export(make_spans(2)) is SpanExportResult.SUCCESS
        assert eventually(lambda: any(r.method == "GET" for r in server.requests), within=2.0)
        poller = exporter._poller
        assert poller is not None
        # The fetch's own budget is the export timeout: idle again within twice that.
        idle, seconds = timed(lambda: poller.wait_idle(2 * EXPORT_TIMEOUT_S))
        assert idle, f"the config fetch was still in flight after {seconds:.2f} s"
        _, seconds = timed(lambda: exporter.shutdown(timeout_millis=SHUTDOWN_MILLIS))
        assert seconds < SHUTDOWN_BOUND_S


def test_a_dripping_body_over_tls_is_cut_too(
    transports: Callable[..., IngestTransport], trusted_tls_context: ssl.SSLContext
) -> None:
    context = trusted_tls_context
    with RawServer(drip_body, ssl_context=context) as server:
        transport = transports(server.url)
        answer, seconds = timed(lambda: transport.post(b"{}\n", timeout=DIRECT_TIMEOUT_S))
        assert seconds < DIRECT_BOUND_S
        assert answer.timed_out
        assert [r.headers["x-api-key"] for r in server.requests] == [KEY]  # the request went through TLS
        assert eventually(lambda: server.hangups >= 1, within=1.0)


def test_when_no_thread_can_start_the_request_runs_in_the_callers_thread(
    transports: Callable[..., IngestTransport], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Python 3.12+ refuses new threads during interpreter shutdown, where the SDK's atexit hook shuts the exporter
    # down: the last requests must still go out.
    with RawServer(accept_everything, inline=True) as server:
        transport = transports(server.url)

        def no_threads(self: threading.Thread) -> None:
            raise RuntimeError("can't create new thread at interpreter shutdown")

        with monkeypatch.context() as patch:
            patch.setattr(threading.Thread, "start", no_threads)
            answer = transport.post(b"{}\n", timeout=DIRECT_TIMEOUT_S)
        assert answer.status == 202
        assert len(server.requests) == 1


# -- answers cannot flood memory -------------------------------------------------------------------------------


@needs_proc
def test_a_gzip_bomb_is_never_inflated(transports: Callable[..., IngestTransport]) -> None:
    gzip_bomb()  # built before measuring
    with RawServer(send_gzip_bomb) as server:
        transport = transports(server.url)
        with PeakRss() as rss:
            answer, seconds = timed(lambda: transport.post(b"{}\n", timeout=DIRECT_TIMEOUT_S))
        assert seconds < DIRECT_BOUND_S
        assert rss.growth < RSS_ALLOWANCE, f"RSS grew by {rss.growth / 2**20:.0f} MB"
        assert answer.status == 200
        assert answer.body is None and answer.truncated
        # Read no further than the cap: the rest of the 4 MB never had to be sent.
        assert eventually(lambda: server.hangups >= 1, within=1.0)
        assert server.bytes_sent < len(gzip_bomb())


@needs_proc
def test_a_gzip_bomb_through_the_exporter() -> None:
    gzip_bomb()
    with RawServer(send_gzip_bomb) as server:
        exporter = _exporter(server.url)
        with PeakRss() as rss:
            export_then_shut_down(exporter)
        assert rss.growth < RSS_ALLOWANCE, f"RSS grew by {rss.growth / 2**20:.0f} MB"
        assert server.requests and all(r.headers.get("accept-encoding") == "identity" for r in server.requests)


@needs_proc
def test_a_huge_body_is_read_no_further_than_the_cap(transports: Callable[..., IngestTransport]) -> None:
    with RawServer(send_huge_body) as server:
        transport = transports(server.url)
        with PeakRss() as rss:
            answer, seconds = timed(lambda: transport.post(b"{}\n", timeout=DIRECT_TIMEOUT_S))
        assert seconds < DIRECT_BOUND_S
        assert rss.growth < RSS_ALLOWANCE
        assert answer.status == 200 and answer.truncated
        # The connection was closed instead of drained: the server could not push the 100 MB.
        assert eventually(lambda: server.hangups >= 1, within=1.0)
        assert server.bytes_sent < HUGE_BODY_BYTES // 2
        # ... and a new request gets a fresh connection, not the half-read one.
        transport.post(b"{}\n", timeout=DIRECT_TIMEOUT_S)
        assert server.connections == 2


@needs_proc
def test_a_huge_body_through_the_exporter() -> None:
    with RawServer(send_huge_body) as server:
        exporter = _exporter(server.url)
        with PeakRss() as rss:
            export_then_shut_down(exporter)
        assert rss.growth < RSS_ALLOWANCE
        assert server.bytes_sent < HUGE_BODY_BYTES // 2


def test_compressed_answers_are_never_asked_for(transports: Callable[..., IngestTransport]) -> None:
    with RawServer(accept_everything) as server:
        transport = transports(server.url)
        assert transport.post(b"{}\n", timeout=DIRECT_TIMEOUT_S).status == 202
        assert [r.headers.get("accept-encoding") for r in server.requests] == ["identity"]
        assert transport.get("/v1/sdk/config", timeout=DIRECT_TIMEOUT_S).status == 200
        assert [r.headers.get("accept-encoding") for r in server.requests] == ["identity", "identity"]


# -- redirects are answers, and the key never follows them ----------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_an_answer_and_is_not_followed(transports: Callable[..., IngestTransport], status: int) -> None:
    with RawServer(accept_everything) as elsewhere:
        with RawServer(redirect(status, elsewhere.url + "/v1/ingest")) as server:
            transport = transports(server.url)
            post = transport.post(b"{}\n", timeout=DIRECT_TIMEOUT_S)
            get = transport.get("/v1/sdk/config", timeout=DIRECT_TIMEOUT_S)
            assert (post.status, get.status) == (status, status)
            assert [r.headers["x-api-key"] for r in server.requests] == [KEY, KEY]
        assert elsewhere.connections == 0


@pytest.mark.parametrize("status", [302, 307, 308])
def test_an_ingest_redirect_through_the_exporter(status: int) -> None:
    with RawServer(accept_everything) as elsewhere:
        with RawServer(redirect(status, elsewhere.url + "/v1/ingest")) as server:
            export_then_shut_down(_exporter(server.url))
            assert server.requests
        assert elsewhere.connections == 0


def test_a_redirected_config_fetch_sends_the_key_nowhere_else() -> None:
    with RawServer(accept_everything) as elsewhere:
        location = elsewhere.url + "/v1/sdk/config"
        with RawServer(redirect(302, location, only_path="/v1/sdk/config")) as server:
            exporter = _exporter(server.url)
            assert exporter.export(make_spans(3)) is SpanExportResult.SUCCESS
            assert exporter._poller is not None
            assert eventually(lambda: any(r.method == "GET" for r in server.requests), within=2.0)
            assert exporter._poller.wait_idle(2 * EXPORT_TIMEOUT_S)
            _, seconds = timed(lambda: exporter.shutdown(timeout_millis=SHUTDOWN_MILLIS))
            assert seconds < SHUTDOWN_BOUND_S
        assert elsewhere.connections == 0
        assert all("x-api-key" not in r.headers for r in elsewhere.requests)


# -- concurrency -----------------------------------------------------------------------------------------------


def test_concurrent_posts_share_max_connections_keep_alive_connections(
    transports: Callable[..., IngestTransport],
) -> None:
    delay = 0.2

    def slow_accept(server: RawServer, conn: socket.socket, request: RawRequest) -> bool:
        server.pause(delay)
        return accept_everything(server, conn, request)

    with RawServer(slow_accept) as server:
        transport = transports(server.url, max_connections=4)
        statuses: list[int | None] = []
        lock = threading.Lock()

        def sender() -> None:
            for _ in range(3):
                answer = transport.post(b"{}\n", timeout=5)
                with lock:
                    statuses.append(answer.status)

        threads = [threading.Thread(target=sender) for _ in range(4)]
        _, seconds = timed(lambda: [[t.start() for t in threads], [t.join(10) for t in threads]])
        assert statuses == [202] * 12
        # Four at a time (one after another would take 12 x delay), over four kept-alive connections.
        assert seconds < 2 * 3 * delay + 1.0
        assert 1 <= server.connections <= 4


# -- the key stays on its path ---------------------------------------------------------------------------------


def refuse(server: RawServer, conn: socket.socket, request: RawRequest) -> bool:
    return server.send(conn, json_answer(502, {"error": "this test proxy forwards nothing"}))


@pytest.fixture
def catch_all_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[RawServer]:
    """Every proxy variable points here: whatever the exporter sends, to whichever host, arrives here (loopback)."""
    with RawServer(refuse) as proxy:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
            monkeypatch.setenv(name, proxy.url)
        yield proxy


MALFORMED_URLS = [
    "not-a-url",
    "htps://staging.lumiqtrace.com",
    "api.lumiqtrace.com",
    "https://",
    "https:///v1",
    "http://:8080",
    "https://staging.lumiqtrace.com:99999",
    "https://staging lumiqtrace.com",
    "ftp://staging.lumiqtrace.com",
    "https://staging.lumiqtrace.com/?project=1",
    "https://[::1",
]


def _errors_naming(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and name in r.getMessage()]


@pytest.mark.parametrize("url", MALFORMED_URLS)
@pytest.mark.parametrize("given_as", ["variable", "keyword"])
def test_a_malformed_base_url_leaves_the_exporter_inert(
    url: str,
    given_as: str,
    catch_all_proxy: RawServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="opentelemetry_exporter_lumiqtrace"):
        if given_as == "variable":
            monkeypatch.setenv("LUMIQTRACE_BASE_URL", url)
            exporter = LumiqTraceSpanExporter(api_key=KEY, timeout=EXPORT_TIMEOUT_S, linger=0)
        else:
            exporter = LumiqTraceSpanExporter(api_key=KEY, base_url=url, timeout=EXPORT_TIMEOUT_S, linger=0)
        results = [exporter.export(make_spans(3)) for _ in range(2)]
        exporter.force_flush(timeout_millis=SHUTDOWN_MILLIS)
        exporter.shutdown(timeout_millis=SHUTDOWN_MILLIS)
    assert results == [SpanExportResult.FAILURE] * 2
    # Nothing went anywhere: not to production, not to any proxy.
    assert catch_all_proxy.connections == 0
    stats = exporter.stats()
    assert stats["delivered"] == 0 and stats["dropped_total"] == 6
    name = "LUMIQTRACE_BASE_URL" if given_as == "variable" else "base_url"
    assert len(_errors_naming(caplog, name)) == 1, caplog.text


@pytest.mark.parametrize(
    "url",
    [
        "https://user:s3cr3t-pass@127.0.0.1:{port}",
        "http://lumiq-user:s3cr3t-pass@127.0.0.1:{port}/",
        "http://s3cr3t-pass@127.0.0.1:{port}",
        "htps://lumiq-user:s3cr3t-pass@127.0.0.1:{port}",
    ],
)
def test_credentials_in_the_url_are_refused_and_never_printed(
    url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with RawServer(accept_everything) as server:
        url = url.format(port=server.port)
        monkeypatch.setenv("LUMIQTRACE_BASE_URL", url)
        with caplog.at_level(logging.DEBUG, logger="opentelemetry_exporter_lumiqtrace"):
            exporter = LumiqTraceSpanExporter(api_key=KEY, timeout=EXPORT_TIMEOUT_S, linger=0)
            assert exporter.export(make_spans(2)) is SpanExportResult.FAILURE
            exporter.shutdown(timeout_millis=SHUTDOWN_MILLIS)
        monkeypatch.setenv("LUMIQTRACE_API_KEY", KEY)
        out = io.StringIO()
        exit_code = run_check(out=out)
        assert server.connections == 0
    assert exit_code == 2
    errors = _errors_naming(caplog, "LUMIQTRACE_BASE_URL")
    assert len(errors) == 1
    for text in (caplog.text, repr(exporter), out.getvalue()):
        assert "s3cr3t-pass" not in text and "lumiq-user" not in text
        assert KEY not in text
    if url.startswith("http"):
        assert "credentials" in errors[0]


def _insecure_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "http://" in r.getMessage()]


def test_http_to_a_non_loopback_host_warns_once_per_exporter(
    catch_all_proxy: RawServer, caplog: pytest.LogCaptureFixture
) -> None:
    # The catch-all proxy on loopback receives whatever is sent: no packet leaves this machine.
    with caplog.at_level(logging.DEBUG, logger="opentelemetry_exporter_lumiqtrace"):
        exporter = LumiqTraceSpanExporter(api_key=KEY, base_url="http://ingest.lumiqtrace.test", timeout=0.5, linger=0)
        for _ in range(3):
            exporter.export(make_spans(1))
        exporter.shutdown(timeout_millis=0)
    warnings = _insecure_warnings(caplog)
    assert len(warnings) == 1, warnings
    assert "ingest.lumiqtrace.test" in warnings[0] and "allow_insecure_http" in warnings[0]
    assert KEY not in caplog.text
    # Sent through the proxy as configured (loopback), and nowhere else.
    assert catch_all_proxy.connections >= 1

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="opentelemetry_exporter_lumiqtrace"):
        LumiqTraceSpanExporter(api_key=KEY, base_url="http://ingest.lumiqtrace.test").shutdown(timeout_millis=0)
    assert len(_insecure_warnings(caplog)) == 1  # one per exporter, not one per process


def test_allow_insecure_http_silences_the_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="opentelemetry_exporter_lumiqtrace"):
        LumiqTraceSpanExporter(
            api_key=KEY, base_url="http://ingest.lumiqtrace.test", allow_insecure_http=True
        ).shutdown(timeout_millis=0)
        monkeypatch.setenv("LUMIQTRACE_ALLOW_INSECURE_HTTP", "true")
        LumiqTraceSpanExporter(api_key=KEY, base_url="http://ingest.lumiqtrace.test").shutdown(timeout_millis=0)
    assert _insecure_warnings(caplog) == []


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:1", "http://localhost:1", "http://[::1]:1", "http://127.8.9.10:1", "https://example.test"]
)
def test_loopback_http_and_https_do_not_warn(url: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="opentelemetry_exporter_lumiqtrace"):
        exporter = LumiqTraceSpanExporter(api_key=KEY, base_url=url)
        exporter.shutdown(timeout_millis=0)
    assert _insecure_warnings(caplog) == []
    assert exporter._base_url == url


# -- server text is scrubbed -----------------------------------------------------------------------------------

LEAKY_TEXT = (
    "invalid event from key {key}; Authorization: Bearer abcdefghijklmnop; password=hunter2hunter2; "
    "retry at https://admin:topsecret@lumiqtrace.test/"
)


def leaky(status: int, key: str) -> Behaviour:
    def behaviour(server: RawServer, conn: socket.socket, request: RawRequest) -> bool:
        return server.send(conn, json_answer(status, {"error": LEAKY_TEXT.format(key=key), "detail": [key]}))

    return behaviour


_SECRETS = ("abcdefghijklmnop", "hunter2hunter2", "topsecret")


@pytest.mark.parametrize("key", [KEY, "my-own-gateway-credential-42"])
@pytest.mark.parametrize("status", [400, 401, 500])
def test_server_text_is_scrubbed_before_it_is_logged_or_kept(
    key: str, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        RawServer(leaky(status, key)) as server,
        caplog.at_level(logging.DEBUG, logger="opentelemetry_exporter_lumiqtrace"),
    ):
        exporter = _exporter(server.url, api_key=key, timeout=0.5)
        exporter.export(make_spans(2))
        exporter.shutdown(timeout_millis=0)
    assert server.requests
    kept = json.dumps(exporter.stats())
    assert "invalid event" in caplog.text
    for text in (caplog.text, kept):
        assert key not in text
        for secret in _SECRETS:
            assert secret not in text


def test_an_answer_keeps_no_secret_and_no_novel(transports: Callable[..., IngestTransport]) -> None:
    def novel(server: RawServer, conn: socket.socket, request: RawRequest) -> bool:
        return server.send(conn, json_answer(400, {"error": f"key {KEY} " + "x" * 50_000}))

    with RawServer(novel) as server:
        answer = transports(server.url).post(b"{}\n", timeout=DIRECT_TIMEOUT_S)
    assert answer.status == 400
    assert KEY not in answer.message and "[REDACTED]" in answer.message
    assert len(answer.message) <= 600
    assert KEY not in json.dumps(answer.body)


def test_a_transport_refuses_to_send_outside_its_base_url(transports: Callable[..., IngestTransport]) -> None:
    with RawServer(accept_everything) as elsewhere, RawServer(accept_everything) as server:
        transport = transports(server.url)
        answer = transport.get(f"{elsewhere.url}/v1/sdk/config", timeout=DIRECT_TIMEOUT_S)
        assert answer.status is None and answer.error
    assert elsewhere.connections == 0 and server.connections == 0
    with pytest.raises(ValueError):
        IngestTransport(base_url="http://user:pw@127.0.0.1:1", api_key=KEY, gzip_body=True)


def test_proxy_credentials_never_reach_logs_or_stats(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A proxy that accepts and hangs up at once: the failure's text names the proxy, never its password.
    def hang_up(server: RawServer, conn: socket.socket, request: RawRequest) -> bool:
        return False

    with RawServer(hang_up) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", f"http://proxy-user:pr0xy-pa55@127.0.0.1:{proxy.port}")
        with caplog.at_level(logging.DEBUG, logger="opentelemetry_exporter_lumiqtrace"):
            exporter = _exporter("https://ingest.lumiqtrace.test", timeout=0.5)
            assert exporter.export(make_spans(2)) is SpanExportResult.FAILURE
            exporter.shutdown(timeout_millis=0)
        assert proxy.connections >= 1
    for text in (caplog.text, json.dumps(exporter.stats()), repr(exporter)):
        assert "pr0xy-pa55" not in text
        assert KEY not in text


@pytest.mark.parametrize("timeout", [0.0, -5.0, float("nan")])
def test_a_request_with_no_time_left_returns_at_once(
    transports: Callable[..., IngestTransport], timeout: float
) -> None:
    with RawServer(drip_body) as server:
        answer, seconds = timed(lambda: transports(server.url).post(b"{}\n", timeout=timeout))
    assert seconds < 0.5
    assert answer.status is None and answer.timed_out


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer")
def test_a_signal_handler_may_post_while_the_same_thread_is_posting(
    transports: Callable[..., IngestTransport],
) -> None:
    def slow_accept(server: RawServer, conn: socket.socket, request: RawRequest) -> bool:
        server.pause(0.3)
        return accept_everything(server, conn, request)

    with RawServer(slow_accept) as server:
        transport = transports(server.url)
        from_handler: list[int | None] = []

        def flush(signum: int, frame: Any) -> None:
            from_handler.append(transport.post(b"{}\n", timeout=2).status)

        previous = signal.signal(signal.SIGALRM, flush)
        try:
            signal.setitimer(signal.ITIMER_REAL, 0.1)
            answer, seconds = timed(lambda: transport.post(b"{}\n", timeout=2))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    assert from_handler == [202]
    assert answer.status == 202
    assert seconds < 2


def test_http_through_a_non_loopback_proxy_warns_too(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Nothing is sent: the exporters are only built.
    monkeypatch.setenv("HTTP_PROXY", "http://proxy-user:proxy-pass@proxy.lumiqtrace.test:3128")
    with caplog.at_level(logging.WARNING, logger="opentelemetry_exporter_lumiqtrace"):
        LumiqTraceSpanExporter(api_key=KEY, base_url="http://127.0.0.1:1").shutdown(timeout_millis=0)
    warnings = _insecure_warnings(caplog)
    assert len(warnings) == 1 and "proxy.lumiqtrace.test" in warnings[0]
    assert "proxy-pass" not in caplog.text

    caplog.clear()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with caplog.at_level(logging.WARNING, logger="opentelemetry_exporter_lumiqtrace"):
        LumiqTraceSpanExporter(api_key=KEY, base_url="http://127.0.0.1:1").shutdown(timeout_millis=0)
        LumiqTraceSpanExporter(api_key=KEY, base_url="https://ingest.lumiqtrace.test").shutdown(timeout_millis=0)
    assert _insecure_warnings(caplog) == []


def test_a_key_that_cannot_be_a_header_is_not_quoted_in_the_failure(caplog: pytest.LogCaptureFixture) -> None:
    key = "lqt_abcdefgh\ntail-of-the-key"
    with RawServer(accept_everything) as server:
        with caplog.at_level(logging.DEBUG, logger="opentelemetry_exporter_lumiqtrace"):
            exporter = _exporter(server.url, api_key=key, timeout=0.3)
            assert exporter.export(make_spans(1)) is SpanExportResult.FAILURE
            exporter.shutdown(timeout_millis=0)
        assert server.requests == []
    assert "Invalid header value" in caplog.text
    for text in (caplog.text, json.dumps(exporter.stats())):
        assert "tail-of-the-key" not in text


def test_behind_a_batch_span_processor_flush_and_shutdown_keep_their_budgets() -> None:
    with RawServer(drip_body) as server:
        exporter = _exporter(server.url)
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        tracer = provider.get_tracer("hostile")
        for index in range(50):
            with tracer.start_as_current_span(f"span-{index}"):
                pass
        _, seconds = timed(lambda: provider.force_flush(timeout_millis=10_000))
        assert seconds < 2 * EXPORT_TIMEOUT_S, f"force_flush took {seconds:.2f} s"
        assert accounted(exporter) == 50  # none vanished: kept for a retry
        _, seconds = timed(provider.shutdown)
        assert seconds < 2 * EXPORT_TIMEOUT_S, f"shutdown took {seconds:.2f} s"
        stats = exporter.stats()
        assert stats["buffered"] == 0 and stats["delivered"] == 0
        assert accounted(exporter) == 50


# -- one system call per request ---------------------------------------------------------------------------------


def test_a_request_head_and_body_go_out_in_one_sendall(transports: Callable[..., IngestTransport]) -> None:
    body = b'{"event_id": "e"}\n' * 50
    with RawServer(accept_everything) as server:
        transport = transports(server.url)
        sent: list[bytes] = []
        caller = threading.current_thread()
        real_sendall, real_send = socket.socket.sendall, socket.socket.send

        def recording(real: Callable[..., Any]) -> Callable[..., Any]:
            def call(sock: socket.socket, data: Any, *args: Any) -> Any:
                if threading.current_thread() is caller:  # the server runs in this process too
                    sent.append(bytes(data))
                return real(sock, data, *args)

            return call

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(socket.socket, "sendall", recording(real_sendall))
            patch.setattr(socket.socket, "send", recording(real_send))
            for _ in range(2):  # a kept-alive connection: the second request too
                sent.clear()
                assert transport.post(body, timeout=DIRECT_TIMEOUT_S).status == 202 and len(sent) == 1
                head, _, rest = sent[0].partition(b"\r\n\r\n")
                assert head.startswith(b"POST /v1/ingest HTTP/1.1") and rest == body
            # No body: the head alone.
            assert transport.get("/v1/sdk/config", timeout=DIRECT_TIMEOUT_S).status == 200
            assert len(sent) == 2 and sent[1].endswith(b"\r\n\r\n")
        assert server.connections == 1
        assert [r.body for r in server.requests if r.method == "POST"] == [body, body]

# SPDX-License-Identifier: Apache-2.0
"""TLS verification and proxies, end to end: the exporter against the local server over real loopback.

Black-box on purpose: only environment variables, ``LumiqTraceSpanExporter`` and the local server (plain or with
TLS), plus a small recording proxy defined here. Whatever the transport does inside, it must keep requests'
behaviour: verify certificates against ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` (and the host name), send
plain HTTP through ``HTTP_PROXY`` in absolute form, tunnel HTTPS through ``HTTPS_PROXY`` with CONNECT, and bypass
the proxy for ``NO_PROXY`` hosts.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.client
import logging
import select
import socket
import socketserver
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
import trustme
from opentelemetry.sdk.trace.export import SpanExportResult

from opentelemetry_exporter_lumiqtrace import LumiqTraceSpanExporter
from opentelemetry_exporter_lumiqtrace.testing import LocalIngestServer

from .conftest import PROXY_VARIABLES, make_spans

# Every variable requests (and urllib3 / ssl defaults) could take a proxy or a trust store from: the tests set
# exactly the ones they mean. Developer shells and CI images often set some (REQUESTS_CA_BUNDLE above all).
_TRUST_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")

# Short: a failing export retries transient errors until this deadline, and the tests wait for it.
FAILING_TIMEOUT_S = 0.5
# Ample for a loopback export that works, and it keeps a broken transport from holding each test for the 10 s default.
EXPORT_TIMEOUT_S = 3.0
VIA = "1.1 lumiqtrace-test-proxy"
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost"})
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_TUNNEL_CHUNK = 65536
_PROXY_UPSTREAM_TIMEOUT_S = 5.0
_POLL_S = 0.05


# -- a recording forwarding proxy and CONNECT tunnel -----------------------------------------------------------


@dataclass(frozen=True)
class ProxiedRequest:
    """One request the proxy received: ``target`` is the request target as sent (absolute URL or host:port)."""

    method: str
    target: str
    headers: dict[str, str]
    status: int


class RecordingProxy:
    """An HTTP/1.1 forward proxy on loopback: absolute-form ``http://`` requests are forwarded (with a ``Via``
    header) and ``CONNECT`` opens a byte tunnel. It only ever connects to loopback, and records everything."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[ProxiedRequest] = []
        self._tunnelled_up = 0
        self._sockets: set[socket.socket] = set()
        self._stop = threading.Event()
        self._httpd = _ProxyHTTPServer(("127.0.0.1", 0), _ProxyHandler)
        self._httpd.proxy = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": _POLL_S}, name="test-proxy", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def records(self) -> list[ProxiedRequest]:
        with self._lock:
            return list(self._records)

    @property
    def tunnelled_up(self) -> int:
        """Bytes relayed from clients to targets through CONNECT tunnels."""
        with self._lock:
            return self._tunnelled_up

    def stop(self) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(2)

    def _record(self, record: ProxiedRequest) -> None:
        with self._lock:
            self._records.append(record)

    def _track(self, sock: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._sockets.add(sock)
            else:
                self._sockets.discard(sock)

    def _count_up(self, n: int) -> None:
        with self._lock:
            self._tunnelled_up += n


class _ProxyHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    proxy: RecordingProxy

    def server_bind(self) -> None:
        # Skip HTTPServer's getfqdn(), which can stall without DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", int(self.server_address[1])


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.server.proxy._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.proxy._track(self.connection, add=False)

    def handle(self) -> None:
        with contextlib.suppress(OSError):
            super().handle()

    def _headers(self) -> dict[str, str]:
        return {name.lower(): value for name, value in self.headers.items()}

    def _refuse(self, status: int, reason: str) -> None:
        self.server.proxy._record(ProxiedRequest(self.command, self.path, self._headers(), status))
        body = reason.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while size := int(self.rfile.readline().split(b";", 1)[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _forward(self) -> None:
        body = self._read_body()
        parts = urlsplit(self.path)
        # Origin-form ("/v1/ingest") is what a server gets, not a proxy; "https://..." cannot be forwarded in clear.
        if parts.scheme != "http" or not parts.hostname:
            self._refuse(400, "a forward proxy needs an absolute http:// URL")
            return
        if parts.hostname not in _LOOPBACK_HOSTS:
            self._refuse(403, "this test proxy only reaches loopback")
            return
        headers = {name: value for name, value in self.headers.items() if name.lower() not in _HOP_BY_HOP}
        headers["Via"] = VIA
        headers["Content-Length"] = str(len(body))
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        upstream = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=_PROXY_UPSTREAM_TIMEOUT_S)
        try:
            upstream.request(self.command, path or "/", body=body, headers=headers)
            response = upstream.getresponse()
            payload = response.read()
            status, reason, reply_headers = response.status, response.reason, response.getheaders()
        except OSError:
            self._refuse(502, "upstream unreachable")
            return
        finally:
            upstream.close()
        self.server.proxy._record(ProxiedRequest(self.command, self.path, self._headers(), status))
        self.send_response(status, reason)
        for name, value in reply_headers:
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

    def do_CONNECT(self) -> None:
        host, _, port = self.path.rpartition(":")
        if host not in _LOOPBACK_HOSTS or not port.isdigit():
            self._refuse(403, "this test proxy only tunnels to loopback")
            return
        try:
            upstream = socket.create_connection((host, int(port)), timeout=_PROXY_UPSTREAM_TIMEOUT_S)
        except OSError:
            self._refuse(502, "upstream unreachable")
            return
        proxy = self.server.proxy
        proxy._record(ProxiedRequest("CONNECT", self.path, self._headers(), 200))
        proxy._track(upstream, add=True)
        try:
            self.send_response(200, "Connection established")
            self.end_headers()
            self.wfile.flush()
            self._pump(self.connection, upstream)
        finally:
            proxy._track(upstream, add=False)
            upstream.close()
            self.close_connection = True

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        # The client sends nothing after CONNECT until it sees our 200, so rfile has buffered nothing: raw recv is safe.
        client.settimeout(None)
        upstream.settimeout(None)
        proxy = self.server.proxy
        while not proxy._stop.is_set():
            readable, _, _ = select.select([client, upstream], [], [], _POLL_S)
            for sock in readable:
                data = sock.recv(_TUNNEL_CHUNK)
                if not data:
                    return
                if sock is client:
                    proxy._count_up(len(data))
                    upstream.sendall(data)
                else:
                    client.sendall(data)


# -- fixtures --------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_ambient_proxy_or_trust(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*PROXY_VARIABLES, *_TRUST_VARIABLES):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA) -> Iterator[str]:
    with ca.cert_pem.tempfile() as path:
        yield str(path)


def _server_context(ca: trustme.CA, *hosts: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*hosts).configure_cert(context)
    return context


@pytest.fixture
def tls_server(ca: trustme.CA) -> Iterator[LocalIngestServer]:
    with LocalIngestServer(ssl_context=_server_context(ca, "127.0.0.1")) as srv:
        yield srv


@pytest.fixture
def proxy() -> Iterator[RecordingProxy]:
    recording = RecordingProxy()
    yield recording
    recording.stop()


@pytest.fixture
def exporters(exporter_for: Callable[..., LumiqTraceSpanExporter]) -> Callable[..., LumiqTraceSpanExporter]:
    """conftest's ``exporter_for`` with this file's export timeout."""
    return functools.partial(exporter_for, timeout=EXPORT_TIMEOUT_S)


def _ingest_posts(proxy: RecordingProxy, server: LocalIngestServer) -> list[ProxiedRequest]:
    return [r for r in proxy.records if r.method == "POST" and r.target == server.ingest_url]


# -- TLS -------------------------------------------------------------------------------------------------------


def test_the_tls_server_speaks_https_only(tls_server: LocalIngestServer, ca_file: str) -> None:
    assert tls_server.base_url == f"https://127.0.0.1:{tls_server.port}"
    context = ssl.create_default_context(cafile=ca_file)
    connection = http.client.HTTPSConnection("127.0.0.1", tls_server.port, context=context, timeout=5)
    connection.request("GET", "/_test/stats")
    assert connection.getresponse().status == 200
    connection.close()
    plain = http.client.HTTPConnection("127.0.0.1", tls_server.port, timeout=5)
    with pytest.raises((OSError, http.client.HTTPException)):
        plain.request("GET", "/_test/stats")
        plain.getresponse()
    plain.close()


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_https_with_a_trusted_ca_delivers(
    tls_server: LocalIngestServer,
    ca_file: str,
    exporters: Callable[..., LumiqTraceSpanExporter],
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
) -> None:
    monkeypatch.setenv(variable, ca_file)
    exporter = exporters(tls_server)
    assert exporter.export(make_spans(3)) is SpanExportResult.SUCCESS
    assert len(tls_server.events()) == 3
    assert exporter.stats()["delivered"] == 3
    assert [r.headers["x-api-key"] for r in tls_server.ingest_requests()] == [tls_server.api_key]


def test_https_with_an_untrusted_certificate_fails_and_keeps_the_events(
    tls_server: LocalIngestServer,
    ca_file: str,
    exporters: Callable[..., LumiqTraceSpanExporter],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spans = make_spans(3)
    untrusting = exporters(tls_server, timeout=FAILING_TIMEOUT_S)
    assert untrusting.export(spans) is SpanExportResult.FAILURE
    # The handshake failed, so no request ever reached the server.
    assert tls_server.ingest_requests() == []
    assert tls_server.events() == []
    stats = untrusting.stats()
    assert stats["delivered"] == 0
    assert stats["buffered"] == 3
    assert not stats["dropped"]

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_file)
    trusting = exporters(tls_server)
    assert trusting.export(spans) is SpanExportResult.SUCCESS
    assert len(tls_server.events()) == 3


def test_https_checks_the_host_name_not_only_the_ca(
    ca: trustme.CA, ca_file: str, exporters: Callable[..., LumiqTraceSpanExporter], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Signed by the trusted CA, but for another name than the one the exporter connects to.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_file)
    with LocalIngestServer(ssl_context=_server_context(ca, "ingest.lumiqtrace.invalid")) as server:
        exporter = exporters(server, timeout=FAILING_TIMEOUT_S)
        assert exporter.export(make_spans(2)) is SpanExportResult.FAILURE
        assert server.ingest_requests() == []
        assert exporter.stats()["buffered"] == 2


# -- proxies ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_plain_http_goes_through_the_forwarding_proxy(
    server: LocalIngestServer,
    proxy: RecordingProxy,
    exporters: Callable[..., LumiqTraceSpanExporter],
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
) -> None:
    monkeypatch.setenv(variable, proxy.url)
    exporter = exporters(server)
    assert exporter.export(make_spans(3)) is SpanExportResult.SUCCESS
    assert len(server.events()) == 3

    posts = _ingest_posts(proxy, server)
    assert len(posts) == 1
    assert posts[0].status == 202
    assert posts[0].headers["x-api-key"] == server.api_key
    # Nothing reached the proxy in origin-form or as https://, and every request the server saw came through it.
    assert all(r.status < 400 for r in proxy.records)
    received = server.ingest_requests()
    assert len(received) == 1
    assert received[0].headers["via"] == VIA
    assert received[0].headers["x-api-key"] == server.api_key


def test_https_goes_through_a_connect_tunnel(
    tls_server: LocalIngestServer,
    ca_file: str,
    proxy: RecordingProxy,
    exporters: Callable[..., LumiqTraceSpanExporter],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_file)
    exporter = exporters(tls_server)
    assert exporter.export(make_spans(3)) is SpanExportResult.SUCCESS
    assert len(tls_server.events()) == 3

    records = proxy.records
    assert records, "the HTTPS request bypassed HTTPS_PROXY"
    # Only tunnels, all to the server: an https:// URL sent to the proxy in clear would show up as a POST here.
    assert {(r.method, r.target, r.status) for r in records} == {("CONNECT", f"127.0.0.1:{tls_server.port}", 200)}
    received = tls_server.ingest_requests()
    assert len(received) == 1
    assert "via" not in received[0].headers
    # The request itself (TLS records around it, so more than its body) travelled through the tunnel.
    assert proxy.tunnelled_up > len(received[0].raw_body)


def test_https_through_a_tunnel_still_verifies_the_certificate(
    tls_server: LocalIngestServer,
    proxy: RecordingProxy,
    exporters: Callable[..., LumiqTraceSpanExporter],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    exporter = exporters(tls_server, timeout=FAILING_TIMEOUT_S)
    assert exporter.export(make_spans(2)) is SpanExportResult.FAILURE
    assert [r.method for r in proxy.records][:1] == ["CONNECT"]
    assert tls_server.ingest_requests() == []
    assert exporter.stats()["buffered"] == 2


def test_https_proxy_variable_does_not_apply_to_plain_http(
    server: LocalIngestServer,
    proxy: RecordingProxy,
    exporters: Callable[..., LumiqTraceSpanExporter],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    exporter = exporters(server)
    assert exporter.export(make_spans(2)) is SpanExportResult.SUCCESS
    assert len(server.events()) == 2
    assert proxy.records == []


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "localhost,127.0.0.1", "*"])
def test_no_proxy_bypasses_the_proxy(
    server: LocalIngestServer,
    proxy: RecordingProxy,
    exporters: Callable[..., LumiqTraceSpanExporter],
    monkeypatch: pytest.MonkeyPatch,
    no_proxy: str,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", no_proxy)
    exporter = exporters(server)
    assert exporter.export(make_spans(2)) is SpanExportResult.SUCCESS
    assert len(server.events()) == 2
    assert proxy.records == []
    assert "via" not in server.ingest_requests()[0].headers


def test_a_ca_bundle_path_that_does_not_exist_is_named_in_the_warning(
    tls_server: LocalIngestServer,
    exporters: Callable[..., LumiqTraceSpanExporter],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    missing = str(tmp_path / "no-such-bundle.pem")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", missing)
    exporter = exporters(tls_server, timeout=FAILING_TIMEOUT_S)
    with caplog.at_level(logging.WARNING, logger="opentelemetry_exporter_lumiqtrace"):
        assert exporter.export(make_spans(2)) is SpanExportResult.FAILURE
    assert tls_server.ingest_requests() == []
    assert exporter.stats()["buffered"] == 2
    assert any(missing in record.getMessage() for record in caplog.records)


def _with_credentials(url: str) -> str:
    return url.replace("http://", "http://proxy-user:pr0xy-pass@", 1)


_PROXY_AUTHORIZATION = "Basic " + base64.b64encode(b"proxy-user:pr0xy-pass").decode()


def test_a_forwarding_proxy_gets_its_credentials_with_each_request(
    server: LocalIngestServer,
    proxy: RecordingProxy,
    exporters: Callable[..., LumiqTraceSpanExporter],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", _with_credentials(proxy.url))
    exporter = exporters(server)
    assert exporter.export(make_spans(2)) is SpanExportResult.SUCCESS
    assert exporter.export(make_spans(2)) is SpanExportResult.SUCCESS
    posts = _ingest_posts(proxy, server)
    assert [r.headers.get("proxy-authorization") for r in posts] == [_PROXY_AUTHORIZATION] * 2
    assert len(server.events()) == 4


def test_a_tunnel_sends_proxy_credentials_to_the_proxy_and_not_to_the_server(
    tls_server: LocalIngestServer,
    ca_file: str,
    proxy: RecordingProxy,
    exporters: Callable[..., LumiqTraceSpanExporter],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", _with_credentials(proxy.url))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_file)
    exporter = exporters(tls_server)
    assert exporter.export(make_spans(2)) is SpanExportResult.SUCCESS
    connects = [r for r in proxy.records if r.method == "CONNECT"]
    assert connects and all(r.headers.get("proxy-authorization") == _PROXY_AUTHORIZATION for r in connects)
    received = tls_server.ingest_requests()
    assert len(received) == 1 and "proxy-authorization" not in received[0].headers

# SPDX-License-Identifier: Apache-2.0
"""HTTP to LumiqTrace: one keep-alive session, answers turned into plain values, never an exception.

The transport knows nothing about spans or retry policy. It only posts a body and reports what came back.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
import requests.adapters
import urllib3
from opentelemetry import context as otel_context

from opentelemetry_exporter_lumiqtrace.version import __version__

_logger = logging.getLogger(__name__)

USER_AGENT = f"opentelemetry-exporter-lumiqtrace/{__version__} (Python; requests/{requests.__version__})"

_SUPPRESS_KEYS: tuple[str, ...] = tuple(
    key
    for key in (
        getattr(otel_context, "_SUPPRESS_INSTRUMENTATION_KEY", None),
        getattr(otel_context, "_SUPPRESS_HTTP_INSTRUMENTATION_KEY", None),
    )
    if key is not None
)


def suppressed_context() -> otel_context.Context:
    """A context in which OpenTelemetry instrumentations (requests, urllib3, ...) do not trace our own calls.

    Attached in every thread that makes a request, not only the batch processor's: an exporter whose HTTP calls
    are traced feeds its own spans back into itself forever.
    """
    ctx = otel_context.get_current()
    for key in _SUPPRESS_KEYS:
        ctx = otel_context.set_value(key, True, ctx)
    return ctx


@dataclass(frozen=True)
class Answer:
    """What one HTTP attempt produced. ``status`` is None when no HTTP answer arrived (``error`` says why)."""

    status: int | None
    body: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None
    timed_out: bool = False

    @property
    def message(self) -> str:
        """The server's ``{"error": ...}`` text, or a short description of the failure."""
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
    """POSTs bodies to ``{base_url}/v1/ingest`` over one keep-alive connection pool.

    requests decides how to reach the endpoint: its ``HTTPAdapter`` builds the urllib3 pool with requests' TLS
    settings (certifi or ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE``, hostname checks), its proxy manager for
    ``HTTP(S)_PROXY`` / ``NO_PROXY`` (CONNECT tunnels included) and its request target. Each POST then goes straight
    to that pool, as ``HTTPAdapter.send`` itself does, without the ``Session``/``Response`` layers around it (hooks,
    cookies, redirects, a ``Response`` object): those took half the CPU of a request, and an exporter posts five
    requests per batch of 512 spans. Redirects are not followed (an ingest POST is never redirected; following one
    would resend the key).

    Fork-safe: a child process gets a new pool on first use instead of sharing the parent's sockets.
    """

    def __init__(self, *, url: str, api_key: str, gzip_body: bool) -> None:
        self.url = url
        self._headers = {
            "x-api-key": api_key,
            "Content-Type": "application/x-ndjson",
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }
        if gzip_body:
            self._headers["Content-Encoding"] = "gzip"
        self._lock = threading.Lock()
        self._session: requests.Session | None = None
        self._route: _Route | None = None
        self._pid = os.getpid()
        # requests re-reads proxy variables, netrc and CA-bundle variables on every request when trust_env is on.
        # They are read once here instead: the same behaviour, paid once.
        self._proxies: dict[str, str] = requests.utils.get_environ_proxies(url)
        self._verify: str | bool = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True

    def __repr__(self) -> str:
        return f"IngestTransport(url={self.url!r})"

    def _get_route(self) -> _Route:
        with self._lock:
            route = self._route
            if route is None or self._pid != os.getpid():
                # After fork the inherited pool's sockets belong to the parent: abandon them without closing.
                session = requests.Session()
                session.trust_env = False
                session.headers.update(self._headers)
                request = session.prepare_request(requests.Request("POST", self.url))
                adapter = session.get_adapter(self.url)
                if not isinstance(adapter, requests.adapters.HTTPAdapter):  # pragma: no cover - never mounted here
                    raise TypeError(f"no HTTP adapter for {self.url!r}")
                pool = adapter.get_connection_with_tls_context(request, self._verify, proxies=self._proxies)
                # Also refuses a CA-bundle path that does not exist, with requests' own message.
                adapter.cert_verify(pool, self.url, self._verify, None)  # type: ignore[no-untyped-call]
                route = _Route(
                    pool=pool,
                    target=adapter.request_url(request, self._proxies),
                    headers=dict(request.headers),
                )
                self._session = session
                self._route = route
                self._pid = os.getpid()
            return route

    def after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._session = None
        self._route = None
        self._pid = os.getpid()

    def post(self, body: bytes, *, timeout: float) -> Answer:
        token = otel_context.attach(suppressed_context())
        try:
            route = self._get_route()
            headers = route.headers.copy()
            headers["Content-Length"] = str(len(body))
            seconds = max(0.001, timeout)
            response = route.pool.urlopen(
                "POST",
                route.target,
                body=body,
                headers=headers,
                retries=False,  # the delivery policy retries, within the export deadline
                redirect=False,
                assert_same_host=False,
                timeout=urllib3.Timeout(connect=seconds, read=seconds),
                preload_content=True,
                decode_content=True,
            )
        except urllib3.exceptions.ClosedPoolError as exc:
            with self._lock:  # the next attempt builds a new pool
                self._route = None
            return Answer(status=None, error=f"connection error: {type(exc).__name__}")
        except urllib3.exceptions.NewConnectionError as exc:  # a subclass of ConnectTimeoutError, but refused
            return Answer(status=None, error=f"connection error: {type(exc).__name__}")
        except urllib3.exceptions.TimeoutError as exc:
            return Answer(status=None, error=f"timed out: {type(exc).__name__}", timed_out=True)
        except (urllib3.exceptions.SSLError, urllib3.exceptions.ProxyError, OSError) as exc:
            # The reason is what the user must fix (an untrusted certificate, a proxy that refuses, a CA-bundle
            # path that does not exist): keep it.
            return Answer(status=None, error=f"connection error: {type(exc).__name__}: {exc}")
        except urllib3.exceptions.HTTPError as exc:
            return Answer(status=None, error=f"connection error: {type(exc).__name__}")
        except Exception as exc:  # never raise into the exporter, whatever the HTTP stack does
            return Answer(status=None, error=f"unexpected error: {type(exc).__name__}: {exc}")
        finally:
            otel_context.detach(token)
        return Answer(
            status=response.status,
            body=_json_body(response.data),
            headers={k.lower(): v for k, v in response.headers.items()},
        )

    def close(self) -> None:
        with self._lock:
            session, self._session, self._route = self._session, None, None
        if session is not None and self._pid == os.getpid():
            session.close()


@dataclass(frozen=True)
class _Route:
    """Where a POST goes: requests' pool for the endpoint (TLS and proxy applied), the request target, headers."""

    pool: Any
    target: str
    headers: dict[str, str]


def _json_body(data: bytes | None) -> Mapping[str, Any] | None:
    try:
        body = json.loads(data) if data else None
    except ValueError:
        return None
    return body if isinstance(body, dict) else None

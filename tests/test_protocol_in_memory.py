# SPDX-License-Identifier: Apache-2.0
"""``IngestProtocol``: the local server's protocol run in memory, without a socket (as a user's test can)."""

from __future__ import annotations

import gzip
import json
import threading
import time
from typing import Any

import requests

from opentelemetry_exporter_lumiqtrace.testing import (
    TEST_API_KEY,
    HttpRequest,
    HttpResponse,
    IngestProtocol,
    LocalIngestServer,
    Reply,
)
from tests.test_server import make_event

NDJSON_HEADERS = {"x-api-key": TEST_API_KEY, "Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def _ingest(protocol: IngestProtocol, events: list[dict[str, Any]], **headers: str) -> HttpResponse:
    body = gzip.compress(b"".join(json.dumps(e).encode() + b"\n" for e in events))
    response = protocol.handle(HttpRequest("POST", "/v1/ingest", {**NDJSON_HEADERS, **headers}, body))
    assert response is not None
    return response


def test_ingest_validation_dedup_and_answers_in_memory() -> None:
    protocol = IngestProtocol()
    first = make_event(model="gpt-4o")
    ok = _ingest(protocol, [first, first, make_event()])
    assert ok.status == 202 and ok.json() == {"accepted": 2, "cv": 0}
    assert ok.headers["Content-Type"] == "application/json"
    assert protocol.events()[0] == first and protocol.duplicates == 1
    bad = _ingest(protocol, [make_event(provider="mistral")])
    assert bad.status == 400 and "field 'provider' must be one of" in bad.json()["error"]
    assert _ingest(protocol, [make_event()], **{"x-api-key": "lqt_nope"}).status == 401
    assert len(protocol.ingest_requests()) == 3 and len(protocol.events()) == 2


def test_rate_limit_quota_and_config_in_memory() -> None:
    clock = FakeClock()
    protocol = IngestProtocol(clock=clock)
    protocol.set_rate_limit(1, window_s=60)
    assert _ingest(protocol, [make_event()]).status == 202
    limited = _ingest(protocol, [make_event()])
    assert limited.status == 429 and limited.headers["Retry-After"] == "60"
    clock.now += 60
    protocol.set_quota(1)
    spent = _ingest(protocol, [make_event()])
    assert spent.status == 429 and spent.json() == {"error": "Monthly quota exceeded"}
    cv = protocol.set_config(rules=[{"type": "sample_rate", "value": 0.5}])
    config = protocol.handle(HttpRequest("GET", "/v1/sdk/config?x=1", {"X-Api-Key": TEST_API_KEY}))
    assert config is not None and config.json() == {"cv": cv, "rules": [{"type": "sample_rate", "value": 0.5}]}


def test_fault_scripting_in_memory() -> None:
    protocol = IngestProtocol()
    protocol.script(Reply(status=503), Reply(drop_connection=True), Reply(hang=True))
    assert _ingest(protocol, [make_event()]).status == 503
    request = HttpRequest("POST", "/v1/ingest", NDJSON_HEADERS, gzip.compress(json.dumps(make_event()).encode()))
    assert protocol.handle(request) is None  # dropped: no response at all
    started = time.monotonic()
    assert protocol.handle(request) is None  # a hang without a cancel event returns at once in memory
    assert time.monotonic() - started < 2.0
    cancel = threading.Event()
    cancel.set()
    protocol.script(Reply(delay_s=30))
    assert protocol.handle(request, cancel=cancel) is None  # a delay cut short by cancel
    assert protocol.events() == [] and [r.status for r in protocol.ingest_requests()] == [503, None, None, None]


def test_otlp_json_in_memory() -> None:
    protocol = IngestProtocol()
    payload = {
        "resourceSpans": [
            {"scopeSpans": [{"spans": [{"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "work"}]}]},
        ]
    }
    headers = {"x-api-key": TEST_API_KEY, "content-type": "application/json"}
    response = protocol.handle(HttpRequest("POST", "/v1/otel", headers, json.dumps(payload).encode()))
    assert response is not None and response.status == 202
    (event,) = protocol.events()
    assert (event["trace_id"], event["span_id"], event["operation"], event["provider"]) == (
        "ab" * 16,
        "cd" * 8,
        "work",
        "custom",
    )


def test_the_http_server_answers_exactly_what_the_protocol_answers() -> None:
    event = make_event()
    body = gzip.compress(json.dumps(event).encode() + b"\n")
    in_memory = IngestProtocol().handle(HttpRequest("POST", "/v1/ingest", NDJSON_HEADERS, body))
    with LocalIngestServer() as server:
        over_http = requests.post(server.ingest_url, data=body, headers=NDJSON_HEADERS, timeout=5)
    assert in_memory is not None
    assert (over_http.status_code, over_http.content) == (in_memory.status, in_memory.body)
    assert over_http.headers["Content-Type"] == in_memory.headers["Content-Type"]

# SPDX-License-Identifier: Apache-2.0
"""The local LumiqTrace ingest server, exercised over real HTTP on loopback."""

from __future__ import annotations

import gzip
import http.client
import json
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import requests

from opentelemetry_exporter_lumiqtrace.testing import TEST_API_KEY, LocalIngestServer, Reply

NDJSON = "application/x-ndjson"
OTHER_KEY = "lqt_" + "ab" * 32


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_event(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "span_id": uuid.uuid4().hex[:16],
        "timestamp": "2026-04-20T10:00:00.000Z",
        "provider": "openai",
    }
    event.update(changes)
    return event


def ndjson(events: Sequence[object]) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in events)


def post(
    server: LocalIngestServer,
    body: Sequence[object] | bytes,
    *,
    key: str | None = TEST_API_KEY,
    compress: bool = True,
    headers: dict[str, str] | None = None,
    session: requests.Session | None = None,
) -> requests.Response:
    data = body if isinstance(body, bytes) else ndjson(body)
    all_headers = {"Content-Type": NDJSON}
    if compress:
        data = gzip.compress(data)
        all_headers["Content-Encoding"] = "gzip"
    if key is not None:
        all_headers["x-api-key"] = key
    all_headers.update(headers or {})
    sender = session or requests
    return sender.post(server.base_url + "/v1/ingest", data=data, headers=all_headers, timeout=5)


@pytest.fixture
def server() -> Iterator[LocalIngestServer]:
    with LocalIngestServer() as srv:
        yield srv


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# -- success path ------------------------------------------------------------------------------------


def test_gzip_batch_is_accepted_with_202_accepted_and_cv(server: LocalIngestServer) -> None:
    events = [make_event(), make_event()]
    response = post(server, events)
    assert response.status_code == 202
    assert response.json() == {"accepted": 2, "cv": 0}
    assert response.headers["Content-Type"] == "application/json"
    assert server.events() == events


def test_plain_body_with_blank_lines_and_crlf_is_accepted(server: LocalIngestServer) -> None:
    first, second = make_event(), make_event()
    body = json.dumps(first).encode() + b"\r\n\n   \n" + json.dumps(second).encode()
    response = post(server, body, compress=False)
    assert response.status_code == 202
    assert response.json()["accepted"] == 2
    assert server.events() == [first, second]


def test_success_status_is_configurable() -> None:
    with LocalIngestServer(success_status=200) as srv:
        assert post(srv, [make_event()]).status_code == 200


def test_base_url_and_api_key(server: LocalIngestServer) -> None:
    assert server.base_url == f"http://127.0.0.1:{server.port}"
    assert server.api_key == TEST_API_KEY
    assert TEST_API_KEY.startswith("lqt_")
    assert len(TEST_API_KEY) == 68
    assert all(c in "0123456789abcdef" for c in TEST_API_KEY[4:])


def test_events_by_trace_and_copies(server: LocalIngestServer) -> None:
    a1, b1, a2 = make_event(trace_id="a"), make_event(trace_id="b"), make_event(trace_id="a")
    post(server, [a1, b1, a2])
    assert server.events_by_trace() == {"a": [a1, a2], "b": [b1]}
    server.events()[0]["trace_id"] = "mutated"
    assert server.events()[0]["trace_id"] == "a"


def test_recorded_request_fields(clock: FakeClock) -> None:
    with LocalIngestServer(clock=clock) as srv:
        event = make_event()
        post(srv, [event], headers={"User-Agent": "probe/1"})
        (recorded,) = srv.ingest_requests()
    assert recorded.method == "POST"
    assert recorded.path == "/v1/ingest"
    assert recorded.headers["user-agent"] == "probe/1"
    assert recorded.headers["x-api-key"] == TEST_API_KEY
    assert gzip.decompress(recorded.raw_body) == recorded.body == ndjson([event])
    assert recorded.events == [event]
    assert recorded.status == 202
    assert recorded.response == {"accepted": 1, "cv": 0}
    assert recorded.time == 1000.0


def test_chunked_request_body_is_read(server: LocalIngestServer) -> None:
    event = make_event()
    response = requests.post(
        server.base_url + "/v1/ingest",
        data=iter([json.dumps(event).encode(), b"\n"]),
        headers={"Content-Type": NDJSON, "x-api-key": TEST_API_KEY},
        timeout=5,
    )
    assert response.status_code == 202
    assert server.events() == [event]


def test_concurrent_requests_are_all_stored(server: LocalIngestServer) -> None:
    batches = [[make_event() for _ in range(10)] for _ in range(8)]
    statuses: list[int] = []
    threads = [threading.Thread(target=lambda b=b: statuses.append(post(server, b).status_code)) for b in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert statuses == [202] * 8
    assert len(server.events()) == 80


# -- auth ------------------------------------------------------------------------------------------


def test_missing_key_is_401(server: LocalIngestServer) -> None:
    response = post(server, [make_event()], key=None)
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid API key"}
    assert server.events() == []
    assert server.ingest_requests()[0].status == 401


def test_unknown_key_is_401(server: LocalIngestServer) -> None:
    response = post(server, [make_event()], key=OTHER_KEY)
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid API key"}


def test_revoked_key_is_401_and_add_key_restores_it(server: LocalIngestServer) -> None:
    server.revoke_key(TEST_API_KEY)
    assert post(server, [make_event()]).status_code == 401
    server.add_key(TEST_API_KEY)
    assert post(server, [make_event()]).status_code == 202


def test_forbidden_key_is_403(server: LocalIngestServer) -> None:
    server.forbid_key(TEST_API_KEY)
    response = post(server, [make_event()])
    assert response.status_code == 403
    assert response.json() == {"error": "Not a member of this organization"}
    assert server.events() == []


def test_constructor_keys_replace_the_test_key() -> None:
    with LocalIngestServer(api_keys={OTHER_KEY: "proj_other"}) as srv:
        assert srv.api_key == OTHER_KEY
        assert post(srv, [make_event()], key=TEST_API_KEY).status_code == 401
        assert post(srv, [make_event()], key=OTHER_KEY).status_code == 202
        assert len(srv.events(project="proj_other")) == 1


# -- content type and encoding ------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", ""])
def test_wrong_content_type_is_415(server: LocalIngestServer, content_type: str) -> None:
    response = post(server, [make_event()], headers={"Content-Type": content_type})
    assert response.status_code == 415
    assert response.json() == {"error": "Content-Type must be application/x-ndjson"}
    assert server.events() == []


def test_content_type_parameters_are_allowed(server: LocalIngestServer) -> None:
    response = post(server, [make_event()], headers={"Content-Type": "Application/X-NDJSON; charset=utf-8"})
    assert response.status_code == 202


def test_lenient_content_type() -> None:
    with LocalIngestServer(strict_content_type=False) as srv:
        assert post(srv, [make_event()], headers={"Content-Type": "text/plain"}).status_code == 202


def test_unknown_content_encoding_is_415(server: LocalIngestServer) -> None:
    response = post(server, [make_event()], compress=False, headers={"Content-Encoding": "br"})
    assert response.status_code == 415
    assert "Content-Encoding" in response.json()["error"]


def test_identity_content_encoding_is_accepted(server: LocalIngestServer) -> None:
    response = post(server, [make_event()], compress=False, headers={"Content-Encoding": "identity"})
    assert response.status_code == 202


def test_corrupt_gzip_is_400(server: LocalIngestServer) -> None:
    response = post(server, ndjson([make_event()]), compress=False, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 400
    assert response.json() == {"error": "Invalid gzip body"}
    assert server.ingest_requests()[0].events is None


# -- batch shape -----------------------------------------------------------------------------------


def test_more_than_100_events_is_400(server: LocalIngestServer) -> None:
    response = post(server, [make_event() for _ in range(101)])
    assert response.status_code == 400
    assert response.json() == {"error": "Max 100 events per batch"}
    assert server.events() == []
    assert post(server, [make_event() for _ in range(100)]).json()["accepted"] == 100


@pytest.mark.parametrize(
    ("bad_line", "why"),
    [(b"{not json", "syntax"), (b"[1, 2]", "array"), (b'"text"', "string"), (b'{"cost_usd": NaN}', "NaN")],
)
def test_invalid_json_line_is_400_with_line_number(server: LocalIngestServer, bad_line: bytes, why: str) -> None:
    body = ndjson([make_event(), make_event()]) + bad_line + b"\n" + ndjson([make_event()])
    response = post(server, body)
    assert response.status_code == 400, why
    assert response.json() == {"error": "Invalid JSON at line 3"}
    assert server.events() == []
    assert server.ingest_requests()[0].events is None


def test_empty_batch_is_400(server: LocalIngestServer) -> None:
    for body in (b"", b"\n\n"):
        response = post(server, body)
        assert response.status_code == 400
        assert response.json() == {"error": "Empty batch"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event_id", "not-a-uuid"),
        ("trace_id", ""),
        ("span_id", 7),
        ("timestamp", "2026-04-20T10:00:00Z"),
        ("provider", "groq"),
        ("operation", "completion"),
        ("span_kind", "chain"),
        ("latency_ms", 1.5),
        ("input_tokens", True),
        ("cost_usd", -1),
        ("status", "ok"),
        ("error_message", "e" * 501),
        ("stream", "yes"),
        ("prompt_hash", "xyz"),
        ("tags", {"a": 1}),
        ("model", None),
    ],
)
def test_invalid_field_rejects_the_whole_batch(server: LocalIngestServer, field: str, value: object) -> None:
    response = post(server, [make_event(), make_event(**{field: value})])
    assert response.status_code == 400
    message = response.json()["error"]
    assert message.startswith("Invalid event at line 2: ")
    assert f"'{field}'" in message
    assert server.events() == []


def test_missing_required_field_is_400(server: LocalIngestServer) -> None:
    event = make_event()
    del event["timestamp"]
    response = post(server, [event])
    assert response.json() == {"error": "Invalid event at line 1: missing required field 'timestamp'"}


def test_drop_line_mode_skips_invalid_lines() -> None:
    with LocalIngestServer(invalid_event_mode="drop_line") as srv:
        good1, good2 = make_event(), make_event()
        body = ndjson([good1, make_event(provider="groq")]) + b"{broken\n" + ndjson([good2])
        response = post(srv, body)
        assert response.status_code == 202
        assert response.json() == {"accepted": 2, "cv": 0}
        assert srv.events() == [good1, good2]
        assert srv.dropped_invalid == 2


def test_invalid_mode_is_checked() -> None:
    with pytest.raises(ValueError):
        LocalIngestServer(invalid_event_mode="ignore")  # type: ignore[arg-type]


# -- dedup -----------------------------------------------------------------------------------------


def test_dedup_by_event_id_first_write_wins(server: LocalIngestServer) -> None:
    event = make_event(model="first")
    assert post(server, [event]).json()["accepted"] == 1
    again = dict(event, model="second")
    response = post(server, [again, make_event()])
    assert response.json() == {"accepted": 1, "cv": 0}
    assert server.events()[0]["model"] == "first"
    assert len(server.events()) == 2
    assert server.duplicates == 1


def test_dedup_within_one_batch_and_case_insensitive(server: LocalIngestServer) -> None:
    event = make_event()
    upper = dict(event, event_id=event["event_id"].upper())
    assert post(server, [event, upper]).json()["accepted"] == 1
    assert server.duplicates == 1


def test_dedup_is_per_project(server: LocalIngestServer) -> None:
    server.add_key(OTHER_KEY, project="proj_other")
    event = make_event()
    assert post(server, [event]).json()["accepted"] == 1
    assert post(server, [event], key=OTHER_KEY).json()["accepted"] == 1
    assert len(server.events(project="proj_other")) == 1
    assert len(server.events()) == 2


# -- rate limit and quota --------------------------------------------------------------------------


def test_rate_limit_429_with_retry_after(clock: FakeClock) -> None:
    with LocalIngestServer(clock=clock) as srv:
        srv.set_rate_limit(requests=2, window_s=10.0)
        assert post(srv, [make_event()]).status_code == 202
        clock.advance(4.5)
        assert post(srv, [make_event()]).status_code == 202
        limited = post(srv, [make_event()])
        assert limited.status_code == 429
        assert limited.json() == {"error": "Rate limit exceeded"}
        assert limited.headers["Retry-After"] == "6"  # window ends 5.5 s later, rounded up
        clock.advance(5.4)
        assert post(srv, [make_event()]).headers["Retry-After"] == "1"  # at least 1
        # Another key has its own window.
        srv.add_key(OTHER_KEY)
        assert post(srv, [make_event()], key=OTHER_KEY).status_code == 202
        clock.advance(0.1)
        assert post(srv, [make_event()]).status_code == 202
        assert len(srv.events()) == 4


def test_rate_limit_default_is_1000_per_minute(clock: FakeClock) -> None:
    with LocalIngestServer(clock=clock) as srv, requests.Session() as session:
        srv.set_rate_limit(requests=1000, window_s=60.0)
        for _ in range(1000):
            clock.advance(0.01)
            assert post(srv, b"{}", compress=False, session=session).status_code == 400
        limited = post(srv, [make_event()], session=session)
        assert limited.status_code == 429
        assert limited.headers["Retry-After"] == "51"


def test_rate_limit_counts_only_authenticated_requests(clock: FakeClock) -> None:
    with LocalIngestServer(clock=clock) as srv:
        srv.set_rate_limit(requests=1, window_s=60.0)
        assert post(srv, [make_event()], key=OTHER_KEY).status_code == 401
        assert post(srv, [make_event()]).status_code == 202
        assert post(srv, [make_event()]).status_code == 429


def test_quota_429_without_retry_after(server: LocalIngestServer) -> None:
    server.set_quota(3)
    stored = [make_event(), make_event()]
    assert post(server, stored).json()["accepted"] == 2
    response = post(server, [make_event(), make_event()])
    assert response.status_code == 429
    assert response.json() == {"error": "Monthly quota exceeded"}
    assert "Retry-After" not in response.headers
    assert server.events() == stored
    # Duplicates do not count toward the quota; one more new event fits exactly.
    assert post(server, [*stored, make_event()]).json()["accepted"] == 1
    assert post(server, [make_event()]).status_code == 429
    server.set_quota(None)
    assert post(server, [make_event()]).status_code == 202


# -- keep-alive ------------------------------------------------------------------------------------


def test_keep_alive_serves_many_requests_on_one_connection(server: LocalIngestServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        sockets = set()
        for i in range(25):
            body = gzip.compress(ndjson([make_event()]))
            headers = {"Content-Type": NDJSON, "Content-Encoding": "gzip", "x-api-key": TEST_API_KEY}
            if i % 5 == 0:
                headers["x-api-key"] = OTHER_KEY  # error answers must keep the connection usable too
            conn.request("POST", "/v1/ingest", body=body, headers=headers)
            response = conn.getresponse()
            payload = json.loads(response.read())
            assert response.status in (202, 401), payload
            assert response.getheader("Content-Length") is not None
            sockets.add(id(conn.sock))
        conn.request("GET", "/_test/stats")
        stats = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    assert len(sockets) == 1
    assert stats["requests"] == 25
    assert stats["by_status"] == {"202": 20, "401": 5}


# -- fault injection -------------------------------------------------------------------------------


def test_scripted_error_replies_are_consumed_in_order(server: LocalIngestServer) -> None:
    server.script(
        Reply(500),
        Reply(429, headers={"Retry-After": "3"}),
        Reply(400, body={"error": "custom"}),
        Reply(502, body=b"<html>bad gateway</html>", headers={"Content-Type": "text/html"}),
    )
    event = make_event()
    first = post(server, [event])
    assert (first.status_code, first.json()) == (500, {"error": "Internal Server Error"})
    second = post(server, [event])
    assert second.status_code == 429
    assert second.json() == {"error": "Rate limit exceeded"}
    assert second.headers["Retry-After"] == "3"
    assert post(server, [event]).json() == {"error": "custom"}
    fourth = post(server, [event])
    assert (fourth.status_code, fourth.text, fourth.headers["Content-Type"]) == (
        502,
        "<html>bad gateway</html>",
        "text/html",
    )
    assert server.events() == []
    assert post(server, [event]).status_code == 202
    assert [r.status for r in server.ingest_requests()] == [500, 429, 400, 502, 202]
    assert server.ingest_requests()[0].events == [event]


def test_scripted_2xx_without_body_processes_normally(server: LocalIngestServer) -> None:
    server.script(Reply(200, headers={"X-Probe": "1"}))
    response = post(server, [make_event()])
    assert response.status_code == 200
    assert response.json() == {"accepted": 1, "cv": 0}
    assert response.headers["X-Probe"] == "1"
    assert len(server.events()) == 1


def test_scripted_2xx_with_body_stores_nothing(server: LocalIngestServer) -> None:
    server.script(Reply(202, body={"accepted": 99, "cv": 5}))
    assert post(server, [make_event()]).json() == {"accepted": 99, "cv": 5}
    assert server.events() == []


def test_drop_connection_gives_a_connection_error(server: LocalIngestServer) -> None:
    server.script(Reply(drop_connection=True))
    with requests.Session() as session:
        with pytest.raises(requests.ConnectionError):
            post(server, [make_event()], session=session)
        # The client can reconnect and the next request is processed normally.
        assert post(server, [make_event()], session=session).status_code == 202
    assert [r.status for r in server.ingest_requests()] == [None, 202]
    assert server.stats()["by_status"] == {"dropped": 1, "202": 1}


def test_delay_then_answer_and_read_timeout(server: LocalIngestServer) -> None:
    server.script(Reply(200, delay_s=0.3), Reply(500, delay_s=2.0))
    started = time.monotonic()
    assert post(server, [make_event()]).status_code == 200
    assert time.monotonic() - started >= 0.3
    with pytest.raises(requests.ReadTimeout):
        requests.post(
            server.base_url + "/v1/ingest",
            data=ndjson([make_event()]),
            headers={"Content-Type": NDJSON, "x-api-key": TEST_API_KEY},
            timeout=0.2,
        )


def test_stop_cuts_delay_and_hang_short() -> None:
    srv = LocalIngestServer().start()
    srv.script(Reply(500, delay_s=30.0), Reply(hang=True))
    errors: list[type[BaseException]] = []

    def call() -> None:
        try:
            post(srv, [make_event()])
        except requests.RequestException as exc:
            errors.append(type(exc))

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    assert srv.wait_for_requests(1, timeout=2.0)  # the hang is recorded as soon as it starts
    time.sleep(0.1)
    started = time.monotonic()
    srv.stop()
    for thread in threads:
        thread.join(5)
    assert time.monotonic() - started < 2.5
    assert errors == [requests.ConnectionError, requests.ConnectionError]
    assert all(r.status is None for r in srv.ingest_requests())


def test_outage_on_and_off(server: LocalIngestServer) -> None:
    server.set_outage(True)
    response = post(server, [make_event()])
    assert response.status_code == 503
    assert response.json() == {"error": "Service unavailable"}
    assert post(server, [make_event()], key=None).status_code == 503  # before auth
    assert server.events() == []
    server.set_outage(False)
    assert post(server, [make_event()]).status_code == 202


def test_reply_validates_arguments() -> None:
    with pytest.raises(ValueError):
        Reply(status=42)
    with pytest.raises(ValueError):
        Reply(delay_s=-1)


# -- lifecycle -------------------------------------------------------------------------------------


def test_stop_and_start_reuse_the_port_and_keep_events() -> None:
    srv = LocalIngestServer()
    srv.start()
    try:
        port = srv.port
        event = make_event()
        with requests.Session() as session:
            assert post(srv, [event], session=session).status_code == 202
            srv.stop()
            assert not srv.running
            with pytest.raises(requests.ConnectionError):
                post(srv, [make_event()], session=session)
            srv.start()
            assert srv.port == port
            assert post(srv, [event], session=session).json()["accepted"] == 0
        assert srv.events() == [event]
    finally:
        srv.stop()


def test_stop_does_not_wait_for_idle_keep_alive_connections() -> None:
    srv = LocalIngestServer().start()
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    try:
        conn.request("GET", "/_test/stats")
        assert conn.getresponse().read()
        started = time.monotonic()
        srv.stop()
        assert time.monotonic() - started < 1.0
    finally:
        conn.close()


def test_start_and_stop_are_idempotent() -> None:
    srv = LocalIngestServer()
    srv.stop()
    assert srv.start() is srv.start()
    srv.stop()
    srv.stop()


def test_wait_for_events(server: LocalIngestServer) -> None:
    timer = threading.Timer(0.1, lambda: post(server, [make_event(), make_event()]))
    timer.start()
    try:
        assert server.wait_for_events(2, timeout=5.0)
    finally:
        timer.join()
    started = time.monotonic()
    assert not server.wait_for_events(3, timeout=0.1)
    assert time.monotonic() - started < 1.0


def test_reset_clears_state_but_keeps_keys(server: LocalIngestServer) -> None:
    server.add_key(OTHER_KEY)
    server.revoke_key(TEST_API_KEY)
    post(server, [make_event()], key=OTHER_KEY)
    server.set_outage(True)
    server.set_quota(0)
    server.script(Reply(500))
    server.reset()
    assert server.events() == []
    assert server.ingest_requests() == []
    response = post(server, [make_event()], key=OTHER_KEY)
    assert response.status_code == 202
    assert post(server, [make_event()]).status_code == 401


# -- config ----------------------------------------------------------------------------------------


def get_config(server: LocalIngestServer, key: str | None = TEST_API_KEY) -> requests.Response:
    headers = {"x-api-key": key} if key else {}
    return requests.get(server.base_url + "/v1/sdk/config", headers=headers, timeout=5)


def test_cv_and_sdk_config(server: LocalIngestServer) -> None:
    assert server.cv == 0
    assert get_config(server).json() == {"cv": 0, "rules": []}
    rules = [{"type": "sample_rate", "value": 0.25}]
    assert server.set_config(rules=rules) == 1
    assert post(server, [make_event()]).json()["cv"] == 1
    assert get_config(server).json() == {"cv": 1, "rules": rules}
    assert server.bump_cv() == 2
    assert post(server, [make_event()]).json()["cv"] == 2
    requests_seen = server.config_requests()
    assert [r.status for r in requests_seen] == [200, 200]
    assert requests_seen[1].response == {"cv": 1, "rules": rules}
    assert requests_seen[0].headers["x-api-key"] == TEST_API_KEY


def test_sdk_config_needs_a_valid_key(server: LocalIngestServer) -> None:
    assert get_config(server, key=None).status_code == 401
    assert get_config(server, key=OTHER_KEY).json() == {"error": "Invalid API key"}
    server.forbid_key(TEST_API_KEY)
    assert get_config(server).status_code == 403
    assert [r.status for r in server.config_requests()] == [401, 401, 403]


def test_sdk_config_raw_body(server: LocalIngestServer) -> None:
    assert server.set_config_body(b"garbage{") == 1
    response = get_config(server)
    assert (response.status_code, response.content) == (200, b"garbage{")
    server.set_config_body(b'{"error": "boom"}', status=500)
    assert get_config(server).status_code == 500
    server.set_config(rules=[])
    assert get_config(server).json() == {"cv": 3, "rules": []}


# -- other endpoints -------------------------------------------------------------------------------


def test_test_endpoints_and_404(server: LocalIngestServer) -> None:
    event = make_event()
    post(server, [event])
    post(server, [event])
    post(server, [make_event()], key=None)
    assert requests.get(server.base_url + "/_test/events", timeout=5).json() == {"events": [event]}
    stats = requests.get(server.base_url + "/_test/stats", timeout=5).json()
    assert stats["requests"] == 3
    assert stats["accepted"] == 1
    assert stats["duplicates"] == 1
    assert stats["by_status"] == {"202": 2, "401": 1}
    for method, path in [("GET", "/v1/ingest"), ("GET", "/nope"), ("GET", "/v1/otel"), ("DELETE", "/_test/events")]:
        response = requests.request(method, server.base_url + path, timeout=5)
        assert response.status_code == 404
        assert response.json() == {"error": "Not found"}


# -- pytest fixture --------------------------------------------------------------------------------


def test_pytest_plugin_is_registered(request: pytest.FixtureRequest) -> None:
    assert request.config.pluginmanager.has_plugin("lumiqtrace")


def test_lumiqtrace_server_fixture(lumiqtrace_server: LocalIngestServer) -> None:
    assert lumiqtrace_server.running
    assert post(lumiqtrace_server, [make_event()]).status_code == 202
    assert lumiqtrace_server.wait_for_events(1, timeout=1.0)


def test_lumiqtrace_env_fixture(lumiqtrace_env: LocalIngestServer) -> None:
    import os

    assert os.environ["LUMIQTRACE_BASE_URL"] == lumiqtrace_env.base_url
    assert os.environ["LUMIQTRACE_API_KEY"] == lumiqtrace_env.api_key


# -- CLI -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_logs_and_stops_on_signal(stop_signal: signal.Signals) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "opentelemetry_exporter_lumiqtrace.testing", "--port", "0", "--success-status", "200"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Never let a stuck child hang the test run.
    watchdog = threading.Timer(20.0, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        match = re.search(
            r"LUMIQTRACE_BASE_URL=(http://127\.0\.0\.1:\d+) LUMIQTRACE_API_KEY=(lqt_[0-9a-f]{64})", banner
        )
        assert match, banner
        base_url, key = match.groups()
        assert key == TEST_API_KEY
        response = requests.post(
            base_url + "/v1/ingest",
            data=gzip.compress(ndjson([make_event(), make_event()])),
            headers={"Content-Type": NDJSON, "Content-Encoding": "gzip", "x-api-key": key},
            timeout=5,
        )
        assert response.status_code == 200
        assert response.json() == {"accepted": 2, "cv": 0}
        log_line = proc.stdout.readline()
        assert "POST /v1/ingest -> 200 events=2 accepted=2" in log_line
        proc.send_signal(stop_signal)
        out, err = proc.communicate(timeout=10)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "stopped: 1 ingest requests, 2 events accepted" in out


def test_cli_custom_api_key() -> None:
    from opentelemetry_exporter_lumiqtrace.testing.__main__ import _parse_args

    args = _parse_args(["--port", "0", "--api-key", OTHER_KEY, "--host", "127.0.0.1"])
    assert (args.port, args.api_key, args.success_status) == (0, OTHER_KEY, 202)

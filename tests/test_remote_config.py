# SPDX-License-Identifier: Apache-2.0
from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.context import _SUPPRESS_HTTP_INSTRUMENTATION_KEY, _SUPPRESS_INSTRUMENTATION_KEY, get_value

from opentelemetry_exporter_lumiqtrace.remote_config import ConfigUpdate, RemoteConfigPoller, parse_config
from opentelemetry_exporter_lumiqtrace.testing import LocalIngestServer

_USER_AGENT = "opentelemetry-exporter-lumiqtrace-test/0"


def _snapshot(**fields: Any) -> ConfigUpdate:
    """A parsed document: the whole config, so rules it does not list mean "off" (no kill switch, no remote keys)."""
    fields.setdefault("disable_tracing", False)
    fields.setdefault("pii_redact_keys", ())
    return ConfigUpdate(**fields)


def _doc(*rules: Any, cv: Any = 7) -> bytes:
    return json.dumps({"cv": cv, "rules": list(rules)}).encode()


# ---------------------------------------------------------------------------------------------------------------
# parse_config


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (_doc(), _snapshot(cv=7)),
        (_doc({"type": "sample_rate", "value": 0.1}), _snapshot(cv=7, sample_rate=0.1)),
        (_doc({"type": "sample_rate", "value": 0}), _snapshot(cv=7, sample_rate=0.0)),
        (_doc({"type": "sample_rate", "rate": "0.5"}), _snapshot(cv=7, sample_rate=0.5)),
        (_doc({"type": "disable_tracing", "value": True}), _snapshot(cv=7, disable_tracing=True)),
        (_doc({"type": "disable_tracing", "value": False}), _snapshot(cv=7)),
        (_doc({"type": "disable_tracing", "enabled": True}), _snapshot(cv=7, disable_tracing=True)),
        (_doc({"type": "disable_tracing"}), _snapshot(cv=7, disable_tracing=True)),
        (
            _doc({"type": "pii_redact_keys", "value": ["k1", "k2"]}),
            _snapshot(cv=7, pii_redact_keys=("k1", "k2")),
        ),
        (
            _doc({"type": "pii_redact_keys", "keys": ["a", "b"]}, {"type": "pii_redact_keys", "value": ["b", "c"]}),
            _snapshot(cv=7, pii_redact_keys=("a", "b", "c")),
        ),
        (
            _doc({"type": "pii_redact_keys", "value": "a, b,"}),
            _snapshot(cv=7, pii_redact_keys=("a", "b")),
        ),
        (_doc({"type": "log_level", "value": "debug"}), _snapshot(cv=7, log_level="debug")),
        (_doc({"type": "log_level", "level": "WARN"}), _snapshot(cv=7, log_level="warning")),
        (
            _doc(
                {"type": "sample_rate", "value": 0.1},
                {"type": "disable_tracing", "value": True},
                {"type": "pii_redact_keys", "value": ["k1", "k2"]},
                {"type": "log_level", "value": "debug"},
            ),
            _snapshot(cv=7, sample_rate=0.1, disable_tracing=True, pii_redact_keys=("k1", "k2"), log_level="debug"),
        ),
        # Rules an exporter has no use for are ignored, the rest still applies.
        (
            _doc(
                {"type": "model_override", "from": "gpt-4o", "to": "gpt-4o-mini"},
                {"type": "guardrail_enable", "value": True},
                {"type": "some_future_rule", "value": 1},
                {"type": "sample_rate", "value": 0.2},
            ),
            _snapshot(cv=7, sample_rate=0.2),
        ),
        # A rule switched off is as good as absent.
        (_doc({"type": "sample_rate", "value": 0.2, "enabled": False}), _snapshot(cv=7)),
        # Rules as a mapping, and no cv at all.
        (b'{"rules": {"sample_rate": 0.3}}', _snapshot(sample_rate=0.3)),
        (b'{"cv": "12", "rules": []}', _snapshot(cv=12)),
    ],
)
def test_parse_config_good(body: bytes, expected: ConfigUpdate) -> None:
    assert parse_config(body) == expected


@pytest.mark.parametrize(
    "rule",
    [
        {"type": "sample_rate", "value": 1.5},
        {"type": "sample_rate", "value": -0.1},
        {"type": "sample_rate", "value": True},
        {"type": "sample_rate", "value": "lots"},
        {"type": "sample_rate", "value": None},
        {"type": "sample_rate"},
        {"type": "disable_tracing", "value": "maybe"},
        {"type": "disable_tracing", "value": 1},
        {"type": "pii_redact_keys", "value": [1, 2]},
        {"type": "pii_redact_keys", "value": {"k": 1}},
        {"type": "log_level", "value": "loud"},
        {"type": "log_level", "value": 10},
        {"value": 0.5},
        {"type": 3, "value": 0.5},
        "sample_rate",
        None,
    ],
)
def test_parse_config_skips_a_bad_rule_and_keeps_the_rest(rule: Any) -> None:
    body = _doc(rule, {"type": "log_level", "value": "info"})
    update = parse_config(body)
    assert update == _snapshot(cv=7, log_level="info")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"garbage",
        b"\xff\xfe\x00",
        b"[]",
        b"null",
        b"42",
        b'"config"',
        b'{"cv": 3, "rules": "sample_rate=0.1"}',
        b'{"cv": 3, "rules": 5}',
        b'{"cv": 3, "rules": [',
    ],
)
def test_parse_config_rejects_garbage(body: bytes) -> None:
    assert parse_config(body) is None


def test_parse_config_tolerates_a_bad_cv() -> None:
    assert parse_config(b'{"cv": true, "rules": []}') == _snapshot()
    assert parse_config(b'{"cv": 1.5, "rules": []}') == _snapshot()


# ---------------------------------------------------------------------------------------------------------------
# RemoteConfigPoller against the local server


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Updates:
    def __init__(self) -> None:
        self.items: list[ConfigUpdate] = []
        self.suppressed: list[tuple[object, object]] = []

    def __call__(self, update: ConfigUpdate) -> None:
        self.items.append(update)
        self.suppressed.append(
            (get_value(_SUPPRESS_INSTRUMENTATION_KEY), get_value(_SUPPRESS_HTTP_INSTRUMENTATION_KEY))
        )


@pytest.fixture
def server() -> Iterator[LocalIngestServer]:
    with LocalIngestServer() as srv:
        yield srv


def _poller(
    base_url: str, api_key: str, updates: _Updates, clock: _Clock, timeout_s: float = 2.0
) -> RemoteConfigPoller:
    return RemoteConfigPoller(
        base_url=base_url,
        api_key=api_key,
        timeout_s=timeout_s,
        on_update=updates,
        user_agent=_USER_AGENT,
        clock=clock,
    )


def test_one_fetch_per_cv_bump_and_update_delivered(server: LocalIngestServer) -> None:
    updates, clock = _Updates(), _Clock()
    poller = _poller(server.base_url, server.api_key, updates, clock)
    try:
        cv = server.set_config(rules=[{"type": "sample_rate", "value": 0.1}, {"type": "model_override", "to": "x"}])
        poller.observe_cv(cv)
        assert poller.wait_idle(5)
        assert len(server.config_requests()) == 1
        assert updates.items == [_snapshot(cv=cv, sample_rate=0.1)]
        assert poller.last_seen_cv == cv

        # The same or a lower cv fetches nothing.
        for seen in (cv, cv, cv - 1, 0):
            poller.observe_cv(seen)
            assert poller.wait_idle(5)
        assert len(server.config_requests()) == 1

        cv2 = server.set_config(rules=[{"type": "disable_tracing", "value": True}])
        poller.observe_cv(cv2)
        assert poller.wait_idle(5)
        assert len(server.config_requests()) == 1  # within the minimum interval of the first fetch
        clock.now += 30.0
        poller.observe_cv(cv2)
        assert poller.wait_idle(5)
        poller.observe_cv(cv2)
        assert poller.wait_idle(5)
        assert len(server.config_requests()) == 2
        assert updates.items[-1] == _snapshot(cv=cv2, disable_tracing=True)
    finally:
        poller.close()


def test_request_carries_key_and_user_agent_and_is_suppressed(server: LocalIngestServer) -> None:
    updates, clock = _Updates(), _Clock()
    poller = _poller(server.base_url + "/", server.api_key, updates, clock)
    try:
        poller.observe_cv(server.set_config(rules=[]))
        assert poller.wait_idle(5)
        (request,) = server.config_requests()
        assert request.method == "GET"
        assert request.path == "/v1/sdk/config"
        assert request.headers["x-api-key"] == server.api_key
        assert request.headers["user-agent"] == _USER_AGENT
        assert request.status == 200
        # on_update runs in the fetch thread, under suppressed instrumentation.
        assert updates.suppressed == [(True, True)]
    finally:
        poller.close()


def test_first_cv_seen_triggers_a_fetch_even_when_zero(server: LocalIngestServer) -> None:
    updates, clock = _Updates(), _Clock()
    poller = _poller(server.base_url, server.api_key, updates, clock)
    try:
        assert poller.last_seen_cv is None
        poller.observe_cv(server.cv)
        assert poller.wait_idle(5)
        assert len(server.config_requests()) == 1
        assert len(updates.items) == 1
    finally:
        poller.close()


def test_garbage_changes_nothing_and_retries_at_most_every_30_s(server: LocalIngestServer) -> None:
    updates, clock = _Updates(), _Clock()
    poller = _poller(server.base_url, server.api_key, updates, clock)
    try:
        cv = server.set_config_body(b"garbage")
        poller.observe_cv(cv)
        assert poller.wait_idle(5)
        assert updates.items == []
        assert poller.last_seen_cv is None
        assert len(server.config_requests()) == 1

        # Same cv again, too soon: no new request.
        clock.now += 29.0
        poller.observe_cv(cv)
        assert poller.wait_idle(5)
        assert len(server.config_requests()) == 1

        # After the retry interval the same cv is fetched again; now the server has a good config.
        server.set_config(rules=[{"type": "log_level", "value": "debug"}])
        clock.now += 1.5
        poller.observe_cv(cv)
        assert poller.wait_idle(5)
        assert len(server.config_requests()) == 2
        assert [u.log_level for u in updates.items] == ["debug"]
        assert poller.last_seen_cv == server.cv
    finally:
        poller.close()


def test_error_status_and_bad_key_change_nothing(server: LocalIngestServer) -> None:
    updates, clock = _Updates(), _Clock()
    poller = _poller(server.base_url, "lqt_" + "0" * 64, updates, clock)
    try:
        poller.observe_cv(server.set_config(rules=[{"type": "sample_rate", "value": 0.5}]))
        assert poller.wait_idle(5)
        assert [r.status for r in server.config_requests()] == [401]
        assert updates.items == []
        assert poller.last_seen_cv is None
    finally:
        poller.close()

    poller = _poller(server.base_url, server.api_key, updates, clock)
    try:
        poller.observe_cv(server.set_config_body(b'{"cv": 1, "rules": []}', status=503))
        assert poller.wait_idle(5)
        assert server.config_requests()[-1].status == 503
        assert updates.items == []
    finally:
        poller.close()


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_unreachable_url_does_not_raise_or_block() -> None:
    updates, clock = _Updates(), _Clock()
    poller = _poller(f"http://127.0.0.1:{_closed_port()}", "lqt_x", updates, clock, timeout_s=0.5)
    try:
        started = time.monotonic()
        poller.observe_cv(1)
        assert time.monotonic() - started < 0.2
        assert poller.wait_idle(5)
        assert updates.items == []
        assert poller.last_seen_cv is None
    finally:
        poller.close()


def test_a_hanging_server_neither_blocks_observe_cv_nor_stacks_fetches() -> None:
    # A listening socket that never accepts: connections complete in the backlog, answers never come.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    updates, clock = _Updates(), _Clock()
    poller = _poller(f"http://127.0.0.1:{listener.getsockname()[1]}", "lqt_x", updates, clock, timeout_s=0.4)
    try:
        started = time.monotonic()
        poller.observe_cv(1)
        poller.observe_cv(2)  # one fetch in flight already: ignored
        assert time.monotonic() - started < 0.2
        assert not poller.wait_idle(0.1)
        fetch_threads = [t for t in threading.enumerate() if t.name == "lumiqtrace-remote-config"]
        assert len(fetch_threads) == 1
        # The fetch gives up after timeout_s.
        assert poller.wait_idle(3)
        assert updates.items == []
    finally:
        poller.close()
        listener.close()


def test_close_stops_new_fetches(server: LocalIngestServer) -> None:
    updates, clock = _Updates(), _Clock()
    poller = _poller(server.base_url, server.api_key, updates, clock)
    poller.close()
    poller.observe_cv(server.set_config(rules=[]))
    assert poller.wait_idle(1)
    assert server.config_requests() == []
    assert updates.items == []


def test_on_update_failure_is_contained(server: LocalIngestServer, caplog: pytest.LogCaptureFixture) -> None:
    def explode(update: ConfigUpdate) -> None:
        raise RuntimeError("boom")

    poller = RemoteConfigPoller(
        base_url=server.base_url, api_key=server.api_key, timeout_s=2.0, on_update=explode, user_agent=_USER_AGENT
    )
    try:
        cv = server.set_config(rules=[])
        poller.observe_cv(cv)
        assert poller.wait_idle(5)
        # The config was fetched; a broken callback is not retried forever.
        assert poller.last_seen_cv == cv
        poller.observe_cv(cv)
        assert poller.wait_idle(5)
        assert len(server.config_requests()) == 1
        failures = [r for r in caplog.records if r.levelname == "WARNING" and r.exc_info]
        assert len(failures) == 1
        assert isinstance(failures[0].exc_info[1], RuntimeError)  # type: ignore[index]
    finally:
        poller.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_has_no_phantom_fetch_in_flight() -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    updates, clock = _Updates(), _Clock()
    poller = _poller(f"http://127.0.0.1:{listener.getsockname()[1]}", "lqt_x", updates, clock, timeout_s=0.4)
    try:
        poller.observe_cv(1)
        assert not poller.wait_idle(0.05)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                # The parent's fetch thread does not exist here: the child is idle and may fetch itself.
                idle_at_once = poller.wait_idle(0)
                poller.observe_cv(1)
                started = not poller.wait_idle(0.05)
                code = 0 if idle_at_once and started and poller.wait_idle(3) else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert poller.wait_idle(3)
    finally:
        poller.close()
        listener.close()

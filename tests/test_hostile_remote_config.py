# SPDX-License-Identifier: Apache-2.0
"""Remote config against hostile answers (issue 13 items 5 and 17): snapshots, caps, fetch pacing, a dripping
config endpoint, and polling while tracing is off. Real loopback HTTP throughout."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from opentelemetry_exporter_lumiqtrace import LumiqTraceSampler
from opentelemetry_exporter_lumiqtrace.remote_config import ConfigUpdate, RemoteConfigPoller, parse_config
from opentelemetry_exporter_lumiqtrace.sampling import shared_sampling_state
from opentelemetry_exporter_lumiqtrace.testing import LocalIngestServer

from .conftest import FakeClock, make_spans

USER_AGENT = "tests/1.0"


class Updates:
    def __init__(self) -> None:
        self.items: list[ConfigUpdate] = []

    def __call__(self, update: ConfigUpdate) -> None:
        self.items.append(update)


def poller_for(base_url: str, api_key: str, clock: FakeClock, updates: Updates, **kwargs: Any) -> RemoteConfigPoller:
    return RemoteConfigPoller(
        base_url=base_url,
        api_key=api_key,
        timeout_s=kwargs.pop("timeout_s", 2.0),
        on_update=updates,
        user_agent=USER_AGENT,
        clock=clock,
        **kwargs,
    )


def wait_until(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


# -- parsing: snapshots and caps ------------------------------------------------------------------------------------


def test_a_document_without_redaction_rules_clears_the_remote_keys() -> None:
    # Each answer is the project's whole config: keys it no longer lists must go.
    update = parse_config(b'{"cv": 3, "rules": [{"type": "sample_rate", "value": 0.5}]}')
    assert update is not None
    assert update.pii_redact_keys == ()


def test_a_huge_redaction_list_is_capped_and_cheap() -> None:
    keys = [f"key_{i}" for i in range(118_000)]
    body = json.dumps({"cv": 1, "rules": [{"type": "pii_redact_keys", "value": keys}]}).encode()
    started = time.monotonic()
    update = parse_config(body)
    elapsed = time.monotonic() - started
    assert update is not None and update.pii_redact_keys is not None
    assert update.pii_redact_keys == tuple(keys[: len(update.pii_redact_keys)])
    assert 0 < len(update.pii_redact_keys) <= 1024
    assert elapsed < 2.0  # 40 s of CPU before the cap


def test_too_many_rules_are_capped() -> None:
    rules = [{"type": "pii_redact_keys", "value": [f"k{i}"]} for i in range(20_000)]
    started = time.monotonic()
    update = parse_config(json.dumps({"cv": 1, "rules": rules}).encode())
    assert time.monotonic() - started < 2.0
    assert update is not None and update.pii_redact_keys is not None
    assert 0 < len(update.pii_redact_keys) <= 1024


def test_overlong_keys_are_skipped() -> None:
    body = json.dumps({"rules": [{"type": "pii_redact_keys", "value": ["ok", "x" * 100_000]}]}).encode()
    update = parse_config(body)
    assert update is not None and update.pii_redact_keys == ("ok",)


@pytest.mark.parametrize("body", [b"[" * 200_000, b'{"rules": ' + b"[" * 200_000])
def test_deeply_nested_json_is_not_a_config_and_does_not_raise(body: bytes) -> None:
    assert parse_config(body) is None


# -- the poller -----------------------------------------------------------------------------------------------------


@pytest.fixture
def config_server() -> Iterator[LocalIngestServer]:
    with LocalIngestServer() as srv:
        yield srv


def test_a_cv_rising_on_every_answer_fetches_at_most_once_per_interval(config_server: LocalIngestServer) -> None:
    clock, updates = FakeClock(), Updates()
    poller = poller_for(config_server.base_url, config_server.api_key, clock, updates)
    try:
        for _ in range(20):
            poller.observe_cv(config_server.bump_cv())
            assert poller.wait_idle(5)
            clock.now += 1.0
        assert len(config_server.config_requests()) == 1
        clock.now += 11.0  # 31 s after the first fetch
        latest = config_server.bump_cv()
        poller.observe_cv(latest)
        assert poller.wait_idle(5)
        assert len(config_server.config_requests()) == 2
        assert poller.last_seen_cv == latest
    finally:
        poller.close()


def test_an_oversized_config_body_is_refused(config_server: LocalIngestServer) -> None:
    clock, updates = FakeClock(), Updates()
    rules = [{"type": "pii_redact_keys", "value": [f"key_number_{i}" for i in range(12_000)]}]
    body = json.dumps({"cv": 1, "rules": rules}).encode()
    assert len(body) > 128 * 1024
    poller = poller_for(config_server.base_url, config_server.api_key, clock, updates)
    try:
        poller.observe_cv(config_server.set_config_body(body))
        assert poller.wait_idle(5)
        assert updates.items == []
    finally:
        poller.close()


class DrippingConfigServer:
    """Raw loopback HTTP: answers every request with headers, then one body byte every ``interval_s``, forever."""

    def __init__(self, interval_s: float = 0.05) -> None:
        self._interval_s = interval_s
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._stop = threading.Event()
        self.connections = 0
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _serve(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            self.connections += 1
            thread = threading.Thread(target=self._drip, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n")
                while not self._stop.wait(self._interval_s):
                    conn.sendall(b" ")
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        for thread in self._threads:
            thread.join(2)


def test_a_dripping_config_endpoint_does_not_keep_the_poller_in_flight_forever() -> None:
    dripping = DrippingConfigServer()
    clock, updates = FakeClock(), Updates()
    poller = poller_for(dripping.base_url, "lqt_x", clock, updates, timeout_s=0.5)
    try:
        poller.observe_cv(1)
        assert wait_until(lambda: dripping.connections == 1)
        # The client's whole-request deadline cuts the dripping answer at timeout_s: the poller is idle again.
        assert poller.wait_idle(1.5)
        # And a later change is fetched (after the minimum interval between fetches).
        clock.now += 31.0
        poller.observe_cv(2)
        assert wait_until(lambda: dripping.connections == 2)
        assert updates.items == []
    finally:
        poller.close()
        dripping.close()


def test_polls_neither_stack_on_a_hanging_fetch_nor_stop_for_good() -> None:
    dripping = DrippingConfigServer()
    clock, updates = FakeClock(), Updates()
    poll = [True]
    poller = poller_for(
        dripping.base_url, "lqt_x", clock, updates, timeout_s=0.5, poll_interval_s=0.05, should_poll=lambda: poll[0]
    )
    try:
        assert poller.polling
        assert wait_until(lambda: dripping.connections == 1)
        time.sleep(0.3)  # six poll ticks: the fetch in flight is not abandoned yet (by the poller's clock)
        assert dripping.connections == 1
        clock.now += 2.0  # past timeout_s plus the grace: the next tick starts over
        assert wait_until(lambda: dripping.connections == 2)
        poll[0] = False
        assert wait_until(lambda: not poller.polling)
    finally:
        poller.close()
        dripping.close()


# -- the exporter ---------------------------------------------------------------------------------------------------


def _tags_of(server: LocalIngestServer, name: str) -> dict[str, str]:
    event = next(e for e in reversed(server.events()) if e["tags"]["otel.span_name"] == name)
    tags: dict[str, str] = event["tags"]
    return tags


def _span_with_tags(exporter: Any, name: str, **tags: str) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span(name) as span:
        for key, value in tags.items():
            span.set_attribute(f"lumiqtrace.tags.{key}", value)


def test_remote_redaction_keys_are_a_snapshot_not_an_accumulation(
    server: LocalIngestServer, exporter_factory: Any
) -> None:
    clock = FakeClock()
    exporter = exporter_factory(_clock=clock, redact_keys=["local_ref"])
    server.set_config(rules=[{"type": "pii_redact_keys", "value": ["first_ref"]}])
    exporter.export(make_spans(1))
    assert exporter._poller.wait_idle(5)
    _span_with_tags(exporter, "one", local_ref="L", first_ref="F", second_ref="S")
    tags = _tags_of(server, "one")
    assert (tags["local_ref"], tags["first_ref"], tags["second_ref"]) == ("[REDACTED]", "[REDACTED]", "S")

    server.set_config(rules=[{"type": "pii_redact_keys", "value": ["second_ref"]}])
    clock.now += 120.0
    exporter.export(make_spans(1))
    assert exporter._poller.wait_idle(5)
    _span_with_tags(exporter, "two", local_ref="L", first_ref="F", second_ref="S")
    tags = _tags_of(server, "two")
    assert (tags["local_ref"], tags["first_ref"], tags["second_ref"]) == ("[REDACTED]", "F", "[REDACTED]")


@pytest.mark.parametrize(
    "stop_rule", [{"type": "disable_tracing", "value": True}, {"type": "sample_rate", "value": 0.0}]
)
def test_lifting_a_remote_stop_takes_effect_by_polling(
    server: LocalIngestServer, exporter_factory: Any, stop_rule: dict[str, Any]
) -> None:
    sampler = LumiqTraceSampler(rate=1.0)
    state = shared_sampling_state()
    exporter = exporter_factory(config_poll_interval=0.1)
    server.set_config(rules=[stop_rule])
    exporter.export(make_spans(2))
    assert wait_until(lambda: state.disabled or state.rate == 0.0)
    assert not sampler.should_sample(None, 1, "x").decision.is_sampled()
    # Nothing is sent now, so no cv comes back: only polling can see the lift.
    server.set_config(rules=[{"type": "sample_rate", "value": 1.0}])
    assert wait_until(lambda: not state.disabled and state.rate == 1.0, timeout=3.0)
    before = len(server.events())
    exporter.export(make_spans(3))
    assert len(server.events()) == before + 3


def test_config_poll_interval_has_an_environment_variable(
    server: LocalIngestServer, exporter_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LUMIQTRACE_CONFIG_POLL_INTERVAL", "0.1")
    state = shared_sampling_state()
    exporter = exporter_factory()
    server.set_config(rules=[{"type": "disable_tracing", "value": True}])
    exporter.export(make_spans(1))
    assert wait_until(lambda: state.disabled)
    server.set_config(rules=[])
    assert wait_until(lambda: not state.disabled, timeout=3.0)


def test_no_polling_while_tracing_runs(server: LocalIngestServer, exporter_factory: Any) -> None:
    exporter = exporter_factory(config_poll_interval=0.05)
    server.set_config(rules=[{"type": "sample_rate", "value": 0.5}])
    exporter.export(make_spans(1))
    assert exporter._poller.wait_idle(5)
    time.sleep(0.3)
    assert len(server.config_requests()) == 1

# SPDX-License-Identifier: Apache-2.0
"""examples/gunicorn: several workers, with and without --preload, every request's spans delivered exactly once."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest
import requests

from opentelemetry_exporter_lumiqtrace.testing import LocalIngestServer

from .test_integration_support import EXAMPLES, example_env, running, tree

sys.path.insert(0, str(EXAMPLES / "flask_app"))
import fake_llm  # the example's own fake LLM endpoint

WORKERS = 3
REQUESTS = 12


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("preload", [False, True], ids=["post_fork", "preload"])
def test_gunicorn_workers_each_send_their_requests_once(server: LocalIngestServer, preload: bool) -> None:
    llm = fake_llm.start()
    port = _free_port()
    gunicorn = Path(sys.executable).parent / "gunicorn"
    argv = [str(gunicorn), "-c", str(EXAMPLES / "gunicorn" / "gunicorn.conf.py")]
    argv += ["--chdir", str(EXAMPLES / "flask_app"), "--workers", str(WORKERS), "--bind", f"127.0.0.1:{port}"]
    argv += ["--preload", "app:app"] if preload else ["app:app"]
    env = example_env(server, LLM_BASE_URL=f"http://127.0.0.1:{llm.server_port}")
    try:
        with running(argv, ready=r"Booting worker", env=env) as app, requests.Session() as session:
            for _ in range(100):
                ready = sum("tracing to LumiqTrace set up" in line for line in app.lines)
                try:
                    if session.get(f"http://127.0.0.1:{port}/health", timeout=2).ok and ready:
                        break
                except (requests.ConnectionError, requests.Timeout):  # a worker still booting (importing) is slow
                    pass
                time.sleep(0.05)
            for n in range(REQUESTS):
                response = session.post(
                    f"http://127.0.0.1:{port}/chat",
                    json={"message": f"question {n}"},
                    headers={"X-User-Id": f"user_{n}", "X-Session-Id": "sess", "Connection": "close"},
                    timeout=10,
                )
                assert response.json() == {"answer": f"You said: question {n}"}
            # Health checks are traced too: 3 events per chat request plus one per /health answered.
            assert server.wait_for_events(3 * REQUESTS, timeout=10), len(server.events())
    finally:
        llm.shutdown()
        llm.server_close()
    assert sum("tracing to LumiqTrace set up" in line for line in app.lines) == WORKERS, app.output
    assert "Traceback" not in app.output, app.output
    chats = {
        trace_id: events
        for trace_id, events in server.events_by_trace().items()
        if any(e["tags"]["otel.span_name"] == "POST /chat" for e in events)
    }
    assert len(chats) == REQUESTS
    users = set()
    for events in chats.values():
        assert len(events) == 3
        spans = tree(events)
        assert spans["chat gpt-4o-mini"]["parent_span_id"] == spans["POST /chat"]["span_id"]
        users.add(spans["POST /chat"]["user_id"])
    assert users == {f"user_{n}" for n in range(REQUESTS)}
    assert server.duplicates == 0

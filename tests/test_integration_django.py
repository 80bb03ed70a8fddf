# SPDX-License-Identifier: Apache-2.0
"""examples/django_app under Django's own server: real requests, the trace tree and user/session ids read back."""

from __future__ import annotations

import signal
import socket
import sys

import requests

from opentelemetry_exporter_lumiqtrace.testing import LocalIngestServer

from .test_integration_support import EXAMPLES, example_env, running, tree


def test_django_app_exports_the_request_tree_with_ids(server: LocalIngestServer) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = [sys.executable, "app.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
    with running(
        argv,
        ready=r"Starting (WSGI )?development server",
        env=example_env(server),
        cwd=EXAMPLES / "django_app",
        stop_signal=signal.SIGINT,
    ) as app:
        for n in range(2):
            response = requests.get(
                f"http://127.0.0.1:{port}/chat",
                params={"message": f"q{n}"},
                headers={"X-User-Id": f"user_{n}", "X-Session-Id": f"sess_{n}"},
                timeout=10,
            )
            assert response.json() == {"answer": f"You said: q{n}"}
        assert server.wait_for_events(6, timeout=10), app.output
    assert "Traceback" not in app.output, app.output
    traces = server.events_by_trace()
    assert len(traces) == 2
    for events in traces.values():
        spans = tree(events)
        assert set(spans) == {"GET chat", "chat gpt-4o-mini", "POST"}, set(spans)
        root = spans["GET chat"]
        assert spans["chat gpt-4o-mini"]["parent_span_id"] == root["span_id"]
        assert spans["POST"]["parent_span_id"] == spans["chat gpt-4o-mini"]["span_id"]
        assert root["tags"]["otel.span_kind"] == "server"
        assert {(e["user_id"], e["session_id"]) for e in events} == {(root["user_id"], root["session_id"])}
        assert {e["tags"]["service.name"] for e in events} == {"django-chat"}
    assert {e["user_id"] for e in server.events()} == {"user_0", "user_1"}

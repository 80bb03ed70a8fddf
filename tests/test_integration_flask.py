# SPDX-License-Identifier: Apache-2.0
"""examples/flask_app as its README runs it: a real process, real HTTP requests, the trace read back."""

from __future__ import annotations

import sys
import time

import requests

from opentelemetry_exporter_lumiqtrace.testing import LocalIngestServer

from .test_integration_support import EXAMPLES, example_env, running, tree

APP = EXAMPLES / "flask_app" / "app.py"


def _chat(base: str, message: str, *, user: str, session: str) -> str:
    response = requests.post(
        f"{base}/chat",
        json={"message": message},
        headers={"X-User-Id": user, "X-Session-Id": session},
        timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["answer"])


def test_flask_app_exports_one_tree_per_request_with_user_and_session(server: LocalIngestServer) -> None:
    with running(
        [sys.executable, str(APP), "--port", "0"], ready=r"Serving on (http://\S+)", env=example_env(server)
    ) as app:
        base = app.match.group(1)
        assert _chat(base, "what is OTel", user="user_1", session="sess_a") == "You said: what is OTel"
        assert _chat(base, "and LumiqTrace", user="user_2", session="sess_b") == "You said: and LumiqTrace"
        assert server.wait_for_events(6, timeout=10), server.events()
    assert "Traceback" not in app.output and "Failed to detach" not in app.output, app.output

    traces = server.events_by_trace()
    assert len(traces) == 2
    seen_users = set()
    for events in traces.values():
        spans = tree(events)
        assert set(spans) == {"POST /chat", "chat gpt-4o-mini", "POST"}
        root, llm, http = spans["POST /chat"], spans["chat gpt-4o-mini"], spans["POST"]
        # The trace tree: request span -> LLM span -> the HTTP call to the LLM endpoint.
        assert "parent_span_id" not in root or root["parent_span_id"] is None
        assert llm["parent_span_id"] == root["span_id"]
        assert http["parent_span_id"] == llm["span_id"]
        assert root["tags"]["otel.span_kind"] == "server" and root["tags"]["http.route"] == "/chat"
        assert (llm["span_kind"], llm["model"], llm["provider"]) == ("llm", "gpt-4o-mini-2024-07-18", "openai")
        assert llm["input_tokens"] > 0 and llm["output_tokens"] > 0
        # user and session ids on every span, each request its own.
        assert len({(e.get("user_id"), e.get("session_id")) for e in events}) == 1
        seen_users.add((root["user_id"], root["session_id"]))
        assert {e["tags"]["service.name"] for e in events} == {"flask-chat"}
    assert seen_users == {("user_1", "sess_a"), ("user_2", "sess_b")}
    assert server.duplicates == 0


def test_flask_app_without_a_key_exports_to_its_own_local_server() -> None:
    with running([sys.executable, str(APP), "--port", "0"], ready=r"Serving on (http://\S+)", env=example_env()) as app:
        local = next(line for line in app.lines if "/_test/events" in line).split("see ")[1].strip()
        _chat(app.match.group(1), "hello", user="u", session="s")
        for _ in range(50):
            events = requests.get(local, timeout=5).json()["events"]
            if len(events) == 3:
                break
            time.sleep(0.1)
    assert {e["user_id"] for e in events} == {"u"}

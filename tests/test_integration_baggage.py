# SPDX-License-Identifier: Apache-2.0
"""examples/baggage: ids set once as baggage reach every span, across a propagated call, as LumiqTrace fields."""

from __future__ import annotations

import json
import subprocess
import sys

from opentelemetry_exporter_lumiqtrace.testing import LocalIngestServer

from .test_integration_support import EXAMPLES, example_env


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = EXAMPLES / "baggage" / "baggage_ids.py"
    return subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_as_the_readme_runs_it_every_event_carries_the_ids() -> None:
    done = _run(example_env())
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert {row["span"] for row in rows} == {"POST /ask", "POST /complete", "chat gpt-4o-mini"}
    assert {(row["user_id"], row["session_id"]) for row in rows} == {("user_4421", "sess_42")}
    assert len({row["trace_id"] for row in rows}) == 1  # one trace across both services


def test_to_a_given_server_with_services_and_parents(server: LocalIngestServer) -> None:
    done = _run(example_env(server))
    assert done.returncode == 0, done.stderr
    events = {e["tags"]["otel.span_name"]: e for e in server.events()}
    assert events["POST /complete"]["parent_span_id"] == events["POST /ask"]["span_id"]
    assert events["chat gpt-4o-mini"]["parent_span_id"] == events["POST /complete"]["span_id"]
    assert events["POST /ask"]["tags"]["service.name"] == "frontend"
    assert events["chat gpt-4o-mini"]["tags"]["service.name"] == "llm-service"
    assert all(e["user_id"] == "user_4421" and e["session_id"] == "sess_42" for e in events.values())

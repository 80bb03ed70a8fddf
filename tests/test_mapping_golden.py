# SPDX-License-Identifier: Apache-2.0
"""Golden tests: real OpenAI instrumentations -> LumiqTraceSpanExporter -> LocalIngestServer.

Each instrumentation drives the real ``openai`` client against a fake OpenAI endpoint on 127.0.0.1 in its own
subprocess (``tests/golden/drive_openai.py``), because the instrumentations patch the same client.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from opentelemetry_exporter_lumiqtrace.testing import validate_event

DRIVER = Path(__file__).parent / "golden" / "drive_openai.py"
SESSION = "sess-golden-1"

INSTRUMENTATIONS = {
    "official": "opentelemetry.instrumentation.genai.openai",
    "openinference": "openinference.instrumentation.openai",
    "openllmetry": "opentelemetry.instrumentation.openai",
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None and importlib.util.find_spec("openai") is not None
    except ModuleNotFoundError:
        return False


_cache: dict[str, list[dict[str, Any]]] = {}


def _events(which: str) -> list[dict[str, Any]]:
    if which not in _cache:
        if not _installed(INSTRUMENTATIONS[which]):
            pytest.skip(f"{INSTRUMENTATIONS[which]} (or openai) is not installed")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LUMIQTRACE_", "OTEL_"))}
        env["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "SPAN_ONLY"
        env["TRACELOOP_TRACE_CONTENT"] = "true"
        env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent.parent), env.get("PYTHONPATH", "")])
        done = subprocess.run(
            [sys.executable, str(DRIVER), which], capture_output=True, text=True, timeout=60, env=env, check=False
        )
        assert done.returncode == 0, done.stderr[-3000:]
        _cache[which] = json.loads(done.stdout)
    return _cache[which]


def _llm(events: list[dict[str, Any]], model_prefix: str) -> dict[str, Any]:
    """The one inference event of a scenario (told apart by model, requested or answered)."""
    found = [
        e
        for e in events
        if e.get("span_kind") == "llm"
        and (
            e.get("model", "").startswith(model_prefix)
            or e.get("tags", {}).get("gen_ai.request.model", "").startswith(model_prefix)
        )
    ]
    assert len(found) == 1, [e.get("model") for e in events]
    return found[0]


def _expected_cost(model: str, **usage: int) -> float | None:
    try:
        import genai_prices
    except ImportError:
        return None
    return float(genai_prices.calc_price(genai_prices.Usage(**usage), model, provider_id="openai").total_price)


PARAMS = pytest.mark.parametrize("which", sorted(INSTRUMENTATIONS))


@PARAMS
def test_every_event_is_valid(which: str) -> None:
    events = _events(which)
    assert events
    for event in events:
        assert validate_event(event) is None, (validate_event(event), event)
        assert event["environment"] == "test"
        assert event["tags"]["service.name"] == f"golden-{which}"


@PARAMS
def test_chat(which: str) -> None:
    event = _llm(_events(which), "gpt-4o-mini")
    assert event["provider"] == "openai"
    assert event["model"] == "gpt-4o-mini-2024-07-18"  # the response model beats the requested one
    assert (event["operation"], event["status"]) == ("chat", "success")
    # Only OpenLLMetry says the call did not stream (llm.is_streaming); the others say nothing, so no stream field.
    assert event.get("stream") is (False if which == "openllmetry" else None)
    assert (event["input_tokens"], event["output_tokens"], event["cached_tokens"]) == (12, 5, 4)
    assert event["finish_reason"] == "stop"
    assert event["session_id"] == SESSION
    assert "ttft_ms" not in event
    assert len(event["prompt_hash"]) == 64
    assert "prompt" not in event  # content is opt-in on the exporter side
    expected = _expected_cost("gpt-4o-mini", input_tokens=12, output_tokens=5, cache_read_tokens=4)
    if expected is not None:
        assert event["cost_usd"] == pytest.approx(expected)


@PARAMS
def test_streaming_chat(which: str) -> None:
    event = _llm(_events(which), "gpt-4o-2024")
    assert event["model"] == "gpt-4o-2024-08-06"
    assert event["stream"] is True
    assert event["status"] == "success"
    assert (event["input_tokens"], event["output_tokens"]) == (9, 2)
    # the fake endpoint waits 80 ms before the first chunk
    assert 60 <= event["ttft_ms"] <= event["latency_ms"]
    assert event["session_id"] == SESSION
    expected = _expected_cost("gpt-4o", input_tokens=9, output_tokens=2)
    if expected is not None:
        assert event["cost_usd"] == pytest.approx(expected)


@PARAMS
def test_embeddings(which: str) -> None:
    event = _llm(_events(which), "text-embedding-3-small")
    assert (event["provider"], event["operation"], event["status"]) == ("openai", "embed", "success")
    assert event["input_tokens"] == 6
    assert "output_tokens" not in event
    expected = _expected_cost("text-embedding-3-small", input_tokens=6)
    if expected is not None:
        assert event["cost_usd"] == pytest.approx(expected)


@PARAMS
def test_rate_limited(which: str) -> None:
    event = _llm(_events(which), "gpt-4.1-mini")
    assert event["status"] == "rate_limited"
    assert event["error_code"].endswith("RateLimitError")
    assert "429" in event["error_message"]
    assert "cost_usd" not in event
    assert "input_tokens" not in event


@PARAMS
def test_timeout(which: str) -> None:
    event = _llm(_events(which), "gpt-4.1-nano")
    assert event["status"] == "timeout"
    assert event["error_code"].endswith("APITimeoutError")
    assert "timed out" in event["error_message"]


@PARAMS
def test_prompt_hash_is_the_same_for_every_instrumentation(which: str) -> None:
    hashes = {_llm(_events(w), "gpt-4o-mini")["prompt_hash"] for w in (which, "openinference")}
    assert len(hashes) == 1


def test_official_agent_span_carries_the_conversation_and_is_not_priced() -> None:
    agents = [e for e in _events("official") if e["span_kind"] == "agent"]
    assert agents
    for event in agents:
        assert event["operation"] == "agent"
        assert event["session_id"] == SESSION
        assert "cost_usd" not in event
        assert event["tags"]["gen_ai.agent.name"] == "golden-agent"
    llm_ids = {e["parent_span_id"] for e in _events("official") if e["span_kind"] == "llm" and "parent_span_id" in e}
    assert llm_ids <= {e["span_id"] for e in agents}

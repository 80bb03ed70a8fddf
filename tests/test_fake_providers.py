# SPDX-License-Identifier: Apache-2.0
"""The fake provider endpoints the framework drivers run against (``tests/golden/fake_providers.py``).

The drivers exercise the paths the frameworks take; these tests pin the rest with the real ``openai`` client (test
extra) and plain HTTP for Anthropic: streamed tool calls, the Responses API stream, usage only when asked for,
error bodies and headers, unique response ids.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent / "golden"))
from fake_providers import ANTHROPIC_ERRORS, USAGE, FakeProviderServer

openai = pytest.importorskip("openai")

TOOLS: Any = [
    {
        "type": "function",
        "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {}}}},
    }
]
ASK: Any = [{"role": "user", "content": "Weather in Paris?"}]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviderServer]:
    with FakeProviderServer() as server:
        yield server


@pytest.fixture
def client(fake: FakeProviderServer) -> Any:
    return openai.OpenAI(api_key="sk-test", base_url=fake.openai_base_url, max_retries=0)


def test_chat_stream_with_a_tool_call_and_usage_only_when_asked(client: Any) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=ASK, tools=TOOLS, stream=True, stream_options={"include_usage": True}
        )
    )
    calls = [c.choices[0].delta.tool_calls for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert calls[0][0].function.name == "get_weather"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    usage = USAGE[("openai.chat", "stream_tool_call")]
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (
        usage.input_tokens,
        usage.output_tokens,
    )
    plain = list(client.chat.completions.create(model="gpt-4o-mini", messages=ASK, stream=True))
    assert all(c.usage is None for c in plain)


def test_chat_answers_after_the_tool_result_and_ids_are_unique(client: Any) -> None:
    first = client.chat.completions.create(model="gpt-4o-mini", messages=ASK, tools=TOOLS)
    message = first.choices[0].message
    history = [*ASK, message.model_dump(exclude_none=True)]
    history.append({"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "Sunny"})
    second = client.chat.completions.create(model="gpt-4o-mini", messages=history, tools=TOOLS)
    assert second.choices[0].message.content and second.choices[0].finish_reason == "stop"
    assert second.usage.prompt_tokens == USAGE[("openai.chat", "final")].input_tokens
    assert first.id != second.id
    assert second.model == "gpt-4o-mini-2024-07-18"


def test_responses_stream_and_tool_call(client: Any) -> None:
    events = list(client.responses.create(model="gpt-4o-mini", input="Say hello", stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "Hello"
    usage = USAGE[("openai.responses", "stream")]
    assert events[-1].response.usage.input_tokens == usage.input_tokens
    tools: Any = [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}]
    called = client.responses.create(model="gpt-4o-mini", input="Weather?", tools=tools)
    assert called.output[0].type == "function_call" and called.output[0].name == "get_weather"


def test_openai_errors(client: Any) -> None:
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "[429]"}])
    assert limited.value.response.headers["retry-after"] == "1"
    assert limited.value.body["code"] == "rate_limit_exceeded"
    with pytest.raises(openai.InternalServerError):
        client.responses.create(model="gpt-4o-mini", input="[500]")


def _anthropic(fake: FakeProviderServer, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        f"{fake.anthropic_base_url}/v1/messages",
        data=json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 64, **body}).encode(),
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.mark.parametrize("status", [429, 500, 529])
def test_anthropic_errors(fake: FakeProviderServer, status: int) -> None:
    code, headers, body = _anthropic(fake, {"messages": [{"role": "user", "content": f"[{status}]"}]})
    assert code == status
    error = json.loads(body)
    assert error["type"] == "error" and error["error"]["type"] == ANTHROPIC_ERRORS[status][0]
    assert error["request_id"] == headers["request-id"]
    assert ("retry-after" in headers) == (status == 429)


def test_anthropic_stream_with_tool_use(fake: FakeProviderServer) -> None:
    tools = [{"name": "get_weather", "input_schema": {"type": "object"}}]
    body = {"messages": [{"role": "user", "content": "Weather?"}], "tools": tools, "stream": True}
    code, headers, raw = _anthropic(fake, body)
    assert code == 200 and headers["Content-Type"] == "text/event-stream"
    events = [json.loads(line[6:]) for line in raw.decode().splitlines() if line.startswith("data: ")]
    assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
    assert events[1]["content_block"]["type"] == "tool_use"
    delta = next(e for e in events if e["type"] == "message_delta")
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert delta["usage"]["output_tokens"] == USAGE[("anthropic", "stream_tool_call")].output_tokens

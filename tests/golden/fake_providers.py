# SPDX-License-Identifier: Apache-2.0
"""Fake OpenAI and Anthropic endpoints on 127.0.0.1 for the real-framework drivers of ``tests/golden/``.

One threaded HTTP server answers three APIs, enough for the frameworks to run their real code paths:

* OpenAI chat completions, ``POST /v1/chat/completions`` (plus ``/v1/embeddings``);
* OpenAI Responses, ``POST /v1/responses``;
* Anthropic messages, ``POST /v1/messages``.

Each answers plain or streamed (``"stream": true``: server-sent events; OpenAI chat sends its usage in a last chunk
when ``stream_options.include_usage`` asks for it, as the real API does), and with a tool call when the request
offers a tool the conversation has not called yet (a ``transfer_to_*`` tool, an openai-agents handoff, first, and
one handoff per conversation), else with the final answer. Token counts are fixed per (API, turn), in
:data:`USAGE`, so tests know what every call must report. Response ids are unique per request (two calls are
never the same call).

Errors are asked for with a marker anywhere in the request body (the user's message), so the frameworks keep
realistic model names: ``[429]`` rate limit, ``[500]`` server error, ``[529]`` overloaded (Anthropic only), each
with the provider's own error body and headers. The models ``gpt-4.1-mini`` (429) and ``gpt-4.1-nano`` (answers
after the client's timeout) keep the scenarios of ``drive_openai.py``.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from contextlib import suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

# The first chunk of every stream comes this late, so a time-to-first-chunk is measurable.
FIRST_CHUNK_DELAY_S = 0.08
# `gpt-4.1-nano` answers this late (the drivers' clients give up before).
TIMEOUT_SERVER_DELAY_S = 0.6

# The model each API answers with for a requested alias (the response model differs from the request, as in life).
ANSWER_MODELS = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18", "gpt-4o": "gpt-4o-2024-08-06"}


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0


# (api, turn) -> the usage the fake server reports. turn: "chat" (no tools), "stream" (streamed, no tools),
# "tool_call" (answers with a tool call), "final" (answers after a tool result).
USAGE: dict[tuple[str, str], Usage] = {
    ("openai.chat", "chat"): Usage(12, 5, cached_tokens=4),
    ("openai.chat", "stream"): Usage(9, 2),
    ("openai.chat", "tool_call"): Usage(20, 8),
    ("openai.chat", "final"): Usage(30, 6),
    ("openai.chat", "stream_tool_call"): Usage(21, 9),
    ("openai.chat", "stream_final"): Usage(31, 7),
    ("openai.responses", "chat"): Usage(14, 6),
    ("openai.responses", "stream"): Usage(11, 3),
    ("openai.responses", "tool_call"): Usage(22, 9),
    ("openai.responses", "final"): Usage(33, 7),
    ("openai.responses", "stream_tool_call"): Usage(23, 10),
    ("openai.responses", "stream_final"): Usage(34, 8),
    ("anthropic", "chat"): Usage(15, 7),
    ("anthropic", "stream"): Usage(10, 4),
    ("anthropic", "tool_call"): Usage(25, 11),
    ("anthropic", "final"): Usage(35, 8),
    ("anthropic", "stream_tool_call"): Usage(26, 12),
    ("anthropic", "stream_final"): Usage(36, 9),
}
EMBEDDING_INPUT_TOKENS = 6
TOOL_ARGUMENTS = {"city": "Paris"}
ANSWER_TEXT = "Hello there!"

OPENAI_429 = {
    "error": {
        "message": "Rate limit reached for gpt-4o-mini in organization org-golden on requests per min (RPM): "
        "Limit 3, Used 3, Requested 1. Please try again in 20s.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
}
OPENAI_429_HEADERS = {
    "retry-after": "1",
    "x-ratelimit-limit-requests": "3",
    "x-ratelimit-remaining-requests": "0",
    "x-ratelimit-reset-requests": "20s",
    "x-request-id": "req_golden_429",
}
OPENAI_500 = {
    "error": {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error",
        "param": None,
        "code": None,
    }
}
ANTHROPIC_ERRORS = {
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}
ANTHROPIC_429_HEADERS = {
    "retry-after": "1",
    "anthropic-ratelimit-requests-limit": "50",
    "anthropic-ratelimit-requests-remaining": "0",
    "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:20Z",
}


def _called_tools(api: str, request: dict[str, Any]) -> set[str]:
    """Names of the tools the conversation already called (whose results the client sends back)."""
    if api == "openai.chat":
        return {
            str((call.get("function") or {}).get("name"))
            for message in request.get("messages") or ()
            if isinstance(message, dict)
            for call in message.get("tool_calls") or ()
            if isinstance(call, dict)
        }
    if api == "openai.responses":
        items = request.get("input")
        if not isinstance(items, list):
            return set()
        return {str(i.get("name")) for i in items if isinstance(i, dict) and i.get("type") == "function_call"}
    return {
        str(block.get("name"))
        for message in request.get("messages") or ()
        if isinstance(message, dict) and isinstance(message.get("content"), list)
        for block in message["content"]
        if isinstance(block, dict) and block.get("type") == "tool_use"
    }


def _tool_names(api: str, request: dict[str, Any]) -> list[str]:
    names = []
    for tool in request.get("tools") or ():
        if not isinstance(tool, dict):
            continue
        name = tool.get("name") or (tool.get("function") or {}).get("name")
        if name:
            names.append(str(name))
    return names


def _sse(data: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeProviderServer

    def log_message(self, format: str, *args: Any) -> None:  # keep stderr quiet
        pass

    # --- plumbing --------------------------------------------------------------------------------------------

    def _json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        time.sleep(FIRST_CHUNK_DELAY_S)

    def _send_stream(self, frames: list[bytes]) -> None:
        for frame in frames:
            self.wfile.write(frame)
            self.wfile.flush()
            time.sleep(0.005)
        self.close_connection = True

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length) or b"{}"
        request = json.loads(raw)
        path = self.path.split("?", 1)[0]
        n = next(self.server.counter)
        if path.endswith("/embeddings"):
            self._embeddings(request)
        elif path.endswith("/chat/completions"):
            self._openai("openai.chat", request, raw, n)
        elif path.endswith("/responses"):
            self._openai("openai.responses", request, raw, n)
        elif path.endswith("/messages"):
            self._anthropic(request, raw, n)
        else:
            self._json(404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}})

    def _turn(self, api: str, request: dict[str, Any]) -> tuple[str, str | None]:
        """(turn, name of the tool to call or None)."""
        prefix = "stream_" if request.get("stream") else ""
        tools = _tool_names(api, request)
        if not tools:
            return ("stream" if prefix else "chat"), None
        called = _called_tools(api, request)
        uncalled = [t for t in tools if t not in called]
        if called and any(t.startswith("transfer_to_") for t in called):
            uncalled = [t for t in uncalled if not t.startswith("transfer_to_")]  # one handoff per run
        if uncalled:
            handoffs = [t for t in uncalled if t.startswith("transfer_to_")]
            return prefix + "tool_call", (handoffs or uncalled)[0]
        return prefix + "final", None

    # --- OpenAI ----------------------------------------------------------------------------------------------

    def _embeddings(self, request: dict[str, Any]) -> None:
        self._json(
            200,
            {
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
                "model": request.get("model", ""),
                "usage": {"prompt_tokens": EMBEDDING_INPUT_TOKENS, "total_tokens": EMBEDDING_INPUT_TOKENS},
            },
        )

    def _openai(self, api: str, request: dict[str, Any], raw: bytes, n: int) -> None:
        model = str(request.get("model", ""))
        if b"[429]" in raw or model == "gpt-4.1-mini":
            self._json(429, OPENAI_429, OPENAI_429_HEADERS)
            return
        if b"[500]" in raw:
            self._json(500, OPENAI_500, {"x-request-id": f"req_golden_{n}"})
            return
        if model == "gpt-4.1-nano":
            time.sleep(TIMEOUT_SERVER_DELAY_S)
            with suppress(OSError):
                self._json(500, {"error": {"message": "too late"}})
            return
        turn, tool = self._turn(api, request)
        usage = USAGE[(api, turn)]
        answer_model = ANSWER_MODELS.get(model, model)
        if api == "openai.chat":
            self._chat(request, n, answer_model, usage, tool)
        else:
            self._responses(request, n, answer_model, usage, tool)

    def _chat(self, request: dict[str, Any], n: int, model: str, usage: Usage, tool: str | None) -> None:
        rid = f"chatcmpl-golden{n}"
        call = {
            "id": f"call_golden{n}",
            "type": "function",
            "function": {
                "name": tool,
                "arguments": json.dumps(TOOL_ARGUMENTS if tool and "transfer_to_" not in tool else {}),
            },
        }
        finish = "tool_calls" if tool else "stop"
        usage_body: dict[str, Any] = {
            "prompt_tokens": usage.input_tokens,
            "completion_tokens": usage.output_tokens,
            "total_tokens": usage.input_tokens + usage.output_tokens,
        }
        if usage.cached_tokens:
            usage_body["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
        if not request.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": None if tool else ANSWER_TEXT}
            if tool:
                message["tool_calls"] = [call]
            self._json(
                200,
                {
                    "id": rid,
                    "object": "chat.completion",
                    "created": 1776679200,
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": usage_body,
                },
            )
            return
        base = {"id": rid, "object": "chat.completion.chunk", "created": 1776679200, "model": model}
        if tool:
            deltas: list[dict[str, Any]] = [
                {"role": "assistant", "content": None, "tool_calls": [{"index": 0, **call}]},
            ]
        else:
            deltas = [{"role": "assistant", "content": ""}, {"content": "Hel"}, {"content": "lo"}]
        chunks = [{**base, "choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
        chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        if (request.get("stream_options") or {}).get("include_usage"):
            chunks.append({**base, "choices": [], "usage": usage_body})
        self._start_stream()
        self._send_stream([_sse(c) for c in chunks] + [b"data: [DONE]\n\n"])

    def _responses(self, request: dict[str, Any], n: int, model: str, usage: Usage, tool: str | None) -> None:
        rid = f"resp_golden{n}"
        if tool:
            item: dict[str, Any] = {
                "type": "function_call",
                "id": f"fc_golden{n}",
                "call_id": f"call_golden{n}",
                "name": tool,
                "arguments": json.dumps(TOOL_ARGUMENTS if "transfer_to_" not in tool else {}),
                "status": "completed",
            }
        else:
            item = {
                "type": "message",
                "id": f"msg_golden{n}",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": ANSWER_TEXT, "annotations": []}],
            }
        response: dict[str, Any] = {
            "id": rid,
            "object": "response",
            "created_at": 1776679200,
            "status": "completed",
            "model": model,
            "output": [item],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": request.get("tools") or [],
            "error": None,
            "incomplete_details": None,
            "instructions": request.get("instructions"),
            "metadata": {},
            "temperature": 1.0,
            "top_p": 1.0,
            "text": {"format": {"type": "text"}},
            "truncation": "disabled",
            "usage": {
                "input_tokens": usage.input_tokens,
                "input_tokens_details": {"cached_tokens": usage.cached_tokens},
                "output_tokens": usage.output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": usage.input_tokens + usage.output_tokens,
            },
        }
        if not request.get("stream"):
            self._json(200, response)
            return
        seq = itertools.count()
        pending = {**response, "status": "in_progress", "output": [], "usage": None}
        frames = [
            {"type": "response.created", "response": pending},
            {"type": "response.in_progress", "response": pending},
        ]
        if tool:
            frames += [
                {"type": "response.output_item.added", "output_index": 0, "item": {**item, "arguments": ""}},
                {
                    "type": "response.function_call_arguments.delta",
                    "item_id": item["id"],
                    "output_index": 0,
                    "delta": item["arguments"],
                },
                {
                    "type": "response.function_call_arguments.done",
                    "item_id": item["id"],
                    "output_index": 0,
                    "arguments": item["arguments"],
                },
            ]
        else:
            part = {"type": "output_text", "text": "", "annotations": []}
            where = {"item_id": item["id"], "output_index": 0, "content_index": 0}
            frames += [
                {"type": "response.output_item.added", "output_index": 0, "item": {**item, "content": []}},
                {"type": "response.content_part.added", **where, "part": part},
                {"type": "response.output_text.delta", **where, "delta": "Hel", "logprobs": []},
                {"type": "response.output_text.delta", **where, "delta": "lo", "logprobs": []},
                {"type": "response.output_text.done", **where, "text": "Hello", "logprobs": []},
                {"type": "response.content_part.done", **where, "part": {**part, "text": "Hello"}},
            ]
        frames += [
            {"type": "response.output_item.done", "output_index": 0, "item": item},
            {"type": "response.completed", "response": response},
        ]
        self._start_stream()
        self._send_stream([_sse({**f, "sequence_number": next(seq)}, f["type"]) for f in frames])

    # --- Anthropic -------------------------------------------------------------------------------------------

    def _anthropic(self, request: dict[str, Any], raw: bytes, n: int) -> None:
        for status in (429, 500, 529):
            if f"[{status}]".encode() in raw:
                kind, message = ANTHROPIC_ERRORS[status]
                request_id = f"req_golden{n}"
                headers = {"request-id": request_id, "x-should-retry": "true"}
                if status == 429:
                    headers.update(ANTHROPIC_429_HEADERS)
                body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id}
                self._json(status, body, headers)
                return
        turn, tool = self._turn("anthropic", request)
        usage = USAGE[("anthropic", turn)]
        model = str(request.get("model", ""))
        block: dict[str, Any]
        if tool:
            block = {"type": "tool_use", "id": f"toolu_golden{n}", "name": tool, "input": TOOL_ARGUMENTS}
        else:
            block = {"type": "text", "text": ANSWER_TEXT}
        stop = "tool_use" if tool else "end_turn"
        message = {
            "id": f"msg_golden{n}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [block],
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": usage.cached_tokens,
            },
        }
        headers = {"request-id": f"req_golden{n}"}
        if not request.get("stream"):
            self._json(200, message, headers)
            return
        start_usage = {**message["usage"], "output_tokens": 1}
        events: list[dict[str, Any]] = [
            {"type": "message_start", "message": {**message, "content": [], "stop_reason": None, "usage": start_usage}},
        ]
        if tool:
            events += [
                {"type": "content_block_start", "index": 0, "content_block": {**block, "input": {}}},
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": json.dumps(TOOL_ARGUMENTS)},
                },
            ]
        else:
            events += [
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}},
            ]
        events += [
            {"type": "content_block_stop", "index": 0},
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": usage.output_tokens},
            },
            {"type": "message_stop"},
        ]
        self._start_stream()
        self._send_stream([_sse(e, e["type"]) for e in events])


class FakeProviderServer(ThreadingHTTPServer):
    """The fake endpoints in a background thread: ``with FakeProviderServer() as fake: ... fake.openai_base_url``."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.counter = itertools.count(1)
        self._thread = threading.Thread(target=self.serve_forever, name="fake-providers", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.base_url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.base_url

    def __enter__(self) -> FakeProviderServer:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.shutdown()
        self.server_close()

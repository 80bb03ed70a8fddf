# SPDX-License-Identifier: Apache-2.0
"""The span sets of the workload suite (``suite.py``): spans a tuned benchmark does not contain.

Every workload makes its spans with the real SDK (``SimpleSpanProcessor`` into memory), so every exporter measured
gets the same ``ReadableSpan``s an instrumented application would hand it. Every round gets new spans, with request
numbers continuing where the previous round stopped (new trace, span and response ids), as an application makes them:
re-exporting the very same spans would have the exporter's count_once see every LLM span as a repeat of itself. The
workloads whose point is novelty (``distinct-keysets-50k``, ``new-key-every-span``) also draw their key sets from the
request number, so no cache sees a key set (or key) twice within the 50,000 cycle (or ever).

Nothing here imports ``opentelemetry_exporter_lumiqtrace``; the module is shared by ``suite.py`` and
``app_benchmark.py``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import _common

# --- building blocks ------------------------------------------------------------------------------------------------

_WEB_ROUTES = ("/v1/chat", "/v1/summarize", "/v1/agents/{agent_id}/run", "/v1/search")
# (gen_ai.provider.name, request model, response model, server.address)
MIX_MODELS = (
    ("openai", "gpt-4o", "gpt-4o-2024-08-06", "api.openai.com"),
    ("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", "api.openai.com"),
    ("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "api.anthropic.com"),
    ("gcp.gemini", "gemini-2.5-flash", "gemini-2.5-flash", "generativelanguage.googleapis.com"),
)
TIERED_MODELS = (
    ("anthropic", "claude-sonnet-4-20250514", "claude-sonnet-4-20250514", "api.anthropic.com"),
    ("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "api.anthropic.com"),
    ("gcp.gemini", "gemini-2.5-pro", "gemini-2.5-pro", "generativelanguage.googleapis.com"),
)


def _web_attributes(n: int, route: str) -> dict[str, Any]:
    return {
        "http.request.method": "POST",
        "http.route": route,
        "url.path": route.replace("{agent_id}", str(n % 97)),
        "url.scheme": "https",
        "server.address": "chat-api.internal",
        "server.port": 8080,
        "client.address": f"10.0.{n % 7}.{n % 251}",
        "user_agent.original": "python-requests/2.32.3",
        "network.protocol.version": "1.1",
    }


def _chat_attributes(n: int, model: tuple[str, str, str, str], input_tokens: int) -> dict[str, Any]:
    provider, request_model, response_model, host = model
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": request_model,
        "gen_ai.request.max_tokens": 1024,
        "gen_ai.request.temperature": 0.2,
        "server.address": host,
        "server.port": 443,
        "gen_ai.response.model": response_model,
        "gen_ai.response.id": f"resp-{n:010d}",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": 20 + n % 700,
        "gen_ai.usage.cache_read.input_tokens": (input_tokens // 4) if n % 3 == 0 else 0,
    }


def _web_request(
    tracer: Any,
    n: int,
    models: tuple[tuple[str, str, str, str], ...],
    *,
    extra: Callable[[], dict[str, Any]] | None = None,
    chat_extra: dict[str, Any] | None = None,
) -> int:
    """A SERVER span with one or two chat CLIENT spans below it. Returns the spans ended."""
    from opentelemetry.trace import SpanKind

    route = _WEB_ROUTES[n % len(_WEB_ROUTES)]
    calls = 1 + n % 2
    attributes = _web_attributes(n, route)
    if extra is not None:
        attributes.update(extra())
    with tracer.start_as_current_span(f"POST {route}", kind=SpanKind.SERVER, attributes=attributes) as root:
        for call in range(calls):
            model = models[(n + call) % len(models)]
            chat = _chat_attributes(n * 2 + call, model, 200 + (n * 37) % 4000)
            if chat_extra:
                chat.update(chat_extra)
            if extra is not None:
                chat.update(extra())
            with tracer.start_as_current_span(f"chat {model[1]}", kind=SpanKind.CLIENT, attributes=chat):
                pass
        root.set_attribute("http.response.status_code", 200)
    return calls + 1


# --- workloads ------------------------------------------------------------------------------------------------------

Emit = Callable[[Any, int], int]  # (tracer, request number) -> spans ended


def _today(tracer: Any, n: int) -> int:
    return _common.emit_request(tracer, n)


def _tiered(tracer: Any, n: int) -> int:
    """Chat spans alone on models with a long-context price tier; every other span above the 200k tier."""
    from opentelemetry.trace import SpanKind

    model = TIERED_MODELS[n % len(TIERED_MODELS)]
    above = (n // len(TIERED_MODELS)) % 2 == 1
    input_tokens = 200_001 + (n * 7919) % 300_000 if above else 500 + (n * 7919) % 150_000
    with tracer.start_as_current_span(
        f"chat {model[1]}", kind=SpanKind.CLIENT, attributes=_chat_attributes(n, model, input_tokens)
    ):
        pass
    return 1


def _mix(tracer: Any, n: int) -> int:
    return _web_request(tracer, n, MIX_MODELS)


def _new_key_every_span(start: int) -> Emit:
    counter = [start * 4]

    def extra() -> dict[str, Any]:
        counter[0] += 1
        return {f"app.request.attr_{counter[0]}": "x"}

    def emit(tracer: Any, n: int) -> int:
        return _web_request(tracer, n, MIX_MODELS, extra=extra)

    return emit


# A pool of 200 keys: what a web app with LLM calls puts on its spans (conventions the mapping reads, and its own).
KEY_POOL = (
    "http.request.method",
    "http.route",
    "http.response.status_code",
    "url.path",
    "url.full",
    "url.scheme",
    "server.address",
    "server.port",
    "client.address",
    "user_agent.original",
    "network.protocol.version",
    "db.system",
    "db.operation.name",
    "db.collection.name",
    "messaging.system",
    "rpc.method",
    "error.type",
    "enduser.id",
    "session.id",
    "user.id",
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.request.temperature",
    "gen_ai.response.id",
    "llm.model_name",
    "lumiqtrace.tags.team",
    *(f"app.{area}.{name}" for area in ("cart", "search", "auth", "billing", "feed") for name in range(34)),
)
assert len(KEY_POOL) == 200


def _key_value(key: str, n: int) -> Any:
    if key.endswith(("_tokens", ".port", "status_code")):
        return 10 + n % 5000
    if key == "gen_ai.request.temperature":
        return 0.5
    if key in ("gen_ai.request.model", "gen_ai.response.model", "llm.model_name"):
        return MIX_MODELS[n % len(MIX_MODELS)][1]
    if key == "gen_ai.provider.name":
        return MIX_MODELS[n % len(MIX_MODELS)][0]
    if key == "gen_ai.operation.name":
        return "chat"
    return f"v{n % 1000}"


def _key_set(index: int) -> list[str]:
    """Key set number ``index``: 3-8 keys of the pool (deterministic; 50,000 of them are practically all distinct)."""
    rng = random.Random(index)
    return rng.sample(KEY_POOL, rng.randint(3, 8))


def _keyed_span(tracer: Any, n: int, keys: list[str]) -> int:
    from opentelemetry.trace import SpanKind

    kind = (SpanKind.INTERNAL, SpanKind.SERVER, SpanKind.CLIENT)[n % 3]
    with tracer.start_as_current_span(f"op {n % 50}", kind=kind, attributes={k: _key_value(k, n) for k in keys}):
        pass
    return 1


_VARYING_SETS = [_key_set(i) for i in range(4096)]


def _varying_keys(tracer: Any, n: int) -> int:
    """3-8 keys from the pool of 200 (4,096 sets, drawn at random, so some repeat within a round)."""
    return _keyed_span(tracer, n, _VARYING_SETS[random.Random(n * 31).randrange(len(_VARYING_SETS))])


def _distinct_keysets(tracer: Any, n: int) -> int:
    """Key set ``n mod 50,000``: rounds walk through the cycle, so a set comes back only after 50,000 spans."""
    return _keyed_span(tracer, n, _key_set(1_000_000 + n % 50_000))


def _http_server(tracer: Any, n: int) -> int:
    from opentelemetry.trace import SpanKind

    route = _WEB_ROUTES[n % len(_WEB_ROUTES)]
    attributes = _web_attributes(n, route)
    attributes.update(
        {"http.response.status_code": 200, "http.request.body.size": 100 + n % 900, "url.query": f"page={n % 9}"}
    )
    assert len(attributes) == 12
    with tracer.start_as_current_span(f"POST {route}", kind=SpanKind.SERVER, attributes=attributes):
        pass
    return 1


_TWO_KB = json.dumps({"messages": [{"role": "user", "content": "lorem ipsum dolor sit amet " * 72}]})[:2048]


def _openinference(tracer: Any, n: int) -> int:
    """An OpenInference LLM span: ten flattened messages, 2 KB input.value and output.value."""
    attributes: dict[str, Any] = {
        "openinference.span.kind": "LLM",
        "llm.system": "openai",
        "llm.provider": "openai",
        "llm.model_name": ("gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18")[n % 2],
        "llm.invocation_parameters": '{"temperature": 0.2, "max_tokens": 512}',
        "input.value": _TWO_KB,
        "input.mime_type": "application/json",
        "output.value": _TWO_KB,
        "output.mime_type": "application/json",
        "llm.token_count.prompt": 800 + n % 900,
        "llm.token_count.completion": 50 + n % 300,
        "llm.token_count.total": 850 + n % 1200,
    }
    for i in range(10):
        attributes[f"llm.input_messages.{i}.message.role"] = ("system", "user", "assistant")[min(i, 1 + i % 2)]
        attributes[f"llm.input_messages.{i}.message.content"] = f"message {i} of request {n}: " + "text " * 20
    attributes["llm.output_messages.0.message.role"] = "assistant"
    attributes["llm.output_messages.0.message.content"] = "an answer " * 30
    with tracer.start_as_current_span("ChatCompletion", attributes=attributes):
        pass
    return 1


def _raise_and_catch(n: int, attempt: int) -> Exception:
    try:
        raise ConnectionError(f"upstream reset the connection (request {n}, attempt {attempt})")
    except ConnectionError as exc:
        return exc


def _exceptions(tracer: Any, n: int) -> int:
    """A client span (an LLM call or a plain HTTP call) that recorded five exceptions (retries) before failing."""
    from opentelemetry.trace import SpanKind, Status, StatusCode

    if n % 2:
        attributes = _chat_attributes(n, MIX_MODELS[n % len(MIX_MODELS)], 300 + n % 500)
    else:
        attributes = {"http.request.method": "GET", "url.full": f"https://inventory.internal/items/{n % 500}"}
    with tracer.start_as_current_span("upstream call", kind=SpanKind.CLIENT, attributes=attributes) as span:
        for attempt in range(5):
            span.record_exception(_raise_and_catch(n, attempt))
        span.set_status(Status(StatusCode.ERROR, "ConnectionError: upstream reset the connection"))
    return 1


_EIGHT_KB_PROMPT = ("You are a careful assistant. Answer from the context below.\n" + "context line " * 620)[:8192]


def _capture_content(tracer: Any, n: int) -> int:
    """The mix's web requests whose chat spans carry an 8 KB prompt (gen_ai.input.messages) and an answer."""
    messages = json.dumps(
        [
            {"role": "system", "parts": [{"type": "text", "content": _EIGHT_KB_PROMPT}]},
            {"role": "user", "parts": [{"type": "text", "content": f"question {n}: what changed?"}]},
        ]
    )
    answer = json.dumps(
        [{"role": "assistant", "parts": [{"type": "text", "content": "the answer " * 40}], "finish_reason": "stop"}]
    )
    return _web_request(
        tracer, n, MIX_MODELS, chat_extra={"gen_ai.input.messages": messages, "gen_ai.output.messages": answer}
    )


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    emit: Emit | None = None  # the same spans every round
    fresh_emit: Callable[[int], Emit] | None = None  # new spans every round, continuing from a request number
    exporter_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def fresh(self) -> bool:
        return self.fresh_emit is not None


WORKLOADS = (
    Workload("today", "benchmarks' original set: web spans, OpenAI/Anthropic chat spans, 1 in 16 failing", _today),
    Workload("tiered-prices", "Claude Sonnet 4 / 4.5, Gemini 2.5 Pro chat spans alone, half above 200k input", _tiered),
    Workload("mix", "gpt-4o, gpt-4o-mini, claude-sonnet-4-5, gemini-2.5-flash chat spans under web spans", _mix),
    Workload("varying-keys", "3-8 attribute keys from a pool of 200 (4,096 key sets)", _varying_keys),
    Workload(
        "distinct-keysets-50k",
        "50,000 distinct key sets cycled (3-8 keys from the pool of 200)",
        fresh_emit=lambda start: _distinct_keysets,
    ),
    Workload(
        "new-key-every-span",
        "the mix with an attribute key never seen before on every span",
        fresh_emit=_new_key_every_span,
    ),
    Workload("http-server", "plain HTTP SERVER spans, 12 attributes", _http_server),
    Workload(
        "openinference", "OpenInference LLM spans, 10 flattened messages, 2 KB input/output.value", _openinference
    ),
    Workload("exceptions", "client spans with five exception events (with stack traces)", _exceptions),
    Workload(
        "capture-content",
        "the mix with 8 KB prompts, capture_content=True",
        _capture_content,
        exporter_kwargs={"capture_content": True},
    ),
)
BY_NAME = {workload.name: workload for workload in WORKLOADS}


class SpanMaker:
    """Makes a workload's spans with the real SDK: new spans every call, request numbers continuing."""

    def __init__(self, workload: Workload) -> None:
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self.workload = workload
        self._memory = InMemorySpanExporter()
        self._provider = _common.make_tracer_provider(self._memory, batch=False)
        self._tracer = self._provider.get_tracer("benchmarks.app", "0.1.0")
        self._next = 0

    def spans(self, count: int) -> list[Any]:
        if self.workload.fresh_emit is not None:
            emit = self.workload.fresh_emit(self._next)
        else:
            assert self.workload.emit is not None
            emit = self.workload.emit
        self._memory.clear()
        made = 0
        while made < count:
            made += emit(self._tracer, self._next)
            self._next += 1
        spans = list(self._memory.get_finished_spans())[:count]
        self._memory.clear()
        return spans

    def close(self) -> None:
        self._provider.shutdown()

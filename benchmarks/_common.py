# SPDX-License-Identifier: Apache-2.0
"""Shared pieces of the benchmarks: the span set, the servers in their own processes, the orjson switch, stats.

Nothing here imports ``opentelemetry_exporter_lumiqtrace`` at module level: ``block_speedups()`` must run before the
package is imported for ``--no-speedups`` to mean what it says.
"""

from __future__ import annotations

import importlib.abc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BENCH_API_KEY = "lqt_" + "be5c" * 16  # shaped like a project key; only ever sent to loopback


def unpaced() -> dict[str, Any]:
    """Exporter keywords for a loopback sink: the client-side pacing of LumiqTrace's 1,000 requests a minute per key
    is lifted, since the sink is not LumiqTrace and the CPU and throughput benchmarks send more than that (with the
    pacing on, one process sustains at most ~1,666 spans/s: 1,000 requests of 100 events a minute)."""
    from opentelemetry_exporter_lumiqtrace.delivery import RetryPolicy

    return {"retry_policy": RetryPolicy(max_requests_per_window=10**9)}


# --- speedups on / off ----------------------------------------------------------------------------------------------

SPEEDUP_MODULES = ("orjson", "zlib_ng")  # what the `speedups` extra installs


class _BlockSpeedups(importlib.abc.MetaPathFinder):
    """Makes ``import orjson`` and ``import zlib_ng`` fail as if the ``speedups`` extra were not installed."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname.split(".")[0] in SPEEDUP_MODULES:
            raise ImportError(f"{fullname} blocked by --no-speedups")
        return None


def block_speedups() -> None:
    if any(name.split(".")[0] in SPEEDUP_MODULES for name in sys.modules):
        raise RuntimeError("a speedups module was imported before block_speedups(); call it first")
    if "opentelemetry_exporter_lumiqtrace.encoding" in sys.modules:
        raise RuntimeError("the encoding module was imported before block_speedups(); call it first")
    sys.meta_path.insert(0, _BlockSpeedups())


def speedups_label() -> str:
    """Which speedups the encoding module runs with, for the benchmarks' first line."""
    from opentelemetry_exporter_lumiqtrace import encoding

    json_library = "orjson" if getattr(encoding, "_orjson", None) is not None else "json"
    return f"speedups: {json_library} + {encoding.GZIP_LIBRARY} (gzip level {encoding.GZIP_LEVEL})"


# --- the span set ---------------------------------------------------------------------------------------------------

_MODELS = (
    ("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", "api.openai.com"),
    ("openai", "gpt-4o", "gpt-4o-2024-08-06", "api.openai.com"),
    ("anthropic", "claude-3-5-sonnet-latest", "claude-3-5-sonnet-20241022", "api.anthropic.com"),
)
_ROUTES = ("/v1/chat", "/v1/summarize", "/v1/agents/{agent_id}/run", "/healthz")


def make_tracer_provider(exporter_or_processor: Any, *, batch: bool) -> Any:
    """A provider like an instrumented app's: a resource with service and environment, one span processor."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(
        resource=Resource.create(
            {
                "service.name": "chat-api",
                "service.version": "1.4.2",
                "deployment.environment.name": "production",
            }
        )
    )
    processor = BatchSpanProcessor(exporter_or_processor) if batch else SimpleSpanProcessor(exporter_or_processor)
    provider.add_span_processor(processor)
    return provider


def emit_request(tracer: Any, n: int) -> int:
    """One HTTP request of a chat app: a SERVER span with one or two GenAI CLIENT spans below it.

    Roughly one trace in sixteen fails (a rate-limited LLM call and a 500). Returns the number of spans ended.
    """
    from opentelemetry.trace import SpanKind, Status, StatusCode

    provider, req_model, resp_model, host = _MODELS[n % len(_MODELS)]
    route = _ROUTES[n % len(_ROUTES)]
    failing = n % 16 == 5
    calls = 1 + (n % 2)
    with tracer.start_as_current_span(
        f"POST {route}",
        kind=SpanKind.SERVER,
        attributes={
            "http.request.method": "POST",
            "http.route": route,
            "url.path": route.replace("{agent_id}", str(n % 97)),
            "url.scheme": "https",
            "server.address": "chat-api.internal",
            "server.port": 8080,
            "client.address": "127.0.0.1",
            "user_agent.original": "python-requests/2.32.3",
            "network.protocol.version": "1.1",
        },
    ) as root:
        for call in range(calls):
            with tracer.start_as_current_span(
                f"chat {req_model}",
                kind=SpanKind.CLIENT,
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": provider,
                    "gen_ai.request.model": req_model,
                    "gen_ai.request.max_tokens": 512,
                    "gen_ai.request.temperature": 0.2,
                    "server.address": host,
                    "server.port": 443,
                },
            ) as span:
                if failing and call == calls - 1:
                    span.set_attribute("error.type", "RateLimitError")
                    span.set_attribute("http.response.status_code", 429)
                    span.record_exception(RuntimeError("Error code: 429 - {'error': {'code': 'rate_limit_exceeded'}}"))
                    span.set_status(Status(StatusCode.ERROR, "RateLimitError: Error code: 429"))
                else:
                    span.set_attribute("gen_ai.response.model", resp_model)
                    span.set_attribute("gen_ai.response.id", f"chatcmpl-{n:08d}{call}")
                    span.set_attribute("gen_ai.response.finish_reasons", ("stop",))
                    span.set_attribute("gen_ai.usage.input_tokens", 200 + n % 800)
                    span.set_attribute("gen_ai.usage.output_tokens", 20 + n % 300)
        root.set_attribute("http.response.status_code", 500 if failing else 200)
        if failing:
            root.set_status(Status(StatusCode.ERROR))
    return calls + 1


def build_span_set(count: int, *, first_request: int = 0) -> list[Any]:
    """About ``count`` finished ReadableSpans made by the real SDK (built once, reused by every contender).

    Requests are numbered from ``first_request``: sets made from different numbers hold different response ids.
    """
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = make_tracer_provider(memory, batch=False)
    tracer = provider.get_tracer("benchmarks.app", "0.1.0")
    made = 0
    n = first_request
    while made < count:
        made += emit_request(tracer, n)
        n += 1
    provider.shutdown()
    return list(memory.get_finished_spans())[:count]


def batches(spans: Sequence[Any], size: int = 512) -> list[Sequence[Any]]:
    return [spans[i : i + size] for i in range(0, len(spans), size)]


# --- servers in their own processes ---------------------------------------------------------------------------------


class ServerProcess:
    """A benchmark server script run as a child process; its first stdout line is a JSON banner."""

    def __init__(self, script: str, *args: str) -> None:
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / script), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.kill()
            raise RuntimeError(f"{script} did not start")
        self.banner: dict[str, Any] = json.loads(line)

    @property
    def base_url(self) -> str:
        return str(self.banner["base_url"])

    def command(self, text: str) -> dict[str, Any]:
        """Send one command line (servers that take commands on stdin) and read its one-line JSON answer."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        answer: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return answer

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.terminate()
                self.proc.wait(timeout=5)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- figures --------------------------------------------------------------------------------------------------------


def add_workload_arguments(parser: Any, *, rounds: int, spans_help: str) -> None:
    """The options of the scripts that time one workload of the suite in batches of export() calls."""
    parser.add_argument("--workload", default="today")
    parser.add_argument("--spans", type=int, default=2048, help=spans_help)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--no-speedups", action="store_true", help="block orjson and zlib-ng")


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def now() -> float:
    return time.perf_counter()


def calls_and_opcodes_per_item(fn: Callable[[Any], object], items: Sequence[Any]) -> tuple[float, float]:
    """Python calls and bytecode instructions per item of ``fn(item)`` over ``items`` (``fn``'s own call not counted).

    Counted, not timed: comparable between versions on a busy machine.
    """
    calls = opcodes = 0

    def trace(frame: Any, event: str, arg: Any) -> Any:
        nonlocal calls, opcodes
        if event == "call":
            calls += 1
            frame.f_trace_opcodes = True
            frame.f_trace_lines = False
        elif event == "opcode":
            opcodes += 1
        return trace

    sys.settrace(trace)
    try:
        for item in items:
            fn(item)
    finally:
        sys.settrace(None)
    return (calls - len(items)) / len(items), opcodes / len(items)

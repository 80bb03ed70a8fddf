# SPDX-License-Identifier: Apache-2.0
"""CPU per span of the mapping alone (span -> event dict), on span sets a tuned benchmark cannot flatter.

    python benchmarks/mapping_cost.py                       # the installed package
    PYTHONPATH=/path/to/other/checkout python benchmarks/mapping_cost.py   # another version, same workloads

Workloads, each made with the real SDK (attributes behind ``MappingProxyType`` over ``BoundedAttributes``, as the
exporter gets them) under a provider with a resource, in batches like the batch processor's:

- ``today``: the span set of ``cpu_per_span.py`` (HTTP SERVER spans with GenAI CLIENT chat spans below them);
- ``varying-keys``: chat spans, each with 3-8 extra keys drawn from a pool of 200 (key sets rarely repeat);
- ``new-key-each-span``: today's set with one attribute key never seen before on every span;
- ``http-server``: plain HTTP SERVER spans, 12 attributes;
- ``openinference-10-messages``: OpenInference LLM spans with ten flattened messages and 2 KB
  ``input.value``/``output.value``;
- ``mix`` and ``tiered-prices``: the workloads of that name of ``suite.py`` (``workloads.py``).

Pricing is off (``compute_cost=False``) unless ``--compute-cost``: the cost of pricing is the pricing module's. Each
round maps spans the mapper has not seen in that round's order; spans of ``new-key-each-span`` and
``varying-keys`` are fresh in every round. Printed: the median over rounds of CPU microseconds per span
(``time.thread_time``), and each workload's ratio to ``today``. The figures are for one machine at one time: on a
shared machine, compare rows of the same run only.

``--count`` adds what a busy machine cannot blur: Python function calls and bytecode instructions per span of the
mapping (``sys.settrace`` over a warm mapper, so counted, not timed). Fewer of both is what makes the mapping cheaper;
they do not weigh C work (hashing, copying), so the times stay the figure that counts.

``--c-calls`` adds, for ``today`` (or the workloads of ``--c-calls-of``), the calls of C functions and methods per
span (``dict.get``, ``len``, ...) and the Python functions that make them (``sys.setprofile``, counted): where the
lookups and length checks of a span come from.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import _common


def _mapper(*, compute_cost: bool) -> tuple[str, Callable[[Any, Any], Any], Any]:
    import opentelemetry_exporter_lumiqtrace.mapping as mapping

    options = mapping.MappingOptions(compute_cost=compute_cost)
    mapper_class = getattr(mapping, "Mapper", None)
    if mapper_class is not None:
        return mapping.__file__ or "?", mapper_class().map_span, options
    return mapping.__file__ or "?", mapping.map_span, options  # versions before the Mapper


def _tracer() -> tuple[Any, Any, Any]:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = _common.make_tracer_provider(memory, batch=False)
    return provider, provider.get_tracer("benchmarks.mapping", "0.1.0"), memory


_POOL = [f"app.attr_{i}" for i in range(200)]
_CHAT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
    "gen_ai.usage.input_tokens": 321,
    "gen_ai.usage.output_tokens": 42,
    "gen_ai.response.finish_reasons": ("stop",),
    "server.address": "api.openai.com",
}


def _spans(make: Callable[[Any, int], None], count: int) -> list[Any]:
    provider, tracer, memory = _tracer()
    for n in range(count):
        make(tracer, n)
    provider.shutdown()
    return list(memory.get_finished_spans())


def _varying(seed: int) -> Callable[[Any, int], None]:
    rng = random.Random(seed)

    def make(tracer: Any, n: int) -> None:
        from opentelemetry.trace import SpanKind

        extra = {key: f"v{n % 7}" for key in rng.sample(_POOL, rng.randint(3, 8))}
        with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes={**_CHAT, **extra}):
            pass

    return make


def _http(tracer: Any, n: int) -> None:
    from opentelemetry.trace import SpanKind

    attributes = {
        "http.request.method": "GET",
        "http.route": "/items/{id}",
        "url.path": f"/items/{n % 1000}",
        "url.scheme": "https",
        "server.address": "shop.internal",
        "server.port": 8080,
        "client.address": "10.0.0.7",
        "user_agent.original": "Mozilla/5.0",
        "network.protocol.version": "1.1",
        "http.response.status_code": 200,
        "url.query": "page=2",
        "http.request.body.size": 0,
    }
    with tracer.start_as_current_span("GET /items/{id}", kind=SpanKind.SERVER, attributes=attributes):
        pass


_TWO_KB = "lorem ipsum " * 170


def _openinference(tracer: Any, n: int) -> None:
    attributes: dict[str, Any] = {
        "openinference.span.kind": "LLM",
        "llm.provider": "openai",
        "llm.system": "openai",
        "llm.model_name": "gpt-4o-mini",
        "llm.invocation_parameters": '{"model": "gpt-4o-mini", "temperature": 0}',
        "llm.token_count.prompt": 900 + n % 50,
        "llm.token_count.completion": 120,
        "llm.token_count.total": 1020 + n % 50,
        "input.value": _TWO_KB,
        "input.mime_type": "text/plain",
        "output.value": _TWO_KB,
        "output.mime_type": "text/plain",
    }
    for i in range(10):
        attributes[f"llm.input_messages.{i}.message.role"] = "user" if i % 2 == 0 else "assistant"
        attributes[f"llm.input_messages.{i}.message.content"] = f"message {i} of request {n}"
    with tracer.start_as_current_span("ChatCompletion", attributes=attributes):
        pass


def _with_new_key(spans: Sequence[Any], round_no: int) -> list[Any]:
    from opentelemetry.sdk.trace import ReadableSpan

    out = []
    for i, span in enumerate(spans):
        attrs = dict(span.attributes or {})
        attrs[f"request.meta_{round_no}_{i}"] = "x"
        out.append(
            ReadableSpan(
                name=span.name,
                context=span.context,
                parent=span.parent,
                resource=span.resource,
                attributes=_bounded(attrs),
                events=span.events,
                kind=span.kind,
                status=span.status,
                start_time=span.start_time,
                end_time=span.end_time,
                instrumentation_scope=span.instrumentation_scope,
            )
        )
    return out


def _bounded(attrs: dict[str, Any]) -> Any:
    from opentelemetry.attributes import BoundedAttributes

    return BoundedAttributes(attributes=attrs, immutable=True)


def _suite_workload(name: str, count: int) -> list[Any]:
    import workloads

    maker = workloads.SpanMaker(workloads.BY_NAME[name])
    try:
        return maker.spans(count)
    finally:
        maker.close()


def _calls_and_opcodes_per_span(
    map_span: Callable[[Any, Any], Any], options: Any, spans: Sequence[Any]
) -> tuple[float, float]:
    """Python calls and bytecode instructions per span of ``map_span`` on ``spans`` (the mapper warmed on them)."""
    for span in spans:
        map_span(span, options)
    return _common.calls_and_opcodes_per_item(lambda span: map_span(span, options), spans)


def _c_calls_per_span(
    map_span: Callable[[Any, Any], Any], options: Any, spans: Sequence[Any]
) -> dict[tuple[str, str], float]:
    """(C function, the Python function calling it) -> calls per span of ``map_span`` on ``spans`` (warmed first)."""
    for span in spans:
        map_span(span, options)
    calls: dict[tuple[str, str], int] = {}

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "c_call":
            owner = getattr(arg, "__self__", None)
            name = (
                arg.__name__
                if owner is None or isinstance(owner, type(sys))
                else f"{type(owner).__name__}.{arg.__name__}"
            )
            caller = f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_code.co_name}"
            calls[(name, caller)] = calls.get((name, caller), 0) + 1

    sys.setprofile(profile)
    try:
        for span in spans:
            map_span(span, options)
    finally:
        sys.setprofile(None)
    return {site: count / len(spans) for site, count in calls.items()}


def _print_c_calls(workload: str, per_span: dict[tuple[str, str], float], *, top: int = 8) -> None:
    totals: dict[str, float] = {}
    for (name, _caller), count in per_span.items():
        totals[name] = totals.get(name, 0.0) + count
    print(f"\nC calls per span, {workload} (by the Python function making them):")
    for name, total in sorted(totals.items(), key=lambda item: -item[1])[:top]:
        sites = sorted(((count, caller) for (n, caller), count in per_span.items() if n == name), reverse=True)
        where = ", ".join(f"{caller} {count:.1f}" for count, caller in sites if count >= 0.05)
        print(f"  {name:<22} {total:5.1f}  {where}")


def _cpu_us_per_span(map_span: Callable[[Any, Any], Any], options: Any, spans: Sequence[Any]) -> float:
    started = time.thread_time()
    for span in spans:
        map_span(span, options)
    return (time.thread_time() - started) / len(spans) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--spans", type=int, default=2048, help="spans per workload and round (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=7, help="measured rounds (default: %(default)s)")
    parser.add_argument("--compute-cost", action="store_true", help="price LLM spans as the exporter does by default")
    parser.add_argument(
        "--count", action="store_true", help="also count Python calls and bytecodes per span (deterministic)"
    )
    parser.add_argument(
        "--c-calls", action="store_true", help="also count C calls per span and where they come from (deterministic)"
    )
    parser.add_argument(
        "--c-calls-of", default="today", help="comma-separated workloads for --c-calls (default: %(default)s)"
    )
    args = parser.parse_args()
    where, map_span, options = _mapper(compute_cost=args.compute_cost)
    pricing = "on" if args.compute_cost else "off"
    print(
        f"python {sys.version.split()[0]}; mapping from {where}; {args.spans} spans x {args.rounds} rounds; "
        f"pricing {pricing}"
    )

    today = _common.build_span_set(args.spans)
    http = _spans(_http, args.spans)
    oi = _spans(_openinference, args.spans)
    rounds = args.rounds + 1  # the first round warms up and is not counted
    varying = [_spans(_varying(seed), args.spans) for seed in range(rounds)]
    new_keys = [_with_new_key(today, r) for r in range(rounds)]
    mix = _suite_workload("mix", args.spans)
    tiered = _suite_workload("tiered-prices", args.spans)
    workloads: dict[str, Callable[[int], Sequence[Any]]] = {
        "today": lambda r: today,
        "mix": lambda r: mix,
        "tiered-prices": lambda r: tiered,
        "varying-keys": lambda r: varying[r],
        "new-key-each-span": lambda r: new_keys[r],
        "http-server": lambda r: http,
        "openinference-10-messages": lambda r: oi,
    }
    results: dict[str, list[float]] = {name: [] for name in workloads}
    for r in range(rounds):
        for name, spans_of in workloads.items():  # interleaved, so a noisy moment hits every workload
            figure = _cpu_us_per_span(map_span, options, spans_of(r))
            if r:
                results[name].append(figure)
    counts: dict[str, tuple[float, float]] = {}
    if args.count:
        # On 256 spans of the last round, with a mapper of its own (warmed on them first).
        _, count_map_span, _ = _mapper(compute_cost=args.compute_cost)
        counts = {
            name: _calls_and_opcodes_per_span(count_map_span, options, spans_of(rounds - 1)[:256])
            for name, spans_of in workloads.items()
        }
    base = _common.median(results["today"])
    count_header = f" {'calls/span':>11} {'bytecodes/span':>15}" if counts else ""
    print(f"{'workload':<28} {'µs/span':>8} {'vs today':>9}{count_header}")
    for name, figures in results.items():
        med = _common.median(figures)
        count_cells = f" {counts[name][0]:11.1f} {counts[name][1]:15.0f}" if counts else ""
        print(f"{name:<28} {med:8.2f} {med / base:8.2f}x{count_cells}")
    if args.c_calls:
        for name in args.c_calls_of.split(","):
            _, c_map_span, _ = _mapper(compute_cost=args.compute_cost)
            _print_c_calls(name, _c_calls_per_span(c_map_span, options, workloads[name](rounds - 1)[:256]))


if __name__ == "__main__":
    main()

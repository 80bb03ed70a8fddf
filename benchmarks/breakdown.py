# SPDX-License-Identifier: Apache-2.0
"""Where the exporter's CPU goes, stage by stage, on the span set of cpu_per_span.py.

    python benchmarks/breakdown.py
    python benchmarks/breakdown.py --no-speedups

Stages: ``map_span`` (as spans come from the SDK, and with the attributes copied to a plain dict first, which is
what a lookup-heavy mapping pays for ``MappingProxyType(BoundedAttributes)``: every missing key raises KeyError
inside ``Mapping.get``), ``dumps_event`` (orjson and stdlib), gzip with zlib and (with the speedups) zlib-ng at
several levels (CPU and compressed bytes per span), ``build_body`` as the exporter calls it, and one HTTP POST of a
100-event body to the sink (its own process): with a plain ``requests.Session.post``, with a bare kept-alive
``http.client.HTTPConnection`` (the floor of any client built on http.client, urllib3's included) and with the
exporter's ``IngestTransport`` (connections from requests' pool with its TLS and proxy settings, the exchange by the
project's own HTTP/1.1 code on the connection's socket).
Pricing: ``compute_cost`` from a price plan against ``genai_prices.calc_price`` for the same calls (flat and tiered
models, below and above the tier). Each figure is the best of several repetitions, in CPU microseconds per span
(per request for the POSTs).
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import time
import urllib.parse
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import _common


def _best_us(
    items: Sequence[Any], fn: Callable[[Any], object], repeat: int = 7, clock: Callable[[], float] = time.thread_time
) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = clock()
        for item in items:
            fn(item)
        best = min(best, clock() - start)
    return best / len(items) * 1e6


def _with_dict_attributes(span: Any) -> Any:
    from opentelemetry.sdk.trace import ReadableSpan

    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=dict(span.attributes),
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def _pricing_rows() -> list[tuple[str, float, str]]:
    """compute_cost (a price plan) against genai_prices.calc_price, per priced span, on tiered and flat models."""
    try:
        import genai_prices
    except ImportError:
        return [("pricing", float("nan"), "genai-prices not installed")]
    from opentelemetry_exporter_lumiqtrace.mapping.pricing import compute_cost

    calls = [
        (provider, model, input_tokens)
        for provider, model in (
            ("openai", "gpt-4o"),
            ("anthropic", "claude-sonnet-4-5"),
            ("gcp.gemini", "gemini-2.5-pro"),
        )
        for input_tokens in (1_200, 250_000)
    ]

    def plan(call: tuple[str, str, int]) -> object:
        provider, model, input_tokens = call
        return compute_cost(
            raw_provider=provider, model=model, input_tokens=input_tokens, output_tokens=300, cache_read_tokens=100
        )

    def calc(call: tuple[str, str, int]) -> object:
        _, model, input_tokens = call
        usage = genai_prices.Usage(input_tokens=input_tokens, output_tokens=300, cache_read_tokens=100)
        return genai_prices.calc_price(usage, model)

    for call in calls:
        plan(call)  # resolve the plans first: the per-span cost is what is measured
    return [
        ("compute_cost (price plan)", _best_us(calls * 200, plan), "gpt-4o, claude-sonnet-4-5, gemini-2.5-pro"),
        ("genai_prices.calc_price", _best_us(calls * 5, calc), "the same calls"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description="CPU per stage of the exporter.")
    parser.add_argument(
        "--no-speedups", action="store_true", help="block the orjson and zlib-ng imports (no `speedups` extra)"
    )
    parser.add_argument("--spans", type=int, default=2048)
    args = parser.parse_args()
    if args.no_speedups:
        _common.block_speedups()
    import requests

    from opentelemetry_exporter_lumiqtrace import encoding
    from opentelemetry_exporter_lumiqtrace.mapping import Mapper, MappingOptions
    from opentelemetry_exporter_lumiqtrace.transport import IngestTransport

    spans = _common.build_span_set(args.spans)
    options = MappingOptions()
    map_span = Mapper().map_span
    print(f"python {sys.version.split()[0]}; {len(spans)} spans; {_common.speedups_label()}")
    rows: list[tuple[str, float, str]] = []
    rows.append(("map_span (SDK span)", _best_us(spans, lambda s: map_span(s, options)), ""))
    rows.extend(_pricing_rows())
    dict_spans = [_with_dict_attributes(s) for s in spans]
    rows.append(("map_span (attributes as dict)", _best_us(dict_spans, lambda s: map_span(s, options)), ""))
    rows.append(("dict(span.attributes)", _best_us(spans, lambda s: dict(s.attributes)), ""))
    events = [map_span(s, options) for s in spans]
    rows.append(("dumps_event", _best_us(events, encoding.dumps_event), ""))
    rows.append(("  stdlib json path", _best_us(events, encoding._dumps_stdlib), ""))
    lines = [encoding.dumps_event(e) for e in events]
    chunks = [lines[i : i + 100] for i in range(0, len(lines), 100)]
    raw_per_span = sum(len(line) + 1 for line in lines) / len(lines)
    rows.append(("NDJSON bytes per span", float("nan"), f"{raw_per_span:.0f} B"))
    compressors: list[tuple[str, Any, int]] = [("zlib", zlib, level) for level in (1, 3, 6, 9)]
    if not args.no_speedups:
        try:
            from zlib_ng import zlib_ng

            compressors += [("zlib-ng", zlib_ng, level) for level in (1, 2, 3, 6)]
        except ImportError:
            pass
    for library, module, level in compressors:

        def compress(chunk: list[bytes], module: Any = module, level: int = level) -> bytes:
            c = module.compressobj(level, zlib.DEFLATED, 31)
            return bytes(c.compress(b"\n".join([*chunk, b""])) + c.flush())

        us = _best_us(chunks, compress) * len(chunks) / len(lines)
        size = sum(len(compress(chunk)) for chunk in chunks) / len(lines)
        current = library == encoding.GZIP_LIBRARY and level == encoding.GZIP_LEVEL
        marker = " (current)" if current else ""
        rows.append((f"gzip {library} level {level}{marker}", us, f"{size:.0f} B/span"))
    us = _best_us(chunks, lambda c: encoding.build_body(c, gzip_body=True)) * len(chunks) / len(lines)
    rows.append(("build_body (gzip)", us, ""))

    body = encoding.build_body(chunks[0], gzip_body=True)
    headers = {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip", "x-api-key": "k"}
    with _common.ServerProcess("sink_server.py") as sink:
        url = sink.base_url + "/v1/ingest"
        session = requests.Session()
        session.headers.update(headers)
        session.post(url, data=body).raise_for_status()
        # Process CPU for the POSTs: the transport makes new connections in a worker thread (the sink is another
        # process).
        per_request = _best_us(
            range(200), lambda _, s=session: s.post(url, data=body), repeat=3, clock=time.process_time
        )
        rows.append(("POST 100 events, requests.post", per_request, "per request"))
        session.close()
        host, port = urllib.parse.urlsplit(sink.base_url).hostname, urllib.parse.urlsplit(sink.base_url).port
        connection = http.client.HTTPConnection(host or "127.0.0.1", port, timeout=10)

        def post_http_client(_: object) -> None:
            connection.request("POST", "/v1/ingest", body=body, headers=headers)
            connection.getresponse().read()

        per_request = _best_us(range(200), post_http_client, repeat=3, clock=time.process_time)
        rows.append(("POST 100 events, http.client", per_request, "per request"))
        connection.close()
        transport = IngestTransport(base_url=sink.base_url, api_key=_common.BENCH_API_KEY, gzip_body=True)
        if transport.post(body, timeout=10).status != 200:
            raise RuntimeError("the sink did not accept the transport's POST")
        per_request = _best_us(
            range(200), lambda _: transport.post(body, timeout=10), repeat=3, clock=time.process_time
        )
        rows.append(("POST 100 events, IngestTransport", per_request, "per request"))
        transport.close()
    print(f"{'stage':<36} {'CPU us/span':>12}")
    for name, us, note in rows:
        figure = "" if us != us else f"{us:.2f}"
        print(f"{name:<36} {figure:>12}  {note}")
    print(json.dumps({name: round(us, 3) for name, us, _ in rows if us == us}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

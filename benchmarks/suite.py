# SPDX-License-Identifier: Apache-2.0
"""The workload suite: CPU per span of this exporter against OTLP/HTTP (gzip) and Zipkin JSON, workload by workload.

    python benchmarks/suite.py                        # every workload, speedups (orjson, zlib-ng) if installed
    python benchmarks/suite.py --no-speedups          # as if the `speedups` extra were not installed
    python benchmarks/suite.py --quick                # 1,024 spans, 3 rounds: a smoke run in well under a minute
    python benchmarks/suite.py --only mix,tiered-prices --rounds 15
    python benchmarks/suite.py --markdown             # the table as Markdown too (for the README)

The workloads are in ``workloads.py``. For each one, the three exporters get the same ``ReadableSpan``s in batches
of 512 (the batch processor's size) and post them to the same loopback sink in its own process; rounds are
interleaved (the order rotates every round) after one warm-up round. Every round gets new spans (new ids, request
numbers continuing), the same for all three exporters; the mapping alone is measured on another new set.

CPU is ``time.process_time()`` around each ``export()`` (and a final ``force_flush()``): every thread of this
process, so work an exporter hands to a helper thread still counts (the sink is another process). The thread's own
CPU (``time.thread_time()``) is printed beside it. Ratios are medians of the per-round ratios, which is what makes
figures from a busy machine comparable. The table is sorted worst workload (highest ratio to OTLP/HTTP) first.

"mapping" is the mapping alone (``map_span``, pricing included) on the same spans, CPU µs per span, and its ratio to
the mapping's cost on the ``today`` workload (issue 11's floor: ``varying-keys`` at most 1.5x ``today``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import _common

PEERS = ("otlp-http-gzip", "zipkin-json")


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="CPU per span per workload, against OTLP/HTTP and Zipkin JSON.")
    parser.add_argument(
        "--no-speedups", action="store_true", help="block the orjson and zlib-ng imports (no `speedups` extra)"
    )
    parser.add_argument("--spans", type=int, default=2048, help="spans per round (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=512, help="spans per export() call (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=7, help="measured rounds per workload (default: %(default)s)")
    parser.add_argument("--only", default="", help="comma-separated workload names (default: all)")
    parser.add_argument("--quick", action="store_true", help="1,024 spans and 3 rounds per workload")
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    parser.add_argument("--list", action="store_true", help="list the workloads and exit")
    return parser.parse_args()


def _contenders(base_url: str, exporter_kwargs: dict[str, Any]) -> dict[str, Any]:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.exporter.zipkin.json import ZipkinExporter

    from opentelemetry_exporter_lumiqtrace import LumiqTraceSpanExporter

    return {
        "lumiqtrace": LumiqTraceSpanExporter(
            api_key=_common.BENCH_API_KEY, base_url=base_url, **_common.unpaced(), **exporter_kwargs
        ),
        "otlp-http-gzip": OTLPSpanExporter(endpoint=f"{base_url}/v1/traces", compression=Compression.Gzip),
        "zipkin-json": ZipkinExporter(endpoint=f"{base_url}/api/v2/spans"),
    }


def _export_round(exporter: Any, batches: Sequence[Sequence[Any]]) -> tuple[float, float]:
    """(process CPU, thread CPU) seconds to export every batch and flush what the exporter keeps back."""
    from opentelemetry.sdk.trace.export import SpanExportResult

    process = thread = 0.0
    for batch in batches:
        p, t = time.process_time(), time.thread_time()
        result = exporter.export(batch)
        process += time.process_time() - p
        thread += time.thread_time() - t
        if result is not SpanExportResult.SUCCESS:
            raise RuntimeError(f"{type(exporter).__name__}.export() failed")
    p, t = time.process_time(), time.thread_time()
    exporter.force_flush()
    return process + time.process_time() - p, thread + time.thread_time() - t


def _mapper(exporter_kwargs: dict[str, Any]) -> Callable[[Any], object]:
    """The mapping alone, configured as the exporter configures it (adapt here if the mapping's API changes)."""
    from opentelemetry_exporter_lumiqtrace.mapping import Mapper, MappingOptions

    options = MappingOptions(capture_content=bool(exporter_kwargs.get("capture_content", False)))
    map_span = Mapper().map_span  # one long-lived mapper, as the exporter owns one
    return lambda span: map_span(span, options)


def _mapping_round(mapper: Callable[[Any], object], spans: Sequence[Any]) -> float:
    start = time.thread_time()
    for span in spans:
        mapper(span)
    return time.thread_time() - start


def run_workload(workload: Any, sink_url: str, args: argparse.Namespace) -> dict[str, Any]:
    import workloads

    maker = workloads.SpanMaker(workload)
    contenders = _contenders(sink_url, workload.exporter_kwargs)
    mapper = _mapper(workload.exporter_kwargs)
    names = list(contenders)
    process: dict[str, list[float]] = {name: [] for name in names}
    thread: dict[str, list[float]] = {name: [] for name in names}
    mapping: list[float] = []
    try:
        for round_no in range(args.rounds + 1):  # round 0 warms up: connections, imports, caches
            spans = maker.spans(args.spans)
            batches = _common.batches(spans, args.batch)
            order = names[round_no % len(names) :] + names[: round_no % len(names)]
            for name in order:
                p, t = _export_round(contenders[name], batches)
                if round_no:
                    process[name].append(p / len(spans) * 1e6)
                    thread[name].append(t / len(spans) * 1e6)
            spans = maker.spans(args.spans)  # the mapping alone gets spans it has not seen either
            m = _mapping_round(mapper, spans)
            if round_no:
                mapping.append(m / len(spans) * 1e6)
    finally:
        for exporter in contenders.values():
            exporter.shutdown()
        maker.close()
    row: dict[str, Any] = {
        "workload": workload.name,
        "us_per_span": {name: _common.median(process[name]) for name in names},
        "thread_us_per_span": {name: _common.median(thread[name]) for name in names},
        "mapping_us_per_span": _common.median(mapping),
    }
    for peer in PEERS:
        ratios = [v / b for v, b in zip(process["lumiqtrace"], process[peer], strict=True)]
        row[f"x_{peer}"] = _common.median(ratios)
    return row


def _print_table(rows: list[dict[str, Any]], today_mapping: float | None, markdown: bool) -> None:
    header = (
        "workload",
        "lumiqtrace us",
        "OTLP us",
        "Zipkin us",
        "x OTLP/HTTP",
        "x Zipkin",
        "(thread us)",
        "mapping us",
        "mapping x today",
    )
    lines: list[tuple[str, ...]] = []
    for row in rows:
        us = row["us_per_span"]
        map_ratio = row["mapping_us_per_span"] / today_mapping if today_mapping else float("nan")
        lines.append(
            (
                row["workload"],
                f"{us['lumiqtrace']:.1f}",
                f"{us['otlp-http-gzip']:.1f}",
                f"{us['zipkin-json']:.1f}",
                f"{row['x_otlp-http-gzip']:.2f}",
                f"{row['x_zipkin-json']:.2f}",
                f"{row['thread_us_per_span']['lumiqtrace']:.1f}",
                f"{row['mapping_us_per_span']:.1f}",
                "" if map_ratio != map_ratio else f"{map_ratio:.2f}",
            )
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    print("  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True))))
    for line in lines:
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))))
    if markdown:
        print()
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
        for line in lines:
            print("| " + " | ".join(line) + " |")


def main() -> int:
    args = _parse_args()
    if args.no_speedups:
        _common.block_speedups()
    import workloads

    if args.list:
        for workload in workloads.WORKLOADS:
            print(f"{workload.name:<22} {workload.description}")
        return 0
    if args.quick:
        args.spans, args.rounds = 1024, 3
    selected = [w for w in workloads.WORKLOADS if not args.only or w.name in args.only.split(",")]
    unknown = set(filter(None, args.only.split(","))) - set(workloads.BY_NAME)
    if unknown:
        print(f"unknown workload(s): {', '.join(sorted(unknown))}; --list shows them", file=sys.stderr)
        return 2
    print(
        f"python {sys.version.split()[0]}; {_common.speedups_label()}; {args.spans} spans per round in batches of "
        f"{args.batch}; {args.rounds} rounds per workload; CPU = process CPU time (all threads) per span"
    )
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with _common.ServerProcess("sink_server.py") as sink:
        for workload in selected:
            row = run_workload(workload, sink.base_url, args)
            rows.append(row)
            print(
                f"  {workload.name}: {row['us_per_span']['lumiqtrace']:.1f} us/span, "
                f"{row['x_otlp-http-gzip']:.2f}x OTLP/HTTP, {row['x_zipkin-json']:.2f}x Zipkin",
                flush=True,
            )
    today = next((row["mapping_us_per_span"] for row in rows if row["workload"] == "today"), None)
    rows.sort(key=lambda row: row["x_otlp-http-gzip"], reverse=True)
    print(f"\nworst workload first ({time.perf_counter() - started:.0f} s):")
    _print_table(rows, today, args.markdown)
    print(json.dumps({"speedups": not args.no_speedups, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

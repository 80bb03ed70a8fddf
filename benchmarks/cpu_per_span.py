# SPDX-License-Identifier: Apache-2.0
"""CPU per span: this exporter against OTLP/HTTP (protobuf, gzip) and Zipkin JSON, same spans, same sink.

    python benchmarks/cpu_per_span.py                 # with orjson and zlib-ng (the `speedups` extra), if installed
    python benchmarks/cpu_per_span.py --no-speedups   # as if they were not installed
    python benchmarks/cpu_per_span.py --profile       # cProfile of this exporter's export() instead

A realistic span set (HTTP SERVER spans with GenAI CLIENT spans below them, about one trace in sixteen failing) is
made with the real SDK for every round, with new ids and new response ids, so that no exporter sees a span twice (as
in a process: sent again, a span would look to count_once like a duplicate of itself). Each exporter sends the
round's set in batches of 512 (the batch processor's size) to the same loopback sink running in its own process.
Rounds are interleaved (the order rotates every round) and the CPU time of the whole process
(``time.process_time()``: mapping, encoding, compression and the HTTP client, in whichever thread they run: this
exporter does its HTTP I/O in transport worker threads and may send slices from helper threads, which the calling
thread's clock would not see; the sink is another process) is measured around each ``export()`` call. Printed: the
median CPU microseconds per span over the rounds and the ratio to OTLP/HTTP (the median of the per-round ratios).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import _common


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="CPU per span of the LumiqTrace, OTLP/HTTP and Zipkin exporters.")
    parser.add_argument(
        "--no-speedups", action="store_true", help="block the orjson and zlib-ng imports (no `speedups` extra)"
    )
    parser.add_argument("--spans", type=int, default=2048, help="spans in the set (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=512, help="spans per export() call (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=9, help="measured rounds (default: %(default)s)")
    parser.add_argument("--profile", action="store_true", help="cProfile this exporter and print the hot spots")
    parser.add_argument("--profile-top", type=int, default=30, help="rows of the profile (default: %(default)s)")
    return parser.parse_args()


def _make_contenders(base_url: str) -> dict[str, Any]:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.exporter.zipkin.json import ZipkinExporter

    from opentelemetry_exporter_lumiqtrace import LumiqTraceSpanExporter

    return {
        "lumiqtrace": LumiqTraceSpanExporter(api_key=_common.BENCH_API_KEY, base_url=base_url, **_common.unpaced()),
        "otlp-http-gzip": OTLPSpanExporter(endpoint=f"{base_url}/v1/traces", compression=Compression.Gzip),
        "zipkin-json": ZipkinExporter(endpoint=f"{base_url}/api/v2/spans"),
    }


def _one_round(exporter: Any, batches: Sequence[Sequence[Any]]) -> float:
    """CPU seconds of this process to export every batch (and flush what the exporter keeps back)."""
    from opentelemetry.sdk.trace.export import SpanExportResult

    clock: Callable[[], float] = time.process_time  # every thread: the transport's workers too
    cpu = 0.0
    for batch in batches:
        start = clock()
        result = exporter.export(batch)
        cpu += clock() - start
        if result is not SpanExportResult.SUCCESS:
            raise RuntimeError(f"{type(exporter).__name__}.export() failed")
    start = clock()
    exporter.force_flush()
    cpu += clock() - start
    return cpu


def _profile(exporter: Any, rounds: Sequence[Sequence[Sequence[Any]]], top: int) -> None:
    """cProfile of ``exporter`` over every round but the first (which warms the connection and caches)."""
    import cProfile
    import pstats

    _one_round(exporter, rounds[0])
    profiler = cProfile.Profile()
    profiler.enable()
    for batches in rounds[1:]:
        _one_round(exporter, batches)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


def main() -> int:
    args = _parse_args()
    if args.no_speedups:
        _common.block_speedups()
    requests_per_set = args.spans  # more than a set needs: the sets' request numbers never overlap

    def span_set(round_no: int) -> list[Any]:
        return _common.build_span_set(args.spans, first_request=round_no * requests_per_set)

    spans = span_set(0)
    print(
        f"python {sys.version.split()[0]}; {len(spans)} new spans per round in batches of {args.batch}; "
        f"{_common.speedups_label()}; {args.rounds} rounds"
    )
    with _common.ServerProcess("sink_server.py") as sink:
        contenders = _make_contenders(sink.base_url)
        try:
            if args.profile:
                rounds = [_common.batches(span_set(n), args.batch) for n in range(6)]
                _profile(contenders["lumiqtrace"], rounds, args.profile_top)
                return 0
            names = list(contenders)
            for name in names:  # warm-up: connections, imports, caches
                _one_round(contenders[name], _common.batches(spans, args.batch))
            per_span: dict[str, list[float]] = {name: [] for name in names}
            for round_no in range(args.rounds):
                spans = span_set(round_no + 1)
                batches = _common.batches(spans, args.batch)
                order = names[round_no % len(names) :] + names[: round_no % len(names)]
                for name in order:
                    per_span[name].append(_one_round(contenders[name], batches) / len(spans) * 1e6)
        finally:
            for exporter in contenders.values():
                exporter.shutdown()
    base = per_span["otlp-http-gzip"]
    print(f"{'exporter':<16} {'median us/span':>15} {'min':>8} {'max':>8} {'x OTLP/HTTP':>12}")
    for name in names:
        values = per_span[name]
        ratio = _common.median([v / b for v, b in zip(values, base, strict=True)])
        print(f"{name:<16} {_common.median(values):>15.1f} {min(values):>8.1f} {max(values):>8.1f} {ratio:>12.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

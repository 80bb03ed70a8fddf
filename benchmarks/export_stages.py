# SPDX-License-Identifier: Apache-2.0
"""Where the exporting thread's CPU goes outside the mapping, stage by stage, on one workload of the suite.

    python benchmarks/export_stages.py                       # the `today` workload, 7 rounds
    python benchmarks/export_stages.py --workload mix --rounds 11

Every stage is timed with ``time.thread_time()`` in the calling thread (the sink runs in its own process), over
batches of 512 new spans of the workload (a new span set for every measurement: count_once must never see a span
twice), and printed as the median over the rounds in CPU microseconds per span:

- ``export``: ``LumiqTraceSpanExporter.export()`` as the batch processor calls it;
- ``encode``: the exporter's filter + map + count once + encode pass (``_encode``) alone;
- ``map``: ``Mapper.map_span`` alone; ``map+count``: with count_once's ``observe_mapped`` after it, as the exporter;
- ``dumps``: ``encode_events`` on mapped events (orjson with the speedups);
- ``slices+body``: cutting encoded lines into requests and building (gzip) each body;
- ``post``: ``IngestTransport.post`` of those bodies (the HTTP exchange on a kept-alive connection);
- ``send``: ``Backlog.send``, which does slices, bodies, posts and the delivery bookkeeping.

Derived rows: ``encode - map+count - dumps`` (the per-span loop, the filter), ``send - slices+body - post``
(delivery bookkeeping per request), ``export - encode - send`` (export()'s own wrapping). Counted on a shared
machine these are preliminary; ratios between rows of one run are what to compare.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import _common


def _timed(fn: Callable[[], object]) -> float:
    start = time.thread_time()
    fn()
    return time.thread_time() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common.add_workload_arguments(parser, rounds=7, spans_help="spans per measurement and round")
    args = parser.parse_args(argv)
    if args.no_speedups:
        _common.block_speedups()
    import workloads

    from opentelemetry_exporter_lumiqtrace import LumiqTraceSpanExporter
    from opentelemetry_exporter_lumiqtrace.encoding import build_body, encode_events, encode_slices
    from opentelemetry_exporter_lumiqtrace.mapping import Mapper, MappingOptions

    workload = workloads.BY_NAME[args.workload]
    maker = workloads.SpanMaker(workload)
    figures: dict[str, list[float]] = {}

    def record(name: str, seconds: float, count: int) -> None:
        figures.setdefault(name, []).append(seconds / count * 1e6)

    print(f"{_common.speedups_label()}; workload {workload.name}; {args.spans} spans x {args.rounds} rounds")
    with _common.ServerProcess("sink_server.py") as sink:
        exporter = LumiqTraceSpanExporter(
            api_key=_common.BENCH_API_KEY, base_url=sink.base_url, **_common.unpaced(), **workload.exporter_kwargs
        )
        backlog = exporter._backlog
        assert backlog is not None
        transport = backlog.deliverer.transport
        policy = backlog.deliverer.policy
        options = MappingOptions(capture_content=bool(workload.exporter_kwargs.get("capture_content", False)))
        mapper = Mapper()
        count_once = exporter._count_once
        try:
            for round_no in range(args.rounds + 1):  # round 0 warms up
                batches: list[Sequence[Any]] = _common.batches(maker.spans(args.spans), args.batch)
                export_s = sum(_timed(lambda b=b: exporter.export(b)) for b in batches)
                exporter.force_flush()

                batches = _common.batches(maker.spans(args.spans), args.batch)
                encoded: list[list[bytes]] = []
                encode_s = 0.0
                for batch in batches:
                    start = time.thread_time()
                    lines, _ = exporter._encode(batch)
                    encode_s += time.thread_time() - start
                    encoded.append(lines)

                spans = maker.spans(args.spans)
                start = time.thread_time()
                events = [mapper.map_span(span, options) for span in spans]
                map_s = time.thread_time() - start
                start = time.thread_time()
                encode_events([e for e in events if e is not None], from_mapping=True)
                dumps_s = time.thread_time() - start

                spans = maker.spans(args.spans)
                observe = getattr(count_once, "observe_mapped", count_once.observe)  # what the exporter calls
                start = time.thread_time()
                for span in spans:
                    event = mapper.map_span(span, options)
                    if event is not None:
                        observe(span, event)
                map_count_s = time.thread_time() - start

                start = time.thread_time()
                bodies = [
                    build_body(chunk, gzip_body=True)
                    for lines in encoded
                    for chunk in encode_slices(
                        lines, max_events=policy.max_events_per_request, max_bytes=policy.max_request_bytes
                    )
                ]
                body_s = time.thread_time() - start
                start = time.thread_time()
                for body in bodies:
                    transport.post(body, timeout=10.0)
                post_s = time.thread_time() - start
                start = time.thread_time()
                for lines in encoded:
                    backlog.send(lines, time.monotonic() + 10.0)
                send_s = time.thread_time() - start

                if round_no:
                    n = args.spans
                    record("export", export_s, n)
                    record("encode", encode_s, n)
                    record("map", map_s, n)
                    record("map+count", map_count_s, n)
                    record("dumps", dumps_s, n)
                    record("slices+body", body_s, n)
                    record("post", post_s, n)
                    record("send", send_s, n)
                    record("encode - map+count - dumps", encode_s - map_count_s - dumps_s, n)
                    record("send - slices+body - post", send_s - body_s - post_s, n)
                    record("export - encode - send", export_s - encode_s - send_s, n)
                    record("post per request (us)", post_s * n / len(bodies), n)
        finally:
            exporter.shutdown()
            maker.close()
    for name, values in figures.items():
        print(f"{name:<30} {statistics.median(values):8.2f}  (min {min(values):.2f}, max {max(values):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

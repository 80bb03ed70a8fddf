# SPDX-License-Identifier: Apache-2.0
"""The application benchmark: what an exporter costs a busy app, in CPU and in request latency.

    python benchmarks/app_benchmark.py                 # 5,000 spans/s from 8 threads, 10 s per run, 3 runs
    python benchmarks/app_benchmark.py --quick         # one 4 s run per configuration
    python benchmarks/app_benchmark.py --seconds 30 --runs 5 --rate 8000
    python benchmarks/app_benchmark.py --no-speedups

Eight request threads make web requests (a SERVER span with one or two chat CLIENT spans below it: the ``mix``
workload of ``workloads.py``, gpt-4o / gpt-4o-mini / claude-sonnet-4-5 / gemini-2.5-flash) at a fixed total rate of
spans per second, each request doing about 0.1 ms of its own CPU work (a JSON round trip) besides its spans. The
spans go through the SDK's ``BatchSpanProcessor`` with its default settings (queue 2,048, batches of 512, 5 s delay)
into one of three configurations, run in turn (the order rotates every run):

- ``none``: the processor into an exporter that does nothing (the baseline: the app and the SDK alone);
- ``otlp-http-gzip``: the OTLP/HTTP exporter (protobuf, gzip) posting to a loopback sink in its own process;
- ``lumiqtrace``: this exporter posting to the same sink.

Printed per configuration (medians over the runs): the exporter thread's CPU per span (``time.thread_time()`` inside
``export()``, in the processor's worker thread); the same plus the CPU of the exporter's own threads (this exporter
does its HTTP I/O in ``lumiqtrace-http`` worker threads and sends slices concurrently from ``LumiqTraceSend``
threads, which the processor thread's clock does not see; read per thread with ``time.pthread_getcpuclockid``, on
platforms that have it; a short-lived thread that ended before the run's end, such as a linger timer, is not
counted), the whole process's CPU per span above the ``none`` baseline of the
same run (catches work an exporter moves to other threads), the requests' p50 and p99 latency (wall time of one
request, in its thread), the spans/s achieved, dropped spans (ended but never handed to the exporter: the
processor's queue was full) and the longest wall time of one ``export()`` call (the processor's queue holds 2,048
spans, 0.4 s at 5,000 spans/s: an export that stalls longer than that drops spans). The lumiqtrace/OTLP ratio of
exporter-thread CPU (and of exporter-thread-plus-own-threads CPU) is the median of the per-run ratios.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import _common

CONFIGS = ("none", "otlp-http-gzip", "lumiqtrace")
_HANDLER_PAYLOAD = {"items": [{"id": i, "name": f"item-{i}", "tags": ["a", "b"]} for i in range(40)]}


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Exporter CPU and request latency inside a busy application.")
    parser.add_argument(
        "--no-speedups", action="store_true", help="block the orjson and zlib-ng imports (no `speedups` extra)"
    )
    parser.add_argument("--rate", type=float, default=5000, help="spans/s, all threads (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=8, help="request threads (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=10, help="seconds per run (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=3, help="runs per configuration (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="one 4 s run per configuration")
    return parser.parse_args()


class _Measuring:
    """A SpanExporter wrapper: spans received and the CPU of the calling thread inside ``export()``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.received = 0
        self.export_cpu = 0.0
        self.export_walls: list[float] = []
        self._lock = threading.Lock()

    def export(self, spans: Sequence[Any]) -> Any:
        start, wall = time.thread_time(), time.perf_counter()
        try:
            return self.inner.export(spans) if self.inner is not None else _success()
        finally:
            with self._lock:
                self.export_cpu += time.thread_time() - start
                self.export_walls.append(time.perf_counter() - wall)
                self.received += len(spans)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True if self.inner is None else bool(self.inner.force_flush(timeout_millis))

    def shutdown(self) -> None:
        if self.inner is not None:
            self.inner.shutdown()


# Names of the threads exporters start for their own work (this exporter's; the OTLP exporter starts none).
_EXPORTER_THREAD_PREFIXES = ("lumiqtrace-", "LumiqTrace")


def _exporter_threads_cpu() -> dict[int, float]:
    """CPU seconds so far of each live exporter-owned thread, by id (empty without per-thread clocks)."""
    found: dict[int, float] = {}
    clock_id = getattr(time, "pthread_getcpuclockid", None)
    if clock_id is None:
        return found
    for thread in threading.enumerate():
        if thread.ident is not None and thread.name.startswith(_EXPORTER_THREAD_PREFIXES):
            try:
                found[thread.ident] = time.clock_gettime(clock_id(thread.ident))
            except OSError:  # the thread ended meanwhile
                continue
    return found


def _success() -> Any:
    from opentelemetry.sdk.trace.export import SpanExportResult

    return SpanExportResult.SUCCESS


def _as_span_exporter(measuring: _Measuring) -> Any:
    """``_Measuring`` as a real ``SpanExporter`` subclass (the processor only needs the three methods)."""
    from opentelemetry.sdk.trace.export import SpanExporter

    class MeasuringExporter(SpanExporter):
        def export(self, spans: Sequence[Any]) -> Any:
            return measuring.export(spans)

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return measuring.force_flush(timeout_millis)

        def shutdown(self) -> None:
            measuring.shutdown()

    return MeasuringExporter()


def _make_exporter(config: str, base_url: str) -> Any:
    if config == "none":
        return None
    if config == "otlp-http-gzip":
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=f"{base_url}/v1/traces", compression=Compression.Gzip)
    from opentelemetry_exporter_lumiqtrace import LumiqTraceSpanExporter

    return LumiqTraceSpanExporter(api_key=_common.BENCH_API_KEY, base_url=base_url, **_common.unpaced())


def _request_thread(
    tracer: Any, index: int, rate: float, seconds: float, latencies: list[float], ended: list[int]
) -> None:
    """Make web requests at ``rate`` spans/s for ``seconds``; record each request's wall time."""
    import workloads

    n = index * 10_000_000
    made = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        now = time.perf_counter()
        if now >= deadline:
            break
        if made >= rate * (now - start):
            time.sleep(min(0.001, deadline - now))
            continue
        began = time.perf_counter()
        json.loads(json.dumps(_HANDLER_PAYLOAD))  # the request's own work
        made += workloads._web_request(tracer, n, workloads.MIX_MODELS)
        latencies.append(time.perf_counter() - began)
        n += 1
    ended[index] = made


def _one_run(config: str, base_url: str, args: argparse.Namespace) -> dict[str, float]:
    measuring = _Measuring(_make_exporter(config, base_url))
    provider = _common.make_tracer_provider(_as_span_exporter(measuring), batch=True)
    tracer = provider.get_tracer("benchmarks.app", "0.1.0")
    # Warm up (connection, imports, caches), then measure from a clean slate.
    _request_thread(tracer, 0, 500, 0.5, [], [0])
    provider.force_flush()
    measuring.received = 0
    measuring.export_cpu = 0.0
    measuring.export_walls.clear()
    latencies: list[list[float]] = [[] for _ in range(args.threads)]
    ended = [0] * args.threads
    per_thread = args.rate / args.threads
    threads = [
        threading.Thread(
            target=_request_thread, args=(tracer, i, per_thread, args.seconds, latencies[i], ended), name=f"req-{i}"
        )
        for i in range(args.threads)
    ]
    own_before = _exporter_threads_cpu()
    cpu_before = time.process_time()
    wall_before = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - wall_before
    provider.force_flush()  # what is still queued is exported, not dropped
    cpu = time.process_time() - cpu_before
    own_after = _exporter_threads_cpu()
    # A thread id reused by a newer thread reads less than before: that thread's CPU is all new.
    own_cpu = sum(
        after - own_before.get(ident, 0.0) if after >= own_before.get(ident, 0.0) else after
        for ident, after in own_after.items()
    )
    provider.shutdown()
    total = sum(ended)
    all_latencies = sorted(x for per in latencies for x in per)
    return {
        "spans": total,
        "spans_per_s": total / elapsed,
        "dropped": total - measuring.received,
        "export_thread_us_per_span": measuring.export_cpu / max(measuring.received, 1) * 1e6,
        "exporter_threads_us_per_span": (measuring.export_cpu + own_cpu) / max(measuring.received, 1) * 1e6,
        "process_us_per_span": cpu / max(total, 1) * 1e6,
        "p50_ms": all_latencies[len(all_latencies) // 2] * 1e3,
        "p99_ms": all_latencies[min(len(all_latencies) - 1, int(len(all_latencies) * 0.99))] * 1e3,
        "max_export_wall_ms": max(measuring.export_walls, default=0.0) * 1e3,
    }


def main() -> int:
    args = _parse_args()
    if args.no_speedups:
        _common.block_speedups()
    if args.quick:
        args.seconds, args.runs = 4.0, 1
    # The processor logs one warning per dropped span; the count is what matters here.
    logging.getLogger("opentelemetry.sdk._shared_internal").setLevel(logging.CRITICAL)
    print(
        f"python {sys.version.split()[0]}; {_common.speedups_label()}; {args.threads} request threads, "
        f"{args.rate:.0f} spans/s, {args.seconds:g} s per run, {args.runs} run(s); default BatchSpanProcessor"
    )
    results: dict[str, list[dict[str, float]]] = {config: [] for config in CONFIGS}
    with _common.ServerProcess("sink_server.py") as sink:
        for run in range(args.runs):
            order = CONFIGS[run % len(CONFIGS) :] + CONFIGS[: run % len(CONFIGS)]
            for config in order:
                result = _one_run(config, sink.base_url, args)
                results[config].append(result)
                print(
                    f"  run {run + 1} {config}: {result['spans_per_s']:.0f} spans/s, exporter thread "
                    f"{result['export_thread_us_per_span']:.1f} us/span (with its own threads "
                    f"{result['exporter_threads_us_per_span']:.1f}), p99 {result['p99_ms']:.2f} ms, "
                    f"dropped {result['dropped']:.0f}, longest export() {result['max_export_wall_ms']:.0f} ms",
                    flush=True,
                )

    def med(config: str, key: str) -> float:
        return statistics.median(r[key] for r in results[config])

    base_process = [r["process_us_per_span"] for r in results["none"]]
    print(
        f"\n{'configuration':<16} {'spans/s':>8} {'exporter thread us/span':>24} {'+ own threads':>14} "
        f"{'process us/span over none':>26} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'dropped':>8} {'longest export ms':>18}"
    )
    summary: dict[str, Any] = {}
    for config in CONFIGS:
        over_none = statistics.median(
            r["process_us_per_span"] - b for r, b in zip(results[config], base_process, strict=True)
        )
        dropped = sum(r["dropped"] for r in results[config])
        print(
            f"{config:<16} {med(config, 'spans_per_s'):>8.0f} {med(config, 'export_thread_us_per_span'):>24.1f} "
            f"{med(config, 'exporter_threads_us_per_span'):>14.1f} "
            f"{over_none:>26.1f} {med(config, 'p50_ms'):>7.2f} {med(config, 'p99_ms'):>7.2f} {dropped:>8.0f} "
            f"{max(r['max_export_wall_ms'] for r in results[config]):>18.0f}"
        )
        summary[config] = {
            "export_thread_us_per_span": med(config, "export_thread_us_per_span"),
            "exporter_threads_us_per_span": med(config, "exporter_threads_us_per_span"),
            "process_us_per_span_over_none": over_none,
            "p50_ms": med(config, "p50_ms"),
            "p99_ms": med(config, "p99_ms"),
            "dropped": dropped,
            "spans_per_s": med(config, "spans_per_s"),
        }
    ratio = statistics.median(
        a["export_thread_us_per_span"] / b["export_thread_us_per_span"]
        for a, b in zip(results["lumiqtrace"], results["otlp-http-gzip"], strict=True)
    )
    print(f"lumiqtrace / OTLP/HTTP, exporter-thread CPU per span: {ratio:.2f}x")
    summary["ratio_export_thread_cpu_vs_otlp"] = ratio
    own_ratio = statistics.median(
        a["exporter_threads_us_per_span"] / b["exporter_threads_us_per_span"]
        for a, b in zip(results["lumiqtrace"], results["otlp-http-gzip"], strict=True)
    )
    print(f"lumiqtrace / OTLP/HTTP, exporter thread plus the exporter's own threads, CPU per span: {own_ratio:.2f}x")
    summary["ratio_exporter_threads_cpu_vs_otlp"] = own_ratio
    print(json.dumps({"speedups": not args.no_speedups, "summary": summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

# SPDX-License-Identifier: Apache-2.0
"""Sustained spans per second through the SDK's default BatchSpanProcessor into this exporter, with zero drops.

    python benchmarks/throughput.py                       # steps 2k .. 30k spans/s, 4 s each (< 60 s in all)
    python benchmarks/throughput.py --rates 8000,10000,12000 --step 10
    python benchmarks/throughput.py --no-speedups

An application thread makes spans at a fixed rate (HTTP SERVER spans with GenAI CLIENT spans below them, the SDK
doing all the work an instrumented app pays for) through ``BatchSpanProcessor`` with its default settings (queue
2048, batches of 512, 5 s delay) into ``LumiqTraceSpanExporter`` with its default settings, posting to the local
ingest server in its own process (rate limit lifted). The rate steps up until spans are dropped or the app thread
cannot keep the rate. Dropped = spans ended minus spans the exporter was handed (the processor's queue was full).
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import _common

DEFAULT_RATES = (2_000, 5_000, 8_000, 10_000, 12_000, 15_000, 20_000, 25_000, 30_000)


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Spans/s through the default BatchSpanProcessor, zero drops.")
    parser.add_argument(
        "--no-speedups", action="store_true", help="block the orjson and zlib-ng imports (no `speedups` extra)"
    )
    parser.add_argument("--rates", default=",".join(map(str, DEFAULT_RATES)), help="spans/s steps, comma-separated")
    parser.add_argument("--step", type=float, default=4.0, help="seconds per step (default: %(default)s)")
    parser.add_argument("--keep-going", action="store_true", help="run every step even after drops")
    return parser.parse_args()


def _counting(exporter: Any) -> Any:
    """A SpanExporter that counts the spans the processor hands over, then delegates."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class Counting(SpanExporter):
        def __init__(self) -> None:
            self.received = 0

        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            self.received += len(spans)
            result: SpanExportResult = exporter.export(spans)
            return result

        def shutdown(self) -> None:
            exporter.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            flushed: bool = exporter.force_flush(timeout_millis)
            return flushed

    return Counting()


def _produce(tracer: Any, rate: float, seconds: float, start_n: int) -> tuple[int, int, float]:
    """Make spans at ``rate`` for ``seconds`` in this thread. Returns (spans ended, requests made, elapsed)."""
    ended = 0
    n = start_n
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        now = time.perf_counter()
        if now >= deadline:
            break
        due = rate * (now - start)
        if ended >= due:
            time.sleep(min(0.001, deadline - now))
            continue
        while ended < due:
            ended += _common.emit_request(tracer, n)
            n += 1
    return ended, n - start_n, time.perf_counter() - start


def main() -> int:
    args = _parse_args()
    if args.no_speedups:
        _common.block_speedups()
    # The processor logs one warning per dropped span; the count is what matters here.
    logging.getLogger("opentelemetry.sdk._shared_internal").setLevel(logging.CRITICAL)
    from opentelemetry_exporter_lumiqtrace import LumiqTraceSpanExporter

    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    print(
        f"python {sys.version.split()[0]}; {_common.speedups_label()}; "
        f"default BatchSpanProcessor; {args.step:g} s per step"
    )
    print(f"{'target/s':>9} {'made/s':>9} {'ended':>8} {'exported':>9} {'dropped':>8} {'cpu us/span':>12}")
    best = 0.0
    with _common.ServerProcess("ingest_server.py") as server:
        exporter = LumiqTraceSpanExporter(
            api_key=server.banner["api_key"], base_url=server.base_url, **_common.unpaced()
        )
        counting = _counting(exporter)
        provider = _common.make_tracer_provider(counting, batch=True)
        tracer = provider.get_tracer("benchmarks.app", "0.1.0")
        _produce(tracer, 1000, 0.5, 0)  # warm: connection, caches
        provider.force_flush()
        n = 10_000_000
        result: dict[str, Any] = {}
        for rate in rates:
            received_before = counting.received
            cpu_before = time.process_time()
            thread = threading.Thread(
                target=lambda r=rate, s=n: result.update(out=_produce(tracer, r, args.step, s)),
                name="app",
            )
            thread.start()
            thread.join()
            ended, made, elapsed = result["out"]
            n += made
            provider.force_flush()  # what is still queued is exported, not dropped
            cpu = time.process_time() - cpu_before
            exported = counting.received - received_before
            dropped = ended - exported
            achieved = ended / elapsed
            kept_up = achieved >= 0.98 * rate
            print(f"{rate:>9.0f} {achieved:>9.0f} {ended:>8} {exported:>9} {dropped:>8} {cpu / ended * 1e6:>12.1f}")
            if dropped == 0 and kept_up:
                best = max(best, rate)
            elif not args.keep_going:
                if not kept_up:
                    print(f"the app thread could not make {rate:.0f} spans/s on this machine")
                break
        provider.shutdown()
        stats = exporter.stats()
        server_stats = server.command("stats")
    print(
        f"exporter: delivered={stats['delivered']} dropped={stats['dropped_total']} requests={stats['requests']}; "
        f"server: accepted={server_stats['events']} requests={server_stats['requests']} "
        f"mean events/request={server_stats['mean_events_per_request']:.1f}"
    )
    print(f"highest sustained rate with zero drops: {best:.0f} spans/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

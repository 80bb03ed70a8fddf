# SPDX-License-Identifier: Apache-2.0
"""Peak memory during a long outage against the retry buffer's bounds (``buffer_max_events``/``buffer_max_bytes``).

    python benchmarks/outage_memory.py                     # four bounds, each in a fresh process
    python benchmarks/outage_memory.py --bounds 10000:33554432,200000:8388608 --fill 3

The sink answers 503 to everything (an outage, in its own process). Each bound runs in a fresh child process (peak
RSS never goes down, so bounds must not share a process): spans are exported in batches of 512 with a short
export timeout (one attempt per call, then the events are kept) until ``--fill`` times the bound has been offered.
Printed per bound: events and bytes buffered at the end, events evicted (``buffer_full``), the peak RSS growth
over the baseline taken after warm-up (span set built, connection open), that growth per buffered byte, and the
CPU per export() call at the end of the outage (each call re-slices the whole buffer).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import _common

DEFAULT_BOUNDS = "1000:33554432,10000:33554432,50000:33554432,200000:16777216"


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Peak memory in an outage vs the retry buffer bound.")
    parser.add_argument("--bounds", default=DEFAULT_BOUNDS, help="max_events:max_bytes pairs (default: %(default)s)")
    parser.add_argument("--fill", type=float, default=2.0, help="offer this many times the bound (default: 2)")
    parser.add_argument(
        "--no-speedups", action="store_true", help="block the orjson and zlib-ng imports (no `speedups` extra)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    return parser.parse_args()


def _max_rss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # bytes on macOS, KiB elsewhere


def _child(max_events: int, max_bytes: int, fill: float) -> dict[str, object]:
    from opentelemetry_exporter_lumiqtrace import LumiqTraceSpanExporter

    spans = _common.build_span_set(4096)
    batches = _common.batches(spans, 512)
    with _common.ServerProcess("sink_server.py", "--status", "503") as sink:
        exporter = LumiqTraceSpanExporter(
            api_key=_common.BENCH_API_KEY,
            base_url=sink.base_url,
            timeout=0.05,  # one attempt, then keep: the back-off (>= 0.25 s) never fits in the deadline
            buffer_max_events=max_events,
            buffer_max_bytes=max_bytes,
        )
        for batch in batches[:2]:  # warm-up: connection, caches
            exporter.export(batch)
        baseline = _max_rss_bytes()
        offered = 0
        call_cpu: list[float] = []
        i = 0
        while offered < fill * max_events or len(call_cpu) < 5:
            batch = batches[i % len(batches)]
            start = time.thread_time()
            exporter.export(batch)
            call_cpu.append(time.thread_time() - start)
            offered += len(batch)
            i += 1
        peak = _max_rss_bytes()
        stats = exporter.stats()
        exporter.shutdown(timeout_millis=0)
    return {
        "max_events": max_events,
        "max_bytes": max_bytes,
        "offered": offered,
        "buffered": stats["buffered"],
        "buffered_bytes": stats["buffered_bytes"],
        "evicted": stats["dropped"].get("buffer_full", 0),
        "rss_growth": peak - baseline,
        "last_call_ms": _common.median(call_cpu[-5:]) * 1e3,
    }


def main() -> int:
    args = _parse_args()
    if args.no_speedups:
        _common.block_speedups()
    if args.child:
        max_events, max_bytes = (int(x) for x in args.child.split(":"))
        print(json.dumps(_child(max_events, max_bytes, args.fill)))
        return 0
    print(f"outage (503) with a 0.05 s export timeout; {args.fill:g} x the bound offered; batches of 512")
    header = (
        f"{'max_events':>10} {'max_bytes':>10} {'buffered':>9} {'buf MiB':>8} {'evicted':>8} "
        f"{'peak RSS +MiB':>13} {'RSS/buf byte':>12} {'export() ms':>11}"
    )
    print(header)
    for bound in args.bounds.split(","):
        command = [sys.executable, __file__, "--child", bound, "--fill", str(args.fill)]
        if args.no_speedups:
            command.append("--no-speedups")
        out = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        mib = 1024 * 1024
        per_byte = out["rss_growth"] / out["buffered_bytes"] if out["buffered_bytes"] else float("nan")
        print(
            f"{out['max_events']:>10} {out['max_bytes'] / mib:>9.0f}M {out['buffered']:>9} "
            f"{out['buffered_bytes'] / mib:>8.1f} {out['evicted']:>8} {out['rss_growth'] / mib:>13.1f} "
            f"{per_byte:>12.2f} {out['last_call_ms']:>11.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

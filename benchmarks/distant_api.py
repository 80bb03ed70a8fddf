# SPDX-License-Identifier: Apache-2.0
"""Throughput against a distant API: the local server answers every ingest request after 100 ms.

    python benchmarks/distant_api.py                          # 1,600 spans/s for 60 s, concurrency 4 then 1
    python benchmarks/distant_api.py --concurrency 4 --seconds 20 --rate 2000
    python benchmarks/distant_api.py --delay 0.2

An application thread makes spans at a fixed rate through the SDK's ``BatchSpanProcessor`` with its default
settings (queue 2048, batches of 512, 5 s delay) into ``LumiqTraceSpanExporter`` with its default settings except
``RetryPolicy(max_concurrent_requests=N)``. The server is the package's ``LocalIngestServer`` in its own process,
every answer delayed by ``--delay`` seconds (a round trip to a distant API). Printed per run: spans ended, handed to
the exporter, dropped by the processor (ended - handed: its queue was full), dropped by the exporter (its
``stats()``), delivered, requests, and the most requests the server saw in any 60 s (LumiqTrace's limit is 1,000
per key and minute; the exporter paces itself below it).
"""

from __future__ import annotations

import argparse
import bisect
import json
import logging
import sys
import threading
import time
from typing import Any

import _common
from throughput import _counting, _produce

_NO_LIMIT = 10**12
_TOP_UP_EVERY_S = 0.25
_REPLIES_PER_TOP_UP = 500


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Spans/s against an API 100 ms away, zero drops.")
    parser.add_argument("--rate", type=float, default=1600.0, help="spans/s made (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds per run (default: %(default)s)")
    parser.add_argument("--delay", type=float, default=0.1, help="server answer delay, s (default: %(default)s)")
    parser.add_argument(
        "--concurrency", type=int, action="append", help="max_concurrent_requests; repeatable (default: 4 and 1)"
    )
    parser.add_argument("--no-speedups", action="store_true", help="block the orjson and zlib-ng imports")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the server process
    return parser.parse_args()


def _max_in_window(times: list[float], window_s: float) -> int:
    """The most request times in any ``window_s`` seconds (``times`` sorted)."""
    return max((bisect.bisect_left(times, t + window_s) - i for i, t in enumerate(times)), default=0)


def _serve(delay_s: float) -> int:
    """The server process: every ingest answer after ``delay_s``; counters answered on stdin (``stats``)."""
    from opentelemetry_exporter_lumiqtrace.testing import LocalIngestServer, Reply

    server = LocalIngestServer(api_keys=[_common.BENCH_API_KEY]).start()
    reply = Reply(status=202, delay_s=delay_s)
    lock = threading.Lock()
    times: list[float] = []
    statuses: dict[str, int] = {}
    events = 0

    def harvest() -> None:
        # What the server recorded is counted and forgotten, so a long run does not grow the server; the script of
        # delayed answers is topped up at the same time (reset() empties it).
        nonlocal events
        with lock:
            recorded = server.ingest_requests()
            server.reset()
            server.set_rate_limit(_NO_LIMIT, 60.0)
            server.script(*[reply] * _REPLIES_PER_TOP_UP)
            for request in recorded:
                times.append(request.time)
                statuses[str(request.status)] = statuses.get(str(request.status), 0) + 1
                if request.status is not None and 200 <= request.status < 300 and request.events is not None:
                    events += len(request.events)

    stop = threading.Event()

    def top_up() -> None:
        while not stop.wait(_TOP_UP_EVERY_S):
            harvest()

    harvest()
    threading.Thread(target=top_up, daemon=True).start()
    print(json.dumps({"base_url": server.base_url, "api_key": server.api_key}), flush=True)
    for line in sys.stdin:
        command = line.split()
        if command == ["stats"]:
            harvest()
            with lock:
                ordered = sorted(times)
                answer: dict[str, Any] = {
                    "requests": len(ordered),
                    "events": events,
                    "by_status": dict(statuses),
                    "max_per_minute": _max_in_window(ordered, 60.0),
                }
        elif command == ["clear"]:
            harvest()
            with lock:
                times.clear()
                statuses.clear()
                events = 0
            answer = {"ok": True}
        else:
            answer = {"ok": False, "error": f"unknown command {line.strip()!r}"}
        print(json.dumps(answer), flush=True)
    stop.set()
    server.stop()
    return 0


def _run(server: Any, concurrency: int, args: argparse.Namespace) -> dict[str, Any]:
    from opentelemetry_exporter_lumiqtrace import LumiqTraceSpanExporter
    from opentelemetry_exporter_lumiqtrace.delivery import RetryPolicy

    server.command("clear")
    exporter = LumiqTraceSpanExporter(
        api_key=server.banner["api_key"],
        base_url=server.base_url,
        retry_policy=RetryPolicy(max_concurrent_requests=concurrency),
    )
    counting = _counting(exporter)
    provider = _common.make_tracer_provider(counting, batch=True)
    tracer = provider.get_tracer("benchmarks.app", "0.1.0")
    result: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: result.update(out=_produce(tracer, args.rate, args.seconds, 0)), name="app", daemon=True
    )
    start = time.perf_counter()
    thread.start()
    thread.join()
    ended, _, elapsed = result["out"]
    provider.force_flush()
    provider.shutdown()
    stats = exporter.stats()
    served = server.command("stats")
    return {
        "concurrency": concurrency,
        "made_per_s": ended / elapsed,
        "ended": ended,
        "handed": counting.received,
        "bsp_dropped": ended - counting.received,
        "exporter_dropped": stats["dropped_total"],
        "delivered": stats["delivered"],
        "requests": stats["requests"],
        "server_events": served["events"],
        "max_per_minute": served["max_per_minute"],
        "statuses": served["by_status"],
        "wall_s": time.perf_counter() - start,
    }


def main() -> int:
    args = _parse_args()
    if args.serve:
        return _serve(args.delay)
    if args.no_speedups:
        _common.block_speedups()
    # The processor logs one warning per dropped span; the count is what matters here.
    logging.getLogger("opentelemetry.sdk._shared_internal").setLevel(logging.CRITICAL)
    concurrencies = args.concurrency or [4, 1]
    print(
        f"python {sys.version.split()[0]}; {_common.speedups_label()}; default BatchSpanProcessor; "
        f"{args.rate:g} spans/s for {args.seconds:g} s; server answers after {args.delay * 1000:g} ms"
    )
    print(
        f"{'conc':>4} {'made/s':>7} {'ended':>7} {'handed':>7} {'bsp drop':>8} {'exp drop':>8} {'delivered':>9} "
        f"{'requests':>8} {'max req/60s':>11}  statuses"
    )
    with _common.ServerProcess("distant_api.py", "--serve", "--delay", str(args.delay)) as server:
        for concurrency in concurrencies:
            row = _run(server, concurrency, args)
            print(
                f"{row['concurrency']:>4} {row['made_per_s']:>7.0f} {row['ended']:>7} {row['handed']:>7} "
                f"{row['bsp_dropped']:>8} {row['exporter_dropped']:>8} {row['delivered']:>9} {row['requests']:>8} "
                f"{row['max_per_minute']:>11}  {row['statuses']}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

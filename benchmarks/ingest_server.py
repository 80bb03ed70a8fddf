# SPDX-License-Identifier: Apache-2.0
"""The local LumiqTrace ingest server for load benchmarks, in its own process, with counters read over stdin.

    python benchmarks/ingest_server.py [--rate-limit 0]

``LocalIngestServer`` (the package's test server: real validation, dedup, gzip) with the per-key rate limit
lifted (``--rate-limit N`` sets requests per minute; 0 = none), so a benchmark measures the exporter rather
than the limit. Prints one JSON banner line (``{"base_url": ..., "api_key": ...}``), then answers one JSON line
per command read on stdin:

    stats          cumulative: requests, events, by status, events-per-request histogram
    clear          zero the counters
    outage on|off  503 for every ingest request, or not

What the server recorded is harvested and forgotten every half second, so that a long run does not grow the
server (and slow it down with garbage collection of millions of stored events). A request recorded in the
microseconds between a harvest and the reset that follows can be missed: the figures are a sample that close.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections import Counter
from typing import Any

import _common

from opentelemetry_exporter_lumiqtrace.testing import LocalIngestServer

_NO_LIMIT = 10**12


class _Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.clear()

    def clear(self) -> None:
        self.requests = 0
        self.events = 0
        self.by_status: Counter[str] = Counter()
        self.sizes: Counter[int] = Counter()

    def snapshot(self) -> dict[str, Any]:
        ok_sizes = dict(sorted(self.sizes.items()))
        ok_requests = sum(self.sizes.values())
        return {
            "requests": self.requests,
            "events": self.events,
            "by_status": dict(self.by_status),
            "events_per_request": ok_sizes,
            "mean_events_per_request": (self.events / ok_requests) if ok_requests else 0.0,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description="LocalIngestServer for load benchmarks.")
    parser.add_argument("--rate-limit", type=int, default=0, help="ingest requests per minute, 0 = no limit")
    args = parser.parse_args()
    limit = args.rate_limit or _NO_LIMIT
    server = LocalIngestServer(api_keys=[_common.BENCH_API_KEY])
    server.start()
    server.set_rate_limit(limit, 60.0)
    counters = _Counters()
    outage = False
    stop = threading.Event()
    state_lock = threading.Lock()

    def harvest() -> None:
        with state_lock:
            recorded = server.ingest_requests()
            server.reset()  # also resets outage and the rate limit: put them back
            server.set_rate_limit(limit, 60.0)
            server.set_outage(outage)
        with counters.lock:
            for request in recorded:
                counters.requests += 1
                counters.by_status[str(request.status)] += 1
                if request.status is not None and 200 <= request.status < 300 and request.events is not None:
                    counters.events += len(request.events)
                    counters.sizes[len(request.events)] += 1

    def harvester() -> None:
        while not stop.wait(0.5):
            harvest()

    threading.Thread(target=harvester, daemon=True).start()
    print(json.dumps({"base_url": server.base_url, "api_key": server.api_key}), flush=True)
    for line in sys.stdin:
        command = line.split()
        answer: dict[str, Any] = {"ok": True}
        if command == ["stats"]:
            harvest()
            with counters.lock:
                answer = counters.snapshot()
        elif command == ["clear"]:
            harvest()
            with counters.lock:
                counters.clear()
        elif command[:1] == ["outage"] and len(command) == 2:
            with state_lock:
                outage = command[1] == "on"
                server.set_outage(outage)
        else:
            answer = {"ok": False, "error": f"unknown command {line.strip()!r}"}
        print(json.dumps(answer), flush=True)
    stop.set()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

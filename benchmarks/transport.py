# SPDX-License-Identifier: Apache-2.0
"""What one POST costs through ``IngestTransport`` against ``requests.Session.post`` (the peer) and a bare kept-alive
``http.client.HTTPConnection`` (the floor of any client built on http.client), same body, same sink.

    python benchmarks/transport.py [--requests 300] [--rounds 7]

The transport takes its connections from requests' pool (TLS, proxies) and runs each exchange with its own HTTP/1.1
code on the connection's socket, every socket operation bounded by the time left before the request's deadline; it
reads at most 64 KiB of the answer. This prints what that costs: process CPU per request (``time.process_time()``:
the CPU of every thread of this process counts, the sink runs in its own process) and wall time per request,
medians over interleaved rounds, and the ratios to ``requests`` and http.client measured in the same run.
"""

from __future__ import annotations

import argparse
import http.client
import sys
import time
import urllib.parse
from collections.abc import Callable

import _common


def _round(post: Callable[[], object], count: int) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(count):
        post()
    return (time.process_time() - cpu) / count * 1e6, (time.perf_counter() - wall) / count * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="requests per round and client")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-speedups", action="store_true", help="block orjson and zlib-ng")
    args = parser.parse_args(argv)
    if args.no_speedups:
        _common.block_speedups()

    import requests

    from opentelemetry_exporter_lumiqtrace import encoding
    from opentelemetry_exporter_lumiqtrace.mapping import MappingOptions, map_span
    from opentelemetry_exporter_lumiqtrace.transport import IngestTransport

    spans = _common.build_span_set(100)
    events = [e for e in (map_span(span, MappingOptions()) for span in spans) if e is not None]
    lines, _ = encoding.encode_events(events)
    body = encoding.build_body(lines, gzip_body=True)
    print(_common.speedups_label())
    print(f"body: {len(lines)} events, {len(body)} bytes gzip; {args.requests} requests x {args.rounds} rounds")

    with _common.ServerProcess("sink_server.py") as sink:
        url = sink.base_url + "/v1/ingest"
        session = requests.Session()
        session.headers.update(
            {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip", "x-api-key": _common.BENCH_API_KEY}
        )
        transport = IngestTransport(base_url=sink.base_url, api_key=_common.BENCH_API_KEY, gzip_body=True)
        parts = urllib.parse.urlsplit(sink.base_url)
        connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)

        def post_http_client() -> object:
            connection.request("POST", "/v1/ingest", body=body, headers=dict(session.headers))
            return connection.getresponse().read()

        clients: dict[str, Callable[[], object]] = {
            "requests.Session.post": lambda: session.post(url, data=body, timeout=10).content,
            "http.client": post_http_client,
            "IngestTransport.post": lambda: transport.post(body, timeout=10),
        }
        for post in clients.values():  # warm-up: connections open, code paths hot
            _round(post, 20)
        cpu: dict[str, list[float]] = {name: [] for name in clients}
        wall: dict[str, list[float]] = {name: [] for name in clients}
        peers = ("requests.Session.post", "http.client")
        ratios_cpu: dict[str, list[float]] = {peer: [] for peer in peers}
        ratios_wall: dict[str, list[float]] = {peer: [] for peer in peers}
        names = list(clients)
        for round_index in range(args.rounds):
            measured = {}
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:  # rotate who goes first
                measured[name] = _round(clients[name], args.requests)
                cpu[name].append(measured[name][0])
                wall[name].append(measured[name][1])
            for peer in peers:
                ratios_cpu[peer].append(measured["IngestTransport.post"][0] / measured[peer][0])
                ratios_wall[peer].append(measured["IngestTransport.post"][1] / measured[peer][1])
        session.close()
        connection.close()
        transport.close()

    print(f"{'client':<24} {'CPU us/request':>15} {'wall us/request':>16}")
    for name in clients:
        print(f"{name:<24} {_common.median(cpu[name]):>15.0f} {_common.median(wall[name]):>16.0f}")
    for peer in peers:
        print(
            f"IngestTransport / {peer}: CPU x{_common.median(ratios_cpu[peer]):.2f}, "
            f"wall x{_common.median(ratios_wall[peer]):.2f} (median of per-round ratios)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

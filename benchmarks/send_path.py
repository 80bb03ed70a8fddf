# SPDX-License-Identifier: Apache-2.0
"""CPU of the send path of an export (``Backlog.send``: slices, bodies, posts, delivery bookkeeping), against another
checkout measured in the same run, and what the loopback exchange itself costs the kernel.

    python benchmarks/send_path.py                              # this checkout alone
    python benchmarks/send_path.py --against <other checkout>   # A/B: the two alternate round by round
    python benchmarks/send_path.py --count                      # + Python calls and bytecodes per request, counted

Each version runs in a worker process of its own (``PYTHONPATH`` set to its checkout), with its own exporter posting
to one loopback sink (a third process). Every round gets new spans of the workload (``today`` by default), encoded
outside the timing; then, timed with ``time.process_time()`` (every thread of the worker):

- ``send``: ``Backlog.send`` of each batch of 512 lines with ``hold_tail`` as ``export()`` passes it, and a
  ``flush`` at the end (the suite's ``force_flush``), in CPU us per span and per request;
- ``post``: ``IngestTransport.post`` of the same bodies, built beforehand, in us per request;
- ``floor``: the same requests (head and body, bytes as the transport sends them) written with one ``sendall`` on a
  blocking socket and the answer read with ``recv`` until its ``Content-Length``, no Python beyond that: what the
  kernel's loopback exchange costs, which no client code can take off; ``floor, deadline``: the same with the
  socket's timeout set before the send and before every receive, as a client that keeps a deadline must (CPython
  then polls before each operation, and each ``settimeout`` is an ``ioctl``). ``post`` minus that is the Python of
  the exchange and of the transport around it.

Rounds alternate which version goes first; the figures are medians over the rounds, and for ``--against`` the median
of the per-round ratios (new / other). On a shared machine the times are preliminary: ``--count`` adds the counted
figures (``sys.settrace``: Python calls and bytecodes per request of ``Backlog.send``), which no load blurs.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _common

HERE = Path(__file__).resolve().parent


def _floor_socket(base_url: str) -> socket.socket:
    host, port = base_url.rsplit("//", 1)[1].rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _floor_exchange(sock: socket.socket, request: bytes, timeout: float | None = None) -> None:
    if timeout is not None:
        sock.settimeout(timeout)
    sock.sendall(request)
    data = b""
    while True:
        if timeout is not None:
            sock.settimeout(timeout)
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the sink closed the connection")
        data += chunk
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            start = data.find(b"Content-Length: ") + 16
            if len(data) >= end + 4 + int(data[start : data.find(b"\r\n", start)]):
                return


def worker(base_url: str, workload_name: str, spans: int, batch: int) -> None:
    """Serve rounds on stdin ("round" or "count"), one JSON line of figures each on stdout."""
    import workloads

    from opentelemetry_exporter_lumiqtrace import LumiqTraceSpanExporter
    from opentelemetry_exporter_lumiqtrace.encoding import build_body

    workload = workloads.BY_NAME[workload_name]
    maker = workloads.SpanMaker(workload)
    exporter = LumiqTraceSpanExporter(
        api_key=_common.BENCH_API_KEY, base_url=base_url, **_common.unpaced(), **workload.exporter_kwargs
    )
    backlog = exporter._backlog
    assert backlog is not None
    deliverer = backlog.deliverer
    transport = deliverer.transport
    stats = exporter._stats
    floor = _floor_socket(base_url)

    def encoded() -> list[list[bytes]]:
        return [exporter._encode(b)[0] for b in _common.batches(maker.spans(spans), batch)]

    def send(batches: list[list[bytes]]) -> None:
        for lines in batches:
            backlog.send(lines, time.monotonic() + 10.0, hold_tail=True)
        backlog.flush(time.monotonic() + 10.0)

    print(json.dumps({"package": str(Path(sys.modules[LumiqTraceSpanExporter.__module__].__file__ or "").parent)}))
    sys.stdout.flush()
    for command in sys.stdin:
        command = command.strip()
        batches = encoded()
        if command == "count":
            before = stats.requests
            calls, opcodes = _common.calls_and_opcodes_per_item(send, [batches])
            requests = stats.requests - before
            print(json.dumps({"calls": calls / requests, "opcodes": opcodes / requests, "requests": requests}))
            sys.stdout.flush()
            continue
        before = stats.requests
        cpu = time.process_time()
        send(batches)
        send_s = time.process_time() - cpu
        requests = stats.requests - before
        bodies = [build_body(chunk, gzip_body=True) for lines in batches for chunk in deliverer.slices(lines)]
        cpu = time.process_time()
        for body in bodies:
            transport.post(body, timeout=10.0)
        post_s = time.process_time() - cpu
        route = next(iter(transport._routes.values()))
        raw = [b"".join((route.head, b"Content-Length: %d\r\n\r\n" % len(body), body)) for body in bodies]
        cpu = time.process_time()
        for request in raw:
            _floor_exchange(floor, request)
        floor_s = time.process_time() - cpu
        cpu = time.process_time()
        for request in raw:
            _floor_exchange(floor, request, timeout=10.0)
        floor_deadline_s = time.process_time() - cpu
        floor.settimeout(None)
        figures = {
            "send us/span": send_s / spans * 1e6,
            "send us/request": send_s / requests * 1e6,
            "post us/request": post_s / len(bodies) * 1e6,
            "floor us/request": floor_s / len(raw) * 1e6,
            "floor, deadline": floor_deadline_s / len(raw) * 1e6,
        }
        print(json.dumps(figures))
        sys.stdout.flush()
    exporter.shutdown()
    maker.close()


class _Worker:
    def __init__(self, checkout: Path, args: argparse.Namespace, base_url: str) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(checkout), str(HERE)])}
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", base_url]
        command += ["--workload", args.workload, "--spans", str(args.spans), "--batch", str(args.batch)]
        if args.no_speedups:
            command.append("--no-speedups")
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.package = self._read()["package"]

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit("a worker ended early")
        result: dict[str, Any] = json.loads(line)
        return result

    def ask(self, command: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common.add_workload_arguments(parser, rounds=9, spans_help="spans per round (default: %(default)s)")
    parser.add_argument("--against", metavar="CHECKOUT", help="another checkout (its root), measured alternately")
    parser.add_argument("--count", action="store_true", help="also count calls and bytecodes per request")
    parser.add_argument("--worker", metavar="BASE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.no_speedups:
        _common.block_speedups()
    if args.worker:
        worker(args.worker, args.workload, args.spans, args.batch)
        return 0
    checkouts = {"this": HERE.parent}
    if args.against:
        checkouts["against"] = Path(args.against).resolve()
    print(f"{_common.speedups_label()}; workload {args.workload}; {args.spans} spans x {args.rounds} rounds")
    with _common.ServerProcess("sink_server.py") as sink:
        workers = {name: _Worker(path, args, sink.base_url) for name, path in checkouts.items()}
        try:
            for name, w in workers.items():
                print(f"  {name}: {w.package}")
            if args.count:
                for name, w in workers.items():
                    counted = w.ask("count")
                    print(
                        f"  {name:<8} Backlog.send: {counted['calls']:.1f} calls, {counted['opcodes']:.0f} bytecodes "
                        f"per request ({counted['requests']} requests; counted, not timed)"
                    )
            figures: dict[str, dict[str, list[float]]] = {name: {} for name in workers}
            order = list(workers)
            for round_no in range(args.rounds + 1):  # round 0 warms up
                for name in order:
                    result = workers[name].ask("round")
                    if round_no:
                        for key, value in result.items():
                            figures[name].setdefault(key, []).append(value)
                order.reverse()
        finally:
            for w in workers.values():
                w.close()
    keys = list(figures["this"])
    print(
        f"{'median (process CPU)':<22}"
        + "".join(f"{name:>12}" for name in workers)
        + ("  this/against" * bool(args.against))
    )
    for key in keys:
        row = f"{key:<22}" + "".join(f"{statistics.median(figures[name][key]):12.2f}" for name in workers)
        if args.against:
            ratios = [a / b for a, b in zip(figures["this"][key], figures["against"][key], strict=True)]
            row += f"  {statistics.median(ratios):12.3f}"
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())

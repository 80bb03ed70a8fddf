# SPDX-License-Identifier: Apache-2.0
"""A neutral HTTP sink for CPU comparisons: reads any POST body and answers ``{"accepted": N}``.

Run in its own process (the benchmarks start it) so that its CPU never counts against the exporter measured:

    python benchmarks/sink_server.py [--port 0] [--status 200]

Prints one JSON banner line (``{"base_url": ...}``) and serves until stdin closes. It accepts anything: LumiqTrace
NDJSON (gzip or not), OTLP protobuf, Zipkin JSON. ``N`` is the number of NDJSON lines when the body is NDJSON,
else 0 (the other exporters ignore the answer's body). ``--status 503`` turns it into an outage.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real endpoints
    # Headers and body are two writes: without TCP_NODELAY, Nagle and delayed ACKs add 40 ms to each answer.
    disable_nagle_algorithm = True
    status = 200

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        accepted = 0
        if "ndjson" in (self.headers.get("Content-Type") or ""):
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            accepted = body.count(b"\n")
        if 200 <= self.status < 300:
            payload = json.dumps({"accepted": accepted}).encode()
        else:
            payload = json.dumps({"error": "Service unavailable"}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--status", type=int, default=200)
    args = parser.parse_args()
    _Handler.status = args.status
    server = ThreadingHTTPServer(("127.0.0.1", args.port), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"base_url": f"http://127.0.0.1:{server.server_address[1]}"}), flush=True)
    sys.stdin.read()  # until the parent closes our stdin (or dies)
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

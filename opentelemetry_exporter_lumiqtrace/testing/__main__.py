# SPDX-License-Identifier: Apache-2.0
"""Run the local LumiqTrace ingest server in the foreground.

    python -m opentelemetry_exporter_lumiqtrace.testing [--host 127.0.0.1] [--port 4319] [--api-key KEY]
        [--success-status 202]

It prints one line with the base URL, the API key the server expects (the exporter sends nothing without one) and
the OTLP/HTTP traces URL, then one line per request, and stops on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from opentelemetry_exporter_lumiqtrace.testing.server import (
    DEFAULT_HOST,
    DEFAULT_SUCCESS_STATUS,
    TEST_API_KEY,
    LocalIngestServer,
)

DEFAULT_CLI_PORT = 4319


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m opentelemetry_exporter_lumiqtrace.testing",
        description="Run a local LumiqTrace-compatible ingest server (for tests and the quick start): POST /v1/ingest, "
        "GET /v1/sdk/config, OTLP/HTTP traces on POST /v1/otel, and GET /_test/events to read what it accepted.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_CLI_PORT, help="port, 0 for any free one (default: %(default)s)"
    )
    parser.add_argument("--api-key", default=TEST_API_KEY, help="the API key to accept (default: the test key)")
    parser.add_argument(
        "--success-status",
        type=int,
        default=DEFAULT_SUCCESS_STATUS,
        help="status of a successful ingest answer (default: %(default)s)",
    )
    parser.add_argument(
        "--drop-invalid-lines",
        action="store_true",
        help="skip invalid events (lower 'accepted') instead of rejecting the whole batch with 400",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    server = LocalIngestServer(
        host=args.host,
        port=args.port,
        api_keys=[args.api_key],
        success_status=args.success_status,
        invalid_event_mode="drop_line" if args.drop_invalid_lines else "reject_batch",
    )
    stopping = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _on_signal)
    try:
        server.start()
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    # Attached after start() (which logs nothing worth a line) and before the banner: a client learns the port from
    # the banner, so its first request is always logged, and the banner is still the first line scripts read.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    server_logger = logging.getLogger("opentelemetry_exporter_lumiqtrace.testing")
    server_logger.addHandler(handler)
    server_logger.setLevel(logging.DEBUG)
    print(
        f"LumiqTrace local ingest server: LUMIQTRACE_BASE_URL={server.base_url} LUMIQTRACE_API_KEY={server.api_key} "
        f"(OTLP/HTTP traces: {server.otel_url})",
        flush=True,
    )
    try:
        # A bounded wait keeps the main thread responsive to signals on every platform.
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    stats = server.stats()
    print(
        f"stopped: {stats['requests']} ingest requests, {stats['accepted']} events accepted, "
        f"{stats['otel_requests']} OTLP requests",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

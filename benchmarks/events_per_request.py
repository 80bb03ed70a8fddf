# SPDX-License-Identifier: Apache-2.0
"""Events per request under sustained load: how well each request (of 1,000 a minute per key) is used.

    python benchmarks/events_per_request.py                     # 3,000 spans/s for 10 s
    python benchmarks/events_per_request.py --rate 500 --seconds 20
    python benchmarks/events_per_request.py --linger 0          # compare with the tail sent at once

Spans go through the SDK's default BatchSpanProcessor (512 a call) into this exporter and the local ingest server
(its own process, rate limit lifted). The server's recorded requests give the distribution. ``--linger`` is passed
to the exporter when it takes that keyword (the carried-over tail); without it the exporter's default is used.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import sys
import threading
from typing import Any

import _common
from throughput import _produce


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Events per request under sustained load.")
    parser.add_argument("--rate", type=float, default=3000.0, help="spans/s (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration (default: %(default)s)")
    parser.add_argument("--linger", type=float, default=None, help="exporter linger seconds (when supported)")
    parser.add_argument(
        "--no-speedups", action="store_true", help="block the orjson and zlib-ng imports (no `speedups` extra)"
    )
    return parser.parse_args()


def main() -> int:
    args = _parse_args()
    if args.no_speedups:
        _common.block_speedups()
    logging.getLogger("opentelemetry.sdk._shared_internal").setLevel(logging.CRITICAL)
    from opentelemetry_exporter_lumiqtrace import LumiqTraceSpanExporter

    kwargs: dict[str, Any] = _common.unpaced()
    takes_linger = "linger" in inspect.signature(LumiqTraceSpanExporter).parameters
    if args.linger is not None:
        if not takes_linger:
            print("this exporter has no `linger` keyword; --linger ignored")
        else:
            kwargs["linger"] = args.linger
    with _common.ServerProcess("ingest_server.py") as server:
        exporter = LumiqTraceSpanExporter(api_key=server.banner["api_key"], base_url=server.base_url, **kwargs)
        provider = _common.make_tracer_provider(exporter, batch=True)
        tracer = provider.get_tracer("benchmarks.app", "0.1.0")
        _produce(tracer, 1000, 0.5, 0)
        provider.force_flush()
        exporter.force_flush()
        server.command("clear")
        out: dict[str, Any] = {}
        thread = threading.Thread(target=lambda: out.update(r=_produce(tracer, args.rate, args.seconds, 1_000_000)))
        thread.start()
        thread.join()
        ended, _, elapsed = out["r"]
        # Measured under load: the final flush's partial requests are a shutdown effect, not steady state.
        steady = server.command("stats")
        provider.shutdown()
        final = server.command("stats")
    linger = getattr(exporter, "_linger", None) if takes_linger else None
    print(
        f"{ended} spans at {ended / elapsed:.0f}/s for {elapsed:.1f} s; default BatchSpanProcessor; "
        f"exporter linger: {'n/a' if linger is None else f'{linger:g} s'}"
    )
    _report("under load", steady, elapsed)
    _report("with the final flush", final, elapsed)
    return 0


def _report(label: str, stats: dict[str, Any], elapsed: float) -> None:
    sizes = {int(k): v for k, v in stats["events_per_request"].items()}
    full = sizes.get(100, 0)
    ok = sum(sizes.values())
    small = sum(v for k, v in sizes.items() if k < 50)
    print(
        f"{label}: {stats['events']} events in {ok} accepted requests; mean {stats['mean_events_per_request']:.1f} "
        f"events/request; full (100): {full / ok:.0%}; under 50: {small}; "
        f"requests/min at this rate: {ok / elapsed * 60:.0f} (limit 1000/key)"
        if ok
        else f"{label}: no requests"
    )
    if ok:
        top = sorted(sizes.items(), key=lambda kv: -kv[1])[:6]
        print("  most common sizes: " + ", ".join(f"{k} events x{v}" for k, v in top))


if __name__ == "__main__":
    sys.exit(main())

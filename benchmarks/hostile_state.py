# SPDX-License-Identifier: Apache-2.0
"""What hostile remote config and spool contents cost now (issue 13 items 4 and 17).

Prints, medians of ``--rounds`` runs:

- CPU to parse a config whose ``pii_redact_keys`` rule lists N keys, for ``parse_config`` and for the previous
  algorithm (a list deduplicated with ``in``, quadratic), reproduced here as the peer, on the same body;
- wall time and peak traced memory of ``DiskSpool.claim()`` on a spool holding a 300 MB one-line file (sparse, so
  the disk is not filled) named like a spool file, next to 500 ordinary events: the first claim sets the file aside
  unread, later claims never see it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import tracemalloc
from typing import Any


def _old_dedup(keys: list[str]) -> list[str]:
    # What parse_config did before the caps: every key checked against a list.
    out: list[str] = []
    for key in keys:
        key = key.strip()
        if key and key not in out:
            out.append(key)
    return out


def _old_parse(body: bytes) -> list[str]:
    return _old_dedup(json.loads(body)["rules"][0]["value"])


def _cpu(fn: Any, *args: Any) -> float:
    started = time.process_time()
    fn(*args)
    return time.process_time() - started


def bench_parse(rounds: int, sizes: list[int]) -> None:
    from opentelemetry_exporter_lumiqtrace.remote_config import parse_config

    for size in sizes:
        keys = [f"customer_field_{i}" for i in range(size)]
        body = json.dumps({"cv": 1, "rules": [{"type": "pii_redact_keys", "value": keys}]}).encode()
        new = statistics.median(_cpu(parse_config, body) for _ in range(rounds))
        old = statistics.median(_cpu(_old_parse, body) for _ in range(rounds))
        print(
            f"parse {size:>7,} keys ({len(body) / 1024:,.0f} KiB): parse_config {new * 1000:8.2f} ms CPU, "
            f"previous algorithm {old * 1000:10.2f} ms CPU, ratio {new / old:.4f}"
        )


def bench_spool(rounds: int) -> None:
    from opentelemetry_exporter_lumiqtrace.spool import DiskSpool

    walls, peaks = [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            spool = DiskSpool.open(os.path.join(tmp, "spool"))
            assert spool is not None
            spool.write([b'{"n":%d}' % n for n in range(500)])
            name = f"{int((time.time() - 60) * 1e9):020d}-4242-00000001-deadbeef-1.ndjson"
            with open(spool.directory / name, "wb") as fh:
                fh.truncate(300 * 1024 * 1024)
            tracemalloc.start()
            started = time.perf_counter()
            batch = spool.claim(500)
            walls.append(time.perf_counter() - started)
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
            assert batch is not None and len(batch) == 500
            assert spool.dropped_by_reason() == {"oversized": 1}
    print(
        f"claim() beside a 300 MB one-line file: {statistics.median(walls) * 1000:.2f} ms, peak traced memory "
        f"{statistics.median(peaks) / 1024:.0f} KiB (the file is deleted unread and counted as 'oversized')"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizes", default="1000,10000,30000", help="key counts for the parse comparison")
    parser.add_argument("--big", type=int, default=118_000, help="key count parsed by parse_config alone")
    args = parser.parse_args()
    bench_parse(args.rounds, [int(n) for n in args.sizes.split(",")])
    from opentelemetry_exporter_lumiqtrace.remote_config import parse_config

    keys = [f"customer_field_{i}" for i in range(args.big)]
    body = json.dumps({"cv": 1, "rules": [{"type": "pii_redact_keys", "value": keys}]}).encode()
    cpu = statistics.median(_cpu(parse_config, body) for _ in range(args.rounds))
    print(f"parse {args.big:>7,} keys ({len(body) / 1024:,.0f} KiB): parse_config {cpu * 1000:8.2f} ms CPU")
    bench_spool(args.rounds)


if __name__ == "__main__":
    main()

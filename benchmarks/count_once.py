# SPDX-License-Identifier: Apache-2.0
"""What counting each provider call once (``count_once.py``) adds to the mapping, per span.

    python benchmarks/count_once.py
    python benchmarks/count_once.py --spans 8192 --rounds 15

Two span sets: the one of cpu_per_span.py (web spans with GenAI chat spans below, one instrumentation), and the spans
real frameworks recorded into ``tests/golden/corpus/fw-*.json`` (stacked instrumentations: nested and parallel
duplicates, OpenInference answers in ``output.value``). For each: median CPU microseconds per span of ``map_span``
alone and of ``map_span`` followed by ``CountOnce.observe`` (a fresh ``CountOnce`` per round, so its tables fill as
in a process), and the added cost.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import _common


def _round_us(spans: list[Any], *, count_once: bool) -> float:
    from opentelemetry_exporter_lumiqtrace.count_once import CountOnce
    from opentelemetry_exporter_lumiqtrace.mapping import Mapper, MappingOptions

    options = MappingOptions()
    map_span = Mapper().map_span  # one long-lived mapper, as the exporter owns one
    counter = CountOnce()
    start = time.thread_time()
    if count_once:
        for span in spans:
            event = map_span(span, options)
            if event is not None:
                counter.observe(span, event)
    else:
        for span in spans:
            map_span(span, options)
    return (time.thread_time() - start) / len(spans) * 1e6


def _recorded_spans(count: int) -> list[Any]:
    sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "golden"))
    from corpus import all_cases, span_from_fixture

    fixtures = [f for case in all_cases() if case.name.startswith("fw-") for f in case.spans]
    spans = [span_from_fixture(f) for f in fixtures]
    return (spans * (count // len(spans) + 1))[:count]


def main() -> int:
    parser = argparse.ArgumentParser(description="CPU per span of count_once on top of map_span.")
    parser.add_argument("--spans", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-speedups", action="store_true", help="block the orjson and zlib-ng imports")
    args = parser.parse_args()
    if args.no_speedups:
        _common.block_speedups()
    sets = {
        "cpu_per_span set": _common.build_span_set(args.spans),
        "recorded frameworks": _recorded_spans(args.spans),
    }
    print(f"python {sys.version.split()[0]}; {args.spans} spans; {args.rounds} rounds; {_common.speedups_label()}")
    print(f"{'span set':<22} {'map_span µs':>12} {'+count_once µs':>15} {'added µs':>9} {'ratio':>6}")
    for name, spans in sets.items():
        _round_us(spans, count_once=True)  # warm the mapping's caches
        alone, both = [], []
        for _ in range(args.rounds):
            alone.append(_round_us(spans, count_once=False))
            both.append(_round_us(spans, count_once=True))
        a, b = _common.median(alone), _common.median(both)
        print(f"{name:<22} {a:>12.2f} {b:>15.2f} {b - a:>9.2f} {b / a:>6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

# SPDX-License-Identifier: Apache-2.0
"""What counting each provider call once (``count_once.py``) adds to the mapping, per span.

    python benchmarks/count_once.py
    python benchmarks/count_once.py --spans 8192 --rounds 15
    PYTHONPATH=<other checkout> python benchmarks/count_once.py    # the same figures for another version

Three span sets, each mapped span handed to ``CountOnce.observe`` right after ``map_span``, as the exporter does:

* the set of cpu_per_span.py (web spans with GenAI chat spans below, one instrumentation), a fresh ``CountOnce`` per
  round, so its tables fill as in a young process;
* the spans real frameworks recorded into ``tests/golden/corpus/fw-*.json`` (stacked instrumentations: nested and
  parallel duplicates, OpenInference answers in ``output.value``), a fresh ``CountOnce`` per round;
* a long-running process: the suite's ``new-key-every-span`` workload makes new spans (new ids, new response ids)
  every round, and one ``CountOnce`` sees them all, its tables full (``max_entries``) and trimmed as they go.

For each: the median process CPU microseconds per span (the garbage collector's work included: what count_once keeps
between batches is what it walks) of ``map_span`` alone and of ``map_span`` followed by ``observe``, rounds
interleaved, and the difference.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common


def _round_us(spans: list[Any], map_span: Callable[..., Any], counter: Any | None) -> float:
    from opentelemetry_exporter_lumiqtrace.mapping import MappingOptions

    options = MappingOptions()
    start = time.process_time()
    if counter is not None:
        observe = counter.observe
        for span in spans:
            event = map_span(span, options)
            if event is not None:
                observe(span, event)
    else:
        for span in spans:
            map_span(span, options)
    return (time.process_time() - start) / len(spans) * 1e6


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
    import workloads

    from opentelemetry_exporter_lumiqtrace.count_once import DEFAULT_MAX_ENTRIES, CountOnce
    from opentelemetry_exporter_lumiqtrace.mapping import Mapper

    map_span = Mapper().map_span  # one long-lived mapper, as the exporter owns one
    fixed = {
        "cpu_per_span set": _common.build_span_set(args.spans),
        "recorded frameworks": _recorded_spans(args.spans),
    }
    maker = workloads.SpanMaker(workloads.BY_NAME["new-key-every-span"])
    long_lived = CountOnce()
    while len(long_lived._counted_spans) < DEFAULT_MAX_ENTRIES:  # fill its tables as a running process has
        _round_us(maker.spans(args.spans), map_span, long_lived)
    print(f"python {sys.version.split()[0]}; {args.spans} spans; {args.rounds} rounds; {_common.speedups_label()}")
    print(f"{'span set':<34} {'map_span µs':>12} {'+count_once µs':>15} {'added µs':>9}")
    for name in [*fixed, "new spans, long-lived tables"]:
        alone, both = [], []
        for round_no in range(args.rounds + 1):  # round 0 warms the mapping's caches
            if name in fixed:
                spans_alone = spans_both = fixed[name]
                counter = CountOnce()
            else:
                spans_alone, spans_both = maker.spans(args.spans), maker.spans(args.spans)
                counter = long_lived
            if round_no % 2:
                b = _round_us(spans_both, map_span, counter)
                a = _round_us(spans_alone, map_span, None)
            else:
                a = _round_us(spans_alone, map_span, None)
                b = _round_us(spans_both, map_span, counter)
            if round_no:
                alone.append(a)
                both.append(b)
        a, b = _common.median(alone), _common.median(both)
        print(f"{name:<34} {a:>12.2f} {b:>15.2f} {b - a:>9.2f}")
    maker.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

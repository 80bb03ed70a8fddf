# SPDX-License-Identifier: Apache-2.0
"""What counting each provider call once (``count_once.py``) adds to the mapping, per span.

    python benchmarks/count_once.py
    python benchmarks/count_once.py --spans 8192 --rounds 15
    python benchmarks/count_once.py --against <other checkout>/opentelemetry_exporter_lumiqtrace/count_once.py --count
    PYTHONPATH=<other checkout> python benchmarks/count_once.py    # the same figures for another version

Three span sets, each mapped span handed to ``CountOnce.observe_mapped`` right after ``map_span``, as the exporter does
(``observe`` in a version without it):

* the set of cpu_per_span.py (web spans with GenAI chat spans below, one instrumentation), a fresh ``CountOnce`` per
  round, so its tables fill as in a young process;
* the spans real frameworks recorded into ``tests/golden/corpus/fw-*.json`` (stacked instrumentations: nested and
  parallel duplicates, OpenInference answers in ``output.value``), a fresh ``CountOnce`` per round;
* a long-running process: the suite's ``new-key-every-span`` workload makes new spans (new ids, new response ids)
  every round, and one ``CountOnce`` sees them all, its tables full (``max_entries``) and trimmed as they go.

For each: the median process CPU microseconds per span (the garbage collector's work included: what count_once keeps
between batches is what it walks) of ``map_span`` alone and of ``map_span`` followed by ``observe_mapped``, rounds
interleaved, and the difference.

``--against FILE`` loads another version's ``count_once.py`` beside this one and measures it in the same rounds
(alternating), so a busy machine blurs both alike: the figure to quote when comparing versions. ``--count`` adds what
a busy machine cannot blur at all: Python calls and bytecode instructions per span of ``observe_mapped``
(``sys.settrace`` over the first span set, counted, not timed); they do not weigh C work (dict probes, hashing), so
the times stay the figure that counts.
"""

from __future__ import annotations

import argparse
import importlib.util
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
        observe = _observer(counter)
        for span in spans:
            event = map_span(span, options)
            if event is not None:
                observe(span, event)
    else:
        for span in spans:
            map_span(span, options)
    return (time.process_time() - start) / len(spans) * 1e6


def _observer(counter: Any) -> Callable[..., Any]:
    """What the exporter calls on each mapped event: ``observe_mapped``, or ``observe`` in versions without it."""
    return getattr(counter, "observe_mapped", None) or counter.observe


def _recorded_spans(count: int) -> list[Any]:
    sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "golden"))
    from corpus import all_cases, span_from_fixture

    fixtures = [f for case in all_cases() if case.name.startswith("fw-") for f in case.spans]
    spans = [span_from_fixture(f) for f in fixtures]
    return (spans * (count // len(spans) + 1))[:count]


def _load_count_once(path: str) -> Any:
    """Another version's count_once.py as a module of its own (it imports the mapping of this checkout)."""
    spec = importlib.util.spec_from_file_location("count_once_against", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _calls_and_opcodes_per_span(spans: list[Any], map_span: Callable[..., Any], counter: Any) -> tuple[float, float]:
    """Python calls and bytecodes per span of the exporter's observer (its own call not counted), events mapped."""
    from opentelemetry_exporter_lumiqtrace.mapping import MappingOptions

    options = MappingOptions()
    pairs = [(span, event) for span in spans if (event := map_span(span, options)) is not None]
    observe = _observer(counter)
    return _common.calls_and_opcodes_per_item(lambda pair: observe(*pair), pairs)


def main() -> int:
    parser = argparse.ArgumentParser(description="CPU per span of count_once on top of map_span.")
    parser.add_argument("--spans", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-speedups", action="store_true", help="block the orjson and zlib-ng imports")
    parser.add_argument("--against", metavar="FILE", help="another count_once.py, measured in the same rounds")
    parser.add_argument("--count", action="store_true", help="also count calls and bytecodes per span observed")
    args = parser.parse_args()
    if args.no_speedups:
        _common.block_speedups()
    import workloads

    from opentelemetry_exporter_lumiqtrace.count_once import DEFAULT_MAX_ENTRIES, CountOnce
    from opentelemetry_exporter_lumiqtrace.mapping import Mapper

    map_span = Mapper().map_span  # one long-lived mapper, as the exporter owns one
    versions: dict[str, Any] = {"this": CountOnce}
    if args.against:
        versions["against"] = _load_count_once(args.against).CountOnce
    fixed = {
        "cpu_per_span set": _common.build_span_set(args.spans),
        "recorded frameworks": _recorded_spans(args.spans),
    }
    maker = workloads.SpanMaker(workloads.BY_NAME["new-key-every-span"])
    long_lived = {version: make() for version, make in versions.items()}
    for counter in long_lived.values():
        while len(counter._counted_spans) < DEFAULT_MAX_ENTRIES:  # fill its tables as a running process has
            _round_us(maker.spans(args.spans), map_span, counter)
    print(f"python {sys.version.split()[0]}; {args.spans} spans; {args.rounds} rounds; {_common.speedups_label()}")
    if args.count:
        print(f"observe_mapped (observe before it existed) on the {next(iter(fixed))} (counted, not timed):")
        for version, make in versions.items():
            calls, opcodes = _calls_and_opcodes_per_span(fixed["cpu_per_span set"], map_span, make())
            print(f"  {version:<8} {calls:6.2f} calls/span {opcodes:7.1f} bytecodes/span")
    added_header = "".join(f" {'+' + version + ' µs':>15}" for version in versions)
    print(f"{'span set':<34} {'map_span µs':>12}{added_header}")
    for name in [*fixed, "new spans, long-lived tables"]:
        times: dict[str | None, list[float]] = {None: [], **{version: [] for version in versions}}
        for round_no in range(args.rounds + 1):  # round 0 warms the mapping's caches
            order: list[str | None] = [None, *versions]
            if round_no % 2:
                order.reverse()  # neither version always runs right after the other
            for version in order:
                if name in fixed:
                    spans = fixed[name]
                    counter = versions[version]() if version is not None else None
                else:
                    spans = maker.spans(args.spans)
                    counter = long_lived[version] if version is not None else None
                elapsed = _round_us(spans, map_span, counter)
                if round_no:
                    times[version].append(elapsed)
        alone = _common.median(times[None])
        added = "".join(f" {_common.median(times[version]) - alone:>15.2f}" for version in versions)
        print(f"{name:<34} {alone:>12.2f}{added}")
    maker.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

# SPDX-License-Identifier: Apache-2.0
"""Which gzip level: CPU and body size of each level of zlib and zlib-ng on the exporter's own request bodies.

    python benchmarks/gzip_levels.py
    python benchmarks/gzip_levels.py --spans 4096 --rounds 9
    python benchmarks/gzip_levels.py --no-speedups    # zlib only, the level used without zlib-ng marked

Three sets of events, mapped and encoded as the exporter does, cut into 100-event NDJSON bodies: the workload suite's
``today`` and ``capture-content`` (the same 8 KB prompt on every chat span, which deflate finds in the previous
event), and ``capture-content`` with varied prompts (8 KB cut at random from this repository's README, Python sources
and golden corpus: prose, code and JSON, nothing repeated from one event to the next). For each library and level:
the median over the rounds of the CPU microseconds per span to compress every body, and the compressed bytes per
span; the level in use is marked.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import zlib
from collections.abc import Iterator
from typing import Any

import _common

LEVELS = (1, 2, 3, 4, 6)
_PROMPT_CHARS = 8_000


def _varied_texts() -> str:
    root = _common.HERE.parent
    files = [root / "README.md", *sorted(root.glob("opentelemetry_exporter_lumiqtrace/**/*.py"))]
    files += sorted((root / "tests" / "golden" / "corpus").glob("*.json"))[:40]
    return "".join(path.read_text(encoding="utf-8") for path in files)


def _event_sets(count: int) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    import workloads

    from opentelemetry_exporter_lumiqtrace.mapping import Mapper, MappingOptions

    for name in ("today", "capture-content"):
        maker = workloads.SpanMaker(workloads.BY_NAME[name])
        options = MappingOptions(capture_content=name == "capture-content")
        mapper = Mapper()
        events = [e for e in (mapper.map_span(span, options) for span in maker.spans(count)) if e is not None]
        maker.close()
        yield name, events
    texts = _varied_texts()
    rng = random.Random(11)
    for event in events:
        if "prompt" in event:
            start = rng.randrange(len(texts) - _PROMPT_CHARS)
            event["prompt"] = texts[start : start + _PROMPT_CHARS]
    yield "capture-content, varied prompts", events


def main() -> int:
    parser = argparse.ArgumentParser(description="CPU and size of each gzip level on the exporter's bodies.")
    parser.add_argument("--spans", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-speedups", action="store_true", help="block the orjson and zlib-ng imports")
    args = parser.parse_args()
    if args.no_speedups:
        _common.block_speedups()
    from opentelemetry_exporter_lumiqtrace import encoding

    libraries: list[tuple[str, Any]] = [("zlib", zlib)]
    try:
        from zlib_ng import zlib_ng

        libraries.append(("zlib-ng", zlib_ng))
    except ImportError:
        print("zlib-ng is not installed (the `speedups` extra) or blocked: zlib only")
    print(f"python {sys.version.split()[0]}; {args.spans} spans per set; {args.rounds} rounds; median CPU per span")
    for name, events in _event_sets(args.spans):
        lines, _ = encoding.encode_events(events)
        bodies = [b"\n".join([*lines[i : i + 100], b""]) for i in range(0, len(lines), 100)]
        raw = sum(len(body) for body in bodies) / len(lines)
        print(f"\n{name}: {len(lines)} events, {raw:.0f} B/span before compression")
        print(f"  {'library':<8} {'level':>5} {'CPU us/span':>12} {'B/span':>8}")
        for library, module in libraries:
            for level in LEVELS:

                def compress(body: bytes, module: Any = module, level: int = level) -> bytes:
                    compressor = module.compressobj(level, zlib.DEFLATED, 31)
                    return bytes(compressor.compress(body) + compressor.flush())

                rounds = []
                for _ in range(args.rounds):
                    start = time.thread_time()
                    for body in bodies:
                        compress(body)
                    rounds.append((time.thread_time() - start) / len(lines) * 1e6)
                size = sum(len(compress(body)) for body in bodies) / len(lines)
                current = library == encoding.GZIP_LIBRARY and level == encoding.GZIP_LEVEL
                marker = "  (in use)" if current else ""
                print(f"  {library:<8} {level:>5} {_common.median(rounds):>12.2f} {size:>8.0f}{marker}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

# SPDX-License-Identifier: Apache-2.0
"""CPU of the mapping's content and status pieces on the suite's heavy workloads, against their stdlib definitions.

    python benchmarks/content_cost.py                  # with the speedups (orjson) when installed
    python benchmarks/content_cost.py --no-speedups    # the stdlib alone

On the spans of ``workloads.py`` (made with the real SDK):

- ``capture-content`` chat spans (8 KB ``gen_ai.input.messages``): reading the messages JSON (``content._loads``
  against ``json.loads``, the definition it must equal), ``prompt_hash`` against its documented definition
  (``json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` then SHA-256), and
  ``add_content`` whole (``capture_content=True``);
- ``openinference`` LLM spans (ten flattened messages): ``prompt_hash`` against the same definition, and
  ``add_content`` whole;
- ``exceptions`` spans (five exception events each): ``read_events`` and ``outcome`` (the status ladder);
- error messages of 2,000 characters (the most an error message is scrubbed on), half of them not ASCII:
  ``scrub_secrets`` against its definition, its three patterns applied unconditionally.

Printed: the median over rounds of CPU microseconds per span (``time.thread_time``), rounds interleaved, and the
ratio to the definition measured in the same round. On a shared machine, compare figures of one run only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import _common


def _reference_prompt_hash(messages: list[tuple[str, str]]) -> str:
    canonical = json.dumps(
        [{"role": role, "text": text} for role, text in messages],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def _each(function: Callable[[Any], object], items: list[Any]) -> Callable[[], None]:
    """Calls ``function`` on every item, dropping each result at once (as the mapping drops what it parses)."""

    def run() -> None:
        for item in items:
            function(item)

    return run


def _per_span(run: Callable[[], object], count: int) -> float:
    start = time.thread_time()
    run()
    return (time.thread_time() - start) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--spans", type=int, default=1024, help="spans per workload (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=9, help="measured rounds (default: %(default)s)")
    parser.add_argument("--no-speedups", action="store_true", help="block the orjson and zlib-ng imports")
    args = parser.parse_args()
    if args.no_speedups:
        _common.block_speedups()

    import workloads

    from opentelemetry_exporter_lumiqtrace.mapping import content, redaction, status
    from opentelemetry_exporter_lumiqtrace.mapping.identity import identify
    from opentelemetry_exporter_lumiqtrace.mapping.scan import Scan, new_key_memo

    keys = new_key_memo(max_entries=8192, max_bytes=1 << 20)
    messages_memo = status.new_message_memo(max_entries=512, max_bytes=1 << 20)

    def prepared(name: str) -> list[tuple[Any, Any, Any, str]]:
        """(span, scan, span events, span kind) of the workload's AI spans (all spans for ``exceptions``)."""
        spans = workloads.SpanMaker(workloads.BY_NAME[name]).spans(args.spans)
        out = []
        for span in spans:
            found = Scan(dict(span.attributes or {}), keys)
            if found.ai or name == "exceptions":
                kind = identify(found).span_kind if found.ai else "general"
                out.append((span, found, status.read_events(span.events), kind))
        return out

    chat = prepared("capture-content")
    flat = prepared("openinference")
    failed = prepared("exceptions")
    texts = [span.attributes["gen_ai.input.messages"] for span, *_ in chat]
    chat_prompts = [content.messages_from_json(text) or [] for text in texts]
    flat_prompts = [
        content.messages_from_flat(found.messages[next(iter(found.messages))]) or [] for _, found, *_ in flat
    ]
    assert all(content.prompt_hash(p) == _reference_prompt_hash(p) for p in chat_prompts + flat_prompts)

    # Long error messages (an API error quoting its request), half of them not ASCII; none holds a secret.
    sentence = "upstream rejected the batch of documents sent to the index (request {n}, {word}); "
    long_messages = [
        "".join(sentence.format(n=n, word="déjà vu" if n % 2 else "again") for _ in range(30))[:2000] for n in range(64)
    ]

    def _reference_scrub(text: str) -> str:
        """The three patterns applied unconditionally (what scrub_secrets must return)."""
        text = redaction._SECRET_RE.sub(redaction.REDACTED, text)
        text = redaction._BEARER_RE.sub(r"\1 " + redaction.REDACTED, text)
        return redaction._KV_RE.sub(r"\1" + redaction.REDACTED, text)

    assert all(redaction.scrub_secrets(m) == _reference_scrub(m) for m in long_messages)

    def add_content(capture: bool) -> Callable[[tuple[Any, Any, Any, str]], object]:
        return lambda item: content.add_content({}, item[1], item[2], item[3], capture=capture, max_chars=32_768)

    stages: dict[str, tuple[Callable[[], None], int]] = {
        "capture-content: read messages JSON": (_each(content._loads, texts), len(texts)),
        "capture-content: json.loads (definition)": (_each(json.loads, texts), len(texts)),
        "capture-content: prompt_hash": (_each(content.prompt_hash, chat_prompts), len(chat)),
        "capture-content: prompt_hash definition": (_each(_reference_prompt_hash, chat_prompts), len(chat)),
        "capture-content: add_content (chat span)": (_each(add_content(True), chat), len(chat)),
        "openinference: prompt_hash": (_each(content.prompt_hash, flat_prompts), len(flat)),
        "openinference: prompt_hash definition": (_each(_reference_prompt_hash, flat_prompts), len(flat)),
        "openinference: add_content": (_each(add_content(False), flat), len(flat)),
        "error message, 2,000 chars: scrub_secrets": (
            _each(redaction.scrub_secrets, long_messages),
            len(long_messages),
        ),
        "error message, 2,000 chars: scrub_secrets definition": (
            _each(_reference_scrub, long_messages),
            len(long_messages),
        ),
        "exceptions: read_events": (_each(lambda item: status.read_events(item[0].events), failed), len(failed)),
        "exceptions: outcome": (
            _each(lambda item: status.outcome(item[0], item[1], item[2], messages_memo), failed),
            len(failed),
        ),
    }
    results: dict[str, list[float]] = {name: [] for name in stages}
    for run, count in stages.values():  # warm-up
        _per_span(run, count)
    for _ in range(args.rounds):
        for name, (run, count) in stages.items():
            results[name].append(_per_span(run, count))

    print(
        f"python {sys.version.split()[0]}; {_common.speedups_label()}; {args.rounds} rounds; "
        "CPU us per span (per message for error messages)"
    )
    medians = {name: _common.median(values) for name, values in results.items()}
    for name, value in medians.items():
        line = f"  {name:54s} {value:7.2f} us"
        peer = name.replace("read messages JSON", "json.loads (definition)").replace(
            "prompt_hash", "prompt_hash definition"
        )
        if peer != name and peer in medians:
            line += f"   {value / medians[peer]:.2f}x the definition"
        print(line)


if __name__ == "__main__":
    main()

# SPDX-License-Identifier: Apache-2.0
"""The golden corpus: span fixtures (JSON) -> expected LumiqTrace events (JSON).

One file per scenario under ``tests/golden/corpus/``::

    {
      "description": "what the scenario is and where its spans come from",
      "source": "hand-written" | "recorded: <framework> <version> (+ <instrumentation> <version>)",
      "options": {"capture_content": true, ...},      # MappingOptions keywords; omitted = defaults of the tests
                                                      # (see mapping_options: sdk_version is pinned)
      "spans": [<span fixture>, ...],                 # in the order the exporter receives them (end order)
      "expected": [<event or null>, ...]              # one per span, same order; null = not exported
    }

A span fixture holds everything the mapping may read from a ``ReadableSpan``::

    {"name": str, "kind": "INTERNAL"|"SERVER"|"CLIENT"|"PRODUCER"|"CONSUMER",
     "trace_id": 32 hex, "span_id": 16 hex, "parent_span_id": 16 hex | null,
     "start_time_unix_nano": int, "end_time_unix_nano": int,
     "attributes": {key: value}, "events": [{"name": str, "timestamp_unix_nano": int, "attributes": {...}}],
     "status": {"code": "UNSET"|"OK"|"ERROR", "description": str | null},
     "resource": {key: value}, "scope": {"name": str, "version": str | null}}

Attribute sequences are JSON lists in the file and tuples in the rebuilt span, as the SDK stores them. Recorders
(the real-framework drivers) call :func:`span_to_fixture`; tests call :func:`load_case` and :func:`span_from_fixture`.

Expected events are compared exactly, with one exception: a ``cost_usd`` the mapping computed (tag
``cost.source: genai-prices``) depends on the installed ``genai-prices`` price snapshot (and is absent where the
package is missing, e.g. on Python 3.10), so :func:`comparable` drops it and its tag from both sides when
``genai-prices`` is not importable, and otherwise :func:`assert_event_matches` compares it to a relative 1e-6.
Costs the span carries itself (``cost.source: span``) are compared exactly. ``tests/golden/make_corpus.py`` builds
and refreshes the files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

CORPUS_DIR = Path(__file__).parent / "corpus"
# The sdk_version every corpus event carries (MappingOptions.sdk_version), so files do not change with releases.
CORPUS_SDK_VERSION = "0.0.0+corpus"
COMPUTED_COST = "genai-prices"


def mapping_options(options: Mapping[str, Any]) -> Any:
    """``MappingOptions`` of a case's ``options`` (JSON lists become frozensets; ``sdk_version`` is pinned)."""
    from opentelemetry_exporter_lumiqtrace.mapping import MappingOptions

    kw = dict(options)
    if "redact_keys" in kw:
        kw["redact_keys"] = frozenset(kw["redact_keys"])
    kw.setdefault("sdk_version", CORPUS_SDK_VERSION)
    return MappingOptions(**kw)


def options_to_json(options: Any) -> dict[str, Any]:
    """The keywords of ``options`` (a ``MappingOptions``) that differ from the defaults, JSON-ready."""
    from dataclasses import fields

    from opentelemetry_exporter_lumiqtrace.mapping import MappingOptions

    default = MappingOptions()
    out: dict[str, Any] = {}
    for f in fields(MappingOptions):
        if not f.init or f.name == "sdk_version":
            continue
        value = getattr(options, f.name)
        if value != getattr(default, f.name):
            out[f.name] = sorted(value) if isinstance(value, frozenset) else value
    return out


def comparable(event: dict[str, Any] | None, *, pricing: bool) -> dict[str, Any] | None:
    """``event`` as a corpus test compares it: without a computed cost when ``genai-prices`` is missing."""
    if event is None or pricing or event.get("tags", {}).get("cost.source") != COMPUTED_COST:
        return event
    event = dict(event)
    event.pop("cost_usd", None)
    tags = {k: v for k, v in event["tags"].items() if k != "cost.source"}
    if tags:
        event["tags"] = tags
    else:
        event.pop("tags")
    return event


def assert_event_matches(got: dict[str, Any] | None, expected: dict[str, Any] | None, *, pricing: bool) -> None:
    """``got`` equals ``expected`` key for key, in key order and with exact types (see the module docstring)."""
    got = comparable(got, pricing=pricing)
    expected = comparable(expected, pricing=pricing)
    if not pricing and got is not None and expected is not None and "cost_usd" in expected and "cost_usd" not in got:
        # Under tight tag caps the cost.source tag may be cut, so comparable() cannot tell a computed cost; without
        # genai-prices a cost can only go missing if it was computed (a cost the span carries needs no pricing).
        expected = {k: v for k, v in expected.items() if k != "cost_usd"}
    if got is None or expected is None:
        assert got is expected, (got, expected)
        return
    if expected.get("tags", {}).get("cost.source") == COMPUTED_COST and "cost_usd" in expected and "cost_usd" in got:
        assert abs(got["cost_usd"] - expected["cost_usd"]) <= 1e-6 * abs(expected["cost_usd"]) + 1e-12, (
            got["cost_usd"],
            expected["cost_usd"],
        )
        got = {**got, "cost_usd": expected["cost_usd"]}
    assert list(got) == list(expected), (list(got), list(expected))
    assert _typed(got) == _typed(expected)


def _typed(value: Any) -> Any:
    """``value`` with the type of every leaf, so ``1 == 1.0 == True`` differences count."""
    if isinstance(value, dict):
        return [(k, _typed(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, value)


@dataclass
class Case:
    """One scenario of the corpus."""

    path: Path
    description: str
    source: str
    options: dict[str, Any] = field(default_factory=dict)
    spans: list[dict[str, Any]] = field(default_factory=list)
    expected: list[dict[str, Any] | None] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.stem

    def readable_spans(self) -> list[ReadableSpan]:
        return [span_from_fixture(s) for s in self.spans]

    def to_json(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "source": self.source,
            "options": self.options,
            "spans": self.spans,
            "expected": self.expected,
        }

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.to_json(), indent=1, sort_keys=False, ensure_ascii=False) + "\n")


def load_case(path: Path) -> Case:
    data = json.loads(path.read_text())
    return Case(
        path=path,
        description=data.get("description", ""),
        source=data.get("source", ""),
        options=dict(data.get("options") or {}),
        spans=list(data["spans"]),
        expected=list(data.get("expected") or []),
    )


def all_cases(directory: Path = CORPUS_DIR) -> list[Case]:
    return [load_case(p) for p in sorted(directory.glob("*.json"))]


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value


def _attrs_to_json(attrs: Mapping[str, Any] | None) -> dict[str, Any]:
    return {str(k): _jsonable(v) for k, v in (attrs or {}).items()}


def _attrs_from_json(attrs: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in (attrs or {}).items()}


def span_to_fixture(span: ReadableSpan) -> dict[str, Any]:
    """A finished span as a corpus fixture (what a recorder writes)."""
    ctx = span.context
    parent = span.parent
    scope = span.instrumentation_scope
    status = span.status
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": f"{ctx.trace_id:032x}" if ctx is not None else "0" * 32,
        "span_id": f"{ctx.span_id:016x}" if ctx is not None else "0" * 16,
        "parent_span_id": f"{parent.span_id:016x}" if parent is not None else None,
        "start_time_unix_nano": span.start_time,
        "end_time_unix_nano": span.end_time,
        "attributes": _attrs_to_json(span.attributes),
        "events": [
            {"name": e.name, "timestamp_unix_nano": e.timestamp, "attributes": _attrs_to_json(e.attributes)}
            for e in span.events
        ],
        "status": {"code": status.status_code.name, "description": status.description},
        "resource": _attrs_to_json(span.resource.attributes if span.resource is not None else {}),
        "scope": {"name": scope.name, "version": scope.version} if scope is not None else None,
    }


def span_from_fixture(data: Mapping[str, Any]) -> ReadableSpan:
    """Rebuild a ``ReadableSpan`` (public SDK constructor) from a corpus fixture."""
    trace_id = int(data["trace_id"], 16)
    span_id = int(data["span_id"], 16)
    context = SpanContext(trace_id=trace_id, span_id=span_id, is_remote=False, trace_flags=TraceFlags(1))
    parent = None
    if data.get("parent_span_id"):
        parent = SpanContext(
            trace_id=trace_id, span_id=int(data["parent_span_id"], 16), is_remote=False, trace_flags=TraceFlags(1)
        )
    status = data.get("status") or {}
    scope = data.get("scope")
    return ReadableSpan(
        name=data["name"],
        context=context,
        parent=parent,
        resource=Resource(_attrs_from_json(data.get("resource"))),
        attributes=_attrs_from_json(data.get("attributes")),
        events=[
            Event(e["name"], attributes=_attrs_from_json(e.get("attributes")), timestamp=e.get("timestamp_unix_nano"))
            for e in data.get("events") or ()
        ],
        kind=SpanKind[data.get("kind", "INTERNAL")],
        status=Status(StatusCode[status.get("code", "UNSET")], status.get("description")),
        start_time=data.get("start_time_unix_nano"),
        end_time=data.get("end_time_unix_nano"),
        instrumentation_scope=InstrumentationScope(scope["name"], scope.get("version")) if scope else None,
    )

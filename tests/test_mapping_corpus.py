# SPDX-License-Identifier: Apache-2.0
"""The golden corpus: every span fixture of ``tests/golden/corpus/`` maps to its reviewed expected event.

Also: an event does not depend on what the mapper saw before (warm versus cold memos), and the mapper's memos stay
within their bounds on spans of ever new key sets.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from opentelemetry_exporter_lumiqtrace.mapping import Mapper, MappingOptions
from opentelemetry_exporter_lumiqtrace.mapping.pricing import pricing_available
from tests.golden.corpus import Case, all_cases, assert_event_matches, mapping_options, span_from_fixture
from tests.test_mapping_support import make_span

CASES = all_cases()
PRICING = pricing_available()


def test_the_corpus_is_there() -> None:
    assert len(CASES) >= 50
    sources = {case.source.split(":")[0] for case in CASES}
    assert "recorded" in sources and "hand-written" in sources
    statuses = {e["status"] for case in CASES for e in case.expected if e is not None}
    assert statuses == {"success", "error", "timeout", "rate_limited", "cancelled"}


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_corpus_case(case: Case) -> None:
    assert len(case.expected) == len(case.spans), "one expected event (or null) per span"
    mapper = Mapper()
    options = mapping_options(case.options)
    for i, (fixture, expected) in enumerate(zip(case.spans, case.expected, strict=True)):
        got = mapper.map_span(span_from_fixture(fixture), options)
        try:
            assert_event_matches(got, expected, pricing=PRICING)
        except AssertionError as exc:
            raise AssertionError(
                f"{case.name} span {i} ({fixture['name']}): {exc}\ngot      {got}\nexpected {expected}"
            ) from None


SHARED = Mapper()


@pytest.mark.parametrize("case", CASES[:: max(len(CASES) // 40, 1)], ids=lambda case: case.name)
def test_corpus_case_through_one_shared_mapper_in_reverse(case: Case) -> None:
    """The same events from a mapper that has mapped other cases (warm memos, other options in between)."""
    options = mapping_options(case.options)
    for fixture, expected in reversed(list(zip(case.spans, case.expected, strict=True))):
        got = SHARED.map_span(span_from_fixture(fixture), options)
        assert_event_matches(got, expected, pricing=PRICING)


# --- warm versus cold -----------------------------------------------------------------------------------------------

POOL = [f"app.attribute.{i}" for i in range(200)]
MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-flash", "o3-mini", "my-local-model"]
PROVIDERS = ["openai", "anthropic", "gcp.gen_ai", "azure.ai.openai", "custom-llm"]


def _other_span(rng: random.Random, i: int) -> Any:
    attrs: dict[str, Any] = {
        key: rng.choice(["x", 1, 2.5, True, ("a", "b")]) for key in rng.sample(POOL, rng.randint(3, 8))
    }
    if rng.random() < 0.6:
        attrs.update(
            {
                "gen_ai.operation.name": rng.choice(["chat", "embeddings", "execute_tool", "invoke_agent"]),
                "gen_ai.provider.name": rng.choice(PROVIDERS),
                "gen_ai.request.model": rng.choice(MODELS),
                "gen_ai.response.model": f"{rng.choice(MODELS)}-{i % 97}",
                "gen_ai.usage.input_tokens": rng.randint(0, 300_000),
                "gen_ai.usage.output_tokens": rng.randint(0, 5_000),
                f"new.key.{i}": i,
            }
        )
    if rng.random() < 0.2:
        attrs[f"llm.input_messages.{rng.randint(0, 20)}.message.content"] = "hi"
    return make_span(attrs, name=f"span-{i % 50}", span_id=i + 1)


def test_warm_versus_cold() -> None:
    """A span mapped first, and again after 20,000 spans of other shapes and models, gives the identical event."""
    rng = random.Random(11)
    options = MappingOptions(capture_content=True, redact_keys=frozenset({"app.attribute.7"}))
    mapper = Mapper(max_memo_entries=512, max_memo_bytes=32 * 1024)  # small memos: they turn over many times
    watched = [
        span_from_fixture(fixture) for case in CASES if case.source.startswith("recorded") for fixture in case.spans
    ]
    watched.append(
        make_span({"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o", "app.attribute.7": 1})
    )
    cold = [mapper.map_span(span, options) for span in watched]
    for i in range(20_000):
        mapper.map_span(_other_span(rng, i), options)
    warm = [mapper.map_span(span, options) for span in watched]
    assert warm == cold
    assert [list(e or ()) for e in warm] == [list(e or ()) for e in cold]
    assert [Mapper().map_span(span, options) for span in watched] == cold


def test_memos_stay_bounded_on_ever_new_keys() -> None:
    mapper = Mapper(max_memo_entries=256, max_memo_bytes=16 * 1024)
    options = MappingOptions()
    for i in range(5_000):
        mapper.map_span(make_span({f"k{i}" * 3: i, f"gen_ai.x{i}": "y", "gen_ai.request.model": f"m{i}"}), options)
    for memo in (mapper._keys, mapper._identities):  # the bounds are the point of the test
        assert len(memo) <= 256
        assert memo.bytes <= 8 * 1024


def test_a_long_key_or_value_is_never_memoised() -> None:
    mapper = Mapper()
    key = "gen_ai." + "x" * 10_000
    event = mapper.map_span(make_span({key: "v", "gen_ai.request.model": "m" * 5_000}), MappingOptions())
    assert event is not None and event["provider"] == "custom"
    assert key not in mapper._keys.young
    assert len(mapper._identities) == 0

# SPDX-License-Identifier: Apache-2.0
"""Price plans against genai-prices' own ``calc_price``: every model it knows, every tier and price period.

The plan is the per-span path; ``calc_price`` is the oracle. Costs are compared after the 12-significant-digit
rounding ``compute_cost`` applies (the plan's float is the correctly rounded float of calc_price's exact Decimal, so
they agree bit for bit before the rounding as well; the rounding only keeps a tie from flaking).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opentelemetry_exporter_lumiqtrace.mapping import pricing

gp = pytest.importorskip("genai_prices")
from genai_prices import data_snapshot, types  # noqa: E402

SNAPSHOT = data_snapshot.get_snapshot()
ALL_MODELS = [(provider, model) for provider in SNAPSHOT.providers for model in provider.models]
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
NOW_NS = 1_790_000_000 * 10**9  # 2026-09-21, after every start date in the bundled data


def _at(ns: int) -> datetime:
    return EPOCH + timedelta(microseconds=ns // 1000)


def _usage(i: int, o: int, r: int, w: int) -> Any:
    return gp.Usage(input_tokens=i, output_tokens=o, cache_read_tokens=r or None, cache_write_tokens=w or None)


def _expected(provider: Any, model: Any, i: int, o: int, r: int, w: int, ns: int) -> float | None:
    """calc_price of one genai-prices model, rounded like compute_cost; None where calc_price rejects the price."""
    try:
        result = model.calc_price(_usage(i, o, r, w), provider, genai_request_timestamp=_at(ns))
    except ValueError:
        return None
    return pricing.round_cost(float(result.total_price))


def _expected_by_ref(provider_id: str | None, ref: str, i: int, o: int, r: int = 0, w: int = 0) -> float:
    """genai_prices.calc_price as a caller would use it (the model found from a provider id and a model string)."""
    result = gp.calc_price(_usage(i, o, r, w), ref, provider_id=provider_id, genai_request_timestamp=_at(NOW_NS))
    return pricing.round_cost(float(result.total_price))


def _instants(plan: pricing.PricePlan) -> list[int]:
    """Nanosecond instants on both sides of every date and time-of-day bound of a plan (one when it has none)."""
    if plan.prices is not None:
        return [NOW_NS]
    days = (
        [plan.date_cuts_us[0] - 86_400_000_000, *plan.date_cuts_us] if plan.date_cuts_us else [19_700 * 86_400_000_000]
    )
    instants = []
    for day in days:
        for cut in plan.time_cuts_us:
            for us in (day + cut - 1, day + cut, day + cut + 1):
                instants.append(us * 1000)
    return instants


def _input_counts(plan: pricing.PricePlan) -> list[int]:
    starts: set[int] = set()
    for prices in [plan.prices] if plan.prices is not None else [p for row in plan.table for p in row]:
        assert prices is not None
        starts.update(prices.tier_starts)
    counts = {0, 1, 1_000, 123_457}
    for start in starts:
        counts.update((start - 1, start, start + 1))
    return sorted(c for c in counts if c >= 0)


def _usages(i: int) -> Iterator[tuple[int, int, int, int]]:
    yield i, 777, 0, 0
    yield i, 0, i // 3, 0
    yield i, 777, 0, i // 5
    yield i, 777, i // 3, i // 5


def test_every_model_below_at_and_above_every_tier_in_every_period() -> None:
    checked = 0
    mismatches = []
    for provider, model in ALL_MODELS:
        plan = pricing.build_plan(gp, provider, model)
        assert isinstance(plan, pricing.PricePlan), f"{provider.id}/{model.id} fell back to calc_price"
        for ns in _instants(plan):
            for i in _input_counts(plan):
                for i_, o, r, w in _usages(i):
                    got = plan.cost(i_, o, r, w, ns)
                    expected = _expected(provider, model, i_, o, r, w, ns)
                    checked += 1
                    if got != expected:
                        mismatches.append((provider.id, model.id, i_, o, r, w, ns, got, expected))
    assert not mismatches[:20]
    assert checked > 20 * len(ALL_MODELS)


def test_plans_cover_tiers_dates_times_and_request_fees() -> None:
    """The bundled data has every structure the plans express, so the test above exercises each of them."""
    plans = [pricing.build_plan(gp, provider, model) for provider, model in ALL_MODELS]
    assert all(isinstance(plan, pricing.PricePlan) for plan in plans)
    planned = [p for p in plans if isinstance(p, pricing.PricePlan)]
    all_prices = [
        prices
        for plan in planned
        for prices in ([plan.prices] if plan.prices else [p for row in plan.table for p in row])
    ]
    assert any(len(prices.tier_starts) >= 2 for prices in all_prices)  # two tiers
    assert any(prices.tiers and prices.tiers[0].fixed for prices in all_prices)  # a per-request fee
    assert any(prices.read_in_input and not prices.write_in_input for prices in all_prices)
    assert any(plan.date_cuts_us for plan in planned)
    assert any(len(plan.time_cuts_us) > 1 for plan in planned)  # off-peak hours


@pytest.mark.parametrize(
    ("raw_provider", "model", "provider_id"),
    [
        ("anthropic", "claude-sonnet-4-5", "anthropic"),
        ("anthropic", "claude-sonnet-4-20250514", "anthropic"),
        ("gcp.gemini", "gemini-2.5-pro", "google"),
        ("gcp.vertex_ai", "projects/p/locations/l/publishers/google/models/gemini-2.5-pro", "google"),
        ("openai", "gpt-4o", "openai"),
        ("azure.ai.openai", "gpt-4o-mini", "azure"),
        (None, "claude-sonnet-4-5", None),
        ("deepseek", "deepseek-chat", "deepseek"),
    ],
)
@pytest.mark.parametrize("input_tokens", [1_000, 199_999, 200_000, 200_001, 1_000_000])
def test_compute_cost_equals_calc_price(
    raw_provider: str | None, model: str, provider_id: str | None, input_tokens: int
) -> None:
    ref = pricing.pricing_model_ref(model)
    for cache_read, cache_write in ((0, 0), (input_tokens // 2, 0), (input_tokens // 4, input_tokens // 4)):
        cost = pricing.compute_cost(
            raw_provider=raw_provider,
            model=model,
            input_tokens=input_tokens,
            output_tokens=1_234,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            start_time_ns=NOW_NS,
        )
        assert cost == _expected_by_ref(provider_id, ref, input_tokens, 1_234, cache_read, cache_write)


def test_tiered_model_changes_rate_above_the_threshold() -> None:
    below = pricing.compute_cost(
        raw_provider="anthropic", model="claude-sonnet-4-5", input_tokens=200_000, output_tokens=0
    )
    above = pricing.compute_cost(
        raw_provider="anthropic", model="claude-sonnet-4-5", input_tokens=200_001, output_tokens=0
    )
    assert below is not None and above is not None
    assert above > below * 1.5  # the long-context rate applies to every input token, not just the excess


@pytest.mark.parametrize("provider_id", [*sorted({provider.id for provider in SNAPSHOT.providers}), None])
def test_model_lookup_matches_genai_prices(provider_id: str | None) -> None:
    refs = [*[model.id for provider in SNAPSHOT.providers for model in provider.models][::7], "no-such-model-xyz"]
    for ref in refs:
        try:
            expected = SNAPSHOT.find_provider_model(ref, None, provider_id, None)
        except LookupError:
            expected = None
        found = pricing.find_model(gp, provider_id, ref)
        assert (found and (found[0].id, found[1].id)) == (expected and (expected[0].id, expected[1].id)), ref


_MODEL_INDEX = st.integers(min_value=0, max_value=len(ALL_MODELS) - 1)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    index=_MODEL_INDEX,
    input_tokens=st.integers(min_value=0, max_value=3_000_000),
    output_tokens=st.integers(min_value=0, max_value=200_000),
    read_share=st.floats(min_value=0, max_value=1),
    write_share=st.floats(min_value=0, max_value=1),
    ns=st.integers(min_value=1_672_531_200 * 10**9, max_value=1_830_000_000 * 10**9),  # 2023 .. 2027
)
def test_random_usage_and_instants(
    index: int, input_tokens: int, output_tokens: int, read_share: float, write_share: float, ns: int
) -> None:
    provider, model = ALL_MODELS[index]
    cache_read = int(input_tokens * read_share)
    cache_write = int((input_tokens - cache_read) * write_share)
    plan = pricing.build_plan(gp, provider, model)
    expected = _expected(provider, model, input_tokens, output_tokens, cache_read, cache_write, ns)
    assert plan.cost(input_tokens, output_tokens, cache_read, cache_write, ns) == expected


# --- what calc_price has no answer for --------------------------------------------------------------------------------


def test_cache_counts_above_the_input_price_as_cache_without_negative_input() -> None:
    """An instrumentation counting cache tokens apart from the input: calc_price refuses; the plan prices the cache."""
    kwargs: dict[str, Any] = {"raw_provider": "anthropic", "model": "claude-sonnet-4-5", "output_tokens": 10}
    apart = pricing.compute_cost(input_tokens=100, cache_read_tokens=3_000, cache_write_tokens=500, **kwargs)
    only_cache = pricing.compute_cost(input_tokens=3_500, cache_read_tokens=3_000, cache_write_tokens=500, **kwargs)
    assert apart is not None and apart == only_cache


def test_negative_or_missing_counts() -> None:
    kwargs: dict[str, Any] = {"raw_provider": "openai", "model": "gpt-4o"}
    assert pricing.compute_cost(input_tokens=-1, output_tokens=5, **kwargs) is None
    assert pricing.compute_cost(input_tokens=5, output_tokens=5, cache_read_tokens=-2, **kwargs) is None
    assert pricing.compute_cost(input_tokens=None, output_tokens=None, **kwargs) is None
    assert pricing.compute_cost(input_tokens=None, output_tokens=1_000, **kwargs) == pricing.compute_cost(
        input_tokens=0, output_tokens=1_000, **kwargs
    )


def test_unknown_model_is_remembered_as_unpriced() -> None:
    key = ("openai", "no-such-model-plan-test")
    assert pricing.compute_cost(raw_provider=key[0], model=key[1], input_tokens=5, output_tokens=5) is None
    assert key in pricing._plans
    assert pricing.compute_cost(raw_provider=key[0], model=key[1], input_tokens=5, output_tokens=5) is None


# --- rounding ---------------------------------------------------------------------------------------------------------


def test_costs_have_at_most_twelve_significant_digits() -> None:
    assert pricing.round_cost(0.00026999999999999995) == 0.00027
    assert repr(pricing.round_cost(0.1 + 0.2)) == "0.3"
    assert pricing.round_cost(1 / 3) == 0.333333333333
    assert pricing.round_cost(0.0) == 0.0
    for model, tokens in (("gpt-4o-mini", 7), ("gpt-4o", 333_333), ("claude-sonnet-4-5", 1)):
        cost = pricing.compute_cost(raw_provider=None, model=model, input_tokens=tokens, output_tokens=tokens)
        assert cost is not None and cost > 0
        digits = Decimal(repr(cost)).normalize().as_tuple().digits
        assert len(digits) <= pricing.COST_SIGNIFICANT_DIGITS


@settings(max_examples=500, deadline=None)
@given(
    twos=st.integers(0, 40),
    fives=st.integers(0, 20),
    other=st.sampled_from([1, 1, 1, 3, 7, 9]),
    numerator=st.integers(0, 10**20),
    near_bound=st.booleans(),
)
def test_exact_quotients_skip_the_rounding_only_when_it_changes_nothing(
    twos: int, fives: int, other: int, numerator: int, near_bound: bool
) -> None:
    # A plan returns n / denominator unrounded below exact_below: that must be round_cost's result bit for bit.
    denominator = 2**twos * 5**fives * other
    bound = pricing._exact_below(denominator)
    if other != 1:
        assert bound == 0
    if near_bound and bound:
        numerator = max(bound - 1 - numerator % 3, 0)
    if numerator < bound:
        quotient = numerator / denominator
        assert pricing.round_cost(quotient) == quotient
        assert len(str(numerator * 10**40 // denominator).rstrip("0")) <= pricing.COST_SIGNIFICANT_DIGITS


# --- the plan cache ---------------------------------------------------------------------------------------------------


def test_plan_cache_evicts_the_least_recently_used_one_at_a_time() -> None:
    cache = pricing._PlanCache(max_entries=3)
    plans = {name: pricing._CalcPricePlan(gp, None, name, name) for name in "abcd"}
    for name in "abc":
        cache.put((None, name), plans[name])
    assert cache.get((None, "a")) is plans["a"]  # a is now the most recent
    cache.put((None, "d"), plans["d"])
    assert len(cache) == 3
    assert cache.get((None, "b")) is None  # the least recently used went, and only it
    assert [cache.get((None, n)) for n in "acd"] == [plans["a"], plans["c"], plans["d"]]


def test_long_model_strings_are_priced_but_not_cached() -> None:
    model = f"projects/{'p' * pricing.DEFAULT_MAX_CACHED_KEY_CHARS}/locations/l/publishers/google/models/gemini-2.5-pro"
    before = len(pricing._plans)
    cost = pricing.compute_cost(raw_provider="gcp.vertex_ai", model=model, input_tokens=1_000, output_tokens=10)
    assert cost == _expected_by_ref("google", "gemini-2.5-pro", 1_000, 10)
    assert ("gcp.vertex_ai", model) not in pricing._plans
    assert len(pricing._plans) == before


def test_many_models_stay_within_the_bound_and_keep_pricing(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = pricing._PlanCache(max_entries=50)
    monkeypatch.setattr(pricing, "_plans", cache)
    models = [model.id for provider in SNAPSHOT.providers if provider.id == "openai" for model in provider.models]
    assert len(models) > 60
    for model in models * 2:
        pricing.compute_cost(raw_provider="openai", model=model, input_tokens=10, output_tokens=10)
        assert len(cache) <= 50
    assert len(cache) == 50
    cost = pricing.compute_cost(raw_provider="openai", model="gpt-4o", input_tokens=1_000, output_tokens=10)
    assert cost == _expected_by_ref("openai", "gpt-4o", 1_000, 10)


# --- prices no plan expresses -----------------------------------------------------------------------------------------


class _WeekdayConstraint:
    """A constraint type the plans do not know (a future genai-prices could add one)."""

    def active(self, request_timestamp: datetime) -> bool:
        return request_timestamp.weekday() >= 5


def test_unknown_constraint_falls_back_to_calc_price_for_that_model_only() -> None:
    weekend = types.ModelPrice(input_mtok=Decimal("1"), output_mtok=Decimal("2"))
    weekday = types.ModelPrice(input_mtok=Decimal("3"), output_mtok=Decimal("4"))
    model = types.ModelInfo(
        id="weekday-model",
        match=types.ClauseEquals(equals="weekday-model"),
        prices=[
            types.ConditionalPrice(prices=weekday),
            types.ConditionalPrice(constraint=_WeekdayConstraint(), prices=weekend),  # type: ignore[arg-type]
        ],
    )
    provider = SNAPSHOT.providers[0]
    with pytest.raises(pricing._CannotPlan):
        pricing.build_plan(gp, provider, model)
    original = list(provider.models)
    provider.models.insert(0, model)
    try:
        plan = pricing._resolve(gp, SNAPSHOT.providers[0].id, "weekday-model")
        assert not plan.exact
        saturday_ns = int(datetime(2026, 11, 28, 12, tzinfo=timezone.utc).timestamp()) * 10**9
        monday_ns = saturday_ns + 2 * 86_400 * 10**9
        assert plan.cost(1_000_000, 0, 0, 0, saturday_ns) == 1.0
        assert plan.cost(1_000_000, 0, 0, 0, monday_ns) == 3.0
    finally:
        provider.models[:] = original
    assert pricing._resolve(gp, None, "gpt-4o").exact


# --- the import -------------------------------------------------------------------------------------------------------


class _SlowImport:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.threads: list[str] = []

    def __call__(self) -> Any:
        self.threads.append(threading.current_thread().name)
        self.release.wait(10)
        return gp


def test_a_span_priced_during_the_import_waits_once_then_goes_on_without_cost(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    slow = _SlowImport()
    loader = pricing._PricesImport(importer=slow)
    monkeypatch.setattr(pricing, "_prices_import", loader)
    monkeypatch.setattr(pricing, "_plans", pricing._PlanCache())
    loader.start(max_wait_s=0.2)
    kwargs: dict[str, Any] = {"raw_provider": "openai", "model": "gpt-4o", "input_tokens": 10, "output_tokens": 5}
    with caplog.at_level(logging.WARNING, logger=pricing.__name__):
        started = time.monotonic()
        assert pricing.compute_cost(**kwargs) is None  # waited up to 0.2 s
        first_wait = time.monotonic() - started
        started = time.monotonic()
        for _ in range(100):
            assert pricing.compute_cost(**kwargs) is None
        later_waits = time.monotonic() - started
    assert 0.15 <= first_wait < 2.0
    assert later_waits < 0.4  # the wait is spent once per process, not once per span
    assert pricing.import_stats() == {"unpriced_while_importing": 101}
    assert [r.message for r in caplog.records if "still importing" in r.message] != []
    assert len([r for r in caplog.records if "still importing" in r.message]) == 1
    slow.release.set()
    assert loader.wait(5) is gp
    assert pricing.compute_cost(**kwargs) == _expected_by_ref("openai", "gpt-4o", 10, 5)
    assert slow.threads == ["lumiqtrace-genai-prices-import"]


def test_an_import_that_finishes_within_the_wait_prices_the_first_span(monkeypatch: pytest.MonkeyPatch) -> None:
    slow = _SlowImport()
    loader = pricing._PricesImport(importer=slow)
    monkeypatch.setattr(pricing, "_prices_import", loader)
    monkeypatch.setattr(pricing, "_plans", pricing._PlanCache())
    loader.start(max_wait_s=5)
    threading.Timer(0.1, slow.release.set).start()
    cost = pricing.compute_cost(raw_provider="openai", model="gpt-4o", input_tokens=10, output_tokens=5)
    assert cost is not None
    assert loader.unpriced_while_importing == 0


def test_without_a_background_import_the_first_priced_span_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def importer() -> Any:
        calls.append(threading.current_thread().name)
        return gp

    monkeypatch.setattr(pricing, "_prices_import", pricing._PricesImport(importer=importer))
    monkeypatch.setattr(pricing, "_plans", pricing._PlanCache())
    assert pricing.compute_cost(raw_provider="openai", model="gpt-4o", input_tokens=10, output_tokens=5)
    assert calls == [threading.current_thread().name]


def test_a_forked_child_without_the_import_thread_imports_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """After fork() the child has the parent's loader state but not its thread: it must not wait for a ghost."""
    calls: list[str] = []
    started = threading.Event()

    def importer() -> Any:
        calls.append(threading.current_thread().name)
        started.set()
        return gp

    loader = pricing._PricesImport(importer=importer)
    ghost = threading.Thread(target=lambda: None)  # what a forked child sees: a thread object that is not running
    ghost.start()
    ghost.join()
    loader._thread = ghost
    monkeypatch.setattr(pricing, "_prices_import", loader)
    monkeypatch.setattr(pricing, "_plans", pricing._PlanCache())
    began = time.monotonic()
    assert pricing.compute_cost(raw_provider="openai", model="gpt-4o", input_tokens=10, output_tokens=5)
    assert time.monotonic() - began < pricing.DEFAULT_IMPORT_WAIT_S
    assert calls == [threading.current_thread().name]


_FORK_DURING_IMPORT = """
import os, signal, sys
from opentelemetry_exporter_lumiqtrace.mapping import pricing
pricing.start_background_import()
pid = os.fork()  # at once: the import has only just started
if pid == 0:
    signal.alarm(20)  # a hang ends the child instead of the test run
    cost = pricing.compute_cost(raw_provider="openai", model="gpt-4o", input_tokens=1000, output_tokens=10)
    print("child cost", cost, flush=True)
    os._exit(0)
_, status = os.waitpid(pid, 0)
print("child status", status, flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() only")
def test_fork_during_the_background_import_does_not_hang_the_child() -> None:
    """A child forked mid-import inherits the import locks but not the thread holding them: fork waits for it."""
    done = subprocess.run(
        [sys.executable, "-c", _FORK_DURING_IMPORT], capture_output=True, text=True, timeout=60, check=True
    )
    assert "child status 0" in done.stdout, done.stdout + done.stderr
    assert f"child cost {_expected_by_ref('openai', 'gpt-4o', 1000, 10)}" in done.stdout, done.stdout + done.stderr


def test_a_child_forked_after_the_bounded_wait_goes_without_prices(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    slow = _SlowImport()
    loader = pricing._PricesImport(importer=slow)
    monkeypatch.setattr(pricing, "_prices_import", loader)
    monkeypatch.setattr(pricing, "_plans", pricing._PlanCache())
    loader.start(max_wait_s=0.05)
    try:
        loader.before_fork()  # the import is stuck: fork goes ahead after the bounded wait
        with caplog.at_level(logging.WARNING, logger=pricing.__name__):
            loader.after_fork_in_child()  # as the child would
        began = time.monotonic()
        assert pricing.compute_cost(raw_provider="openai", model="gpt-4o", input_tokens=10, output_tokens=5) is None
        assert time.monotonic() - began < 0.5  # no wait, no second import
        assert slow.threads == ["lumiqtrace-genai-prices-import"]
        assert any("forked" in record.message for record in caplog.records)
    finally:
        slow.release.set()


def test_missing_genai_prices_means_no_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pricing, "_prices_import", pricing._PricesImport(importer=lambda: None))
    monkeypatch.setattr(pricing, "_plans", pricing._PlanCache())
    assert pricing.compute_cost(raw_provider="openai", model="gpt-4o", input_tokens=10, output_tokens=5) is None
    assert not pricing.pricing_available()


def test_building_the_exporter_starts_the_import_in_the_background(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry_exporter_lumiqtrace import LumiqTraceSpanExporter

    slow = _SlowImport()
    loader = pricing._PricesImport(importer=slow)
    monkeypatch.setattr(pricing, "_prices_import", loader)
    exporter = LumiqTraceSpanExporter(api_key="lqt_" + "0" * 32, base_url="http://127.0.0.1:9", timeout=1.0)
    try:
        deadline = time.monotonic() + 5
        while not slow.threads and time.monotonic() < deadline:
            time.sleep(0.01)
        assert slow.threads == ["lumiqtrace-genai-prices-import"]  # started by __init__, not by an export
        assert loader._max_wait_s == 0.5  # half the export deadline
        slow.release.set()
        assert loader.wait(5) is gp
    finally:
        slow.release.set()
        exporter.shutdown()

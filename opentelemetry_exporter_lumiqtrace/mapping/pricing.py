# SPDX-License-Identifier: Apache-2.0
"""Cost of an LLM call in USD, from the prices of the optional ``genai-prices`` package.

``genai-prices`` is the ``pricing`` extra (``pip install opentelemetry-exporter-lumiqtrace[pricing]``). When it is
missing (or cannot be imported, e.g. on Python 3.10 where its 0.2 line does not install) :func:`compute_cost` returns
``None`` and the event carries no ``cost_usd``. The bundled price snapshot is used as is: the exporter never enables
``genai-prices``' network price updates.

``genai-prices`` is not on the per-span path. Each (provider, model) is resolved once into a :class:`PricePlan`: the
model's prices as integer rates over one common denominator, per price tier (a tier's rate applies to *all* tokens
once the input crosses its threshold, as in ``genai-prices``) and per period when its prices change with the date or
the time of day. A span's cost is then a few integer multiplications and one division, exactly (bit for bit) the
float of the ``Decimal`` that ``genai_prices.calc_price`` returns, then rounded to :data:`COST_SIGNIFICANT_DIGITS`
significant digits; ``tests/test_pricing_plans.py`` checks that for every model ``genai-prices`` knows. A model whose
prices a plan cannot express is priced by ``calc_price`` on every call instead (none in the bundled data;
:attr:`PricePlan.exact` says which).

The import of ``genai-prices`` (about 0.1-0.3 s of CPU) happens in a background thread started when the exporter is
built (:func:`start_background_import`), never inside an export. A span priced before that import finishes waits
for it, at most :data:`DEFAULT_IMPORT_WAIT_S` (or half the export deadline) once per process; spans priced after
that wait ran out carry no ``cost_usd``, which is counted and logged as a warning (see :func:`import_stats`).
Without :func:`start_background_import` (``map_span`` used on its own) the first priced span imports synchronously. A
``fork()`` waits (as long, at most) for a running import, so that no child inherits a half-done one.

Plans are resolved from the price snapshot current when a (provider, model) is first seen and then kept (at most
:data:`DEFAULT_MAX_CACHED_MODELS`, least recently used evicted first). An application that installs newer prices with
``genai-prices``' own ``UpdatePrices`` gets them for models first seen (or evicted) after that.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta, timezone
from datetime import time as dt_time
from fractions import Fraction
from typing import Any, Final

from opentelemetry_exporter_lumiqtrace import _fork
from opentelemetry_exporter_lumiqtrace.mapping.conventions import PRICING_PROVIDER_IDS

_logger = logging.getLogger(__name__)

DEFAULT_MAX_CACHED_MODELS = 1024
# Longer (provider, model) strings are priced but not cached, so a runaway attribute value never stays pinned.
DEFAULT_MAX_CACHED_KEY_CHARS = 256
DEFAULT_IMPORT_WAIT_S = 2.0
# cost_usd precision: sums of costs read as exact decimals (0.00027, not 0.00026999999999999995).
COST_SIGNIFICANT_DIGITS = 12
_COST_FORMAT = f"%.{COST_SIGNIFICANT_DIGITS}g"

_US_PER_DAY = 86_400_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# The usage compute_cost reports to genai-prices, as coefficient vectors over (input, output, cache read, cache write).
_REPORTED_USAGE: Final = {
    "input_tokens": (1, 0, 0, 0),
    "output_tokens": (0, 1, 0, 0),
    "cache_read_tokens": (0, 0, 1, 0),
    "cache_write_tokens": (0, 0, 0, 1),
}
_NO_USAGE = (0, 0, 0, 0)


def round_cost(usd: float) -> float:
    """``usd`` to :data:`COST_SIGNIFICANT_DIGITS` significant digits."""
    return float(_COST_FORMAT % usd)


# --- the import -----------------------------------------------------------------------------------------------------


def _import_genai_prices() -> Any:
    """``genai_prices`` with its price data and unit registry loaded, or ``None`` when it is not usable."""
    try:
        import genai_prices  # optional extra
        from genai_prices import data_snapshot

        data_snapshot.get_snapshot()  # loads the bundled price data (most of the import's cost)
        try:
            from genai_prices.units import _get_registry

            _get_registry()
        except ImportError:  # a genai-prices without a unit registry: every model falls back to calc_price
            pass
        return genai_prices
    except Exception:  # ImportError, or a broken install of its dependencies
        _logger.debug("genai-prices is not available; cost_usd is only sent when spans carry a cost", exc_info=True)
        return None


_PENDING: Final[Any] = object()


class _PricesImport:
    """The ``genai_prices`` module, imported once, in a background thread when :meth:`start` ran."""

    def __init__(
        self,
        *,
        importer: Callable[[], Any] = _import_genai_prices,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._importer = importer
        self._clock = clock
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._module: Any = None
        self._thread: threading.Thread | None = None
        self._max_wait_s = DEFAULT_IMPORT_WAIT_S
        self._wait_until: float | None = None  # one bounded wait per process, not one per span
        self._importing_at_fork = False
        self.unpriced_while_importing = 0

    def start(self, *, max_wait_s: float = DEFAULT_IMPORT_WAIT_S) -> None:
        with self._lock:
            self._max_wait_s = min(self._max_wait_s, max(max_wait_s, 0.0))
            if self._done.is_set() or (self._thread is not None and self._thread.is_alive()):
                return
            self._thread = threading.Thread(target=self._run, name="lumiqtrace-genai-prices-import", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            self._module = self._importer()
        finally:
            self._done.set()

    def module(self) -> Any:
        """The module, ``None`` when unavailable, or ``_PENDING`` when the background import is still running."""
        if self._done.is_set():
            return self._module
        thread = self._thread
        if thread is None or not thread.is_alive():
            # Never started (the mapping used without an exporter), or a forked child that did not inherit the thread.
            with self._lock:
                if not self._done.is_set():
                    self._run()
            return self._module
        now = self._clock()
        if self._wait_until is None:
            self._wait_until = now + self._max_wait_s
        if self._done.wait(max(self._wait_until - now, 0.0)):
            return self._module
        return _PENDING

    def wait(self, timeout: float | None = None) -> Any:
        """The module once imported (``_PENDING`` after ``timeout``); imports synchronously when never started."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return self.module()
        return self._module if self._done.wait(timeout) else _PENDING

    def count_unpriced(self) -> None:
        with self._lock:
            self.unpriced_while_importing += 1
            first = self.unpriced_while_importing == 1
        if first:
            _logger.warning(
                "genai-prices was still importing %.1f s after the first priced span; cost_usd is omitted on spans "
                "mapped before the import finishes",
                self._max_wait_s,
            )

    def before_fork(self) -> None:
        """Let a running import finish (bounded) before fork(): a child must not inherit a half-done import."""
        thread = self._thread
        self._importing_at_fork = False
        if thread is not None and thread.is_alive() and not self._done.is_set():
            self._importing_at_fork = not self._done.wait(self._max_wait_s)

    def after_fork_in_child(self) -> None:
        """The child of a fork() that interrupted the import: no pricing here, rather than a hang.

        The import thread does not exist in the child, but the import locks it held do, so importing genai-prices again
        would block forever.
        """
        if self._importing_at_fork:
            self._module = None
            self._done.set()
            _logger.warning(
                "genai-prices was still importing when this process forked; cost_usd is not computed in this process"
            )


_prices_import = _PricesImport()


def _before_fork() -> None:
    _prices_import.before_fork()


def _after_fork_in_child() -> None:
    _prices_import.after_fork_in_child()


# A process that forks right after building the exporter (gunicorn --preload, multiprocessing) must not fork mid-import.
_fork.before_fork(_before_fork)
_fork.after_fork_in_child(_after_fork_in_child)


def start_background_import(*, deadline_s: float | None = None) -> None:
    """Import ``genai-prices`` in a daemon thread now, so that no export pays for it.

    ``deadline_s`` is the export deadline of the caller: a span priced while the import still runs waits at most half
    of it (and at most :data:`DEFAULT_IMPORT_WAIT_S`).
    """
    wait = DEFAULT_IMPORT_WAIT_S if deadline_s is None else min(DEFAULT_IMPORT_WAIT_S, deadline_s / 2)
    _prices_import.start(max_wait_s=wait)


def import_stats() -> dict[str, int]:
    """``unpriced_while_importing``: spans that got no ``cost_usd`` because ``genai-prices`` was still importing."""
    return {"unpriced_while_importing": _prices_import.unpriced_while_importing}


def pricing_available() -> bool:
    """Whether ``genai-prices`` can be imported (waits for the import)."""
    return _prices_import.wait() is not None


# --- provider and model -----------------------------------------------------------------------------------------------


def pricing_provider_id(raw_provider: str | None) -> str | None:
    """The ``genai-prices`` provider id for a raw provider value, or ``None`` to let it infer from the model."""
    if not raw_provider:
        return None
    return PRICING_PROVIDER_IDS.get(raw_provider.strip().lower())


def pricing_model_ref(model: str) -> str:
    """Model id as ``genai-prices`` matches it: without Vertex resource paths and ``models/`` prefixes."""
    ref = model.strip()
    marker = "/models/"
    if marker in ref:
        # projects/p/locations/l/publishers/google/models/gemini-2.5-flash -> gemini-2.5-flash
        ref = ref.rsplit(marker, 1)[1]
    elif ref.startswith("models/"):
        ref = ref[7:]
    return ref


def find_model(prices: Any, provider_id: str | None, ref: str) -> tuple[Any, Any] | None:
    """(provider, model info) as ``calc_price`` finds them, or ``None`` when it would raise ``LookupError``.

    The same steps as ``DataSnapshot.find_provider_model`` without its lookup caches, which grow by one entry per
    distinct model string (fine-tune ids are unbounded); the plan cache here is the bounded one.
    """
    from genai_prices.data_snapshot import find_provider_by_id

    ref = ref.lower()
    providers = prices.data_snapshot.get_snapshot().providers
    if provider_id is not None:
        provider = find_provider_by_id(providers, provider_id)
    else:
        provider = next((p for p in providers if p.model_match is not None and p.model_match.is_match(ref)), None)
    if provider is None:
        return None
    model = provider.find_model(ref, all_providers=providers)
    return None if model is None else (provider, model)


# --- price plans ------------------------------------------------------------------------------------------------------


class _Rates:
    """Integer rates of one tier of one model price, over the denominator of its :class:`_Prices`."""

    __slots__ = ("cache_read", "cache_write", "fixed", "input", "output")

    def __init__(self, fixed: int, input: int, output: int, cache_read: int, cache_write: int) -> None:
        self.fixed = fixed  # per request (genai-prices' requests_kcount)
        self.input = input  # per uncached input token
        self.output = output
        self.cache_read = cache_read
        self.cache_write = cache_write


class _Prices:
    """One ``ModelPrice`` of ``genai-prices`` as rates per tier (``rates`` is ``None`` when ``calc_price`` rejects it).

    ``tier_starts`` are the input-token thresholds of every tiered price, ascending; ``tiers[k]`` applies when the
    input is above exactly ``k`` of them. ``read_in_input`` / ``write_in_input`` (0 or 1) say whether cache reads and
    writes are priced apart from, and so subtracted from, the input tokens.
    """

    __slots__ = ("denominator", "exact_below", "read_in_input", "tier_starts", "tiers", "write_in_input")

    def __init__(
        self,
        *,
        tier_starts: tuple[int, ...],
        tiers: tuple[_Rates, ...] | None,
        denominator: int,
        read_in_input: int,
        write_in_input: int,
    ) -> None:
        self.tier_starts = tier_starts
        self.tiers = tiers
        self.denominator = denominator
        self.read_in_input = read_in_input
        self.write_in_input = write_in_input
        self.exact_below = _exact_below(denominator)

    def cost(self, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int) -> float | None:
        tiers = self.tiers
        if tiers is None:
            return None
        rates = tiers[0]
        if self.tier_starts:
            k = 0
            for start in self.tier_starts:
                if input_tokens <= start:
                    break
                k += 1
            rates = tiers[k]
        # Cache tokens above the input (an instrumentation that counts them apart) price as cache, never negatively.
        uncached = input_tokens - cache_read * self.read_in_input - cache_write * self.write_in_input
        if uncached < 0:
            uncached = 0
        numerator = (
            rates.fixed
            + rates.input * uncached
            + rates.output * output_tokens
            + rates.cache_read * cache_read
            + rates.cache_write * cache_write
        )
        # int / int is correctly rounded: the float of the exact Decimal calc_price computes. Below exact_below that
        # Decimal has at most COST_SIGNIFICANT_DIGITS digits, so rounding to them (a string round trip) changes nothing.
        if 0 <= numerator < self.exact_below:
            return numerator / self.denominator
        return float(_COST_FORMAT % (numerator / self.denominator))


def _exact_below(denominator: int) -> int:
    """The numerators ``n`` below which ``n / denominator`` is a decimal of at most :data:`COST_SIGNIFICANT_DIGITS`
    significant digits (0 when the quotient need not be a finite decimal).

    With ``denominator`` = 2**a * 5**b, ``n / denominator`` = ``n * scale / 10**k`` for the integer ``scale`` =
    ``10**k // denominator``: its significant digits are at most those of ``n * scale``. The float of such a decimal
    (12 digits, far inside a double's 15) prints back to it with ``%.12g``, so :func:`round_cost` would return it as is.
    """
    if denominator <= 0:
        return 0
    rest, twos, fives = denominator, 0, 0
    while rest % 2 == 0:
        rest //= 2
        twos += 1
    while rest % 5 == 0:
        rest //= 5
        fives += 1
    if rest != 1:
        return 0
    scale = 10 ** max(twos, fives) // denominator
    # n * scale < 10**12  <=>  n < ceil(10**12 / scale)
    limit: int = -(-(10**COST_SIGNIFICANT_DIGITS) // scale)
    return limit


class _CannotPlan(Exception):
    """A price structure this module does not express as a plan (the model is priced by calc_price instead)."""


class PricePlan:
    """What one (provider, model) costs, resolved once from ``genai-prices``.

    Prices that never change are one :class:`_Prices`. Prices that change at a date or a time of day (genai-prices'
    conditional prices) are a table: one row per period between start dates (UTC midnights), one column per interval
    between the time-of-day bounds (UTC microseconds of the day).
    """

    __slots__ = ("date_cuts_us", "model_id", "prices", "table", "time_cuts_us")

    exact = True

    def __init__(
        self,
        *,
        model_id: str,
        prices: _Prices | None = None,
        date_cuts_us: Sequence[int] = (),
        time_cuts_us: Sequence[int] = (0,),
        table: Sequence[Sequence[_Prices]] = (),
    ) -> None:
        self.model_id = model_id
        self.prices = prices
        self.date_cuts_us = list(date_cuts_us)
        self.time_cuts_us = list(time_cuts_us)
        self.table = [list(row) for row in table]

    def cost(
        self, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int, start_time_ns: int | None
    ) -> float | None:
        prices = self.prices
        if prices is None:
            at_us = (time.time_ns() if start_time_ns is None else start_time_ns) // 1000
            row = self.table[bisect.bisect_right(self.date_cuts_us, at_us)]
            prices = row[bisect.bisect_right(self.time_cuts_us, at_us % _US_PER_DAY) - 1]
        return prices.cost(input_tokens, output_tokens, cache_read, cache_write)


class _CalcPricePlan:
    """A model whose prices no plan expresses: ``genai_prices.calc_price`` on every call."""

    __slots__ = ("model_id", "prices_module", "provider_id", "ref")

    exact = False

    def __init__(self, prices_module: Any, provider_id: str | None, ref: str, model_id: str) -> None:
        self.prices_module = prices_module
        self.provider_id = provider_id
        self.ref = ref
        self.model_id = model_id

    def cost(
        self, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int, start_time_ns: int | None
    ) -> float | None:
        prices = self.prices_module
        usage = prices.Usage(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read or None,
            cache_write_tokens=cache_write or None,
        )
        when = None if start_time_ns is None else _EPOCH + timedelta(microseconds=start_time_ns // 1000)
        try:
            result = prices.calc_price(usage, self.ref, provider_id=self.provider_id, genai_request_timestamp=when)
        except (LookupError, ValueError):
            return None
        return float(_COST_FORMAT % float(result.total_price))


class _NoPrice:
    """A model ``genai-prices`` does not know."""

    __slots__ = ()

    exact = True
    model_id = None

    def cost(self, *_: Any) -> None:
        return None


_NO_PRICE: Final = _NoPrice()


def _utc_time_of_day_us(value: dt_time) -> int:
    """Microseconds of the UTC day of a ``datetime.time`` (naive means UTC), as genai-prices compares them."""
    if value.tzinfo is not None:
        value = datetime.combine(date(1970, 1, 1), value).astimezone(timezone.utc).timetz()
    return ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond


def _midnight_us(day: date) -> int:
    return (day - date(1970, 1, 1)).days * _US_PER_DAY


def _unit_prices(prices: Any, model_price: Any, registry: Any) -> list[tuple[Any, Any]]:
    """(unit, Decimal or TieredPrices) of a ModelPrice as calc_price uses them; ValueError where calc_price raises."""
    from decimal import Decimal

    from genai_prices.validation import validate_priced_units

    tiered_type = prices.types.TieredPrices
    resolved: list[tuple[Any, Any]] = []
    for price_key, value in vars(model_price).items():
        if price_key.startswith("_") or value is None:
            continue
        try:
            unit = registry.unit_for_price_key(price_key)
        except KeyError:
            continue  # calc_price warns and ignores price keys it has no unit for
        if isinstance(value, tiered_type):
            starts = [tier.start for tier in value.tiers]
            values = [value.base, *(tier.price for tier in value.tiers)]
            if any(type(s) is not int or s < 0 for s in starts) or starts != sorted(starts):
                raise ValueError(f"invalid tiers for {price_key}")
        else:
            values = [value]
        if not all(isinstance(v, Decimal) and v.is_finite() and v >= 0 for v in values):
            raise ValueError(f"invalid price for {price_key}")
        resolved.append((unit, value))
    validate_priced_units(tuple(unit for unit, _ in resolved), registry)
    return resolved


def _leaf_usage(units: Sequence[Any], registry: Any) -> dict[str, tuple[int, ...]]:
    """The usage each priced unit is charged for, as vectors over (input, output, cache read, cache write).

    genai-prices charges each unit for its own usage minus what its more specific priced units already charge (an
    input token read from cache is charged as a cache read, not also as input). Raises :class:`_CannotPlan` where
    that is not one of the shapes :meth:`_Prices.cost` computes, or where genai-prices would refuse the usage.
    """
    from genai_prices.decompose import is_descendant_or_self

    ordered = sorted(units, key=lambda unit: (-len(unit.dimensions), unit.usage_key))
    leaves: dict[str, tuple[int, ...]] = {}
    for unit in ordered:
        vector = list(_REPORTED_USAGE.get(unit.usage_key, _NO_USAGE))
        if unit.usage_key not in _REPORTED_USAGE:
            # genai-prices infers 0 for an unreported unit, or refuses when reported usage is more specific.
            for key in _REPORTED_USAGE:
                reported = registry.units[key]
                if reported is not unit and is_descendant_or_self(unit, reported):
                    raise _CannotPlan(f"{unit.usage_key} would need to be reported with {key}")
            for left, right in itertools.combinations(_REPORTED_USAGE, 2):
                a, b = registry.units[left], registry.units[right]
                overlapping = not (is_descendant_or_self(a, b) or is_descendant_or_self(b, a))
                if (
                    overlapping
                    and a.is_compatible_with(b)
                    and dict(unit.dimensions) == {**a.dimensions, **b.dimensions}
                ):
                    raise _CannotPlan(f"{unit.usage_key} joins {left} and {right}")
        for other in ordered:
            if other is not unit and is_descendant_or_self(unit, other):
                vector = [v - d for v, d in zip(vector, leaves[other.usage_key], strict=True)]
        leaves[unit.usage_key] = tuple(vector)
    for key, leaf in leaves.items():
        if key == "input_tokens":
            if leaf[:2] != (1, 0) or leaf[2] not in (0, -1) or leaf[3] not in (0, -1):
                raise _CannotPlan(f"input is charged as {leaf}")
        elif leaf != _REPORTED_USAGE.get(key, _NO_USAGE):
            raise _CannotPlan(f"{key} is charged as {leaf}")
    return leaves


def _applicable(price: Any, tiered_type: Any, total_input_tokens: int) -> Any:
    """The Decimal rate of one price at this many input tokens (genai-prices' calc_unit_price)."""
    if not isinstance(price, tiered_type):
        return price
    applicable = price.base
    for tier in reversed(price.tiers):
        if total_input_tokens > tier.start:
            return tier.price
    return applicable


_RATE_KEYS: Final = {
    "input_tokens": "input",
    "output_tokens": "output",
    "cache_read_tokens": "cache_read",
    "cache_write_tokens": "cache_write",
}


def _plan_prices(prices: Any, model_price: Any, registry: Any) -> _Prices:
    try:
        unit_prices = _unit_prices(prices, model_price, registry)
    except ValueError:
        return _Prices(tier_starts=(), tiers=None, denominator=1, read_in_input=0, write_in_input=0)
    tiered_type = prices.types.TieredPrices
    leaves = _leaf_usage([unit for unit, _ in unit_prices if unit.usage_key != "requests"], registry)
    starts = sorted({tier.start for _, price in unit_prices if isinstance(price, tiered_type) for tier in price.tiers})
    # One representative input count per tier: 0, then one above each threshold.
    representatives = [0, *(start + 1 for start in starts)]
    fractions: list[dict[str, Fraction]] = []
    for total_input in representatives:
        rates = dict.fromkeys(("fixed", "input", "output", "cache_read", "cache_write"), Fraction(0))
        for unit, price in unit_prices:
            rate = Fraction(_applicable(price, tiered_type, total_input)) / unit.per
            if unit.usage_key == "requests":
                rates["fixed"] += rate  # genai-prices counts one request per call
            elif unit.usage_key in _RATE_KEYS:
                rates[_RATE_KEYS[unit.usage_key]] += rate
            # other units are charged for no usage (their leaf is zero): _leaf_usage checked that
        fractions.append(rates)
    denominator = math.lcm(1, *(rate.denominator for rates in fractions for rate in rates.values()))
    tiers = tuple(
        _Rates(**{name: int(rate * denominator) for name, rate in rates.items()})  # exact: denominator divides
        for rates in fractions
    )
    input_leaf = leaves.get("input_tokens", (1, 0, 0, 0))
    return _Prices(
        tier_starts=tuple(starts),
        tiers=tiers,
        denominator=denominator,
        read_in_input=-input_leaf[2],
        write_in_input=-input_leaf[3],
    )


def build_plan(prices: Any, provider: Any, model: Any) -> PricePlan | _CalcPricePlan:
    """The plan of one genai-prices model (``_CalcPricePlan`` when its prices are not expressible as a plan)."""
    from genai_prices.units import _get_registry

    registry = _get_registry()
    types = prices.types
    if isinstance(model.prices, types.ModelPrice):
        return PricePlan(model_id=model.id, prices=_plan_prices(prices, model.prices, registry))
    date_cuts: set[int] = set()
    time_cuts: set[int] = {0}
    for conditional in model.prices:
        constraint = conditional.constraint
        if constraint is None:
            continue
        if isinstance(constraint, types.StartDateConstraint):
            date_cuts.add(_midnight_us(constraint.start_date))
        elif isinstance(constraint, types.TimeOfDateConstraint):
            time_cuts.add(_utc_time_of_day_us(constraint.start_time))
            time_cuts.add(_utc_time_of_day_us(constraint.end_time))
        else:
            raise _CannotPlan(f"constraint {type(constraint).__name__}")
    dates = sorted(date_cuts)
    times = sorted(time_cuts)
    # A representative instant of every (period, time interval) cell; model.get_prices picks its prices.
    day_starts = [dates[0] - _US_PER_DAY if dates else _midnight_us(date(2025, 1, 1)), *dates]
    planned: dict[int, _Prices] = {}
    table: list[list[_Prices]] = []
    for day_start in day_starts:
        row: list[_Prices] = []
        for time_start in times:
            model_price = model.get_prices(_EPOCH + timedelta(microseconds=day_start + time_start))
            if id(model_price) not in planned:
                planned[id(model_price)] = _plan_prices(prices, model_price, registry)
            row.append(planned[id(model_price)])
        table.append(row)
    return PricePlan(model_id=model.id, date_cuts_us=dates, time_cuts_us=times, table=table)


def _resolve(prices: Any, raw_provider: str | None, model: str) -> PricePlan | _CalcPricePlan | _NoPrice:
    provider_id = pricing_provider_id(raw_provider)
    ref = pricing_model_ref(model)
    if not ref:
        return _NO_PRICE
    try:
        found = find_model(prices, provider_id, ref)
        if found is None:
            return _NO_PRICE
        return build_plan(prices, *found)
    except Exception as exc:  # _CannotPlan, or a genai-prices whose data classes differ from the ones planned here
        _logger.debug("genai-prices model %r (provider %s) is priced by calc_price: %s", ref, provider_id, exc)
        return _CalcPricePlan(prices, provider_id, ref, model_id=ref)


# --- the cache and the entry point ------------------------------------------------------------------------------------


class _PlanCache:
    """Plans by (raw provider, model) as spans carry them; least recently used evicted first, one at a time."""

    def __init__(self, max_entries: int = DEFAULT_MAX_CACHED_MODELS) -> None:
        self.max_entries = max_entries
        self._plans: OrderedDict[tuple[str | None, str], PricePlan | _CalcPricePlan | _NoPrice] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str | None, str]) -> PricePlan | _CalcPricePlan | _NoPrice | None:
        plans = self._plans
        plan = plans.get(key)
        if plan is not None:
            try:  # noqa: SIM105 (contextlib.suppress costs more than the rest of a cache hit)
                plans.move_to_end(key)
            except KeyError:  # evicted by another thread in between
                pass
        return plan

    def put(self, key: tuple[str | None, str], plan: PricePlan | _CalcPricePlan | _NoPrice) -> None:
        if len(key[1]) + len(key[0] or "") > DEFAULT_MAX_CACHED_KEY_CHARS:
            return
        with self._lock:
            plans = self._plans
            plans[key] = plan
            plans.move_to_end(key)
            while len(plans) > self.max_entries:
                plans.popitem(last=False)

    def __len__(self) -> int:
        return len(self._plans)

    def __contains__(self, key: object) -> bool:
        return key in self._plans

    def clear(self) -> None:
        with self._lock:
            self._plans.clear()


_plans = _PlanCache()


def price_plan(raw_provider: str | None, model: str) -> PricePlan | _CalcPricePlan | _NoPrice | None:
    """The cached plan of a (raw provider, model), ``None`` while genai-prices is unavailable or still importing."""
    key = (raw_provider, model)
    plan = _plans.get(key)
    if plan is not None:
        return plan
    prices = _prices_import.module()
    if prices is None:
        return None
    if prices is _PENDING:
        _prices_import.count_unpriced()
        return None
    plan = _resolve(prices, raw_provider, model)
    _plans.put(key, plan)
    return plan


def compute_cost(
    *,
    raw_provider: str | None,
    model: str,
    input_tokens: int | None,
    output_tokens: int | None,
    cache_read_tokens: int | None = None,
    cache_write_tokens: int | None = None,
    start_time_ns: int | None = None,
) -> float | None:
    """USD cost of one call to :data:`COST_SIGNIFICANT_DIGITS` significant digits, or ``None`` when unknown.

    ``None`` when ``genai-prices`` is missing (or still importing, see the module docstring), does not know the model,
    or a count is negative. Token counts follow OTel semantics: ``input_tokens`` includes cached and cache-write
    tokens; missing counts are 0. ``start_time_ns`` (default: now) picks the prices of models whose prices changed
    over time.
    """
    if input_tokens is None and output_tokens is None:
        return None
    plan = _plans.get((raw_provider, model))
    if plan is None:
        plan = price_plan(raw_provider, model)
        if plan is None:
            return None
    return plan_cost(plan, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, start_time_ns)


def plan_cost(
    plan: PricePlan | _CalcPricePlan | _NoPrice,
    input_tokens: int | None,
    output_tokens: int | None,
    cache_read_tokens: int | None,
    cache_write_tokens: int | None,
    start_time_ns: int | None,
) -> float | None:
    """:func:`compute_cost` of a call once its plan is known (a caller that keeps plans itself, as the mapper does,
    calls this; positional: it runs for every priced span)."""
    input_tokens = input_tokens or 0
    output_tokens = output_tokens or 0
    cache_read_tokens = cache_read_tokens or 0
    cache_write_tokens = cache_write_tokens or 0
    try:
        if (input_tokens | output_tokens | cache_read_tokens | cache_write_tokens) < 0:
            return None
        return plan.cost(input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, start_time_ns)
    except Exception:  # a pricing bug (or a count that is not an int) must never cost the span
        _logger.debug("pricing failed for model %s", plan.model_id, exc_info=True)
        return None

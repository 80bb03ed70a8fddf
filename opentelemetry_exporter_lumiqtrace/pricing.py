# SPDX-License-Identifier: Apache-2.0
"""Cost of an LLM call in USD, computed with the optional ``genai-prices`` package.

``genai-prices`` is the ``pricing`` extra (``pip install opentelemetry-exporter-lumiqtrace[pricing]``). It is imported
lazily on the first priced span; when it is missing (or cannot be imported, e.g. on Python 3.10 where its 0.2 line
does not install) :func:`compute_cost` returns ``None`` and the event carries no ``cost_usd``. The bundled price
snapshot is used as is: the exporter never enables ``genai-prices``' network price updates.
"""

from __future__ import annotations

import logging
import math
import threading
from datetime import datetime, timezone
from typing import Any

from opentelemetry_exporter_lumiqtrace._conventions import PRICING_PROVIDER_IDS

_logger = logging.getLogger(__name__)

DEFAULT_MAX_CACHED_MODELS = 2048

_UNSET: Any = object()
_genai_prices: Any = _UNSET
_import_lock = threading.Lock()


def _module() -> Any:
    global _genai_prices
    if _genai_prices is _UNSET:
        with _import_lock:
            if _genai_prices is _UNSET:
                try:
                    import genai_prices  # optional extra: imported on first use only

                    _genai_prices = genai_prices
                except Exception:  # ImportError, or a broken install of its dependencies
                    _logger.debug("genai-prices is not available; cost_usd is only sent when spans carry a cost")
                    _genai_prices = None
    return _genai_prices


def pricing_available() -> bool:
    """Whether ``genai-prices`` can be imported."""
    return _module() is not None


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


class _LinearRates:
    """USD per token of a model whose price is flat (no tiers, no date or time-of-day conditions).

    Measured once through ``genai-prices`` itself (cost of a million tokens of each kind), so the per-span cost is a
    few multiplications instead of a full ``calc_price`` (which costs ~80 µs, more than the rest of the mapping).
    """

    __slots__ = ("cache_read", "cache_write", "fixed", "input", "output")

    def __init__(self, fixed: float, input: float, output: float, cache_read: float, cache_write: float) -> None:
        self.fixed = fixed
        self.input = input
        self.output = output
        self.cache_read = cache_read
        self.cache_write = cache_write

    def cost(self, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int) -> float:
        uncached = max(input_tokens - cache_read - cache_write, 0)
        return (
            self.fixed
            + uncached * self.input
            + cache_read * self.cache_read
            + cache_write * self.cache_write
            + output_tokens * self.output
        )


_UNKNOWN_MODEL = "unknown"
_NOT_LINEAR = "not-linear"
# (genai-prices provider id, model ref) -> _LinearRates, _NOT_LINEAR (price each call) or _UNKNOWN_MODEL.
_rates: dict[tuple[str | None, str], Any] = {}
# (raw provider, model) as the mapping passes them -> the _LinearRates of _rates, so that a repeated model skips
# normalising its provider and model reference (most spans of an app use a handful of models). The mapping reads it
# directly (see linear_cost) to skip even the call to compute_cost; only compute_cost writes it.
linear_rates_by_raw: dict[tuple[str | None, str], _LinearRates] = {}
_MTOK = 1_000_000


def _resolve(prices: Any, provider_id: str | None, ref: str) -> Any:
    def calc(**usage: int) -> Any:
        return prices.calc_price(prices.Usage(**usage), ref, provider_id=provider_id)

    try:
        base = calc(input_tokens=0, output_tokens=0)
    except LookupError:
        return _UNKNOWN_MODEL
    model_prices = getattr(base.model, "prices", None)
    tiered_type = getattr(prices.types, "TieredPrices", ())
    if not isinstance(model_prices, prices.types.ModelPrice) or any(
        isinstance(v, tiered_type) for v in vars(base.model_price).values()
    ):
        return _NOT_LINEAR
    fixed = float(base.total_price)
    return _LinearRates(
        fixed=fixed,
        input=(float(calc(input_tokens=_MTOK).total_price) - fixed) / _MTOK,
        output=(float(calc(output_tokens=_MTOK).total_price) - fixed) / _MTOK,
        cache_read=(float(calc(input_tokens=_MTOK, cache_read_tokens=_MTOK).total_price) - fixed) / _MTOK,
        cache_write=(float(calc(input_tokens=_MTOK, cache_write_tokens=_MTOK).total_price) - fixed) / _MTOK,
    )


def linear_cost(
    rates: _LinearRates,
    input_tokens: int | None,
    output_tokens: int | None,
    cache_read_tokens: int | None,
    cache_write_tokens: int | None,
) -> float | None:
    """:func:`compute_cost` for a model whose rates are in ``linear_rates_by_raw``."""
    # _LinearRates.cost inlined (one call less per priced span); the same arithmetic in the same order, and the
    # finite-and-not-negative test as one chained comparison (NaN and inf fail it) instead of math.isfinite.
    cache_read = cache_read_tokens or 0
    cache_write = cache_write_tokens or 0
    uncached = (input_tokens or 0) - cache_read - cache_write
    if uncached < 0:
        uncached = 0
    usd = (
        rates.fixed
        + uncached * rates.input
        + cache_read * rates.cache_read
        + cache_write * rates.cache_write
        + (output_tokens or 0) * rates.output
    )
    return usd if 0 <= usd < math.inf else None


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
    """USD cost of one call, or ``None`` when ``genai-prices`` is missing or does not know the model.

    Token counts follow OTel semantics: ``input_tokens`` includes cached and cache-write tokens. The model lookup is
    cached per (provider, model), unknown models included.
    """
    if input_tokens is None and output_tokens is None:
        return None
    linear = linear_rates_by_raw.get((raw_provider, model))
    if linear is not None:
        return linear_cost(linear, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens)
    prices = _module()
    if prices is None:
        return None
    provider_id = pricing_provider_id(raw_provider)
    ref = pricing_model_ref(model)
    if not ref:
        return None
    key = (provider_id, ref)
    rates = _rates.get(key)
    cost: float | None
    try:
        if rates is None:
            rates = _resolve(prices, provider_id, ref)
            if len(_rates) >= DEFAULT_MAX_CACHED_MODELS:
                _rates.clear()
            _rates[key] = rates
        if rates is _UNKNOWN_MODEL:
            return None
        if isinstance(rates, _LinearRates):
            if len(linear_rates_by_raw) >= DEFAULT_MAX_CACHED_MODELS:
                linear_rates_by_raw.clear()
            linear_rates_by_raw[(raw_provider, model)] = rates
            cost = rates.cost(input_tokens or 0, output_tokens or 0, cache_read_tokens or 0, cache_write_tokens or 0)
        else:
            cost = _price_once(
                prices,
                provider_id,
                ref,
                input_tokens,
                output_tokens,
                cache_read_tokens,
                cache_write_tokens,
                start_time_ns,
            )
    except LookupError:
        return None
    except Exception:  # a pricing bug must never cost the span
        _logger.debug("genai-prices failed for provider=%s model=%s", provider_id, ref, exc_info=True)
        return None
    if cost is None or not math.isfinite(cost) or cost < 0:
        return None
    return cost


def _price_once(
    prices: Any,
    provider_id: str | None,
    ref: str,
    input_tokens: int | None,
    output_tokens: int | None,
    cache_read_tokens: int | None,
    cache_write_tokens: int | None,
    start_time_ns: int | None,
) -> float | None:
    usage_kwargs: dict[str, int] = {}
    if input_tokens is not None:
        usage_kwargs["input_tokens"] = input_tokens
    if output_tokens is not None:
        usage_kwargs["output_tokens"] = output_tokens
    if cache_read_tokens:
        usage_kwargs["cache_read_tokens"] = cache_read_tokens
    if cache_write_tokens:
        usage_kwargs["cache_write_tokens"] = cache_write_tokens
    when = None
    if start_time_ns is not None:
        try:
            when = datetime.fromtimestamp(start_time_ns / 1e9, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            when = None
    result = prices.calc_price(prices.Usage(**usage_kwargs), ref, provider_id=provider_id, genai_request_timestamp=when)
    try:
        return float(result.total_price)
    except (TypeError, ValueError, AttributeError):
        return None

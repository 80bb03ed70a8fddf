# SPDX-License-Identifier: Apache-2.0
"""Cost computed with genai-prices (skipped when the optional ``pricing`` extra is not installed)."""

from __future__ import annotations

import pytest

from opentelemetry_exporter_lumiqtrace.mapping import MappingOptions, pricing
from tests.test_mapping_support import mapped

genai_prices = pytest.importorskip("genai_prices")

PRICED = MappingOptions(compute_cost=True)


def _expected(model: str, provider_id: str | None, **usage: int) -> float:
    return float(genai_prices.calc_price(genai_prices.Usage(**usage), model, provider_id=provider_id).total_price)


@pytest.mark.parametrize(
    ("attrs", "model", "provider_id"),
    [
        (
            {"gen_ai.provider.name": "openai", "gen_ai.response.model": "gpt-4o-mini-2024-07-18"},
            "gpt-4o-mini",
            "openai",
        ),
        ({"gen_ai.system": "Anthropic", "gen_ai.request.model": "claude-sonnet-4-5"}, "claude-sonnet-4-5", "anthropic"),
        (
            {"gen_ai.provider.name": "gcp.gen_ai", "gen_ai.request.model": "gemini-2.5-flash"},
            "gemini-2.5-flash",
            "google",
        ),
        (
            {
                "gen_ai.provider.name": "gcp.vertex_ai",
                "gen_ai.request.model": "projects/p/locations/l/publishers/google/models/gemini-2.5-flash",
            },
            "gemini-2.5-flash",
            "google",
        ),
        ({"gen_ai.provider.name": "azure.ai.openai", "gen_ai.request.model": "gpt-4o"}, "gpt-4o", "azure"),
        ({"llm.provider": "openai", "llm.model_name": "gpt-4o"}, "gpt-4o", "openai"),
        ({"gen_ai.request.model": "gpt-4o"}, "gpt-4o", None),  # provider inferred from the model
    ],
)
def test_cost_computed_with_provider_and_model_normalisation(
    attrs: dict[str, str], model: str, provider_id: str | None
) -> None:
    event = mapped(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 100,
            "gen_ai.usage.cache_read.input_tokens": 200,
            **attrs,
        },
        PRICED,
    )
    expected = _expected(model, provider_id, input_tokens=1000, output_tokens=100, cache_read_tokens=200)
    assert event["cost_usd"] == pytest.approx(expected)
    assert event["cost_usd"] > 0
    assert event["tags"]["cost.source"] == "genai-prices"


def test_unknown_model_has_no_cost() -> None:
    attrs = {
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "no-such-model-xyz",
        "gen_ai.usage.input_tokens": 5,
    }
    for _ in range(2):  # the second call hits the miss cache
        event = mapped(attrs, PRICED)
        assert "cost_usd" not in event


def test_no_tokens_no_cost() -> None:
    assert "cost_usd" not in mapped({"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"}, PRICED)


def test_agent_spans_are_not_priced() -> None:
    event = mapped(
        {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 100,
        },
        PRICED,
    )
    assert "cost_usd" not in event
    assert event["input_tokens"] == 1000


def test_compute_cost_option_off() -> None:
    attrs = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 5}
    assert "cost_usd" not in mapped(attrs, MappingOptions(compute_cost=False))
    assert "cost_usd" in mapped(attrs, PRICED)


def test_pricing_helpers() -> None:
    assert pricing.pricing_available()
    assert pricing.pricing_provider_id("AWS.Bedrock") == "aws"
    assert pricing.pricing_provider_id("something-else") is None
    assert pricing.pricing_model_ref("models/gemini-2.5-pro") == "gemini-2.5-pro"
    assert pricing.compute_cost(raw_provider="openai", model="gpt-4o", input_tokens=None, output_tokens=None) is None


@pytest.mark.parametrize("input_tokens", [1_000, 300_000])
def test_tiered_prices_match_genai_prices(input_tokens: int) -> None:
    """Long-context tiers are not linear: those models are priced by genai-prices on every call."""
    attrs = {
        "gen_ai.provider.name": "gcp.gemini",
        "gen_ai.request.model": "gemini-2.5-pro",
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": 1_000,
    }
    expected = _expected("gemini-2.5-pro", "google", input_tokens=input_tokens, output_tokens=1_000)
    assert mapped(attrs, PRICED)["cost_usd"] == pytest.approx(expected)


def test_cache_write_tokens_are_priced() -> None:
    attrs = {
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-sonnet-4-5",
        "gen_ai.usage.input_tokens": 10_000,
        "gen_ai.usage.cache_creation.input_tokens": 8_000,
        "gen_ai.usage.output_tokens": 10,
    }
    expected = _expected(
        "claude-sonnet-4-5", "anthropic", input_tokens=10_000, cache_write_tokens=8_000, output_tokens=10
    )
    assert mapped(attrs, PRICED)["cost_usd"] == pytest.approx(expected)

# SPDX-License-Identifier: Apache-2.0
"""Moved to :mod:`opentelemetry_exporter_lumiqtrace.mapping.conventions`; kept for ``pricing.py``'s import until
pricing moves into the mapping subpackage."""

from opentelemetry_exporter_lumiqtrace.mapping.conventions import PRICING_PROVIDER_IDS

__all__ = ["PRICING_PROVIDER_IDS"]

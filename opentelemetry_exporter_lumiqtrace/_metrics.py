# SPDX-License-Identifier: Apache-2.0
"""The exporter's self-metrics, named as in the OpenTelemetry semantic conventions for SDK components.

Instruments are created from the given MeterProvider, else the global one; with no MeterProvider configured the
global one is a no-op proxy, so recording costs almost nothing.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics

from opentelemetry_exporter_lumiqtrace.version import __version__

COMPONENT_TYPE = "lumiqtrace_span_exporter"
_instance_ids = itertools.count()


@dataclass
class OperationResult:
    failed: int = 0


class ExporterMetrics:
    def __init__(self, meter_provider: Any | None = None) -> None:
        provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
        meter = provider.get_meter("opentelemetry_exporter_lumiqtrace", __version__)
        self._attributes = {
            "otel.component.type": COMPONENT_TYPE,
            "otel.component.name": f"{COMPONENT_TYPE}/{next(_instance_ids)}",
        }
        self._failed_attributes = {**self._attributes, "error.type": "export_failed"}
        self._exported = meter.create_counter(
            "otel.sdk.exporter.span.exported",
            unit="{span}",
            description="The number of spans for which the export has finished, either successful or failed.",
        )
        self._inflight = meter.create_up_down_counter(
            "otel.sdk.exporter.span.inflight",
            unit="{span}",
            description="The number of spans which were passed to the exporter, but that have not been exported yet.",
        )
        self._duration = meter.create_histogram(
            "otel.sdk.exporter.operation.duration",
            unit="s",
            description="The duration of exporting a batch of telemetry records.",
        )

    @contextmanager
    def operation(self, count: int) -> Iterator[OperationResult]:
        result = OperationResult()
        self._inflight.add(count, self._attributes)
        start = time.perf_counter()
        try:
            yield result
        finally:
            self._inflight.add(-count, self._attributes)
            ok = count - min(count, result.failed)
            if ok:
                self._exported.add(ok, self._attributes)
            if result.failed:
                self._exported.add(min(count, result.failed), self._failed_attributes)
            self._duration.record(
                time.perf_counter() - start, self._failed_attributes if result.failed else self._attributes
            )

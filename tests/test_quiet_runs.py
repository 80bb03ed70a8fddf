# SPDX-License-Identifier: Apache-2.0
"""What a new user sees in a clean run: nothing but what they asked for (no stray warnings)."""

from __future__ import annotations

import logging

import pytest

from opentelemetry_exporter_lumiqtrace import LumiqTraceSpanExporter
from opentelemetry_exporter_lumiqtrace.testing import LocalIngestServer


def test_a_second_shutdown_is_silent(server: LocalIngestServer, caplog: pytest.LogCaptureFixture) -> None:
    # The SDK's TracerProvider and atexit both call shutdown(): the second call is normal, not worth a warning.
    exporter = LumiqTraceSpanExporter(api_key=server.api_key, base_url=server.base_url)
    exporter.shutdown()
    with caplog.at_level(logging.DEBUG, logger="opentelemetry_exporter_lumiqtrace"):
        exporter.shutdown()
    assert [r.levelno for r in caplog.records if r.levelno >= logging.INFO] == []
    assert any("shutdown called more than once" in r.getMessage() for r in caplog.records)

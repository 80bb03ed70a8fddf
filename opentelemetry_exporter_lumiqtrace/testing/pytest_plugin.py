# SPDX-License-Identifier: Apache-2.0
"""pytest fixtures for testing code that exports to LumiqTrace, offline.

Registered through the ``pytest11`` entry point, so installing the package is enough::

    def test_my_llm_code(lumiqtrace_server):
        exporter = LumiqTraceSpanExporter(api_key=lumiqtrace_server.api_key, base_url=lumiqtrace_server.base_url)
        ...
        assert lumiqtrace_server.wait_for_events(1)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    # The server module is imported lazily so that loading this plugin costs nothing in test runs
    # that never use it.
    from opentelemetry_exporter_lumiqtrace.testing.server import LocalIngestServer


@pytest.fixture
def lumiqtrace_server() -> Iterator[LocalIngestServer]:
    """A started local LumiqTrace ingest server on a free loopback port, stopped after the test."""
    from opentelemetry_exporter_lumiqtrace.testing.server import LocalIngestServer

    server = LocalIngestServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def lumiqtrace_env(lumiqtrace_server: LocalIngestServer, monkeypatch: pytest.MonkeyPatch) -> LocalIngestServer:
    """Like ``lumiqtrace_server``, with ``LUMIQTRACE_BASE_URL`` and ``LUMIQTRACE_API_KEY`` pointing at it."""
    monkeypatch.setenv("LUMIQTRACE_BASE_URL", lumiqtrace_server.base_url)
    monkeypatch.setenv("LUMIQTRACE_API_KEY", lumiqtrace_server.api_key)
    return lumiqtrace_server

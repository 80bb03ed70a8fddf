# SPDX-License-Identifier: Apache-2.0
"""examples/collector: the Collector configuration parses, is complete, and sends to LumiqTrace's OTLP endpoint.

No Collector binary is available to the suite, so this checks what the Collector itself checks at start-up: every
component a pipeline names is defined, and the exporter points at /v1/otel with the key from the environment. What
the Collector's exporter sends there (OTLP/HTTP protobuf, gzip, ``x-api-key``) is what the SDK's OTLP exporter sends in
tests/test_server_otlp.py, against the local server's /v1/otel.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from opentelemetry_exporter_lumiqtrace.testing import LocalIngestServer

from .conftest import make_spans
from .test_integration_support import EXAMPLES

CONFIG = EXAMPLES / "collector" / "otel-collector.yaml"


def _load() -> dict[str, Any]:
    data = yaml.safe_load(CONFIG.read_text())
    assert isinstance(data, dict)
    return data


def test_every_pipeline_component_is_defined() -> None:
    config = _load()
    pipelines = config["service"]["pipelines"]
    assert set(pipelines) == {"traces"}  # LumiqTrace's OTLP endpoint accepts no metrics or logs
    for pipeline in pipelines.values():
        for section in ("receivers", "processors", "exporters"):
            for name in pipeline[section]:
                assert name in config[section], f"{section}: {name} is used but not defined"
    assert pipelines["traces"]["processors"][0] == "memory_limiter"  # the Collector's documented order


def test_exporter_targets_the_lumiqtrace_otlp_endpoint_with_the_key_from_the_environment() -> None:
    config = _load()
    (name,) = config["service"]["pipelines"]["traces"]["exporters"]
    # The name since Collector v0.144 ("otlphttp" is a deprecated alias there, and warns).
    assert name.split("/")[0] == "otlp_http"
    exporter = config["exporters"][name]
    # The endpoint from the environment (the local server's /v1/otel offline), the production URL by default.
    assert exporter["traces_endpoint"] == "${env:LUMIQTRACE_OTLP_ENDPOINT:-https://api.lumiqtrace.com/v1/otel}"
    assert "endpoint" not in exporter  # it would append /v1/traces
    assert exporter["headers"] == {"x-api-key": "${env:LUMIQTRACE_API_KEY}"}
    assert re.search(r"lqt_[0-9a-fA-F]{64}", CONFIG.read_text()) is None  # no key in the file
    assert exporter["retry_on_failure"]["enabled"] is True and exporter["sending_queue"]["enabled"] is True


def test_receivers_accept_otlp_over_grpc_and_http() -> None:
    protocols = _load()["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"].endswith(":4317") and protocols["http"]["endpoint"].endswith(":4318")


def _expand(value: str, env: dict[str, str]) -> str:
    """The Collector's ``${env:NAME}`` / ``${env:NAME:-default}`` expansion (default when unset or empty)."""

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        return env.get(name) or (default if default is not None else "")

    return re.sub(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}", replace, value)


def test_the_exporter_section_delivers_to_the_local_server_offline(server: LocalIngestServer) -> None:
    # What the Collector's exporter does with this section, done by the SDK's OTLP/HTTP exporter: same endpoint,
    # header and compression, resolved from the environment the README's offline run sets.
    config = _load()
    (name,) = config["service"]["pipelines"]["traces"]["exporters"]
    section = config["exporters"][name]
    assert _expand(section["traces_endpoint"], {}) == "https://api.lumiqtrace.com/v1/otel"
    env = {"LUMIQTRACE_OTLP_ENDPOINT": server.otel_url, "LUMIQTRACE_API_KEY": server.api_key}
    exporter = OTLPSpanExporter(
        endpoint=_expand(section["traces_endpoint"], env),
        headers={key: _expand(value, env) for key, value in section["headers"].items()},
        compression=Compression(section["compression"]),
        timeout=5,
    )
    try:
        assert exporter.export(make_spans(3)) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    assert len(server.events()) == 3
    assert server.otel_requests()[0].headers["content-encoding"] == "gzip"

# SPDX-License-Identifier: Apache-2.0
"""examples/collector: the Collector configuration parses, is complete, and sends to LumiqTrace's OTLP endpoint.

No Collector binary is available to the suite, so this checks what the Collector itself checks at start-up: every
component a pipeline names is defined, and the exporter points at /v1/otel with the key from the environment.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

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
    assert name.split("/")[0] == "otlphttp"
    exporter = config["exporters"][name]
    assert exporter["traces_endpoint"] == "https://api.lumiqtrace.com/v1/otel"
    assert "endpoint" not in exporter  # it would append /v1/traces
    assert exporter["headers"] == {"x-api-key": "${env:LUMIQTRACE_API_KEY}"}
    assert re.search(r"lqt_[0-9a-fA-F]{64}", CONFIG.read_text()) is None  # no key in the file
    assert exporter["retry_on_failure"]["enabled"] is True and exporter["sending_queue"]["enabled"] is True


def test_receivers_accept_otlp_over_grpc_and_http() -> None:
    protocols = _load()["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"].endswith(":4317") and protocols["http"]["endpoint"].endswith(":4318")

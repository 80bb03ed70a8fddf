# SPDX-License-Identifier: Apache-2.0
"""examples/declarative: OTEL_CONFIG_FILE selects the exporter (with keyword arguments) and the sampler by name."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from opentelemetry_exporter_lumiqtrace.testing import LocalIngestServer

from .test_integration_support import EXAMPLES, example_env, running

HERE = EXAMPLES / "declarative"


def test_config_file_builds_the_exporter_with_keywords_and_the_sampler(server: LocalIngestServer) -> None:
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    env = example_env(server, OTEL_CONFIG_FILE="otel-config.yaml", LUMIQTRACE_SAMPLE_RATE="1.0")
    # The file wins over these: with OTEL_CONFIG_FILE set, the OTEL_* exporter variables are not read.
    env.update(OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="declared-svc")
    with running([str(instrument), sys.executable, "app.py"], ready=r"sampler: (\w+)", env=env, cwd=HERE) as app:
        assert app.match.group(1) == "LumiqTraceSampler"
        app.process.wait(timeout=30)
    assert app.process.returncode == 0, app.output
    assert server.wait_for_events(2, timeout=5), app.output
    events = {e["tags"]["otel.span_name"]: e for e in server.events()}
    assert set(events) == {"handle request", "chat gpt-4o-mini"}
    assert {e["environment"] for e in events.values()} == {"staging"}  # the exporter keyword from the file
    assert {e["tags"]["service.name"] for e in events.values()} == {"declared-svc"}
    assert events["chat gpt-4o-mini"]["model"] == "gpt-4o-mini"
    assert "Traceback" not in app.output, app.output


def test_the_readme_installs_and_names_the_configuration_version_the_suite_pins() -> None:
    pyproject = (EXAMPLES.parent / "pyproject.toml").read_text()
    (pinned,) = re.findall(r'"opentelemetry-configuration==([^"]+)"', pyproject)
    readme = (HERE / "README.md").read_text()
    assert f"opentelemetry-configuration=={pinned}" in readme
    assert f"`opentelemetry-configuration` {pinned} does with it" in readme

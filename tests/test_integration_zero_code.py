# SPDX-License-Identifier: Apache-2.0
"""Zero-code: an unmodified Flask app under ``opentelemetry-instrument``, from a fresh virtualenv installed the way
the README says, exports its request spans to LumiqTrace (here the local server).

One virtualenv for the module (the install is the expensive part); no ``--system-site-packages``, so a dependency
missing from the install command fails here as it would for a user.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from opentelemetry_exporter_lumiqtrace.testing import LocalIngestServer

from .test_integration_support import ROOT, example_env, running

# What `pip install "opentelemetry-exporter-lumiqtrace[auto]"` brings, spelled out while pyproject has no such extra.
AUTO_EQUIVALENT = ["opentelemetry-distro", "opentelemetry-instrumentation"]

APP = """
from flask import Flask

app = Flask(__name__)


@app.get("/items/<int:item_id>")
def item(item_id):
    return {"id": item_id}


if __name__ == "__main__":
    import sys
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app)
    print(f"Serving on http://127.0.0.1:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)
"""


def _has_auto_extra() -> bool:
    return re.search(r"^auto\s*=", (ROOT / "pyproject.toml").read_text(), re.MULTILINE) is not None


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    where = tmp_path_factory.mktemp("zero-code") / "venv"
    venv.EnvBuilder(with_pip=True).create(where)
    python = where / "bin" / "python"
    package = f"{ROOT}[auto]" if _has_auto_extra() else str(ROOT)
    extra = [] if _has_auto_extra() else AUTO_EQUIVALENT
    done = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "-e",
            package,
            *extra,
            "flask",
            "opentelemetry-instrumentation-flask",
        ],
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    yield where


def _zero_code_env(server: LocalIngestServer, **extra: str) -> dict[str, str]:
    return example_env(
        server,
        OTEL_TRACES_EXPORTER="lumiqtrace",
        OTEL_TRACES_SAMPLER="lumiqtrace",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_SERVICE_NAME="zero-code-shop",
        **extra,
    )


def test_unmodified_flask_app_under_opentelemetry_instrument(
    fresh_venv: Path, server: LocalIngestServer, tmp_path: Path
) -> None:
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(APP))
    argv = [str(fresh_venv / "bin" / "opentelemetry-instrument"), str(fresh_venv / "bin" / "python"), str(app)]
    with running(argv, ready=r"Serving on (http://\S+)", env=_zero_code_env(server), cwd=tmp_path) as running_app:
        base = running_app.match.group(1)
        for item_id in (1, 2, 3):
            assert requests.get(f"{base}/items/{item_id}", timeout=10).json() == {"id": item_id}
        assert server.wait_for_events(3, timeout=10), running_app.output
    events = server.events()
    assert len(events) == 3 and len(server.events_by_trace()) == 3
    for event in events:
        assert event["tags"]["otel.span_name"] == "GET /items/<int:item_id>"
        assert event["tags"]["otel.span_kind"] == "server"
        assert event["tags"]["http.route"] == "/items/<int:item_id>"
        assert event["tags"]["service.name"] == "zero-code-shop"
    assert "Traceback" not in running_app.output, running_app.output


def test_check_in_the_fresh_venv_passes_then_names_the_missing_configurator(
    fresh_venv: Path, server: LocalIngestServer
) -> None:
    python = str(fresh_venv / "bin" / "python")
    check = [python, "-m", "opentelemetry_exporter_lumiqtrace", "check"]
    done = subprocess.run(check, env=_zero_code_env(server), capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "configurator (opentelemetry-distro)" in done.stdout and "PROBLEM" not in done.stdout

    # The trap this package cannot close by itself: with no configurator opentelemetry-instrument makes no spans and
    # says nothing. The check says it.
    subprocess.run([python, "-m", "pip", "uninstall", "-q", "-y", "opentelemetry-distro"], check=True, timeout=120)
    done = subprocess.run(check, env=_zero_code_env(server), capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no OpenTelemetry configurator is installed" in done.stdout
    assert "opentelemetry-exporter-lumiqtrace[auto]" in done.stdout


def test_the_fresh_venv_is_not_this_one(fresh_venv: Path) -> None:
    # Guards the point of the fixture: the packages under test come from the fresh install, not from this venv.
    done = subprocess.run(
        [str(fresh_venv / "bin" / "python"), "-c", "import sys; print(sys.prefix)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(done.stdout.strip()).resolve() == fresh_venv.resolve() != Path(sys.prefix).resolve()

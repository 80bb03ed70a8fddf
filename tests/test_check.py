# SPDX-License-Identifier: Apache-2.0
"""``python -m opentelemetry_exporter_lumiqtrace check`` against the local server: each answer in plain words."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys

import pytest

from opentelemetry_exporter_lumiqtrace.check import EXIT_NOT_DELIVERED, EXIT_OK, EXIT_SETUP, run_check
from opentelemetry_exporter_lumiqtrace.testing import LocalIngestServer, Reply


def _check() -> tuple[int, str]:
    out = io.StringIO()
    code = run_check(out=out)
    return code, out.getvalue()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, server: LocalIngestServer) -> LocalIngestServer:
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LUMIQTRACE_API_KEY", server.api_key)
    monkeypatch.setenv("LUMIQTRACE_BASE_URL", server.base_url)
    monkeypatch.setenv("LUMIQTRACE_TIMEOUT", "3")
    return server


def test_success_sends_one_real_event_and_masks_the_key(env: LocalIngestServer) -> None:
    code, text = _check()
    assert code == EXIT_OK, text
    assert "OK: LumiqTrace accepted the test event" in text
    assert env.api_key not in text and env.api_key[:8] + "..." in text
    assert f"{env.base_url}/v1/ingest" in text and "3 s" in text
    (event,) = env.events()
    assert event["tags"]["otel.span_name"] == "lumiqtrace check"
    assert event["event_id"] in text and event["trace_id"] in text
    assert env.ingest_requests()[0].headers["content-encoding"] == "gzip"


def test_configuration_is_read_as_the_exporter_reads_it(
    env: LocalIngestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LUMIQTRACE_TIMEOUT", "soon")
    monkeypatch.setenv("LUMIQTRACE_COMPRESSION", "none")
    monkeypatch.setenv("LUMIQTRACE_ENVIRONMENT", "staging")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "checked-svc")
    code, text = _check()
    # The event is delivered with the default timeout, but a rejected setting means the setup is not as configured.
    assert code == EXIT_SETUP, text
    assert "PROBLEM: Invalid value 'soon' for LUMIQTRACE_TIMEOUT" in text and "10 s" in text
    assert "OK: LumiqTrace accepted" in text and "was delivered, and 1 problem(s)" in text
    assert "staging" in text
    (event,) = env.events()
    assert event["environment"] == "staging"
    assert event["tags"]["service.name"] == "checked-svc"
    assert "content-encoding" not in env.ingest_requests()[0].headers


def test_revoked_key_is_explained_as_a_bad_key(env: LocalIngestServer) -> None:
    env.revoke_key(env.api_key)
    code, text = _check()
    assert code == EXIT_NOT_DELIVERED
    assert "Bad API key: LumiqTrace answered 401 (Invalid API key)" in text
    assert env.api_key not in text


def test_a_key_of_the_wrong_shape_is_warned_about_without_showing_it(
    env: LocalIngestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LUMIQTRACE_API_KEY", "sk-not-a-lumiqtrace-key-at-all")
    code, text = _check()
    assert code == EXIT_SETUP
    assert "does not look like a project key" in text and "Bad API key" in text
    assert "not-a-lumiqtrace-key" not in text


def test_forbidden_key_is_explained(env: LocalIngestServer) -> None:
    env.forbid_key(env.api_key)
    code, text = _check()
    assert code == EXIT_NOT_DELIVERED
    assert "Forbidden: LumiqTrace answered 403 (Not a member of this organization)" in text


def test_spent_quota_is_explained(env: LocalIngestServer) -> None:
    env.set_quota(0)
    code, text = _check()
    assert code == EXIT_NOT_DELIVERED
    assert "Quota spent: LumiqTrace answered 429 (Monthly quota exceeded)" in text
    assert env.events() == []


def test_rate_limit_is_explained_with_retry_after(env: LocalIngestServer) -> None:
    env.script(Reply(status=429, body={"error": "Rate limit exceeded"}, headers={"Retry-After": "7"}))
    code, text = _check()
    assert code == EXIT_NOT_DELIVERED
    assert "Rate limited" in text and "Retry after 7 s" in text and "examples/collector" in text
    assert len(env.ingest_requests()) == 1  # one probe, no retry loop


def test_unreachable_url_is_explained(env: LocalIngestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("LUMIQTRACE_BASE_URL", f"http://127.0.0.1:{port}")
    code, text = _check()
    assert code == EXIT_NOT_DELIVERED
    assert f"Unreachable: could not connect to http://127.0.0.1:{port}/v1/ingest" in text


def test_base_url_with_the_path_is_explained_as_a_wrong_url(
    env: LocalIngestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LUMIQTRACE_BASE_URL", env.base_url + "/v1/ingest")
    code, text = _check()
    assert code == EXIT_SETUP
    assert "without /v1/ingest" in text and "Wrong URL" in text and "answered 404" in text


def test_server_error_is_called_transient(env: LocalIngestServer) -> None:
    env.script(Reply(status=503))
    code, text = _check()
    assert code == EXIT_NOT_DELIVERED and "Server error" in text and "transient" in text


def test_no_key_is_a_setup_problem_and_sends_nothing(env: LocalIngestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LUMIQTRACE_API_KEY")
    code, text = _check()
    assert code == EXIT_SETUP
    assert "LUMIQTRACE_API_KEY is not set" in text
    assert env.ingest_requests() == []


def test_zero_code_setup_that_would_fail_is_reported(env: LocalIngestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "lumiqtrace")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "not_an_exporter")
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "none")
    code, text = _check()
    assert "OK: LumiqTrace accepted" in text
    assert "OTEL_METRICS_EXPORTER=not_an_exporter names an exporter that is not installed" in text
    assert "OTEL_LOGS_EXPORTER=none names" not in text
    assert code == EXIT_SETUP


def test_zero_code_setup_that_works_is_clean(env: LocalIngestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "lumiqtrace")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "lumiqtrace")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "console")
    code, text = _check()
    assert code == EXIT_OK, text
    assert "configurator (opentelemetry-distro)" in text and "PROBLEM" not in text


def _run_check_command(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m opentelemetry_exporter_lumiqtrace check`` in a child process with ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "opentelemetry_exporter_lumiqtrace", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_command_line_runs_the_check(server: LocalIngestServer) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LUMIQTRACE_"))}
    env.update({"LUMIQTRACE_API_KEY": server.api_key, "LUMIQTRACE_BASE_URL": server.base_url})
    done = _run_check_command(env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK: LumiqTrace accepted the test event" in done.stdout
    assert done.stderr == ""
    assert server.api_key not in done.stdout + done.stderr
    assert len(server.events()) == 1
    server.revoke_key(server.api_key)
    done = _run_check_command(env)
    assert done.returncode == 1 and "Bad API key" in done.stdout


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LUMIQTRACE_COMPRESSION", "brotli"),
        ("LUMIQTRACE_BUFFER_MAX_EVENTS", "many"),
        ("LUMIQTRACE_LINGER", "-1"),
    ],
)
def test_any_rejected_setting_exits_2_even_when_the_event_is_delivered(
    env: LocalIngestServer, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    code, text = _check()
    assert code == EXIT_SETUP, text
    assert "PROBLEM:" in text and variable in text
    assert "OK: LumiqTrace accepted" in text and len(env.events()) == 1


def test_only_rejected_settings_and_no_answer_exit_2_not_1(
    env: LocalIngestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LUMIQTRACE_TIMEOUT", "-3")
    env.set_outage(True)
    code, text = _check()
    assert code == EXIT_SETUP, text
    assert "Server error" in text and "was not delivered, and 1 problem(s)" in text


def test_the_lumiqtrace_sampler_is_built_through_its_entry_point_without_sdk_warnings(
    env: LocalIngestServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The README's zero-code variables. A plain TracerProvider() would read OTEL_TRACES_SAMPLER and log "Couldn't
    # recognize sampler lumiqtrace." (the SDK knows only its built-in names).
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "lumiqtrace")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "lumiqtrace")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "none")
    with caplog.at_level("DEBUG"):
        code, text = _check()
    assert code == EXIT_OK, text
    assert "LUMIQTRACE_SAMPLE_RATE 0.25" in text  # the factory applied OTEL_TRACES_SAMPLER_ARG
    assert not [r for r in caplog.records if r.levelno >= 30 and "sampler" in r.getMessage().lower()]


def test_a_bad_sampler_argument_is_a_rejected_setting(env: LocalIngestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "lumiqtrace")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "most")
    code, text = _check()
    assert code == EXIT_SETUP, text
    assert "PROBLEM: Invalid OTEL_TRACES_SAMPLER_ARG='most'" in text
    assert len(env.events()) == 1


def test_a_disabled_sdk_is_reported_and_the_test_event_still_goes_out(
    env: LocalIngestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    code, text = _check()
    assert code == EXIT_SETUP, text
    assert "OTEL_SDK_DISABLED=true" in text and "OK: LumiqTrace accepted" in text
    assert len(env.events()) == 1


# Run first in the child: makes ``opentelemetry.instrumentation`` unimportable, as in a plain
# ``pip install opentelemetry-exporter-lumiqtrace`` (the test extra installs it, so the suite would never see this).
_WITHOUT_INSTRUMENTATION = """
import sys

class _Absent:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry.instrumentation" or name.startswith("opentelemetry.instrumentation."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _Absent())
from opentelemetry_exporter_lumiqtrace.__main__ import main
sys.exit(main(["check"]))
"""


@pytest.mark.parametrize("zero_code", [False, True])
def test_check_works_without_opentelemetry_instrumentation(server: LocalIngestServer, zero_code: bool) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LUMIQTRACE_"))}
    env.update({"LUMIQTRACE_API_KEY": server.api_key, "LUMIQTRACE_BASE_URL": server.base_url})
    if zero_code:
        env.update({"OTEL_TRACES_EXPORTER": "lumiqtrace", "OTEL_TRACES_SAMPLER": "lumiqtrace"})
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_INSTRUMENTATION],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stderr == ""  # no traceback, no SDK warning
    assert "opentelemetry-instrument not installed (only needed for zero-code" in done.stdout
    assert "OK: LumiqTrace accepted the test event" in done.stdout
    assert len(server.events()) == 1
    if zero_code:
        # Asking for zero-code without the package that provides it is a setup that cannot work.
        assert done.returncode == EXIT_SETUP, done.stdout
        assert "PROBLEM: OTEL_TRACES_EXPORTER=lumiqtrace is set but opentelemetry-instrumentation" in done.stdout
    else:
        assert done.returncode == EXIT_OK, done.stdout
        assert "PROBLEM" not in done.stdout


def test_command_line_exits_2_on_a_rejected_sample_rate(server: LocalIngestServer) -> None:
    # A fresh process: the shared sampling state reads LUMIQTRACE_SAMPLE_RATE once, when the exporter first needs it.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LUMIQTRACE_"))}
    env.update(
        {"LUMIQTRACE_API_KEY": server.api_key, "LUMIQTRACE_BASE_URL": server.base_url, "LUMIQTRACE_SAMPLE_RATE": "2"}
    )
    done = _run_check_command(env)
    assert done.returncode == EXIT_SETUP, done.stdout + done.stderr
    assert "PROBLEM: Invalid LUMIQTRACE_SAMPLE_RATE='2'" in done.stdout and done.stderr == ""
    assert len(server.events()) == 1

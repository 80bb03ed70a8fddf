# SPDX-License-Identifier: Apache-2.0
"""``python -m opentelemetry_exporter_lumiqtrace check``: is this process set up to reach LumiqTrace?

It reads the configuration exactly as ``OTEL_TRACES_EXPORTER=lumiqtrace`` would (a zero-argument
``LumiqTraceSpanExporter``, so the same resolvers and the same warnings), prints it with the key masked, tells whether
``opentelemetry-instrument`` would configure the SDK at all, then sends ONE real event (a real span, mapped, encoded
and posted by the exporter's own transport) and explains the answer in plain words.

Exit codes: 0 the event was accepted; 1 it was not (bad key, quota, rate limit, unreachable, ...); 2 the setup cannot
work as it stands: a setting was rejected (the exporter warned and fell back to a default), no API key, or
``OTEL_TRACES_EXPORTER=lumiqtrace`` with nothing installed to read it. 2 wins over 0 and 1: fix the settings first.

It works in every install: without ``opentelemetry-instrumentation`` the zero-code part says "not installed" and
moves on. It builds no ``TracerProvider`` (which would read ``OTEL_TRACES_SAMPLER`` and print "Couldn't recognize
sampler lumiqtrace.", the SDK knowing only its built-in names); the test span is assembled from the SDK's public
``ReadableSpan``, and the ``lumiqtrace`` sampler, when configured, is built through its entry point as
``opentelemetry-instrument`` builds it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from importlib.util import find_spec
from typing import Any, TextIO

from opentelemetry.sdk.environment_variables import OTEL_SDK_DISABLED, OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags
from opentelemetry.util.types import Attributes

from opentelemetry_exporter_lumiqtrace import _config
from opentelemetry_exporter_lumiqtrace.delivery import QUOTA_MESSAGE
from opentelemetry_exporter_lumiqtrace.encoding import build_body, encode_events
from opentelemetry_exporter_lumiqtrace.exporter import LumiqTraceSpanExporter
from opentelemetry_exporter_lumiqtrace.transport import Answer
from opentelemetry_exporter_lumiqtrace.version import __version__

_logger = logging.getLogger(__name__)
_PACKAGE_LOGGER = "opentelemetry_exporter_lumiqtrace"

EXIT_OK = 0
EXIT_NOT_DELIVERED = 1
EXIT_SETUP = 2

CHECK_SPAN_NAME = "lumiqtrace check"
CHECK_TRACER = "opentelemetry_exporter_lumiqtrace.check"
_CHECK_SPAN_DURATION_NS = 1_000_000
SAMPLER_NAME = "lumiqtrace"
_SAMPLER_GROUP = "opentelemetry_traces_sampler"
_INSTRUMENT_MODULE = "opentelemetry.instrumentation.auto_instrumentation"
# The OTel SDK reads these; a distro (opentelemetry-distro) defaults the unset ones to "otlp".
_SIGNAL_GROUPS = (
    ("OTEL_TRACES_EXPORTER", "opentelemetry_traces_exporter"),
    ("OTEL_METRICS_EXPORTER", "opentelemetry_metrics_exporter"),
    ("OTEL_LOGS_EXPORTER", "opentelemetry_logs_exporter"),
)


@dataclass
class _Report:
    out: TextIO
    problems: list[str] = field(default_factory=list)

    def line(self, text: str = "") -> None:
        print(text, file=self.out)

    def item(self, name: str, value: str) -> None:
        self.line(f"  {name:<22} {value}")

    def problem(self, text: str) -> None:
        self.problems.append(text)
        self.line(f"  PROBLEM: {text}")


class _Captured(logging.Handler):
    """Collects the warnings the exporter logs while it reads its configuration, to show them in the report."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _capture_warnings() -> Iterator[_Captured]:
    handler = _Captured()
    logger = logging.getLogger(_PACKAGE_LOGGER)
    old_propagate = logger.propagate
    logger.addHandler(handler)
    # Shown once in the report, not twice (again through the root logger's last-resort handler).
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = old_propagate


def _entry_point_names(group: str) -> list[str]:
    return sorted({ep.name for ep in metadata.entry_points(group=group)})


def _providers(group: str) -> list[str]:
    """Installed distributions that register entry points in ``group`` (a name alone says little: 'configurator')."""
    names = set()
    for ep in metadata.entry_points(group=group):
        dist = getattr(ep, "dist", None)
        names.add(f"{ep.name} ({dist.name})" if dist is not None else ep.name)
    return sorted(names)


def _entry_point_for(name: str, signal: str) -> str:
    """The entry point name the SDK looks up for an ``OTEL_*_EXPORTER`` value ('otlp' depends on the protocol)."""
    if name != "otlp":
        return name
    protocol = os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"
    )
    return "otlp_proto_grpc" if protocol.strip() == "grpc" else "otlp_proto_http"


def _module_installed(name: str) -> bool:
    # find_spec() of a dotted name imports the parent packages first and raises when one is missing: a plain install
    # has no opentelemetry.instrumentation at all.
    try:
        return find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _build_configured_sampler() -> str | None:
    """Build the sampler ``OTEL_TRACES_SAMPLER=lumiqtrace`` names, as the SDK's configurator does: the entry point's
    factory called with ``OTEL_TRACES_SAMPLER_ARG``, so a bad argument is warned about here too. A problem or None."""
    if os.environ.get(OTEL_TRACES_SAMPLER, "").strip() != SAMPLER_NAME:
        return None
    for entry_point in metadata.entry_points(group=_SAMPLER_GROUP):
        if entry_point.name == SAMPLER_NAME:
            try:
                entry_point.load()(os.environ.get(OTEL_TRACES_SAMPLER_ARG))
            except Exception as exc:  # a broken install must not end the check
                return f"the 'lumiqtrace' sampler could not be built: {type(exc).__name__}: {exc}"
            return None
    return (
        "OTEL_TRACES_SAMPLER=lumiqtrace is set but the 'lumiqtrace' sampler entry point is not registered: "
        "reinstall opentelemetry-exporter-lumiqtrace"
    )


def _check_zero_code(report: _Report, sampler_problem: str | None) -> None:
    """What ``opentelemetry-instrument`` would do with this environment, judged from installed entry points."""
    report.line("opentelemetry-instrument (zero-code):")
    has_instrument = _module_installed(_INSTRUMENT_MODULE)
    configurators = _providers("opentelemetry_configurator")
    distros = _providers("opentelemetry_distro")
    report.item(
        "opentelemetry-instrument",
        "installed" if has_instrument else "not installed (only needed for zero-code: the [auto] extra)",
    )
    report.item("configurator", ", ".join(configurators) or "none")
    report.item("distro", ", ".join(distros) or "none")
    if "lumiqtrace" not in _entry_point_names("opentelemetry_traces_exporter"):
        report.problem(
            "the 'lumiqtrace' traces exporter entry point is not registered: "
            "reinstall opentelemetry-exporter-lumiqtrace"
        )
    if os.environ.get(OTEL_SDK_DISABLED, "").strip().lower() == "true":
        report.problem(f"{OTEL_SDK_DISABLED}=true: the OpenTelemetry SDK makes no spans at all, so nothing is exported")
    traces = os.environ.get("OTEL_TRACES_EXPORTER")
    report.item("OTEL_TRACES_EXPORTER", traces if traces is not None else "unset")
    report.item(OTEL_TRACES_SAMPLER, os.environ.get(OTEL_TRACES_SAMPLER, "unset"))
    if sampler_problem is not None:
        report.problem(sampler_problem)
    if "lumiqtrace" not in [name.strip() for name in (traces or "").split(",")]:
        report.line(
            "  not used: set OTEL_TRACES_EXPORTER=lumiqtrace to export to LumiqTrace with opentelemetry-instrument"
        )
        return
    if not has_instrument:
        report.problem(
            "OTEL_TRACES_EXPORTER=lumiqtrace is set but opentelemetry-instrumentation (the opentelemetry-instrument "
            "command) is not installed: pip install 'opentelemetry-exporter-lumiqtrace[auto]'"
        )
    if not configurators:
        # The SDK reads OTEL_TRACES_EXPORTER only through a configurator; without one opentelemetry-instrument
        # instruments the libraries but never sets a TracerProvider, so not one span is produced, and nothing says so.
        report.problem(
            "OTEL_TRACES_EXPORTER=lumiqtrace is set but no OpenTelemetry configurator is installed, so "
            "opentelemetry-instrument would produce no spans at all. Install one: "
            "pip install 'opentelemetry-exporter-lumiqtrace[auto]' (or opentelemetry-distro)"
        )
        return
    for variable, group in _SIGNAL_GROUPS[1:]:
        raw = os.environ.get(variable)
        if raw is None and distros:
            raw, shown = "otlp", "unset: the distro defaults it to 'otlp'"
        else:
            shown = raw if raw is not None else "unset"
        report.item(variable, shown)
        available = _entry_point_names(group)
        for name in (n.strip() for n in (raw or "").split(",")):
            if name and name != "none" and _entry_point_for(name, group.split("_")[1]) not in available:
                # The configurator raises on an unknown exporter name, and opentelemetry-instrument then runs the
                # application with no telemetry at all, traces included, after one traceback on stderr.
                report.problem(
                    f"{variable}={name} names an exporter that is not installed, so the SDK configuration fails "
                    f"and no span reaches LumiqTrace either. Set {variable}=none or install that exporter"
                )


def _test_span() -> ReadableSpan:
    """One finished span as the SDK hands it to an exporter, with the resource the application would have
    (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``).

    Assembled directly rather than through a ``TracerProvider``, which would also read the sampler, span limit and
    ``OTEL_SDK_DISABLED`` settings: they say nothing about the exporter, can print misleading warnings and can
    suppress the very span the check needs.
    """
    ids = RandomIdGenerator()
    context = SpanContext(
        trace_id=ids.generate_trace_id(),
        span_id=ids.generate_span_id(),
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    attributes: Attributes = {"lumiqtrace.check": True}
    end = time.time_ns()
    return ReadableSpan(
        name=CHECK_SPAN_NAME,
        context=context,
        resource=Resource.create({}),
        attributes=attributes,
        kind=SpanKind.INTERNAL,
        instrumentation_scope=InstrumentationScope(CHECK_TRACER, __version__),
        start_time=end - _CHECK_SPAN_DURATION_NS,
        end_time=end,
    )


def _send_one(exporter: LumiqTraceSpanExporter, report: _Report) -> tuple[dict[str, Any] | None, Answer | None]:
    """Map, encode and post one event through the exporter's own transport (no retries: one plain answer)."""
    event = exporter._mapper.map_span(_test_span(), exporter._mapping_options)
    if event is None:  # ai_only filters a plain span out; the check still wants to reach the API
        event = exporter._mapper.map_span(_test_span(), _without_ai_only(exporter))
    assert event is not None
    lines, errors = encode_events([event])
    if errors:
        report.problem(f"the test event could not be encoded: {errors[0]}")
        return event, None
    deliverer = exporter._deliverer
    assert deliverer is not None
    body = build_body(lines, gzip_body=exporter._compression == _config.COMPRESSION_GZIP)
    timeout = min(exporter._timeout, _config.DEFAULT_MAX_REQUEST_TIMEOUT_S)
    return event, deliverer.transport.post(body, timeout=timeout)


def _without_ai_only(exporter: LumiqTraceSpanExporter) -> Any:
    return dataclasses.replace(exporter._mapping_options, ai_only=False)


def explain(answer: Answer, *, ingest_url: str, timeout: float) -> tuple[bool, str]:
    """(accepted, plain words) for one answer of ``POST /v1/ingest``."""
    status = answer.status
    message = answer.message
    if status is None:
        if answer.timed_out:
            return False, (
                f"Unreachable: no answer from {ingest_url} within {timeout:g} s. Check LUMIQTRACE_BASE_URL, the "
                "network path and any proxy (HTTPS_PROXY), or raise LUMIQTRACE_TIMEOUT."
            )
        return False, (
            f"Unreachable: could not connect to {ingest_url} ({message}). Check LUMIQTRACE_BASE_URL (host, port, "
            "http vs https), DNS, firewalls and any proxy (HTTPS_PROXY)."
        )
    if 200 <= status < 300:
        accepted = (answer.body or {}).get("accepted")
        suffix = f" (accepted: {accepted})" if accepted is not None else ""
        return True, f"OK: LumiqTrace accepted the test event (HTTP {status}){suffix}."
    if status == 401:
        return False, (
            f"Bad API key: LumiqTrace answered 401 ({message}). The key is unknown, mistyped or revoked. Check "
            "LUMIQTRACE_API_KEY: a project key is 'lqt_' followed by 64 hex characters (Settings -> API Keys)."
        )
    if status == 403:
        return False, (
            f"Forbidden: LumiqTrace answered 403 ({message}). The key is valid but has no access to this "
            "organization or project. Use a key created in the project the events belong to."
        )
    if status == 429:
        if QUOTA_MESSAGE in message.lower():
            return False, (
                f"Quota spent: LumiqTrace answered 429 ({message}). The organization has used all events of this "
                "billing period; events are rejected until the monthly reset or a plan upgrade. Lowering "
                "LUMIQTRACE_SAMPLE_RATE makes next month's traffic fit."
            )
        retry_after = answer.headers.get("retry-after")
        wait = f" Retry after {retry_after} s." if retry_after else ""
        return False, (
            f"Rate limited: LumiqTrace answered 429 ({message}). This key's 1,000 requests per minute are used up, "
            f"probably by other processes sharing it.{wait} The exporter waits and retries on its own; if many "
            "processes share one key, send through an OpenTelemetry Collector (see examples/collector)."
        )
    if status in (404, 405):
        return False, (
            f"Wrong URL: {ingest_url} answered {status} ({message}). LUMIQTRACE_BASE_URL must be the API base "
            f"(for example {_config.DEFAULT_BASE_URL}), without /v1/ingest or /v1/otel."
        )
    if status == 400:
        return False, (
            f"Rejected: LumiqTrace answered 400 ({message}) to a well-formed test event. Check that "
            "LUMIQTRACE_BASE_URL points at LumiqTrace; if it does, please report this exporter bug."
        )
    if status >= 500:
        return False, (
            f"Server error: LumiqTrace answered {status} ({message}). This is on the server side or a proxy in "
            "between and usually transient; the exporter retries such answers. Try again shortly."
        )
    return False, f"Unexpected answer: HTTP {status} ({message}) from {ingest_url}."


def run_check(*, out: TextIO | None = None) -> int:
    """Print the configuration, the zero-code setup and the outcome of one test event; return the exit code."""
    report = _Report(out if out is not None else sys.stdout)
    report.line(f"opentelemetry-exporter-lumiqtrace {__version__}")
    with _capture_warnings() as captured:
        # Built exactly as OTEL_TRACES_EXPORTER=lumiqtrace builds it: no arguments, everything from the environment.
        exporter = LumiqTraceSpanExporter()
        sampler_problem = _build_configured_sampler()
    try:
        # None when the configured URL is unusable (the resolver's error, captured above, says why without echoing
        # any credentials).
        base_url = exporter._base_url or "<unusable, see the warning below>"
        ingest_url = base_url + _config.INGEST_PATH
        report.line("Configuration (as the exporter reads it):")
        report.item(_config.LUMIQTRACE_API_KEY, _config.mask_key(exporter._api_key))
        report.item(_config.LUMIQTRACE_BASE_URL, base_url)
        report.item("ingest URL", ingest_url)
        report.item(_config.LUMIQTRACE_TIMEOUT, f"{exporter._timeout:g} s")
        report.item(_config.LUMIQTRACE_COMPRESSION, exporter._compression)
        report.item(_config.LUMIQTRACE_ENVIRONMENT, exporter._mapping_options.environment or "unset")
        report.item(_config.LUMIQTRACE_SAMPLE_RATE, f"{exporter.stats()['sample_rate']:g}")
        for message in captured.messages:
            if exporter._api_key is None and _config.LUMIQTRACE_API_KEY in message:
                continue  # said under "Test event", with what to do
            # Every warning while reading the settings means one was rejected (a default used instead) or cannot
            # work as given: the exporter would run, just not as configured.
            report.problem(message)
        if base_url.endswith(("/v1/ingest", "/v1/otel")):
            report.problem("LUMIQTRACE_BASE_URL should be the API base, without /v1/ingest or /v1/otel")
        _check_zero_code(report, sampler_problem)
        report.line("Test event:")
        if exporter._api_key is None:
            report.problem(
                "LUMIQTRACE_API_KEY is not set: the exporter is inert and sends nothing. "
                "Export the project key (lqt_...) and run the check again"
            )
            return EXIT_SETUP
        if exporter._base_url is None:
            report.problem("LUMIQTRACE_BASE_URL is not a usable URL: the exporter is inert and sends nothing")
        if exporter._deliverer is None:
            report.problem("the exporter is inert with these settings (see above) and sends nothing")
            return EXIT_SETUP
        with _capture_warnings():
            event, answer = _send_one(exporter, report)
        if event is not None:
            report.item("event_id", str(event.get("event_id")))
            report.item("trace_id", str(event.get("trace_id")))
        accepted = False
        if answer is not None:
            accepted, words = explain(
                answer, ingest_url=ingest_url, timeout=min(exporter._timeout, _config.DEFAULT_MAX_REQUEST_TIMEOUT_S)
            )
            report.line(f"  {words}")
        if report.problems:
            outcome = "was delivered" if accepted else "was not delivered"
            report.line(f"The test event {outcome}, and {len(report.problems)} problem(s) above need fixing.")
            return EXIT_SETUP
        return EXIT_OK if accepted else EXIT_NOT_DELIVERED
    finally:
        exporter.shutdown(timeout_millis=0)

# SPDX-License-Identifier: Apache-2.0
"""``LumiqTraceSpanExporter``: wires filter -> map -> encode -> deliver -> keep. Each step is its own module."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from opentelemetry_exporter_lumiqtrace import _config
from opentelemetry_exporter_lumiqtrace._metrics import ExporterMetrics
from opentelemetry_exporter_lumiqtrace.delivery import (
    DROP_AFTER_SHUTDOWN,
    DROP_BUFFER_FULL,
    DROP_DISABLED,
    DROP_ENCODING,
    DROP_MAPPING,
    DROP_NO_API_KEY,
    DROP_SHUTDOWN,
    Deliverer,
    DeliveryState,
    DeliveryStats,
    RetryBuffer,
    RetryPolicy,
    ThrottledLog,
)
from opentelemetry_exporter_lumiqtrace.encoding import encode_events
from opentelemetry_exporter_lumiqtrace.mapping import MappingOptions, map_span
from opentelemetry_exporter_lumiqtrace.remote_config import ConfigUpdate, RemoteConfigPoller
from opentelemetry_exporter_lumiqtrace.sampling import shared_sampling_state
from opentelemetry_exporter_lumiqtrace.spool import DEFAULT_SPOOL_MAX_BYTES, DiskSpool
from opentelemetry_exporter_lumiqtrace.transport import USER_AGENT, IngestTransport
from opentelemetry_exporter_lumiqtrace.version import __version__

_logger = logging.getLogger(__name__)
_PACKAGE_LOGGER = "opentelemetry_exporter_lumiqtrace"


# The SDK BatchSpanProcessor's default max_export_batch_size (OTEL_BSP_MAX_EXPORT_BATCH_SIZE).
LINGER_MIN_BATCH = 512
# Buffered events taken per export call at most (50 requests).
MAX_PENDING_PER_CALL = 5_000
# Spooled events sent per export call at most: the drain rate limit.
SPOOL_DRAIN_BATCH = 500
_TRACE_ID_LOW_MASK = 2**64 - 1
# Drop reason while the configured base URL is unusable (the exporter is inert, as without a key).
DROP_BAD_BASE_URL = "bad_base_url"
# How many trace ids are remembered as "partly sent": enough for the traces in flight in a busy process.
_STARTED_TRACES_MAX = 65_536


class RecentTraces:
    """A bounded, insertion-ordered set of trace ids (oldest forgotten first).

    When the sampling rate drops mid-trace, spans of traces that already had spans sent keep going, so a trace
    is sent whole or dropped whole, never split. Only ints are stored; a dict is the cheapest ordered set.
    """

    def __init__(self, max_size: int) -> None:
        self._max = max_size
        self._ids: dict[int, None] = {}

    def remember(self, trace_ids: Iterable[int]) -> None:
        ids = self._ids
        ids.update(dict.fromkeys(trace_ids))  # one C-level pass; known ids keep their place
        excess = len(ids) - self._max
        if excess > 0:
            for trace_id in list(itertools.islice(ids, excess)):
                ids.pop(trace_id, None)  # a concurrent export may have removed it first

    def __contains__(self, trace_id: object) -> bool:
        return trace_id in self._ids


class LumiqTraceSpanExporter(SpanExporter):
    """Exports OpenTelemetry spans to LumiqTrace's native ingest API (``POST {base_url}/v1/ingest``).

    Every keyword has a ``LUMIQTRACE_*`` environment variable; a keyword beats its variable, and zero-argument
    construction works (that is how ``OTEL_TRACES_EXPORTER=lumiqtrace`` builds it). Without an API key the exporter
    is inert: it sends nothing and says so once.

    ``export()`` never raises and never blocks past ``timeout`` seconds (retries and waits included). Events that
    could not be delivered for a retryable reason are kept in a bounded buffer and sent first next time. What
    happened to every event is readable with :meth:`stats`.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
        compression: str | None = None,
        environment: str | None = None,
        capture_content: bool | None = None,
        redact_keys: Iterable[str] | None = None,
        ai_only: bool | None = None,
        buffer_max_events: int | None = None,
        buffer_max_bytes: int | None = None,
        auth_probe_interval: float | None = None,
        quota_probe_interval: float | None = None,
        quota_rate_factor: float | None = None,
        quota_rate_floor: float | None = None,
        linger: float | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
        spool_max_bytes: int | None = None,
        allow_insecure_http: bool | None = None,
        retry_policy: RetryPolicy | None = None,
        meter_provider: Any | None = None,
        _clock: Callable[[], float] | None = None,
        _wall_clock: Callable[[], float] | None = None,
    ) -> None:
        self._api_key = _config.resolve_api_key(api_key)
        self._base_url = _config.resolve_base_url(
            base_url,
            allow_insecure_http=_config.resolve_bool(
                allow_insecure_http, _config.LUMIQTRACE_ALLOW_INSECURE_HTTP, False
            ),
        )
        self._timeout = _config.resolve_timeout(timeout)
        self._compression = _config.resolve_compression(compression)
        self._clock = _clock or time.monotonic
        self._wall_clock = _wall_clock or time.time

        base_policy = retry_policy or RetryPolicy()
        self._policy = dataclasses.replace(
            base_policy,
            auth_probe_interval_s=_config.resolve_positive_float(
                auth_probe_interval, _config.LUMIQTRACE_AUTH_PROBE_INTERVAL, base_policy.auth_probe_interval_s
            ),
            quota_probe_interval_s=_config.resolve_positive_float(
                quota_probe_interval, _config.LUMIQTRACE_QUOTA_PROBE_INTERVAL, base_policy.quota_probe_interval_s
            ),
            quota_rate_factor=_config.resolve_float(
                quota_rate_factor, _config.LUMIQTRACE_QUOTA_RATE_FACTOR, base_policy.quota_rate_factor, 0.0, 1.0
            ),
            quota_rate_floor=_config.resolve_float(
                quota_rate_floor, _config.LUMIQTRACE_QUOTA_RATE_FLOOR, base_policy.quota_rate_floor, 0.0, 1.0
            ),
        )
        self._buffer_max_events = _config.resolve_positive_int(
            buffer_max_events, _config.LUMIQTRACE_BUFFER_MAX_EVENTS, _config.DEFAULT_BUFFER_MAX_EVENTS
        )
        self._buffer_max_bytes = _config.resolve_positive_int(
            buffer_max_bytes, _config.LUMIQTRACE_BUFFER_MAX_BYTES, _config.DEFAULT_BUFFER_MAX_BYTES
        )
        self._linger = _config.resolve_float(linger, _config.LUMIQTRACE_LINGER, _config.DEFAULT_LINGER_S, 0.0, 60.0)
        spool_path = spool_dir if spool_dir is not None else os.environ.get(_config.LUMIQTRACE_SPOOL_DIR, "").strip()
        self._spool_dir = os.fspath(spool_path) if spool_path else None
        self._spool_max_bytes = _config.resolve_positive_int(
            spool_max_bytes, _config.LUMIQTRACE_SPOOL_MAX_BYTES, DEFAULT_SPOOL_MAX_BYTES
        )
        self._mapping_options = MappingOptions(
            environment=_config.resolve_optional_str(environment, _config.LUMIQTRACE_ENVIRONMENT),
            capture_content=_config.resolve_bool(capture_content, _config.LUMIQTRACE_CAPTURE_CONTENT, False),
            redact_keys=_config.resolve_keys(redact_keys, _config.LUMIQTRACE_REDACT_KEYS),
            ai_only=_config.resolve_bool(ai_only, _config.LUMIQTRACE_AI_ONLY, False),
            sdk_version=__version__,
        )
        self._sampling = shared_sampling_state()
        self._metrics = ExporterMetrics(meter_provider)
        self._shutdown = False
        self._build_runtime()
        if self._api_key is None:
            _logger.warning(
                "LUMIQTRACE_API_KEY is not set: the LumiqTrace exporter is inert and will send nothing. "
                "Set the variable or pass api_key= to export spans."
            )
        # Fork safety: gunicorn --preload and multiprocessing fork after the exporter exists. A weak method keeps the
        # hook from holding the exporter alive.
        if hasattr(os, "register_at_fork"):
            weak = weakref.WeakMethod(self._after_fork_in_child)

            def _hook() -> None:
                method = weak()
                if method is not None:
                    method()

            os.register_at_fork(after_in_child=_hook)

    def _build_runtime(self) -> None:
        """Everything that must be new in a forked child: locks, sessions, buffer, counters, waits."""
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._stats = DeliveryStats()
        self._throttled = ThrottledLog(clock=self._clock)
        self._state = DeliveryState(clock=self._clock, wall_clock=self._wall_clock)
        self._buffer = RetryBuffer(max_events=self._buffer_max_events, max_bytes=self._buffer_max_bytes)
        self._poller: RemoteConfigPoller | None = None
        self._deliverer: Deliverer | None = None
        self._started_traces = RecentTraces(_STARTED_TRACES_MAX)
        self._linger_timer: threading.Timer | None = None
        self._spool: DiskSpool | None = None
        if self._api_key is None or self._base_url is None:
            return
        if self._spool_dir is not None:
            # Partitioned by endpoint and key, so spooled events never reach another project (and the key is not
            # written to disk).
            self._spool = DiskSpool.open(
                self._spool_dir, max_bytes=self._spool_max_bytes, partition=f"{self._base_url}\n{self._api_key}"
            )
        gzip_body = self._compression == _config.COMPRESSION_GZIP
        transport = IngestTransport(base_url=self._base_url, api_key=self._api_key, gzip_body=gzip_body)
        self._poller = RemoteConfigPoller(
            base_url=self._base_url,
            api_key=self._api_key,
            timeout_s=min(self._timeout, _config.DEFAULT_MAX_REQUEST_TIMEOUT_S),
            on_update=self._apply_remote_config,
            user_agent=USER_AGENT,
            transport=transport,
        )
        self._deliverer = Deliverer(
            transport=transport,
            gzip_body=gzip_body,
            policy=self._policy,
            stats=self._stats,
            state=self._state,
            stop_event=self._stop_event,
            clock=self._clock,
            throttled=self._throttled,
            on_quota_episode=self._ratchet_rate,
            on_cv=self._poller.observe_cv,
        )

    def _after_fork_in_child(self) -> None:
        # The parent's buffered events stay the parent's to send: a child that resent them would duplicate work
        # (dedup saves the data, not the requests).
        self._build_runtime()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self._base_url!r}, api_key={_config.mask_key(self._api_key)!r}, "
            f"timeout={self._timeout!r}, compression={self._compression!r})"
        )

    # -- SpanExporter -------------------------------------------------------------------------------------------

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            return self._export(spans)
        except Exception:  # never raise into the batch processor (its traceback would hide the cause)
            _logger.exception("Unexpected error in the LumiqTrace exporter; %d spans dropped.", len(spans))
            return SpanExportResult.FAILURE

    def _export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            self._stats.add_dropped(DROP_AFTER_SHUTDOWN, len(spans))
            self._throttled.log(logging.WARNING, "after_shutdown", "Export called after shutdown; spans dropped.")
            return SpanExportResult.FAILURE
        if self._deliverer is None:
            self._stats.add_dropped(DROP_NO_API_KEY if self._api_key is None else DROP_BAD_BASE_URL, len(spans))
            return SpanExportResult.FAILURE
        deadline = self._clock() + self._timeout
        if self._sampling.disabled:
            # A remote disable_tracing rule is a circuit breaker: nothing is sent or kept while it holds.
            self._stats.add_dropped(DROP_DISABLED, len(spans))
            return SpanExportResult.SUCCESS
        with self._metrics.operation(len(spans)) as result:
            lines, lost = self._encode(spans)
            # Under sustained load an undersized last request is carried into the next export for up to `linger`
            # seconds, so the per-key rate limit buys the most events. A full processor batch is the sign of
            # sustained load: the batch processor exports full batches only while more spans are queued, and its
            # last (smaller) batch of a force_flush is never held, so a flush still sends everything.
            hold_tail = self._linger > 0 and len(spans) >= LINGER_MIN_BATCH
            outcome = self._send(self._take_pending(lines), deadline, hold_tail=hold_tail)
            result.failed = lost + outcome
        if outcome == 0:
            self._drain_spool(deadline)
        return SpanExportResult.SUCCESS if lost == 0 and outcome == 0 else SpanExportResult.FAILURE

    def _encode(self, spans: Sequence[ReadableSpan]) -> tuple[list[bytes], int]:
        """Filter, map and encode; returns the encoded lines and how many spans were lost on the way."""
        sampling = self._sampling.snapshot()
        started = self._started_traces
        options = self._mapping_options
        if sampling.bound > _TRACE_ID_LOW_MASK and not sampling.disabled:
            selected = [span for span in spans if span.context is not None]  # rate 1: every trace is kept
        else:
            keeps = sampling.keeps
            # Above the current threshold and nothing of it sent yet: the whole trace goes. A trace of which some
            # spans were already sent at a higher rate is finished rather than split.
            selected = [
                span
                for span in spans
                if span.context is not None and (keeps(span.context.trace_id) or span.context.trace_id in started)
            ]
        started.remember(span.context.trace_id for span in selected if span.context is not None)
        filtered = len(spans) - len(selected)
        events: list[dict[str, Any]] = []
        mapping_errors = 0
        for span in selected:
            try:
                event = map_span(span, options)
            except Exception as exc:
                mapping_errors += 1
                self._stats.add_dropped(DROP_MAPPING, 1, f"{type(exc).__name__}: {exc}")
                self._throttled.log(
                    logging.WARNING, DROP_MAPPING, "Span %r could not be mapped and was dropped: %r", span.name, exc
                )
                continue
            if event is None:
                filtered += 1
            else:
                events.append(event)
        if filtered:
            self._stats.add_filtered(filtered)
        lines, errors = encode_events(events, from_mapping=True)
        if errors:
            self._stats.add_dropped(DROP_ENCODING, len(errors), errors[-1])
            self._throttled.log(
                logging.WARNING,
                DROP_ENCODING,
                "%d events could not be encoded and were dropped: %s",
                len(errors),
                errors[-1],
            )
        return lines, mapping_errors + len(errors)

    def _send(self, lines: list[bytes], deadline: float, *, hold_tail: bool = False) -> int:
        """Deliver; keep the retryable rest in the buffer. Returns how many events failed or wait for a retry."""
        if not lines:
            return 0
        assert self._deliverer is not None
        result = self._deliverer.deliver(lines, deadline, hold_tail=hold_tail)
        if result.held:
            self._keep(result.held)
            self._start_linger_timer()
        if result.kept:
            self._keep(result.kept, front=True)
        return len(result.kept) + result.dropped

    def _take_pending(self, lines: list[bytes]) -> list[bytes]:
        """Buffered events first, oldest first, then ``lines``: at most ``MAX_PENDING_PER_CALL`` of them.

        During a long outage the buffer is large and every attempt fails at its first request; taking a bounded
        head keeps each call's work small and the order first-in, first-out.
        """
        if len(self._buffer) and len(self._buffer) + len(lines) > MAX_PENDING_PER_CALL:
            self._keep(lines)
            return self._buffer.drain(MAX_PENDING_PER_CALL)
        return self._buffer.drain() + lines

    def _keep(self, lines: list[bytes], *, front: bool = False) -> None:
        """Buffer lines for a later attempt; what the bound evicts goes to the spool, else is dropped and counted."""
        evicted = self._buffer.add(lines, front=front)
        if not evicted:
            return
        if self._spool is not None and self._spool.write(evicted):
            self._stats.add_spooled(len(evicted))
            return
        self._stats.add_dropped(DROP_BUFFER_FULL, len(evicted))
        self._throttled.log(
            logging.WARNING,
            DROP_BUFFER_FULL,
            "LumiqTrace retry buffer full (%d events / %d bytes); dropped the %d oldest events.",
            self._buffer.max_events,
            self._buffer.max_bytes,
            len(evicted),
        )

    def _drain_spool(self, deadline: float) -> None:
        """Send one batch of events spooled by an earlier process (or an overflow), oldest first.

        One batch per call is the drain rate limit, and it happens only when this call's own events went out and
        no back-pressure holds, so a recovering server is not flooded with a backlog (Azure Monitor's lesson).
        """
        spool, deliverer = self._spool, self._deliverer
        if spool is None or deliverer is None or not self._state.is_clear() or self._clock() >= deadline:
            return
        batch = spool.claim(SPOOL_DRAIN_BATCH)
        if batch is None:
            return
        result = deliverer.deliver(batch.lines, deadline)
        if result.kept:
            spool.release(batch)  # resending the delivered part later is safe: event ids deduplicate
        else:
            spool.ack(batch)
            self._stats.add_unspooled(result.delivered)

    def _start_linger_timer(self) -> None:
        """Bound the linger: if no export comes to pick the tail up, a timer sends it."""
        with self._lock:
            if self._linger_timer is not None and self._linger_timer.is_alive():
                return
            timer = threading.Timer(self._linger, self._flush_held_tail)
            timer.daemon = True
            timer.name = "LumiqTraceLinger"
            self._linger_timer = timer
        timer.start()

    def _flush_held_tail(self) -> None:
        try:
            if self._deliverer is not None and not self._shutdown and len(self._buffer):
                self._send(self._buffer.drain(), self._clock() + self._timeout)
        except Exception:
            _logger.exception("Unexpected error while sending held events.")

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Send everything buffered now, within ``timeout_millis``. True when nothing is left waiting."""
        try:
            if self._deliverer is None or self._shutdown:
                return not self._shutdown
            deadline = self._clock() + max(0, timeout_millis) / 1000.0
            while len(self._buffer) and self._clock() < deadline:
                before = len(self._buffer)
                self._send(self._buffer.drain(MAX_PENDING_PER_CALL), deadline)
                if len(self._buffer) >= before:  # retryable failure: the rest waits for the next call
                    break
            if len(self._buffer) == 0:
                self._drain_spool(deadline)
            return len(self._buffer) == 0
        except Exception:
            _logger.exception("Unexpected error while flushing the LumiqTrace exporter.")
            return False

    def shutdown(self, timeout_millis: int = 30000) -> None:
        """Flush what is buffered within ``timeout_millis`` (one attempt each, no waits), then stop for good."""
        if self._shutdown:
            _logger.warning("LumiqTrace exporter shutdown called more than once; ignoring.")
            return
        self._shutdown = True
        # Cut every back-off and Retry-After wait short, in this thread and in concurrent export calls.
        self._stop_event.set()
        timer = self._linger_timer
        if timer is not None:
            timer.cancel()
        try:
            if self._deliverer is not None:
                deadline = self._clock() + max(0, min(timeout_millis / 1000.0, self._timeout))
                kept = self._deliverer.deliver(self._buffer.drain(), deadline).kept
                if kept and self._spool is not None and self._spool.write(kept):
                    self._stats.add_spooled(len(kept))
                    _logger.info(
                        "LumiqTrace exporter shut down with %d events undelivered; spooled to %s for the next start.",
                        len(kept),
                        self._spool.directory,
                    )
                elif kept:
                    self._stats.add_dropped(DROP_SHUTDOWN, len(kept))
                    _logger.warning("LumiqTrace exporter shut down with %d events undelivered.", len(kept))
                self._deliverer.transport.close()
            if self._poller is not None:
                self._poller.close()
        except Exception:
            _logger.exception("Unexpected error while shutting down the LumiqTrace exporter.")

    # -- accounting and control ----------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """What happened to every span handed to this exporter.

        ``delivered``: events accepted by LumiqTrace. ``dropped``: events given up, by reason (``bad_request``,
        ``unauthorized``, ``forbidden``, ``quota``, ``buffer_full``, ``shutdown``, ``mapping_error``, ...).
        ``filtered``: spans left out on purpose (sampling rate, ``ai_only``). ``buffered``: events waiting for a
        retry in memory. ``spooled``: events written to the disk spool; ``unspooled``: spooled events delivered;
        ``spool_pending``: events waiting in the spool directory. ``requests`` and ``retries``: HTTP requests
        made. ``sample_rate``: the current shared rate.
        """
        snapshot = self._stats.snapshot()
        snapshot["buffered"] = len(self._buffer)
        snapshot["buffered_bytes"] = self._buffer.size_bytes
        snapshot["sample_rate"] = self._sampling.rate
        snapshot["spool_pending"] = self._spool.pending_events() if self._spool is not None else 0
        return snapshot

    def _ratchet_rate(self) -> None:
        old = self._sampling.rate
        new = self._sampling.ratchet_down(factor=self._policy.quota_rate_factor, floor=self._policy.quota_rate_floor)
        _logger.warning(
            "LumiqTrace monthly quota exceeded: sampling rate lowered from %g to %g. It stays there until a restart, "
            "an explicit LumiqTraceSampler rate, or a remote sample_rate rule.",
            old,
            new,
        )

    def _apply_remote_config(self, update: ConfigUpdate) -> None:
        if update.sample_rate is not None:
            self._sampling.set_rate(update.sample_rate)
        if update.disable_tracing is not None:
            self._sampling.set_disabled(update.disable_tracing)
        if update.pii_redact_keys:
            options = self._mapping_options
            self._mapping_options = dataclasses.replace(
                options, redact_keys=options.redact_keys | frozenset(update.pii_redact_keys)
            )
        if update.log_level:
            level = logging.getLevelName(update.log_level.upper())
            if isinstance(level, int):
                logging.getLogger(_PACKAGE_LOGGER).setLevel(level)
        _logger.debug("Applied LumiqTrace remote config cv=%s", update.cv)

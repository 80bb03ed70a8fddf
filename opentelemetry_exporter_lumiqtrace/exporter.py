# SPDX-License-Identifier: Apache-2.0
"""``LumiqTraceSpanExporter``: wires filter -> map -> encode -> deliver -> keep. Each step is its own module."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from opentelemetry_exporter_lumiqtrace import _config, _fork
from opentelemetry_exporter_lumiqtrace._metrics import ExporterMetrics
from opentelemetry_exporter_lumiqtrace.backlog import LINGER_MIN_BATCH, Backlog, RetryBuffer
from opentelemetry_exporter_lumiqtrace.count_once import CountOnce
from opentelemetry_exporter_lumiqtrace.delivery import (
    DROP_AFTER_SHUTDOWN,
    DROP_DISABLED,
    DROP_ENCODING,
    DROP_MAPPING,
    DROP_NO_API_KEY,
    Deliverer,
    DeliveryState,
    DeliveryStats,
    RetryPolicy,
    ThrottledLog,
)
from opentelemetry_exporter_lumiqtrace.encoding import EncodingError, event_encoder
from opentelemetry_exporter_lumiqtrace.mapping import Mapper, MappingOptions, pricing, trace_id_hex
from opentelemetry_exporter_lumiqtrace.remote_config import ConfigUpdate, RemoteConfigPoller
from opentelemetry_exporter_lumiqtrace.sampling import shared_sampling_state
from opentelemetry_exporter_lumiqtrace.spool import DiskSpool
from opentelemetry_exporter_lumiqtrace.transport import USER_AGENT, IngestTransport
from opentelemetry_exporter_lumiqtrace.version import __version__

_logger = logging.getLogger(__name__)
_PACKAGE_LOGGER = "opentelemetry_exporter_lumiqtrace"

# Drop reason while the configured base URL is unusable (the exporter is inert, as without a key).
DROP_BAD_BASE_URL = "bad_base_url"
# How many trace ids are remembered as "partly sent": enough for the traces in flight in a busy process.
_STARTED_TRACES_MAX = 65_536


# What the mapping writes for a span without a context (and for the invalid trace id 0).
_NO_TRACE_KEY = trace_id_hex(0)


class RecentTraces:
    """A bounded, insertion-ordered set of trace ids (oldest forgotten first), as the events carry them (hex).

    When the sampling rate drops mid-trace, spans of traces that already had spans sent keep going, so a trace
    is sent whole or dropped whole, never split. A dict is the cheapest ordered set.
    """

    def __init__(self, max_size: int) -> None:
        self._max = max_size
        self._ids: dict[str, None] = {}

    def remember(self, trace_ids: Iterable[str]) -> None:
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
        config_poll_interval: float | None = None,
        allow_insecure_http: bool | None = None,
        retry_policy: RetryPolicy | None = None,
        meter_provider: Any | None = None,
        _clock: Callable[[], float] | None = None,
        _wall_clock: Callable[[], float] | None = None,
    ) -> None:
        self._api_key = _config.resolve_api_key(api_key)
        self._base_url = _config.resolve_base_url(
            base_url, allow_insecure_http=_config.ALLOW_INSECURE_HTTP.resolve(allow_insecure_http)
        )
        self._timeout = _config.resolve_timeout(timeout)
        self._compression = _config.resolve_compression(compression)
        self._clock = _clock or time.monotonic
        self._wall_clock = _wall_clock or time.time

        base_policy = retry_policy or RetryPolicy()
        self._policy = dataclasses.replace(
            base_policy,
            auth_probe_interval_s=_config.AUTH_PROBE_INTERVAL.resolve(
                auth_probe_interval, default=base_policy.auth_probe_interval_s
            ),
            quota_probe_interval_s=_config.QUOTA_PROBE_INTERVAL.resolve(
                quota_probe_interval, default=base_policy.quota_probe_interval_s
            ),
            quota_rate_factor=_config.QUOTA_RATE_FACTOR.resolve(
                quota_rate_factor, default=base_policy.quota_rate_factor
            ),
            quota_rate_floor=_config.QUOTA_RATE_FLOOR.resolve(quota_rate_floor, default=base_policy.quota_rate_floor),
        )
        self._buffer_max_events = _config.BUFFER_MAX_EVENTS.resolve(buffer_max_events)
        self._buffer_max_bytes = _config.BUFFER_MAX_BYTES.resolve(buffer_max_bytes)
        self._linger = _config.LINGER.resolve(linger)
        spool_path = spool_dir if spool_dir is not None else os.environ.get(_config.SPOOL_DIR.variable, "").strip()
        self._spool_dir = os.fspath(spool_path) if spool_path else None
        self._spool_max_bytes = _config.SPOOL_MAX_BYTES.resolve(spool_max_bytes)
        self._config_poll_interval = _config.CONFIG_POLL_INTERVAL.resolve(config_poll_interval)
        # Remote pii_redact_keys come on top of these, replaced (never accumulated) by each config snapshot.
        self._local_redact_keys = _config.resolve_keys(redact_keys, _config.REDACT_KEYS.variable)
        self._mapping_options = MappingOptions(
            environment=_config.resolve_optional_str(environment, _config.ENVIRONMENT.variable),
            capture_content=_config.CAPTURE_CONTENT.resolve(capture_content),
            redact_keys=self._local_redact_keys,
            ai_only=_config.AI_ONLY.resolve(ai_only),
            sdk_version=__version__,
        )
        # Owns the mapping's memos (bounded); one per exporter.
        self._mapper = Mapper()
        # genai-prices loads in the background now, so that no export pays for its import (issue 11).
        pricing.start_background_import(deadline_s=self._timeout)
        self._sampling = shared_sampling_state()
        self._metrics = ExporterMetrics(meter_provider)
        self._shutdown = False
        self._build_runtime()
        if self._api_key is None:
            _logger.warning(
                "LUMIQTRACE_API_KEY is not set: the LumiqTrace exporter is inert and will send nothing. "
                "Set the variable or pass api_key= to export spans."
            )
        # Fork safety: gunicorn --preload and multiprocessing fork after the exporter exists. The registry holds the
        # method weakly, so the hook does not keep the exporter alive.
        _fork.after_fork_in_child(self._after_fork_in_child)

    def _build_runtime(self) -> None:
        """Everything that must be new in a forked child: locks, sessions, buffer, counters, waits."""
        self._stop_event = threading.Event()
        # How deep this thread is inside the exporter: a signal handler that interrupted it there must not wait for
        # locks or calls the interrupted frames hold (they cannot move until the handler returns).
        self._calls = threading.local()
        self._exports_cond = threading.Condition(threading.Lock())
        self._exports_in_flight = 0
        self._stats = DeliveryStats()
        self._throttled = ThrottledLog(clock=self._clock)
        self._state = DeliveryState(clock=self._clock, wall_clock=self._wall_clock)
        self._buffer = RetryBuffer(max_events=self._buffer_max_events, max_bytes=self._buffer_max_bytes)
        self._poller: RemoteConfigPoller | None = None
        self._deliverer: Deliverer | None = None
        self._backlog: Backlog | None = None
        self._started_traces = RecentTraces(_STARTED_TRACES_MAX)
        self._count_once = CountOnce(
            max_tags=self._mapping_options.max_tags,
            max_tag_value_chars=self._mapping_options.max_tag_value_chars,
        )
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
            clock=self._clock,
            poll_interval_s=self._config_poll_interval,
            should_poll=self._sampling.sends_nothing,
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
            # The key's request budget is shared by every exporter of this process that sends with it.
            pacing_key=self._api_key,
        )
        self._backlog = Backlog(
            deliverer=self._deliverer,
            buffer=self._buffer,
            spool=self._spool,
            stats=self._stats,
            state=self._state,
            throttled=self._throttled,
            clock=self._clock,
            linger_s=self._linger,
            timeout_s=self._timeout,
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
        depth = self._enter()
        try:
            return self._export(spans)
        except Exception:  # never raise into the batch processor (its traceback would hide the cause)
            _logger.exception("Unexpected error in the LumiqTrace exporter; %d spans dropped.", len(spans))
            return SpanExportResult.FAILURE
        finally:
            self._calls.depth = depth

    def _enter(self) -> int:
        """Mark this thread as inside the exporter; returns the depth to restore on the way out."""
        depth: int = getattr(self._calls, "depth", 0)
        self._calls.depth = depth + 1
        return depth

    def _export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self._stats.add_handed(len(spans))
        if self._shutdown:
            self._stats.add_dropped(DROP_AFTER_SHUTDOWN, len(spans))
            self._throttled.log(logging.WARNING, "after_shutdown", "Export called after shutdown; spans dropped.")
            return SpanExportResult.FAILURE
        backlog = self._backlog
        if backlog is None:
            self._stats.add_dropped(DROP_NO_API_KEY if self._api_key is None else DROP_BAD_BASE_URL, len(spans))
            return SpanExportResult.FAILURE
        deadline = self._clock() + self._timeout
        if self._sampling.disabled:
            # A remote disable_tracing rule is a circuit breaker: nothing is sent or kept while it holds.
            self._stats.add_dropped(DROP_DISABLED, len(spans))
            return SpanExportResult.SUCCESS
        with self._exports_cond:
            self._exports_in_flight += 1
        try:
            with self._metrics.operation(len(spans)) as result:
                lines, lost = self._encode(spans)
                # Under sustained load an undersized last request is carried into the next export for up to
                # `linger` seconds, so the per-key rate limit buys the most events. A full processor batch is the
                # sign of sustained load: the batch processor exports full batches only while more spans are
                # queued, and its last (smaller) batch of a force_flush is never held, so a flush still sends
                # everything.
                hold_tail = self._linger > 0 and len(spans) >= LINGER_MIN_BATCH
                outcome = backlog.send(lines, deadline, hold_tail=hold_tail)
                result.failed = lost + outcome
        finally:
            with self._exports_cond:
                self._exports_in_flight -= 1
                self._exports_cond.notify_all()
        return SpanExportResult.SUCCESS if lost == 0 and outcome == 0 else SpanExportResult.FAILURE

    def _encode(self, spans: Sequence[ReadableSpan]) -> tuple[list[bytes], int]:
        """Filter, map and encode; returns the encoded lines and how many spans were lost on the way."""
        sampling = self._sampling.snapshot()
        started = self._started_traces
        if sampling.keeps_all:
            # Nothing to filter by trace: no span property is read before the mapping (which reads the context
            # anyway). A span without a context, which the filter below leaves out, is recognised by its event.
            selected = spans
        else:
            # Above the current threshold and nothing of it sent yet: the whole trace goes. A trace of which some
            # spans were already sent at a higher rate is finished, not split.
            keeps = sampling.keeps
            selected = []
            for span in spans:
                context = span.context
                if context is not None:
                    trace_id = context.trace_id
                    if keeps(trace_id) or trace_id_hex(trace_id) in started:
                        selected.append(span)
        # One loop per span: map, count once, encode. Each event is encoded as soon as it is mapped and freed then: it
        # is read again while still in the CPU's caches, and a batch's events never pile up for the garbage collector
        # to walk. A span that cannot be mapped, or whose event cannot be encoded, is dropped and counted, losing
        # nothing else. The trace of every span that gets past the filter is remembered as started, by the trace id
        # its event carries (read from the event: the span's context is a property call).
        options = self._mapping_options
        map_span = self._mapper.map_span
        observe = self._count_once.observe_mapped
        encode = event_encoder(from_mapping=True)
        lines: list[bytes] = []
        add_line = lines.append
        trace_ids: list[str] = []
        add_trace_id = trace_ids.append
        errors: list[str] = []
        filtered = len(spans) - len(selected)
        mapping_errors = 0
        for span in selected:
            try:
                event = map_span(span, options)
            except Exception as exc:
                context = span.context
                if context is None:
                    filtered += 1
                    continue
                add_trace_id(trace_id_hex(context.trace_id))
                mapping_errors += 1
                self._stats.add_dropped(DROP_MAPPING, 1, f"{type(exc).__name__}: {exc}")
                self._throttled.log(
                    logging.WARNING, DROP_MAPPING, "Span %r could not be mapped and was dropped: %r", span.name, exc
                )
                continue
            if event is None:
                filtered += 1
                context = span.context
                if context is not None:
                    add_trace_id(trace_id_hex(context.trace_id))
                continue
            trace_id = event["trace_id"]
            if trace_id == _NO_TRACE_KEY and span.context is None:
                filtered += 1
                continue
            add_trace_id(trace_id)
            observe(span, event)
            try:
                add_line(encode(event))
            except EncodingError as exc:
                errors.append(str(exc))
        started.remember(trace_ids)
        if filtered:
            self._stats.add_filtered(filtered)
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

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Send everything buffered now, within ``timeout_millis``. True when nothing is left waiting.

        Called from a signal handler that interrupted this thread inside the exporter, it returns False at once:
        the interrupted call holds the state a flush would wait for.
        """
        depth = self._enter()
        try:
            if depth or self._backlog is None or self._shutdown:
                return not depth and not self._shutdown
            return self._backlog.flush(self._clock() + max(0, timeout_millis) / 1000.0)
        except Exception:
            _logger.exception("Unexpected error while flushing the LumiqTrace exporter.")
            return False
        finally:
            self._calls.depth = depth

    def shutdown(self, timeout_millis: int = 30000) -> None:
        """Stop for good within ``timeout_millis``: wait for exports in flight, make one attempt (no waits) for what
        is buffered, and spool or count the rest, also what an export still in flight brings back later."""
        if self._shutdown:
            _logger.debug("LumiqTrace exporter shutdown called more than once; ignoring.")
            return
        self._shutdown = True
        # Cut every back-off and Retry-After wait short, in this thread and in concurrent export calls.
        self._stop_event.set()
        depth = self._enter()
        try:
            end = time.monotonic() + max(0.0, min(timeout_millis / 1000.0, self._timeout))
            if self._backlog is not None:
                if not depth:  # an export this thread is inside of cannot finish before we return
                    self._wait_for_exports(end)
                self._backlog.close(self._clock() + max(0.0, end - time.monotonic()))
                self._backlog.deliverer.close()
            if self._poller is not None:
                self._poller.close()
        except Exception:
            _logger.exception("Unexpected error while shutting down the LumiqTrace exporter.")
        finally:
            self._calls.depth = depth

    def _wait_for_exports(self, end: float) -> None:
        """Wait (until ``end``, monotonic) for export calls in flight: their events are then buffered, and close()
        sends or spools them with the rest."""
        if not self._exports_cond.acquire(timeout=max(0.0, end - time.monotonic())):
            return
        try:
            self._exports_cond.wait_for(lambda: self._exports_in_flight == 0, max(0.0, end - time.monotonic()))
        finally:
            self._exports_cond.release()

    # -- accounting and control ----------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """What happened to every span handed to this exporter.

        ``handed``: spans given to ``export()``. ``delivered``: events accepted by LumiqTrace. ``dropped``: events
        given up, by reason (``bad_request``, ``rejected``, ``unauthorized``, ``forbidden``, ``quota``,
        ``buffer_full``, ``shutdown``, ``mapping_error``, ...). ``filtered``: spans left out on purpose (sampling
        rate, ``ai_only``). ``buffered``: events waiting for a retry in memory. ``in_flight``: events an export,
        flush or shutdown call holds right now. ``spooled``: events written to the disk spool; ``unspooled``:
        spooled events that left it again (delivered or dropped); ``spool_pending``: events waiting in the spool
        directory; ``spool_dropped``: events the spool discarded from disk, by reason (``full``, ``expired``,
        ``corrupt``, ``oversized``; also in ``dropped`` as ``spool_<reason>``, and in ``unspooled``);
        ``spool_ignored_files``: files named like spool files that were not ours to read (``symlink``,
        ``not_regular``, ...). ``requests`` and ``retries``: HTTP requests made. ``sample_rate``: the current rate.

        At any moment no call is running: ``handed + unspooled == delivered + dropped_total + filtered + buffered
        + in_flight + spooled`` (with a spool of its own, ``spool_pending == spooled - unspooled``).
        """
        snapshot = self._stats.snapshot()
        snapshot["buffered"] = len(self._buffer)
        snapshot["buffered_bytes"] = self._buffer.size_bytes
        snapshot["sample_rate"] = self._sampling.rate
        spool = self._spool
        snapshot["spool_pending"] = spool.pending_events() if spool is not None else 0
        # The spool keeps its own loss counters (it drops on its own: size cap, expiry, corrupt files): they are
        # read here, so the accounting identity covers events that left the disk without being sent.
        spool_dropped = spool.dropped_by_reason() if spool is not None else {}
        for reason, count in spool_dropped.items():
            key = f"spool_{reason}"
            snapshot["dropped"][key] = snapshot["dropped"].get(key, 0) + count
            snapshot["dropped_total"] += count
            snapshot["unspooled"] += count
        snapshot["spool_dropped"] = spool_dropped
        snapshot["spool_ignored_files"] = spool.ignored_files() if spool is not None else {}
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
        if update.pii_redact_keys is not None:
            # A snapshot: the remote keys replace the previous remote keys, on top of the local ones.
            self._mapping_options = dataclasses.replace(
                self._mapping_options, redact_keys=self._local_redact_keys | frozenset(update.pii_redact_keys)
            )
        if update.log_level:
            level = logging.getLevelName(update.log_level.upper())
            if isinstance(level, int):
                logging.getLogger(_PACKAGE_LOGGER).setLevel(level)
        _logger.debug("Applied LumiqTrace remote config cv=%s", update.cv)

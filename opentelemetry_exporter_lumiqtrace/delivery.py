# SPDX-License-Identifier: Apache-2.0
"""Delivery: classify LumiqTrace's answers, retry within one deadline, and keep what could not be sent yet.

All back-pressure state (rate-limit hold, credentials circuit, quota pause) lives in one ``DeliveryState`` that
every sending path reads, in the manner of Sentry's transport: a 429 seen by one export call holds every other
call too, and a revoked key stops all sending, not just one retry loop.

Rules (design.md, "Delivery rules"):

=====================================  ======================================================================
answer                                 what happens
=====================================  ======================================================================
2xx                                    delivered; ``cv`` handed to the remote-config callback
429 "Monthly quota exceeded"           slice dropped (``quota``), sampling rate ratcheted once per episode,
                                       sending paused until a probe interval passes or a UTC month starts
429 (any other)                        all sending held for ``Retry-After`` (seconds or HTTP-date, clamped),
                                       then the same slice again
500/502/503/504, connection, timeout   jittered exponential back-off (``backoff``), within the deadline
400, 413                               slice split in halves until the bad event is alone; it is dropped
                                       (``bad_request`` / ``too_large``) with the server's message
401 / 403                              slice dropped (``unauthorized`` / ``forbidden``), circuit open: nothing
                                       is sent until a probe interval passes
anything else                          slice dropped (``unexpected_status``)
=====================================  ======================================================================
"""

from __future__ import annotations

import calendar
import datetime
import enum
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import backoff

from opentelemetry_exporter_lumiqtrace import _config
from opentelemetry_exporter_lumiqtrace.encoding import build_body, encode_slices
from opentelemetry_exporter_lumiqtrace.transport import Answer, IngestTransport, parse_retry_after

_logger = logging.getLogger(__name__)

QUOTA_MESSAGE = "monthly quota exceeded"
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})

# Drop reasons (the keys of ``DeliveryStats.dropped``).
DROP_BAD_REQUEST = "bad_request"
DROP_TOO_LARGE = "too_large"
DROP_UNAUTHORIZED = "unauthorized"
DROP_FORBIDDEN = "forbidden"
DROP_QUOTA = "quota"
DROP_BUFFER_FULL = "buffer_full"
DROP_SHUTDOWN = "shutdown"
DROP_UNEXPECTED = "unexpected_status"
DROP_MAPPING = "mapping_error"
DROP_ENCODING = "encoding_error"
DROP_NO_API_KEY = "no_api_key"
DROP_DISABLED = "disabled"
DROP_AFTER_SHUTDOWN = "after_shutdown"


@dataclass(frozen=True)
class RetryPolicy:
    """Numbers of the retry loop. Every wait also ends at the export deadline and on shutdown."""

    initial_backoff_s: float = _config.DEFAULT_INITIAL_BACKOFF_S
    max_backoff_s: float = _config.DEFAULT_MAX_BACKOFF_S
    # A 429 without a usable Retry-After still gets a pause: retrying at once only burns the per-key limit.
    default_retry_after_s: float = _config.DEFAULT_RETRY_AFTER_S
    max_retry_after_s: float = _config.DEFAULT_MAX_RETRY_AFTER_S
    max_request_timeout_s: float = _config.DEFAULT_MAX_REQUEST_TIMEOUT_S
    max_events_per_request: int = _config.MAX_EVENTS_PER_REQUEST
    max_request_bytes: int = _config.DEFAULT_MAX_REQUEST_BYTES
    auth_probe_interval_s: float = _config.DEFAULT_AUTH_PROBE_INTERVAL_S
    quota_probe_interval_s: float = _config.DEFAULT_QUOTA_PROBE_INTERVAL_S
    quota_rate_factor: float = _config.DEFAULT_QUOTA_RATE_FACTOR
    quota_rate_floor: float = _config.DEFAULT_QUOTA_RATE_FLOOR

    def backoff_delays(self) -> Iterable[float]:
        """Exponential delays with jitter in [d/2, d]: never zero (a hammering retry), never above the cap."""
        gen = backoff.expo(base=2, factor=self.initial_backoff_s, max_value=self.max_backoff_s)
        next(gen)  # the backoff generators are primed with one next() before they yield delays
        for delay in gen:
            yield delay / 2 + backoff.full_jitter(delay / 2)


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    DROPPED = "dropped"
    RETRY_LATER = "retry_later"
    SPLIT = "split"  # neither delivered nor dropped yet: its halves were queued in front of the rest


class ThrottledLog:
    """At most one WARNING per reason per interval; the rest go to DEBUG so nothing is silently lost from logs."""

    def __init__(self, *, interval_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def log(self, level: int, reason: str, msg: str, *args: Any) -> None:
        now = self._clock()
        with self._lock:
            last = self._last.get(reason)
            loud = last is None or now - last >= self._interval_s
            if loud:
                self._last[reason] = now
        _logger.log(level if loud else logging.DEBUG, msg, *args)


class DeliveryStats:
    """Counters of what happened to every event handed to the exporter. Read with ``snapshot()``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.delivered = 0
        self.requests = 0
        self.retries = 0
        self.filtered = 0
        self.spooled = 0
        self.unspooled = 0
        self.dropped: dict[str, int] = {}
        self.last_error: dict[str, str] = {}

    def add_delivered(self, count: int) -> None:
        with self._lock:
            self.delivered += count

    def add_request(self, *, retry: bool) -> None:
        with self._lock:
            self.requests += 1
            if retry:
                self.retries += 1

    def add_spooled(self, count: int) -> None:
        with self._lock:
            self.spooled += count

    def add_unspooled(self, count: int) -> None:
        with self._lock:
            self.unspooled += count

    def add_filtered(self, count: int) -> None:
        with self._lock:
            self.filtered += count

    def add_dropped(self, reason: str, count: int, message: str | None = None) -> None:
        if count <= 0:
            return
        with self._lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + count
            if message:
                self.last_error[reason] = message

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "delivered": self.delivered,
                "dropped": dict(self.dropped),
                "dropped_total": sum(self.dropped.values()),
                "filtered": self.filtered,
                "spooled": self.spooled,
                "unspooled": self.unspooled,
                "requests": self.requests,
                "retries": self.retries,
                "last_error": dict(self.last_error),
            }


class RetryBuffer:
    """Encoded events waiting for another attempt, oldest first, bounded by count and bytes.

    When full, the OLDEST events go (counted as ``buffer_full``): recent data is worth more for live dashboards,
    and the oldest have had the most chances.
    """

    def __init__(self, *, max_events: int, max_bytes: int) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._lines: deque[bytes] = deque()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._lines)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def add(self, lines: Sequence[bytes], *, front: bool = False) -> list[bytes]:
        """Add lines (``front=True`` for lines older than everything buffered); returns the lines evicted."""
        evicted: list[bytes] = []
        with self._lock:
            if front:
                self._lines.extendleft(reversed(lines))
            else:
                self._lines.extend(lines)
            self._bytes += sum(len(line) for line in lines)
            while self._lines and (len(self._lines) > self.max_events or self._bytes > self.max_bytes):
                line = self._lines.popleft()
                self._bytes -= len(line)
                evicted.append(line)
        return evicted

    def drain(self, max_events: int | None = None) -> list[bytes]:
        """Take the oldest ``max_events`` lines (all by default) out of the buffer."""
        with self._lock:
            if max_events is None or max_events >= len(self._lines):
                lines = list(self._lines)
                self._lines.clear()
                self._bytes = 0
            else:
                lines = [self._lines.popleft() for _ in range(max_events)]
                self._bytes -= sum(len(line) for line in lines)
        return lines

    def clear(self) -> int:
        return len(self.drain())


def _seconds_to_next_utc_month(wall_now: float) -> float:
    now = datetime.datetime.fromtimestamp(wall_now, tz=datetime.timezone.utc)
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    start = calendar.timegm((year, month, 1, 0, 0, 0))
    return max(0.0, start - wall_now)


class DeliveryState:
    """Back-pressure state shared by every sending path of one exporter."""

    def __init__(self, *, clock: Callable[[], float], wall_clock: Callable[[], float]) -> None:
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self.hold_until = 0.0  # rate limit: no request before this (monotonic clock)
        self.auth_blocked_until: float | None = None
        self.auth_reason: str | None = None
        self.quota_paused_until: float | None = None
        self.quota_ratcheted = False  # one ratchet per quota episode
        self._probe_in_flight = False
        self._prober: int | None = None

    def hold(self, seconds: float) -> float:
        with self._lock:
            self.hold_until = max(self.hold_until, self._clock() + seconds)
            return self.hold_until

    def open_auth_circuit(self, reason: str, interval_s: float) -> None:
        with self._lock:
            self.auth_blocked_until = self._clock() + interval_s
            self.auth_reason = reason

    def pause_for_quota(self, interval_s: float) -> bool:
        """Start (or extend) a quota pause. Returns True when this starts a new episode (ratchet the rate once)."""
        until = self._clock() + min(interval_s, _seconds_to_next_utc_month(self._wall_clock()))
        with self._lock:
            self.quota_paused_until = until
            first = not self.quota_ratcheted
            self.quota_ratcheted = True
            return first

    def close_circuits(self) -> None:
        """A request succeeded: credentials and quota are fine again."""
        with self._lock:
            self.auth_blocked_until = None
            self.auth_reason = None
            self.quota_paused_until = None
            self.quota_ratcheted = False

    def is_clear(self) -> bool:
        """No back-pressure at all: no rate-limit hold, credentials and quota fine."""
        with self._lock:
            return (
                self.hold_until <= self._clock() and self.auth_blocked_until is None and self.quota_paused_until is None
            )

    def blocked_reason(self) -> str | None:
        """Why nothing may be sent now (``unauthorized``, ``forbidden``, ``quota``), or None (one probe when due)."""
        now = self._clock()
        with self._lock:
            if self.auth_blocked_until is not None:
                if now < self.auth_blocked_until or self._probe_in_flight:
                    return self.auth_reason or DROP_UNAUTHORIZED
            elif self.quota_paused_until is not None and (now < self.quota_paused_until or self._probe_in_flight):
                return DROP_QUOTA
            if self.auth_blocked_until is not None or self.quota_paused_until is not None:
                # This caller probes; others keep dropping until it is answered.
                self._probe_in_flight = True
                self._prober = threading.get_ident()
            return None

    def probe_done(self) -> None:
        with self._lock:
            if self._prober == threading.get_ident():
                self._probe_in_flight = False
                self._prober = None


@dataclass
class DeliveryResult:
    delivered: int = 0
    dropped: int = 0
    kept: list[bytes] = field(default_factory=list)
    held: list[bytes] = field(default_factory=list)


class Deliverer:
    """Sends encoded events in slices, applying the delivery rules, within a deadline."""

    def __init__(
        self,
        *,
        transport: IngestTransport,
        gzip_body: bool,
        policy: RetryPolicy,
        stats: DeliveryStats,
        state: DeliveryState,
        stop_event: threading.Event,
        clock: Callable[[], float],
        throttled: ThrottledLog,
        on_quota_episode: Callable[[], None],
        on_cv: Callable[[int], None],
    ) -> None:
        self.transport = transport
        self._gzip = gzip_body
        self.policy = policy
        self.stats = stats
        self.state = state
        self._stop = stop_event
        self._clock = clock
        self._throttled = throttled
        self._on_quota_episode = on_quota_episode
        self._on_cv = on_cv

    def slices(self, lines: Sequence[bytes]) -> list[list[bytes]]:
        return list(
            encode_slices(lines, max_events=self.policy.max_events_per_request, max_bytes=self.policy.max_request_bytes)
        )

    def deliver(self, lines: Sequence[bytes], deadline: float, *, hold_tail: bool = False) -> DeliveryResult:
        """Send ``lines`` oldest first, within ``deadline``. Unsent retryable lines come back in ``result.kept``.

        With ``hold_tail``, a last slice smaller than a full request is not sent but returned in ``result.held``.
        """
        result = DeliveryResult()
        pending: deque[list[bytes]] = deque(self.slices(lines))
        if hold_tail and len(pending) > 1 and len(pending[-1]) < self.policy.max_events_per_request:
            result.held = pending.pop()
        while pending:
            chunk = pending.popleft()
            blocked = self.state.blocked_reason()
            if blocked is not None:
                # Credentials or quota: what arrives meanwhile is dropped and counted, not buffered, so that a
                # revoked key or a spent quota cannot grow memory or hammer the API.
                count = len(chunk) + sum(len(c) for c in pending)
                self.stats.add_dropped(blocked, count)
                result.dropped += count
                self._throttled.log(
                    logging.WARNING,
                    f"blocked:{blocked}",
                    "LumiqTrace sending is paused (%s); dropped %d events.",
                    blocked,
                    count,
                )
                return result
            try:
                outcome = self._send_slice(chunk, pending, deadline)
            finally:
                self.state.probe_done()
            if outcome is Outcome.DELIVERED:
                result.delivered += len(chunk)
            elif outcome is Outcome.DROPPED:
                result.dropped += len(chunk)
            elif outcome is Outcome.RETRY_LATER:
                result.kept = [line for c in [chunk, *pending] for line in c]
                return result
        return result

    def _wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; False when shutdown cut the wait short."""
        if seconds <= 0:
            return not self._stop.is_set()
        return not self._stop.wait(seconds)

    def _send_slice(self, chunk: list[bytes], pending: deque[list[bytes]], deadline: float) -> Outcome:
        body = build_body(chunk, gzip_body=self._gzip)
        delays = iter(self.policy.backoff_delays())
        attempt = 0
        while True:
            now = self._clock()
            hold = self.state.hold_until - now
            if hold > 0:
                if now + hold > deadline or not self._wait(hold):
                    return Outcome.RETRY_LATER
                continue
            if self._stop.is_set() and attempt > 0:
                return Outcome.RETRY_LATER
            remaining = deadline - now
            if remaining <= 0:
                return Outcome.RETRY_LATER
            self.stats.add_request(retry=attempt > 0)
            answer = self.transport.post(body, timeout=min(remaining, self.policy.max_request_timeout_s))
            attempt += 1
            _logger.debug(
                "POST %s: %d events, attempt %d -> %s", self.transport.url, len(chunk), attempt, _describe(answer)
            )
            status = answer.status
            if status is not None and 200 <= status < 300:
                self._delivered(chunk, answer)
                return Outcome.DELIVERED
            if status == 429:
                if QUOTA_MESSAGE in answer.message.lower():
                    self._quota_exceeded(chunk, answer)
                    return Outcome.DROPPED
                retry_after = parse_retry_after(answer.headers.get("retry-after"))
                if retry_after is None:
                    retry_after = self.policy.default_retry_after_s
                retry_after = min(retry_after, self.policy.max_retry_after_s)
                self.state.hold(retry_after)
                self._throttled.log(
                    logging.WARNING,
                    "rate_limited",
                    "LumiqTrace rate limit reached; holding all sending for %.1f s (events are kept and retried).",
                    retry_after,
                )
                continue
            if status is None or status in TRANSIENT_STATUSES:
                delay = next(delays)
                if self._clock() + delay > deadline or not self._wait(delay):
                    self._throttled.log(
                        logging.WARNING,
                        "transient",
                        "LumiqTrace could not be reached before the export deadline (%s); %d events kept for a "
                        "later attempt.",
                        answer.message,
                        len(chunk) + sum(len(c) for c in pending),
                    )
                    return Outcome.RETRY_LATER
                continue
            if status in (400, 413):
                if len(chunk) > 1:
                    # Never resend the same bad request: halve it so the good events still go and the bad one
                    # ends alone. log2(100) rounds of splitting at most.
                    middle = len(chunk) // 2
                    pending.appendleft(chunk[middle:])
                    pending.appendleft(chunk[:middle])
                    return Outcome.SPLIT
                reason = DROP_BAD_REQUEST if status == 400 else DROP_TOO_LARGE
                self._drop(reason, chunk, answer, level=logging.WARNING)
                return Outcome.DROPPED
            if status in (401, 403):
                reason = DROP_UNAUTHORIZED if status == 401 else DROP_FORBIDDEN
                self.state.open_auth_circuit(reason, self.policy.auth_probe_interval_s)
                self._drop(reason, chunk, answer, level=logging.ERROR, hint=_AUTH_HINTS[status])
                return Outcome.DROPPED
            self._drop(DROP_UNEXPECTED, chunk, answer, level=logging.WARNING)
            return Outcome.DROPPED

    def _delivered(self, chunk: list[bytes], answer: Answer) -> None:
        self.stats.add_delivered(len(chunk))
        self.state.close_circuits()
        body = answer.body or {}
        cv = body.get("cv")
        if isinstance(cv, int) and not isinstance(cv, bool):
            try:
                self._on_cv(cv)
            except Exception:  # a remote-config problem must never turn a delivery into a failure
                _logger.debug("remote config callback failed", exc_info=True)

    def _quota_exceeded(self, chunk: list[bytes], answer: Answer) -> None:
        first = self.state.pause_for_quota(self.policy.quota_probe_interval_s)
        self._drop(
            DROP_QUOTA,
            chunk,
            answer,
            level=logging.WARNING,
            hint="the organisation's monthly LumiqTrace quota is spent; sending is paused and the sampling rate "
            "lowered. Upgrade the plan or wait for the monthly reset",
        )
        if first:
            try:
                self._on_quota_episode()
            except Exception:
                _logger.debug("quota callback failed", exc_info=True)

    def _drop(self, reason: str, chunk: list[bytes], answer: Answer, *, level: int, hint: str | None = None) -> None:
        message = answer.message
        self.stats.add_dropped(reason, len(chunk), message)
        self._throttled.log(
            level,
            reason,
            "LumiqTrace rejected %d events (HTTP %s: %s)%s%s.",
            len(chunk),
            answer.status,
            message,
            "; " if hint else "",
            hint or "",
        )


_AUTH_HINTS = {
    401: "the API key is missing, unknown or revoked: check LUMIQTRACE_API_KEY. Sending stops until a later probe",
    403: "the API key has no access to this project: check LUMIQTRACE_API_KEY. Sending stops until a later probe",
}


def _describe(answer: Answer) -> str:
    if answer.status is None:
        return answer.error or "no answer"
    return f"HTTP {answer.status} {answer.message if answer.status >= 300 else ''}".rstrip()

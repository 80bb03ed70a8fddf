# SPDX-License-Identifier: Apache-2.0
"""Delivery: classify LumiqTrace's answers, retry within one deadline, and keep what could not be sent yet.

All back-pressure state (rate-limit hold, credentials circuit, quota pause) lives in one ``DeliveryState`` that
every sending path reads, in the manner of Sentry's transport: a 429 seen by one export call holds every other
call too, and a revoked key stops all sending, not just one retry loop.

Rules (design.md, "Delivery rules"):

=====================================  ======================================================================
answer                                 what happens
=====================================  ======================================================================
2xx                                    delivered; ``cv`` handed to the remote-config callback; entries of a
                                       ``rejected`` list in the body are dropped (``rejected``) with the
                                       server's message, scrubbed of secrets
429 "Monthly quota exceeded"           (the ``error`` field equal to it, case and spaces aside) slice dropped
                                       (``quota``), sampling rate ratcheted once per episode, sending paused
                                       until a probe interval passes or a UTC month starts
429 (any other)                        all sending held for ``Retry-After`` (seconds or HTTP-date), at least
                                       1 s (also for 0, negative, NaN or a past date), at most 120 s; then
                                       the same slice again
500/502/503/504, connection, timeout   back-off from 1 s, doubling, up to 50 % more at random, within the
                                       deadline
3xx                                    not followed (the key would go along to wherever it points): the
                                       slice is kept for a later attempt, one warning names the Location
                                       host, since a redirect almost always means a wrong base URL
400, 413                               slice split in halves until the bad event is alone; it is dropped
                                       (``bad_request`` / ``too_large``) with the server's message
401 / 403                              slice dropped (``unauthorized`` / ``forbidden``), circuit open: nothing
                                       is sent until a probe interval passes
anything else                          slice dropped (``unexpected_status``)
=====================================  ======================================================================

Every request first takes a slot from the ``RequestPacer`` (at most 1,000 requests in any 60 s, LumiqTrace's
per-key limit); waiting for a slot counts against the deadline like any other wait.

The slices of one call go out over up to ``max_concurrent_requests`` connections at once, but only while the last
answer was a 2xx and the last request took at least ``parallel_min_latency_s`` (a distant API; on a near one a
second connection buys no time and costs thread hand-offs): the calling thread owns the retry loop (back-off, holds,
splitting); helper threads send one attempt per slice and hand anything but a final answer back to it. So a failing
server sees one retry loop per export call, as before, and a healthy distant one sees several requests in flight.
"""

from __future__ import annotations

import calendar
import datetime
import enum
import functools
import hashlib
import logging
import math
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import backoff

from opentelemetry_exporter_lumiqtrace import _config, _fork
from opentelemetry_exporter_lumiqtrace._workers import WorkerThreads
from opentelemetry_exporter_lumiqtrace.encoding import build_body, encode_slices
from opentelemetry_exporter_lumiqtrace.transport import (
    MAX_MESSAGE_CHARS,
    Answer,
    IngestTransport,
    parse_retry_after,
    scrub_text,
)

_logger = logging.getLogger(__name__)

QUOTA_MESSAGE = "monthly quota exceeded"
REDIRECT_STATUSES = range(300, 400)
# Longest server message kept in ``last_error`` and logged.
_MAX_MESSAGE_CHARS = MAX_MESSAGE_CHARS
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
DROP_REJECTED = "rejected"


@dataclass(frozen=True)
class RetryPolicy:
    """Numbers of the delivery loop. Every wait also ends at the export deadline and on shutdown."""

    # LumiqTrace's guidance for 5xx: back off starting at 1 second.
    initial_backoff_s: float = _config.DEFAULT_INITIAL_BACKOFF_S
    max_backoff_s: float = _config.DEFAULT_MAX_BACKOFF_S
    # A 429 without a usable Retry-After still gets a pause: retrying at once only burns the per-key limit.
    default_retry_after_s: float = _config.DEFAULT_RETRY_AFTER_S
    # The floor of every rate-limit hold: Retry-After 0, negative, NaN or in the past must not mean "hammer now".
    min_retry_after_s: float = _config.DEFAULT_MIN_RETRY_AFTER_S
    max_retry_after_s: float = _config.DEFAULT_MAX_RETRY_AFTER_S
    max_request_timeout_s: float = _config.DEFAULT_MAX_REQUEST_TIMEOUT_S
    max_events_per_request: int = _config.MAX_EVENTS_PER_REQUEST
    max_request_bytes: int = _config.DEFAULT_MAX_REQUEST_BYTES
    auth_probe_interval_s: float = _config.DEFAULT_AUTH_PROBE_INTERVAL_S
    quota_probe_interval_s: float = _config.DEFAULT_QUOTA_PROBE_INTERVAL_S
    quota_rate_factor: float = _config.DEFAULT_QUOTA_RATE_FACTOR
    quota_rate_floor: float = _config.DEFAULT_QUOTA_RATE_FLOOR
    # LumiqTrace's documented per-key limit: 1,000 requests a minute. Paced client-side, per key per process.
    max_requests_per_window: int = _config.DEFAULT_MAX_REQUESTS_PER_WINDOW
    pacing_window_s: float = _config.DEFAULT_PACING_WINDOW_S
    # Requests of one export call in flight at once (the calling thread plus helpers); 1 sends them in turn.
    max_concurrent_requests: int = _config.DEFAULT_MAX_CONCURRENT_REQUESTS
    # Slices go out in parallel only while the last request took at least this long (wall clock).
    parallel_min_latency_s: float = _config.DEFAULT_PARALLEL_MIN_LATENCY_S

    def backoff_delays(self) -> Iterable[float]:
        """Delays of 1, 2, 4, 8 s (from ``initial_backoff_s``, capped at ``max_backoff_s``), each up to 50 % longer
        at random so that many processes do not retry in step; never shorter than the schedule."""
        gen = backoff.expo(base=2, factor=self.initial_backoff_s, max_value=self.max_backoff_s)
        next(gen)  # the backoff generators are primed with one next() before they yield delays
        for delay in gen:
            yield delay + backoff.full_jitter(delay / 2)

    def retry_after_hold(self, header: str | None, *, now: float) -> float:
        """Seconds to hold all sending after a rate-limit 429 with this ``Retry-After`` header (``now``: wall clock)."""
        seconds = parse_retry_after(header, now=now)
        if seconds is None:
            # NaN is a number saying nothing: the floor. Absent or garbage: the default pause.
            seconds = self.min_retry_after_s if _is_nan(header) else self.default_retry_after_s
        return min(max(seconds, self.min_retry_after_s), self.max_retry_after_s)


def _is_nan(value: str | None) -> bool:
    try:
        return value is not None and math.isnan(float(value))
    except ValueError:
        return False


def is_quota_message(message: str) -> bool:
    """True when a 429's ``error`` is LumiqTrace's documented quota message (case and whitespace aside).

    An exact match, not a substring: a rate-limit message that happens to mention the quota must not drop events
    and ratchet the sampling rate down.
    """
    return " ".join(message.lower().split()) == QUOTA_MESSAGE


class RequestPacer:
    """At most ``limit`` request starts in any ``window_s`` seconds: a log of the last ``limit`` reserved slots.

    ``reserve`` hands out the earliest start time that keeps the bound (now, or later) and records it; the caller
    waits until then. Slots are handed out in order, so concurrent senders queue fairly.
    """

    def __init__(self, *, limit: int, window_s: float, clock: Callable[[], float]) -> None:
        self._limit = max(1, limit)
        self._window_s = window_s
        self._clock = clock
        self._slots: deque[float] = deque()
        self._lock = threading.Lock()

    def reserve(self, *, deadline: float) -> float | None:
        """The time (``clock``) at which the next request may start, or None when that is past ``deadline``."""
        now = self._clock()
        with self._lock:
            slot = now
            if len(self._slots) >= self._limit:
                slot = max(now, self._slots[0] + self._window_s)
            if slot > deadline:
                return None
            self._slots.append(slot)
            if len(self._slots) > self._limit:
                self._slots.popleft()
            return slot


_shared_pacers: dict[tuple[Any, ...], RequestPacer] = {}
_shared_pacers_lock = threading.Lock()


def shared_pacer(*, api_key: str, limit: int, window_s: float, clock: Callable[[], float]) -> RequestPacer:
    """The process-wide pacer of one API key: LumiqTrace's 1,000 requests a minute is per key, so every exporter of
    this process that sends with the key draws from the same budget. Keyed by a digest of the key (the key itself
    is not kept here), the bound and the clock (an injected test clock gets a pacer of its own)."""
    digest = hashlib.sha256(api_key.encode("utf-8", "surrogatepass")).hexdigest()
    registry_key = (digest, limit, window_s, clock)
    with _shared_pacers_lock:
        pacer = _shared_pacers.get(registry_key)
        if pacer is None:
            pacer = _shared_pacers[registry_key] = RequestPacer(limit=limit, window_s=window_s, clock=clock)
        return pacer


def _forget_pacers_after_fork() -> None:
    # A forked child is another process: its own budget, and the parent's lock may have been held at fork time.
    global _shared_pacers_lock
    _shared_pacers_lock = threading.Lock()
    _shared_pacers.clear()


_fork.after_fork_in_child(_forget_pacers_after_fork)


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    DROPPED = "dropped"
    RETRY_LATER = "retry_later"
    SPLIT = "split"  # neither delivered nor dropped yet: its halves go in front of the rest
    HAND_BACK = "hand_back"  # a helper thread's slice that needs the retry loop: the calling thread takes it over


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
    """Counters of what happened to every event handed to the exporter. Read with ``snapshot()``.

    Every move of events between states goes through one method, so at any quiet moment
    ``handed + unspooled == delivered + dropped + filtered + buffered + in_flight + spooled`` holds, where
    ``buffered`` is read from the retry buffer. ``in_flight`` counts the events an export, flush or shutdown call
    holds (taken from the application or the buffer, not settled yet); ``unspooled`` the events that left the disk
    spool for good (delivered or dropped after a drain).
    """

    def __init__(self) -> None:
        # Re-entrant: stats() may run in a signal handler that interrupted this thread while it held the lock.
        self._lock = threading.RLock()
        self.handed = 0
        self.in_flight = 0
        self.delivered = 0
        self.requests = 0
        self.retries = 0
        self.filtered = 0
        self.spooled = 0
        self.unspooled = 0
        self.dropped: dict[str, int] = {}
        self.last_error: dict[str, str] = {}

    def add_handed(self, count: int) -> None:
        with self._lock:
            self.handed += count
            self.in_flight += count

    def add_delivered(self, count: int) -> None:
        with self._lock:
            self.delivered += count
            self.in_flight -= count

    def add_request(self, *, retry: bool) -> None:
        with self._lock:
            self.requests += 1
            if retry:
                self.retries += 1

    def add_spooled(self, count: int) -> None:
        """In-flight events written to the disk spool."""
        with self._lock:
            self.spooled += count
            self.in_flight -= count

    def add_unspooled(self, count: int) -> None:
        """Events read back from the spool for a drain (in flight until delivered, dropped or returned)."""
        with self._lock:
            self.unspooled += count
            self.in_flight += count

    def add_respooled(self, count: int) -> None:
        """Events of a drain that went back to the spool undelivered."""
        with self._lock:
            self.unspooled -= count
            self.in_flight -= count

    def add_buffered(self, count: int) -> None:
        """In-flight events put into the retry buffer (negative: taken out of it)."""
        with self._lock:
            self.in_flight -= count

    def add_filtered(self, count: int) -> None:
        with self._lock:
            self.filtered += count
            self.in_flight -= count

    def add_dropped(self, reason: str, count: int, message: str | None = None) -> None:
        if count <= 0:
            return
        with self._lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + count
            self.in_flight -= count
            if message:
                self.last_error[reason] = message

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "handed": self.handed,
                "in_flight": self.in_flight,
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
        # The last answer was a 2xx: only then do the slices of one call go out in parallel.
        self.healthy = False
        # Wall-clock seconds the last request took (answer or failure): parallel slices pay only on a slow link.
        self.last_latency_s = 0.0

    def wall_now(self) -> float:
        return self._wall_clock()

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
        if (
            self.auth_blocked_until is None
            and self.quota_paused_until is None
            and self.auth_reason is None
            and not self.quota_ratcheted
        ):
            # Nothing to close, after every 2xx of a healthy exporter: no lock. A circuit another thread opens
            # meanwhile stays open, as it would had this call taken the lock just before that thread did.
            return
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
        if self.auth_blocked_until is None and self.quota_paused_until is None:
            # No circuit open (before every request of a healthy exporter): no lock, as if it was taken just before
            # another thread opens one; that thread's answer is seen by the next request.
            return None
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
        if self._prober is None:  # no probe in flight: nothing to end (only the prober itself clears it)
            return
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


# How long past its deadline a call waits for its helper threads: each request is bounded by the deadline, so this
# is only slack for the transport to return.
_HELPER_GRACE_S = 1.0

_Slice = tuple[tuple[int, ...], list[bytes]]  # (order key, lines): halves of a split sort where their parent did


class _Run:
    """The slices of one ``deliver`` call, shared by the calling thread and its helper threads."""

    def __init__(self, slices: Sequence[list[bytes]]) -> None:
        # Sections that neither wait nor notify hold the condition's lock directly: a Condition's with-statement is
        # two Python calls more, and take() and settle() run for every request.
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.pending: deque[_Slice] = deque(((i,), chunk) for i, chunk in enumerate(slices))
        self.kept: list[_Slice] = []
        self.helpers = 0
        self.stopped = False  # a retryable failure or a closed circuit: no slice is started any more
        self.delivered = 0
        self.dropped = 0

    def take(self, *, wait_until: float | None, clock: Callable[[], float]) -> _Slice | None:
        """The next slice; with ``wait_until``, wait (while helpers run) for one they might hand back."""
        with self.lock:
            while True:
                if self.stopped:
                    return None
                if self.pending:
                    return self.pending.popleft()
                if wait_until is None or self.helpers == 0:
                    return None
                remaining = wait_until - clock()
                if remaining <= 0:
                    return None
                self.cond.wait(remaining)

    def put_front(self, *items: _Slice) -> None:
        with self.cond:
            self.pending.extendleft(reversed(items))
            self.cond.notify_all()

    def keep(self, item: _Slice) -> None:
        with self.cond:
            self.kept.append(item)
            self.stopped = True
            self.cond.notify_all()

    def take_rest(self) -> list[_Slice]:
        with self.cond:
            self.stopped = True
            rest = list(self.pending)
            self.pending.clear()
            self.cond.notify_all()
            return rest

    def settle(self, *, delivered: int = 0, dropped: int = 0) -> None:
        with self.lock:
            self.delivered += delivered
            self.dropped += dropped

    def helper_done(self) -> None:
        with self.cond:
            self.helpers -= 1
            self.cond.notify_all()

    def wait_helpers(self, timeout: float) -> None:
        if self.helpers == 0:  # only the calling thread starts helpers, and it is the one asking: none can start now
            return
        with self.cond:
            self.cond.wait_for(lambda: self.helpers == 0, max(0.0, timeout))

    def unsent(self) -> list[bytes]:
        """Kept and never-started slices, in their original order."""
        with self.lock:
            items = sorted([*self.kept, *self.pending], key=lambda item: item[0])
            self.kept = []
            self.pending.clear()
        return [line for _, chunk in items for line in chunk]


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
        pacing_key: str | None = None,
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
        self._pacer = (
            shared_pacer(
                api_key=pacing_key, limit=policy.max_requests_per_window, window_s=policy.pacing_window_s, clock=clock
            )
            if pacing_key is not None
            else RequestPacer(limit=policy.max_requests_per_window, window_s=policy.pacing_window_s, clock=clock)
        )
        # Helper threads of all calls together: the connections in flight stay bounded however many threads export.
        self._max_helpers = max(0, policy.max_concurrent_requests - 1)
        self._helper_slots = threading.BoundedSemaphore(max(1, self._max_helpers))
        # Reused between calls: a thread start per helper per call cost more CPU than the helper's request.
        self._helper_threads = WorkerThreads(max_idle=self._max_helpers, name="LumiqTraceSend")

    def close(self) -> None:
        """Let idle helper threads end and close the transport's connections (shutdown)."""
        self._helper_threads.dismiss_idle()
        self.transport.close()

    def slices(self, lines: Sequence[bytes]) -> list[list[bytes]]:
        return list(
            encode_slices(lines, max_events=self.policy.max_events_per_request, max_bytes=self.policy.max_request_bytes)
        )

    def deliver(self, lines: Sequence[bytes], deadline: float, *, hold_tail: bool = False) -> DeliveryResult:
        """Send ``lines`` oldest first, within ``deadline``. Unsent retryable lines come back in ``result.kept``.

        With ``hold_tail``, a last slice smaller than a full request is not sent but returned in ``result.held``.
        """
        result = DeliveryResult()
        slices = self.slices(lines)
        if hold_tail and len(slices) > 1 and len(slices[-1]) < self.policy.max_events_per_request:
            result.held = slices.pop()
        run = _Run(slices)
        try:
            while True:
                self._start_helpers(run, deadline)
                item = run.take(wait_until=deadline, clock=self._clock)
                if item is None:
                    break
                self._attempt(run, item, deadline, helper=False)
        finally:
            run.wait_helpers(deadline - self._clock() + _HELPER_GRACE_S)
        result.delivered, result.dropped = run.delivered, run.dropped
        result.kept = run.unsent()
        return result

    def _start_helpers(self, run: _Run, deadline: float) -> None:
        """Open more connections for this call while answers are 2xx, requests are slow and slices wait (at most the
        bound)."""
        state = self.state
        if self._max_helpers == 0 or not state.healthy or state.last_latency_s < self.policy.parallel_min_latency_s:
            return
        while True:
            with run.lock:
                wanted = not run.stopped and run.helpers < min(self._max_helpers, len(run.pending) - 1)
                if not wanted or not self._helper_slots.acquire(blocking=False):
                    return
                run.helpers += 1
            if not self._helper_threads.submit(functools.partial(self._helper, run, deadline)):
                # No more threads (interpreter shutting down): this call goes on alone.
                self._helper_slots.release()
                run.helper_done()
                return

    def _helper(self, run: _Run, deadline: float) -> None:
        try:
            while self.state.healthy:
                item = run.take(wait_until=None, clock=self._clock)
                if item is None:
                    break
                try:
                    outcome = self._attempt(run, item, deadline, helper=True)
                except Exception:
                    _logger.debug("helper send failed", exc_info=True)
                    outcome = Outcome.HAND_BACK
                if outcome is Outcome.HAND_BACK:
                    run.put_front(item)
                    break
        finally:
            self._helper_slots.release()
            run.helper_done()

    def _attempt(self, run: _Run, item: _Slice, deadline: float, *, helper: bool) -> Outcome:
        """Send one slice (the calling thread retries; a helper hands anything but a final answer back)."""
        key, chunk = item
        blocked = self.state.blocked_reason()
        if blocked is not None:
            if helper:
                return Outcome.HAND_BACK
            # Credentials or quota: what arrives meanwhile is dropped and counted, not buffered, so that a revoked
            # key or a spent quota cannot grow memory or hammer the API.
            count = len(chunk) + sum(len(c) for _, c in run.take_rest())
            self.stats.add_dropped(blocked, count)
            run.settle(dropped=count)
            self._throttled.log(
                logging.WARNING,
                f"blocked:{blocked}",
                "LumiqTrace sending is paused (%s); dropped %d events.",
                blocked,
                count,
            )
            return Outcome.DROPPED
        try:
            outcome, rejected = self._send_slice(chunk, deadline, helper=helper)
        finally:
            self.state.probe_done()
        if outcome is Outcome.DELIVERED:
            run.settle(delivered=len(chunk) - rejected, dropped=rejected)
        elif outcome is Outcome.DROPPED:
            run.settle(dropped=len(chunk))
        elif outcome is Outcome.SPLIT:
            # Never resend the same bad request: halve it so the good events still go and the bad one ends alone.
            # log2(100) rounds of splitting at most.
            middle = len(chunk) // 2
            run.put_front(((*key, 0), chunk[:middle]), ((*key, 1), chunk[middle:]))
        elif outcome is Outcome.RETRY_LATER:
            run.keep(item)
        return outcome

    def _wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; False when shutdown cut the wait short."""
        if seconds <= 0:
            return not self._stop.is_set()
        return not self._stop.wait(seconds)

    def _send_slice(self, chunk: list[bytes], deadline: float, *, helper: bool) -> tuple[Outcome, int]:
        """Send one slice until a final answer or the deadline. Returns the outcome and how many events a 2xx
        answer listed as rejected."""
        give_up = Outcome.HAND_BACK if helper else Outcome.RETRY_LATER
        body = build_body(chunk, gzip_body=self._gzip)
        delays: Iterator[float] | None = None  # made at the first transient failure: most slices never need one
        attempt = 0
        while True:
            now = self._clock()
            hold = self.state.hold_until - now
            if hold > 0:
                if helper or now + hold > deadline or not self._wait(hold):
                    return give_up, 0
                continue
            if attempt > 0 and self._stop.is_set():
                return give_up, 0
            slot = self._pacer.reserve(deadline=deadline)
            if slot is None:
                return give_up, 0
            now = self._clock()
            if slot > now:
                if not self._wait(slot - now):
                    return give_up, 0
                now = self._clock()
            remaining = deadline - now
            if remaining <= 0:
                return give_up, 0
            self.stats.add_request(retry=attempt > 0)
            answer = self.transport.post(body, timeout=min(remaining, self.policy.max_request_timeout_s))
            self.state.last_latency_s = self._clock() - now
            if answer.resent:  # a kept-alive connection was gone: the request went once more on a new one
                self.stats.add_request(retry=True)
            attempt += 1
            if _logger.isEnabledFor(logging.DEBUG):  # _describe is not free, and this runs for every request
                _logger.debug(
                    "POST %s: %d events, attempt %d -> %s", self.transport.url, len(chunk), attempt, _describe(answer)
                )
            status = answer.status
            if status is not None and 200 <= status < 300:
                self.state.healthy = True
                return Outcome.DELIVERED, self._delivered(chunk, answer)
            if status == 429:
                if is_quota_message(answer.message):
                    self._quota_exceeded(chunk, answer)
                    return Outcome.DROPPED, 0
                self.state.healthy = False
                retry_after = self.policy.retry_after_hold(answer.headers.get("retry-after"), now=self.state.wall_now())
                self.state.hold(retry_after)
                self._throttled.log(
                    logging.WARNING,
                    "rate_limited",
                    "LumiqTrace rate limit reached; holding all sending for %.1f s (events are kept and retried).",
                    retry_after,
                )
                continue
            if status is None or status in TRANSIENT_STATUSES:
                self.state.healthy = False
                if helper:
                    return give_up, 0
                if delays is None:
                    delays = iter(self.policy.backoff_delays())
                delay = next(delays)
                if self._clock() + delay > deadline or not self._wait(delay):
                    self._throttled.log(
                        logging.WARNING,
                        "transient",
                        "LumiqTrace could not be reached before the export deadline (%s); events kept for a later "
                        "attempt.",
                        _server_text(answer.message),
                    )
                    return give_up, 0
                continue
            if status in REDIRECT_STATUSES:
                self.state.healthy = False
                self._redirected(answer, len(chunk))
                return give_up, 0
            if status in (400, 413):
                if len(chunk) > 1:
                    return Outcome.SPLIT, 0
                reason = DROP_BAD_REQUEST if status == 400 else DROP_TOO_LARGE
                self._drop(reason, chunk, answer, level=logging.WARNING)
                return Outcome.DROPPED, 0
            if status in (401, 403):
                reason = DROP_UNAUTHORIZED if status == 401 else DROP_FORBIDDEN
                self.state.open_auth_circuit(reason, self.policy.auth_probe_interval_s)
                self._drop(reason, chunk, answer, level=logging.ERROR, hint=_AUTH_HINTS[status])
                return Outcome.DROPPED, 0
            self._drop(DROP_UNEXPECTED, chunk, answer, level=logging.WARNING)
            return Outcome.DROPPED, 0

    def _delivered(self, chunk: list[bytes], answer: Answer) -> int:
        """Count a 2xx answer; returns how many of the slice's events it listed as ``rejected``."""
        body = answer.body or {}
        rejected = _rejected_count(body["rejected"], len(chunk)) if "rejected" in body else 0
        self.stats.add_delivered(len(chunk) - rejected)
        if rejected:
            message = _server_text(f"{rejected} of {len(chunk)} events rejected: {_rejected_reason(body['rejected'])}")
            self.stats.add_dropped(DROP_REJECTED, rejected, message)
            self._throttled.log(logging.WARNING, DROP_REJECTED, "LumiqTrace accepted a request but %s.", message)
        self.state.close_circuits()
        cv = body.get("cv")
        if isinstance(cv, int) and not isinstance(cv, bool):
            try:
                self._on_cv(cv)
            except Exception:  # a remote-config problem must never turn a delivery into a failure
                _logger.debug("remote config callback failed", exc_info=True)
        return rejected

    def _redirected(self, answer: Answer, count: int) -> None:
        location = answer.headers.get("location", "")
        try:
            host = urllib.parse.urlsplit(location).hostname or "(none)"
        except ValueError:
            host = "(unparsable)"
        self._throttled.log(
            logging.WARNING,
            "redirect",
            "LumiqTrace ingest answered HTTP %s redirecting to host %r; redirects are not followed (the API key would "
            "go along). Check LUMIQTRACE_BASE_URL. %d events kept for a later attempt.",
            answer.status,
            _server_text(host),
            count,
        )

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
        message = _server_text(answer.message)
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


def _server_text(text: str) -> str:
    """Server-provided text as it may be logged and kept: the transport's scrubbing (secrets, URL credentials),
    bounded to ``_MAX_MESSAGE_CHARS`` with its ellipsis."""
    return scrub_text(text, limit=_MAX_MESSAGE_CHARS - 3)


def _rejected_count(value: object, size: int) -> int:
    """Events a 2xx answer says it rejected: the length of a ``rejected`` list, or a count; at most the slice."""
    if isinstance(value, list):
        count = len(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        count = value
    else:
        return 0
    return max(0, min(count, size))


def _rejected_reason(value: object) -> str:
    """The first rejected entry's message (``error``, ``message`` or ``reason``), or the entry itself."""
    first = value[0] if isinstance(value, list) and value else value
    if isinstance(first, dict):
        for key in ("error", "message", "reason"):
            if isinstance(first.get(key), str):
                return str(first[key])
    return first if isinstance(first, str) else repr(first)[:_MAX_MESSAGE_CHARS]


_AUTH_HINTS = {
    401: "the API key is missing, unknown or revoked: check LUMIQTRACE_API_KEY. Sending stops until a later probe",
    403: "the API key has no access to this project: check LUMIQTRACE_API_KEY. Sending stops until a later probe",
}


def _describe(answer: Answer) -> str:
    if answer.status is None:
        return answer.error or "no answer"
    return f"HTTP {answer.status} {answer.message if answer.status >= 300 else ''}".rstrip()

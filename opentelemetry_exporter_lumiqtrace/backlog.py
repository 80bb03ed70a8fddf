# SPDX-License-Identifier: Apache-2.0
"""The backlog: encoded events not delivered yet, and the order and budgets in which they go out.

Three places hold them: the bounded in-memory retry buffer (retryable failures, and the undersized tail held back
by the linger), the optional disk spool (what the buffer evicts, and what shutdown could not send), and the export
call in flight. ``Backlog`` decides what goes first (buffered events, oldest first, then the new ones), what is
kept after a retryable failure, where evicted events go, when the spool is drained, and what shutdown does with the
rest. The wire rules (answers, retries, waits) are ``delivery.Deliverer``'s.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence

from opentelemetry_exporter_lumiqtrace.delivery import (
    DROP_BUFFER_FULL,
    DROP_SHUTDOWN,
    Deliverer,
    DeliveryState,
    DeliveryStats,
    ThrottledLog,
)
from opentelemetry_exporter_lumiqtrace.spool import DiskSpool

_logger = logging.getLogger(__name__)

# The SDK BatchSpanProcessor's default max_export_batch_size (OTEL_BSP_MAX_EXPORT_BATCH_SIZE).
LINGER_MIN_BATCH = 512
# Buffered events taken per export call at most (50 requests).
MAX_PENDING_PER_CALL = 5_000
# Spooled events sent per export call at most: the drain rate limit.
SPOOL_DRAIN_BATCH = 500


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
        added = sum(map(len, lines))  # outside the lock: the critical section stays short (no generator per line)
        with self._lock:
            if front:
                self._lines.extendleft(reversed(lines))
            else:
                self._lines.extend(lines)
            self._bytes += added
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
                return lines
            lines = [self._lines.popleft() for _ in range(max_events)]
            self._bytes -= sum(map(len, lines))
        return lines

    def clear(self) -> int:
        return len(self.drain())


class Backlog:
    """Sends encoded events after the buffered ones, and keeps, spools or counts what could not go.

    After ``close()`` (shutdown) nothing waits in memory any more: what an export still in flight brings back is
    spooled or counted as dropped (``shutdown``) at once, never left in a buffer nobody will send.
    """

    def __init__(
        self,
        *,
        deliverer: Deliverer,
        buffer: RetryBuffer,
        spool: DiskSpool | None,
        stats: DeliveryStats,
        state: DeliveryState,
        throttled: ThrottledLog,
        clock: Callable[[], float],
        linger_s: float,
        timeout_s: float,
    ) -> None:
        self.deliverer = deliverer
        self.buffer = buffer
        self.spool = spool
        self._stats = stats
        self._state = state
        self._throttled = throttled
        self._clock = clock
        self._linger_s = linger_s
        self._timeout_s = timeout_s
        # Orders "closed" against buffer moves, so no event enters the buffer after close() emptied it.
        self._seal_lock = threading.Lock()
        self._closed = False
        self._timer_lock = threading.Lock()
        self._linger_timer: threading.Timer | None = None

    def __len__(self) -> int:
        return len(self.buffer)

    def send(self, lines: list[bytes], deadline: float, *, hold_tail: bool = False) -> int:
        """Deliver buffered events, then ``lines``, within ``deadline``; the spool gets one drain batch when all
        went out. Returns how many events failed or wait for a retry.

        Under sustained load (``hold_tail``) an undersized last request is carried into the next export for up to
        the linger, so the per-key rate limit buys the most events.
        """
        failed = self._deliver(self._take_pending(lines), deadline, hold_tail=hold_tail)
        if failed == 0:
            self.drain_spool(deadline)
        return failed

    def _deliver(self, lines: list[bytes], deadline: float, *, hold_tail: bool = False) -> int:
        if not lines:
            return 0
        result = self.deliverer.deliver(lines, deadline, hold_tail=hold_tail)
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
        if len(self.buffer) and len(self.buffer) + len(lines) > MAX_PENDING_PER_CALL:
            self._keep(lines)
            return self._take_buffered(MAX_PENDING_PER_CALL)
        return self._take_buffered(None) + lines

    def _take_buffered(self, max_events: int | None) -> list[bytes]:
        lines = self.buffer.drain(max_events)
        self._stats.add_buffered(-len(lines))
        return lines

    def _keep(self, lines: list[bytes], *, front: bool = False) -> None:
        """Buffer lines for a later attempt; what the bound evicts goes to the spool, else is dropped and counted.

        After close() nothing is buffered: the lines go to the spool or are counted as dropped (``shutdown``).
        """
        with self._seal_lock:
            closed = self._closed
            if closed:
                evicted = lines
            else:
                evicted = self.buffer.add(lines, front=front)
                self._stats.add_buffered(len(lines) - len(evicted))
        if not evicted:
            return
        # A write that fails halfway leaves its first files on disk: those count as spooled, the rest is dropped.
        taken = self.spool.write(evicted) if self.spool is not None else 0
        if taken:
            self._stats.add_spooled(taken)
            if closed:
                _logger.info(
                    "LumiqTrace exporter shut down with %d events undelivered; spooled to %s for the next start.",
                    taken,
                    self.spool.directory if self.spool is not None else "",
                )
            evicted = evicted[taken:]
            if not evicted:
                return
        if closed:
            self._stats.add_dropped(DROP_SHUTDOWN, len(evicted))
            _logger.warning("LumiqTrace exporter shut down with %d events undelivered.", len(evicted))
            return
        self._stats.add_dropped(DROP_BUFFER_FULL, len(evicted))
        self._throttled.log(
            logging.WARNING,
            DROP_BUFFER_FULL,
            "LumiqTrace retry buffer full (%d events / %d bytes); dropped the %d oldest events.",
            self.buffer.max_events,
            self.buffer.max_bytes,
            len(evicted),
        )

    def drain_spool(self, deadline: float) -> None:
        """Send one batch of events spooled by an earlier process (or an overflow), oldest first.

        One batch per call is the drain rate limit, and it happens only when this call's own events went out and
        no back-pressure holds, so a recovering server is not flooded with a backlog (Azure Monitor's lesson).
        """
        spool = self.spool
        if spool is None or not self._state.is_clear() or self._clock() >= deadline:
            return
        batch = spool.claim(SPOOL_DRAIN_BATCH)
        if batch is None:
            return
        self._stats.add_unspooled(len(batch.lines))
        result = self.deliverer.deliver(batch.lines, deadline)
        if not result.kept:
            spool.ack(batch)
            return
        # Only what did not go is put back, in its age order: a flapping server never gets delivered events again.
        spool.release(batch, undelivered=result.kept)
        self._stats.add_respooled(len(result.kept))

    def flush(self, deadline: float) -> bool:
        """Send everything buffered now, within ``deadline``. True when nothing is left waiting."""
        while len(self.buffer) and self._clock() < deadline:
            before = len(self.buffer)
            self._deliver(self._take_buffered(MAX_PENDING_PER_CALL), deadline)
            if len(self.buffer) >= before:  # retryable failure: the rest waits for the next call
                break
        if len(self.buffer) == 0:
            self.drain_spool(deadline)
        return len(self.buffer) == 0

    def close(self, deadline: float) -> None:
        """Shutdown: one attempt for what is buffered, within ``deadline``; the rest is spooled or counted."""
        with self._seal_lock:
            self._closed = True
            lines = self.buffer.drain()
            self._stats.add_buffered(-len(lines))
        timer = self._linger_timer
        if timer is not None:
            timer.cancel()
        if lines:
            self._keep(self.deliverer.deliver(lines, deadline).kept)

    def _start_linger_timer(self) -> None:
        """Bound the linger: if no export comes to pick the tail up, a timer sends it."""
        with self._timer_lock:
            if self._closed or (self._linger_timer is not None and self._linger_timer.is_alive()):
                return
            timer = threading.Timer(self._linger_s, self._flush_held_tail)
            timer.daemon = True
            timer.name = "LumiqTraceLinger"
            self._linger_timer = timer
        timer.start()

    def _flush_held_tail(self) -> None:
        try:
            if not self._closed and len(self.buffer):
                self._deliver(self._take_buffered(None), self._clock() + self._timeout_s)
        except Exception:
            _logger.exception("Unexpected error while sending held events.")

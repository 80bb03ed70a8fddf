# SPDX-License-Identifier: Apache-2.0
"""Reusable daemon threads: the transport's new connections (DNS, connect, TLS) and delivery's concurrent senders
run in them.

Starting a thread costs far more CPU than handing a job to one that waits (on this project's benchmarks a start was
~100 us, a hand-off a few): an exporter that sends several requests per export call keeps a few threads waiting.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

_logger = logging.getLogger(__name__)

# An idle worker thread ends after this long; a busy exporter keeps its workers.
DEFAULT_IDLE_S = 30.0


class WorkerThreads:
    """Daemon threads that run jobs handed to them, reused while idle.

    Idle workers are reused; at most ``max_idle`` wait for work, each for ``idle_s`` at most. A job that outlives
    its caller's interest (a connect its caller gave up on at the deadline) finishes (or fails) on its own and the
    worker is then reused like any other. Not fork-safe by itself: its owner builds a new one in a forked child.
    """

    def __init__(self, *, max_idle: int, name: str, idle_s: float = DEFAULT_IDLE_S) -> None:
        self._max_idle = max_idle
        self._name = name
        self._idle_s = idle_s
        # Re-entrant: a signal handler that flushes may interrupt a thread inside a critical section.
        self._lock = threading.RLock()
        self._idle: list[_Worker] = []

    def submit(self, job: Callable[[], None]) -> bool:
        """Run ``job`` in a worker; False when no thread could be started (the caller then runs it itself)."""
        with self._lock:
            worker = self._idle.pop() if self._idle else None
        if worker is None:
            try:
                worker = _Worker(self, self._name)
            except RuntimeError:  # "can't start new thread", or interpreter shutdown
                return False
        worker.jobs.put(job)
        return True

    def dismiss_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.jobs.put(None)

    def _rest(self, worker: _Worker) -> bool:
        """A worker finished a job: True if it should wait for another."""
        with self._lock:
            if len(self._idle) >= self._max_idle:
                return False
            self._idle.append(worker)
            return True

    def _retire(self, worker: _Worker) -> bool:
        """A worker waited long enough: True if it may end (no caller took it meanwhile)."""
        with self._lock:
            if worker in self._idle:
                self._idle.remove(worker)
                return True
            return False


class _Worker:
    def __init__(self, workers: WorkerThreads, name: str) -> None:
        self.jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._workers = workers
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def _run(self) -> None:
        workers = self._workers
        while True:
            try:
                job = self.jobs.get(timeout=workers._idle_s)
            except queue.Empty:
                if workers._retire(self):
                    return
                continue  # a caller took this worker just now: its job is on the way
            if job is None:
                return
            try:
                job()
            except Exception:  # pragma: no cover - jobs never raise; a worker must survive anyway
                _logger.debug("LumiqTrace worker thread: unexpected error", exc_info=True)
            if not workers._rest(self):
                return

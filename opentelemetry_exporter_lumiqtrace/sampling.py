# SPDX-License-Identifier: Apache-2.0
"""Trace-consistent sampling with one process-wide, adjustable rate.

The sampler (in the ``TracerProvider``) and the exporter (which learns about quota answers and remote
config) share one :class:`SamplingState`, returned by :func:`shared_sampling_state`. The keep test is the
one of the SDK's ``TraceIdRatioBased``: a trace is kept iff the low 64 bits of its trace id are below
``round(rate * 2**64)``, so both sides, and every service using ``TraceIdRatioBased`` at the same rate,
agree on which traces survive.

Tracers cache their provider's sampler, so the rate cannot be changed by swapping samplers; the sampler
object reads the shared state on every decision instead. Readers take no lock: the state is one
immutable :class:`SamplingSnapshot` whose reference writers replace in a single assignment, so a reader
never sees a rate and a bound that disagree, with or without the GIL.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, get_current_span
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from opentelemetry_exporter_lumiqtrace import _config, _fork

_logger = logging.getLogger(__name__)

ENV_SAMPLE_RATE = _config.SAMPLE_RATE.variable
DEFAULT_SAMPLE_RATE = _config.SAMPLE_RATE.default
# Attribute set on sampled root spans so that counts can be extrapolated (1 / rate).
SAMPLE_RATE_ATTRIBUTE = "lumiqtrace.sample_rate"

_TRACE_ID_LIMIT = (1 << 64) - 1

__all__ = [
    "DEFAULT_SAMPLE_RATE",
    "ENV_SAMPLE_RATE",
    "SAMPLE_RATE_ATTRIBUTE",
    "LumiqTraceSampler",
    "SamplingSnapshot",
    "SamplingState",
    "bound_for_rate",
    "shared_sampling_state",
    "traces_sampler_factory",
]


def bound_for_rate(rate: float) -> int:
    """The exclusive upper bound on the low 64 trace-id bits, exactly as ``TraceIdRatioBased``."""
    return round(rate * (_TRACE_ID_LIMIT + 1))


def _coerce_rate(value: object) -> float:
    """Return ``value`` as a rate in [0, 1], or raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"sample rate must be a number between 0.0 and 1.0, got {value!r}")
    rate = float(value)
    # The chained comparison is False for NaN as well.
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"sample rate must be between 0.0 and 1.0, got {value!r}")
    return rate


def _parse_rate(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"not a number: {text!r}") from None
    return _coerce_rate(value)


_warned_env_values: set[str] = set()
_warned_env_lock = threading.Lock()


def _rate_from_env() -> float:
    raw = os.environ.get(ENV_SAMPLE_RATE)
    if raw is None or not raw.strip():
        return DEFAULT_SAMPLE_RATE
    try:
        return _parse_rate(raw)
    except ValueError:
        # One warning per distinct bad value: reset() re-reads the variable and must not repeat it.
        with _warned_env_lock:
            first = raw not in _warned_env_values
            _warned_env_values.add(raw)
        if first:
            _logger.warning(
                "Invalid %s=%r: expected a number between 0.0 and 1.0; using the default %s.",
                ENV_SAMPLE_RATE,
                raw,
                DEFAULT_SAMPLE_RATE,
            )
        return DEFAULT_SAMPLE_RATE


@dataclass(frozen=True)
class SamplingSnapshot:
    """One consistent view of the sampling state; never mutated, only replaced."""

    rate: float
    bound: int
    disabled: bool

    @classmethod
    def for_rate(cls, rate: float, *, disabled: bool = False) -> SamplingSnapshot:
        return cls(rate=rate, bound=bound_for_rate(rate), disabled=disabled)

    def keeps(self, trace_id: int) -> bool:
        return not self.disabled and (trace_id & _TRACE_ID_LIMIT) < self.bound

    @property
    def keeps_all(self) -> bool:
        """Every trace is kept (a rate of 1, not disabled): no trace id needs testing."""
        return not self.disabled and self.bound > _TRACE_ID_LIMIT

    @property
    def sends_nothing(self) -> bool:
        """Disabled, or a rate of 0: no trace is kept (so no ingest answer will bring a new config version)."""
        return self.disabled or self.bound == 0


# Every live state, so that a forked child gets fresh locks (a parent thread may have held one at fork time).
_live_states: weakref.WeakSet[SamplingState] = weakref.WeakSet()


class SamplingState:
    """The adjustable sampling rate and the remote kill switch.

    Reads (:attr:`rate`, :meth:`keeps`, :meth:`snapshot`) are lock-free; writes serialise on a lock.
    The rate never rises on its own: :meth:`ratchet_down` only lowers it, and only :meth:`set_rate`
    or :meth:`reset` (explicit calls, a restart, or a remote ``sample_rate`` rule) raise it.
    """

    def __init__(self, rate: float | None = None) -> None:
        self._lock = threading.Lock()
        initial = _rate_from_env() if rate is None else _coerce_rate(rate)
        self._snapshot = SamplingSnapshot.for_rate(initial)
        _live_states.add(self)

    def snapshot(self) -> SamplingSnapshot:
        """The current state; read it once and use it for a whole decision to stay consistent."""
        return self._snapshot

    @property
    def rate(self) -> float:
        return self._snapshot.rate

    @property
    def bound(self) -> int:
        return self._snapshot.bound

    @property
    def disabled(self) -> bool:
        return self._snapshot.disabled

    def keeps(self, trace_id: int) -> bool:
        """Whether a trace with this id is kept at the current rate (always False while disabled)."""
        return self._snapshot.keeps(trace_id)

    def sends_nothing(self) -> bool:
        """True while tracing is disabled or the rate is 0."""
        return self._snapshot.sends_nothing

    def set_rate(self, rate: float) -> None:
        """Set the rate explicitly (may raise it). Raises ``ValueError`` unless 0.0 <= rate <= 1.0."""
        new_rate = _coerce_rate(rate)
        with self._lock:
            current = self._snapshot
            self._snapshot = SamplingSnapshot.for_rate(new_rate, disabled=current.disabled)

    def ratchet_down(self, *, factor: float, floor: float) -> float:
        """Lower the rate to ``max(floor, rate * factor)`` and return the resulting rate.

        Never raises the rate: if it is already at or below ``floor`` it stays where it is.
        """
        factor = _coerce_rate(factor)
        floor = _coerce_rate(floor)
        with self._lock:
            current = self._snapshot
            new_rate = max(floor, current.rate * factor)
            if new_rate < current.rate:
                self._snapshot = SamplingSnapshot.for_rate(new_rate, disabled=current.disabled)
                _logger.info("Sampling rate lowered from %s to %s.", current.rate, new_rate)
            return self._snapshot.rate

    def set_disabled(self, flag: bool) -> None:
        with self._lock:
            current = self._snapshot
            if current.disabled != bool(flag):
                self._snapshot = SamplingSnapshot(rate=current.rate, bound=current.bound, disabled=bool(flag))

    def reset(self, rate: float | None = None) -> None:
        """Back to ``rate``, or to ``LUMIQTRACE_SAMPLE_RATE`` (default 1.0), and not disabled."""
        new_rate = _rate_from_env() if rate is None else _coerce_rate(rate)
        with self._lock:
            self._snapshot = SamplingSnapshot.for_rate(new_rate)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        snap = self._snapshot
        return f"SamplingState(rate={snap.rate}, disabled={snap.disabled})"


def _reinit_locks_after_fork() -> None:
    global _warned_env_lock, _shared_lock
    _warned_env_lock = threading.Lock()
    _shared_lock = threading.Lock()
    for state in list(_live_states):
        state._after_fork_in_child()


_fork.after_fork_in_child(_reinit_locks_after_fork)

_shared_state: SamplingState | None = None
_shared_lock = threading.Lock()


def shared_sampling_state() -> SamplingState:
    """The one process-wide :class:`SamplingState` shared by the sampler and the exporter.

    Created on first use, so ``LUMIQTRACE_SAMPLE_RATE`` is read when tracing is configured, not at import.
    """
    global _shared_state
    state = _shared_state
    if state is None:
        with _shared_lock:
            state = _shared_state
            if state is None:
                state = _shared_state = SamplingState()
    return state


class LumiqTraceSampler(Sampler):
    """Parent-based, trace-consistent sampler driven by the process-wide sampling state.

    A span with a valid parent (local or remote) follows the parent's sampled flag, so traces stay whole.
    A root span is kept iff the low 64 bits of its trace id are below ``rate * 2**64`` (the
    ``TraceIdRatioBased`` test), and carries the rate as the ``lumiqtrace.sample_rate`` attribute.
    While remote config disables tracing, every span is dropped.

    Args:
        rate: if given, sets the shared rate (an explicit call, so it may raise it); otherwise the
            current shared rate is used (``LUMIQTRACE_SAMPLE_RATE``, default 1.0).
        state: the state to follow; defaults to :func:`shared_sampling_state`. Mostly for tests.
    """

    def __init__(self, rate: float | None = None, *, state: SamplingState | None = None) -> None:
        self._state = shared_sampling_state() if state is None else state
        if rate is not None:
            self._state.set_rate(rate)

    @property
    def rate(self) -> float:
        return self._state.rate

    @property
    def state(self) -> SamplingState:
        return self._state

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        snap = self._state.snapshot()
        parent = get_current_span(parent_context).get_span_context()
        if parent is not None and parent.is_valid:
            parent_trace_state: TraceState | None = parent.trace_state
            sampled = parent.trace_flags.sampled and not snap.disabled
            if not sampled:
                return SamplingResult(Decision.DROP, None, parent_trace_state)
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, parent_trace_state)
        if not snap.keeps(trace_id):
            return SamplingResult(Decision.DROP, None, None)
        # The SDK uses the result's attributes as the span's initial attributes: keep the caller's.
        merged = dict(attributes) if attributes else {}
        merged[SAMPLE_RATE_ATTRIBUTE] = snap.rate
        return SamplingResult(Decision.RECORD_AND_SAMPLE, merged, None)

    def get_description(self) -> str:
        snap = self._state.snapshot()
        if snap.disabled:
            return f"LumiqTraceSampler{{rate={snap.rate},disabled}}"
        return f"LumiqTraceSampler{{rate={snap.rate}}}"


def traces_sampler_factory(arg: str | float | None = None) -> LumiqTraceSampler:
    """Entry point for ``OTEL_TRACES_SAMPLER=lumiqtrace``; ``arg`` is ``OTEL_TRACES_SAMPLER_ARG``.

    A valid argument sets the shared rate; a missing one keeps ``LUMIQTRACE_SAMPLE_RATE`` (default 1.0);
    a bad one logs a warning and keeps that rate too.
    """
    if arg is None or (isinstance(arg, str) and not arg.strip()):
        return LumiqTraceSampler()
    try:
        rate = _parse_rate(arg) if isinstance(arg, str) else _coerce_rate(arg)
    except ValueError:
        state = shared_sampling_state()
        _logger.warning(
            "Invalid OTEL_TRACES_SAMPLER_ARG=%r for the lumiqtrace sampler: expected a number between 0.0 and 1.0; "
            "using the rate %s (%s or default).",
            arg,
            state.rate,
            ENV_SAMPLE_RATE,
        )
        return LumiqTraceSampler()
    return LumiqTraceSampler(rate)

# SPDX-License-Identifier: Apache-2.0
"""LumiqTrace's remote config channel: ``cv`` in ingest answers, ``GET /v1/sdk/config`` when it rises.

Every successful ingest answer carries ``cv``, the project's config version. When it is above the last
version applied, :class:`RemoteConfigPoller` fetches the config once, in a background thread, and hands
the parsed :class:`ConfigUpdate` to a callback. The response shape is undocumented; :func:`parse_config`
accepts ``{"cv": N, "rules": [{"type": ..., "value": ...}]}`` plus a few cheap variants, and treats
anything else as "no change".

Against a hostile or broken config endpoint (issue 13): each answer is a full snapshot, never merged with the
previous one; rule lists, key lists, key lengths and the body are capped, so parsing costs milliseconds; at most one
fetch per ``min_fetch_interval_s`` however ``cv`` moves; a fetch that outlives its timeout is abandoned, so it
cannot keep the poller busy forever; and while tracing is disabled or the rate is 0 (nothing is sent, so no ``cv``
comes back) the config is polled every ``poll_interval_s`` so that lifting it takes effect.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.context import (
    _SUPPRESS_HTTP_INSTRUMENTATION_KEY,
    _SUPPRESS_INSTRUMENTATION_KEY,
    attach,
    detach,
    set_value,
)

from opentelemetry_exporter_lumiqtrace import _config, _fork
from opentelemetry_exporter_lumiqtrace.transport import IngestTransport

_logger = logging.getLogger(__name__)

CONFIG_PATH = _config.CONFIG_PATH
# At most one fetch per this interval, however often cv rises, and no retry sooner after a failed fetch.
DEFAULT_MIN_FETCH_INTERVAL_S = _config.DEFAULT_CONFIG_MIN_FETCH_INTERVAL_S
DEFAULT_POLL_INTERVAL_S = _config.DEFAULT_CONFIG_POLL_INTERVAL_S
# A config document is small; refuse to buffer an unbounded answer.
DEFAULT_MAX_CONFIG_BYTES = _config.DEFAULT_MAX_CONFIG_BYTES
MAX_RULES = _config.DEFAULT_MAX_CONFIG_RULES
MAX_REDACT_KEYS = _config.DEFAULT_MAX_REMOTE_REDACT_KEYS
MAX_REDACT_KEY_CHARS = _config.DEFAULT_MAX_REDACT_KEY_CHARS

RULE_SAMPLE_RATE = "sample_rate"
RULE_DISABLE_TRACING = "disable_tracing"
RULE_PII_REDACT_KEYS = "pii_redact_keys"
RULE_LOG_LEVEL = "log_level"
# Rule types that act on LumiqTrace's own client wrappers, not on an exporter.
_IGNORED_RULES = frozenset({"model_override", "guardrail_enable"})

_LOG_LEVELS = {
    "debug": "debug",
    "info": "info",
    "warn": "warning",
    "warning": "warning",
    "error": "error",
    "critical": "critical",
    "fatal": "critical",
}

__all__ = [
    "CONFIG_PATH",
    "DEFAULT_MIN_FETCH_INTERVAL_S",
    "DEFAULT_POLL_INTERVAL_S",
    "ConfigUpdate",
    "RemoteConfigPoller",
    "parse_config",
]


@dataclass(frozen=True)
class ConfigUpdate:
    """What one config document asks for; ``None`` means "not specified, leave as is".

    ``disable_tracing`` is ``False`` and ``pii_redact_keys`` is ``()`` (not ``None``) when a well-formed
    rule list has no such rule: the document is the project's whole config, so a removed kill switch must
    turn tracing back on and removed keys must stop being redacted.
    """

    cv: int | None = None
    sample_rate: float | None = None
    disable_tracing: bool | None = None
    pii_redact_keys: tuple[str, ...] | None = None
    log_level: str | None = None


class _BadValue(Exception):
    pass


def _payload(rule: Mapping[str, Any], *names: str) -> Any:
    for name in ("value", *names):
        if name in rule:
            return rule[name]
    raise _BadValue("no value")


def _sample_rate(rule: Mapping[str, Any]) -> float:
    value = _payload(rule, "rate", "sample_rate", "sampleRate")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise _BadValue(repr(value)) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _BadValue(repr(value))
    rate = float(value)
    # False for NaN too.
    if not 0.0 <= rate <= 1.0:
        raise _BadValue(repr(value))
    return rate


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _BadValue(repr(value))


def _disable_tracing(rule: Mapping[str, Any]) -> bool:
    for name in ("value", "disabled", "disable", "enabled"):
        if name in rule:
            return _as_bool(rule[name])
    # The rule's presence is the switch ("disable tracing for the next hour" carries no payload).
    return True


def _redact_keys(rule: Mapping[str, Any]) -> tuple[list[str], bool]:
    """The rule's keys (at most ``MAX_REDACT_KEYS``, each at most ``MAX_REDACT_KEY_CHARS``) and whether any were cut."""
    value = _payload(rule, "keys", "pii_redact_keys")
    if isinstance(value, str):
        value = value.split(",", MAX_REDACT_KEYS)
    if not isinstance(value, (list, tuple)):
        raise _BadValue(f"{type(value).__name__}, not a list")
    # Only as many as could be kept are looked at: the cost is bounded whatever the list's length.
    head = value[:MAX_REDACT_KEYS]
    if not all(isinstance(k, str) for k in head):
        raise _BadValue("not a list of strings")
    keys = [k.strip() for k in head if k.strip() and len(k.strip()) <= MAX_REDACT_KEY_CHARS]
    return keys, len(value) > MAX_REDACT_KEYS or len(keys) < len([k for k in head if k.strip()])


_warned_caps: set[str] = set()


def _warn_cap(what: str, msg: str, *args: object) -> None:
    # A server that sends too much sends it on every fetch: one WARNING per process and cap, then DEBUG.
    level = logging.DEBUG if what in _warned_caps else logging.WARNING
    _warned_caps.add(what)
    _logger.log(level, msg, *args)


def _log_level(rule: Mapping[str, Any]) -> str:
    value = _payload(rule, "level", "log_level")
    level = _LOG_LEVELS.get(value.strip().lower()) if isinstance(value, str) else None
    if level is None:
        raise _BadValue(repr(value))
    return level


def _as_cv(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _rules(raw: Any) -> list[Any] | None:
    if isinstance(raw, list):
        return raw
    # Tolerate {"rules": {"sample_rate": 0.1, ...}}.
    if isinstance(raw, Mapping):
        return [{"type": key, "value": value} for key, value in raw.items()]
    return None


def parse_config(body: bytes) -> ConfigUpdate | None:
    """Parse a ``GET /v1/sdk/config`` body; ``None`` when it is not a config document. Never raises.

    Unknown rule types are ignored; a rule with an unusable value is skipped (DEBUG). Later rules of
    the same type win, except ``pii_redact_keys``, whose keys are merged within this one document (never
    with an earlier one). Only the first ``MAX_RULES`` rules and ``MAX_REDACT_KEYS`` keys (of at most
    ``MAX_REDACT_KEY_CHARS`` characters) count, so the cost is linear in the body, which the fetch caps.
    """
    try:
        document = json.loads(body)
    except (ValueError, TypeError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
        _logger.debug("Remote config is not JSON: %.200r", body)
        return None
    if not isinstance(document, Mapping):
        _logger.debug("Remote config is not a JSON object: %.200r", body)
        return None
    cv = None
    if "cv" in document:
        cv = _as_cv(document["cv"])
        if cv is None:
            _logger.debug("Remote config has an unusable cv: %.100r", document["cv"])
    rules = _rules(document.get("rules", []))
    if rules is None:
        _logger.debug("Remote config has no usable rule list: %.200r", body)
        return None

    sample_rate: float | None = None
    disable_tracing = False
    redact_keys: dict[str, None] = {}  # an ordered set: first come, first kept
    log_level: str | None = None
    if len(rules) > MAX_RULES:
        _warn_cap(
            "rules", "LumiqTrace remote config has %d rules; only the first %d are applied.", len(rules), MAX_RULES
        )
    for rule in rules[:MAX_RULES]:
        kind = rule.get("type") if isinstance(rule, Mapping) else None
        if not isinstance(kind, str) or not isinstance(rule, Mapping):
            _logger.debug("Skipping remote config rule without a type: %.200r", rule)
            continue
        kind = kind.strip().lower()
        if kind in _IGNORED_RULES:
            continue
        try:
            # A rule switched off in the dashboard is as good as absent.
            if kind != RULE_DISABLE_TRACING and "enabled" in rule and not _as_bool(rule["enabled"]):
                continue
            if kind == RULE_SAMPLE_RATE:
                sample_rate = _sample_rate(rule)
            elif kind == RULE_DISABLE_TRACING:
                disable_tracing = _disable_tracing(rule)
            elif kind == RULE_PII_REDACT_KEYS:
                keys, cut = _redact_keys(rule)
                for key in keys:
                    if key not in redact_keys and len(redact_keys) >= MAX_REDACT_KEYS:
                        cut = True
                        break
                    redact_keys[key] = None
                if cut:
                    _warn_cap(
                        RULE_PII_REDACT_KEYS,
                        "LumiqTrace remote config: only the first %d keys to redact, of at most %d characters each, "
                        "are applied.",
                        MAX_REDACT_KEYS,
                        MAX_REDACT_KEY_CHARS,
                    )
            elif kind == RULE_LOG_LEVEL:
                log_level = _log_level(rule)
            else:
                _logger.debug("Ignoring unknown remote config rule type %r", kind)
        except _BadValue as exc:
            _logger.debug("Skipping remote config rule %r with a bad value: %s", kind, exc)
    return ConfigUpdate(
        cv=cv,
        sample_rate=sample_rate,
        disable_tracing=disable_tracing,
        pii_redact_keys=tuple(redact_keys),
        log_level=log_level,
    )


# Live pollers, so that a forked child starts with fresh locks, no phantom in-flight fetch and no
# session whose sockets it shares with the parent.
_live_pollers: weakref.WeakSet[RemoteConfigPoller] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for poller in list(_live_pollers):
        poller._after_fork_in_child()


_fork.after_fork_in_child(_after_fork_in_child)


def _never() -> bool:
    return False


class RemoteConfigPoller:
    """Fetches ``GET {base_url}/v1/sdk/config`` in the background when a higher ``cv`` is observed.

    At most one fetch is in flight and at most one starts per ``min_fetch_interval_s`` (by ``clock``), however
    ``cv`` moves; :meth:`observe_cv` never blocks. ``on_update`` runs in the fetch thread. A fetch that fails or
    returns a malformed body changes nothing and leaves the ``cv`` unrecorded, so a later :meth:`observe_cv`
    retries once the interval has passed. A fetch still running ``timeout_s`` plus a grace after it started is
    abandoned: its result, if it ever comes, is ignored, and the next fetch may start.

    While ``should_poll()`` is true (tracing disabled or rate 0: nothing is sent, so no ``cv`` arrives), a
    background thread fetches every ``poll_interval_s`` seconds; it stops when ``should_poll()`` turns false and
    starts again after an update that makes it true.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        timeout_s: float,
        on_update: Callable[[ConfigUpdate], None],
        user_agent: str,
        min_fetch_interval_s: float = DEFAULT_MIN_FETCH_INTERVAL_S,
        poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
        should_poll: Callable[[], bool] = _never,
        clock: Callable[[], float] = time.monotonic,
        transport: IngestTransport | None = None,
    ) -> None:
        self._url = base_url.rstrip("/") + CONFIG_PATH
        # The exporter's own client (one pool, the same no-redirect, capped, deadline-bound rules as ingest).
        self._owns_transport = transport is None
        self._transport = transport or IngestTransport(
            base_url=base_url, api_key=api_key, gzip_body=False, user_agent=user_agent
        )
        self._timeout_s = timeout_s
        self._abandon_after_s = timeout_s + _config.DEFAULT_CONFIG_ABANDON_GRACE_S
        self._on_update = on_update
        self._min_fetch_interval_s = min_fetch_interval_s
        self._poll_interval_s = poll_interval_s
        self._should_poll = should_poll
        self._clock = clock

        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._in_flight = False
        self._generation = 0  # of the fetch in flight (or the last one); an abandoned fetch's result is ignored
        self._fetch_started: float | None = None
        self._closed = False
        self._last_seen: int | None = None
        self._poll_stop = threading.Event()
        self._poll_thread: threading.Thread | None = None
        _live_pollers.add(self)
        self._ensure_polling()

    @property
    def last_seen_cv(self) -> int | None:
        """The highest ``cv`` whose config was fetched and applied."""
        return self._last_seen

    @property
    def polling(self) -> bool:
        """Whether the poll thread runs (tracing disabled or rate 0)."""
        return self._poll_thread is not None

    def observe_cv(self, cv: int) -> None:
        """Note an ingest answer's ``cv``; start one background fetch if it is above the last applied."""
        if isinstance(cv, bool) or not isinstance(cv, int):
            return
        with self._lock:
            if self._last_seen is not None and cv <= self._last_seen:
                return
            if not self._may_start_locked(paced=True):
                return
            generation = self._claim_locked()
        self._start(cv, generation)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no fetch is in flight; True if idle within ``timeout`` seconds."""
        return self._idle.wait(timeout)

    def close(self) -> None:
        """Start no new fetches, stop polling, and close the HTTP client if it is this poller's own."""
        with self._lock:
            self._closed = True
        self._poll_stop.set()
        if self._owns_transport:
            self._transport.close()

    def _may_start_locked(self, *, paced: bool) -> bool:
        if self._closed:
            return False
        now = self._clock()
        started = self._fetch_started
        if self._in_flight and started is not None and now - started < self._abandon_after_s:
            return False
        # A poll is paced by its own interval; a cv-triggered fetch by the minimum interval.
        return not (paced and started is not None and now - started < self._min_fetch_interval_s)

    def _claim_locked(self) -> int:
        if self._in_flight:
            _logger.debug("Remote config fetch from %s outlived its timeout; abandoned", self._url)
        self._generation += 1
        self._in_flight = True
        self._fetch_started = self._clock()
        self._idle.clear()
        return self._generation

    def _start(self, cv: int | None, generation: int) -> None:
        thread = threading.Thread(target=self._run, args=(cv, generation), name="lumiqtrace-remote-config", daemon=True)
        try:
            thread.start()
        except RuntimeError:
            # Interpreter shutting down: no new threads.
            self._finish(cv, generation, None)

    def _run(self, cv: int | None, generation: int) -> None:
        # The fetch must not be traced by an instrumented requests / urllib3 (it would feed the exporter).
        context = set_value(_SUPPRESS_INSTRUMENTATION_KEY, True)
        context = set_value(_SUPPRESS_HTTP_INSTRUMENTATION_KEY, True, context)
        token = attach(context)
        update: ConfigUpdate | None = None
        try:
            update = self._fetch()
        except Exception:  # a background fetch must never raise
            _logger.debug("Remote config fetch from %s failed", self._url, exc_info=True)
        finally:
            # on_update runs here too, still suppressed: applying config must not emit spans either.
            try:
                self._finish(cv, generation, update)
            finally:
                detach(token)

    def _finish(self, cv: int | None, generation: int, update: ConfigUpdate | None) -> None:
        with self._lock:
            if generation != self._generation:
                return  # abandoned: a newer fetch owns the poller now
            if update is not None:
                candidates = [v for v in (cv, update.cv, self._last_seen) if v is not None]
                self._last_seen = max(candidates) if candidates else None
        if update is not None:
            try:
                self._on_update(update)
            except Exception:
                _logger.warning("Applying remote config failed", exc_info=True)
        with self._lock:
            if generation == self._generation:
                self._in_flight = False
                self._idle.set()
        self._ensure_polling()

    # -- polling while nothing is sent ----------------------------------------------------------------------------

    def _ensure_polling(self) -> None:
        with self._lock:
            # _poll_thread is set from here until the loop decides to end, under this lock: one loop at a time.
            if self._closed or self._poll_thread is not None or not self._should_poll():
                return
            thread = threading.Thread(target=self._poll_loop, name="lumiqtrace-remote-config-poll", daemon=True)
            self._poll_thread = thread
        try:
            thread.start()
        except RuntimeError:
            with self._lock:
                self._poll_thread = None

    def _poll_loop(self) -> None:
        stop = self._poll_stop
        while not stop.wait(self._poll_interval_s):
            with self._lock:
                if self._closed or not self._should_poll():
                    # Decided under the lock that _ensure_polling takes, so a re-disable right now is not missed.
                    self._poll_thread = None
                    return
                if not self._may_start_locked(paced=False):
                    continue
                generation = self._claim_locked()
            self._start(None, generation)
        with self._lock:
            self._poll_thread = None

    def _fetch(self) -> ConfigUpdate | None:
        with self._lock:
            if self._closed:
                return None
        answer = self._transport.get(CONFIG_PATH, timeout=self._timeout_s)
        if answer.status is None or not 200 <= answer.status < 300:
            _logger.debug("Remote config fetch from %s failed: %s", self._url, answer.message)
            return None
        if answer.truncated or len(answer.raw) > DEFAULT_MAX_CONFIG_BYTES:
            _logger.debug("Remote config from %s is larger than the answer cap", self._url)
            return None
        update = parse_config(answer.raw)
        if update is None:
            _logger.debug("Remote config from %s is malformed; nothing changed", self._url)
        return update

    def _after_fork_in_child(self) -> None:
        # The parent's fetch and poll threads do not exist here (the transport renews its own sockets after a fork).
        # Polling is not restarted: the exporter builds a new poller in the child, which polls if it must.
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        if self._in_flight:
            self._fetch_started = None  # the child never saw that fetch's answer: it may fetch at once
        self._in_flight = False
        self._generation += 1
        self._poll_stop = threading.Event()
        self._poll_thread = None

# SPDX-License-Identifier: Apache-2.0
"""LumiqTrace's remote config channel: ``cv`` in ingest answers, ``GET /v1/sdk/config`` when it rises.

Every successful ingest answer carries ``cv``, the project's config version. When it is above the last
version applied, :class:`RemoteConfigPoller` fetches the config once, in a background thread, and hands
the parsed :class:`ConfigUpdate` to a callback. The response shape is undocumented; :func:`parse_config`
accepts ``{"cv": N, "rules": [{"type": ..., "value": ...}]}`` plus a few cheap variants, and treats
anything else as "no change".
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.context import (
    _SUPPRESS_HTTP_INSTRUMENTATION_KEY,
    _SUPPRESS_INSTRUMENTATION_KEY,
    attach,
    detach,
    set_value,
)

from opentelemetry_exporter_lumiqtrace.transport import IngestTransport

_logger = logging.getLogger(__name__)

CONFIG_PATH = "/v1/sdk/config"
# After a failed or malformed fetch, wait this long before trying again, whatever cv arrives meanwhile.
DEFAULT_RETRY_INTERVAL_S = 30.0
# A config document is small; refuse to buffer an unbounded answer.
DEFAULT_MAX_CONFIG_BYTES = 1 << 20

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
    "DEFAULT_RETRY_INTERVAL_S",
    "ConfigUpdate",
    "RemoteConfigPoller",
    "parse_config",
]


@dataclass(frozen=True)
class ConfigUpdate:
    """What one config document asks for; ``None`` means "not specified, leave as is".

    ``disable_tracing`` is ``False`` (not ``None``) when a well-formed rule list has no
    ``disable_tracing`` rule: the document is the project's whole config, so a removed kill switch
    must turn tracing back on.
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


def _redact_keys(rule: Mapping[str, Any]) -> tuple[str, ...]:
    value = _payload(rule, "keys", "pii_redact_keys")
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, (list, tuple)) or not all(isinstance(k, str) for k in value):
        raise _BadValue(repr(value))
    return tuple(k.strip() for k in value if k.strip())


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


def _rules(raw: Any) -> Iterable[Any] | None:
    if isinstance(raw, list):
        return raw
    # Tolerate {"rules": {"sample_rate": 0.1, ...}}.
    if isinstance(raw, Mapping):
        return [{"type": key, "value": value} for key, value in raw.items()]
    return None


def parse_config(body: bytes) -> ConfigUpdate | None:
    """Parse a ``GET /v1/sdk/config`` body; ``None`` when it is not a config document. Never raises.

    Unknown rule types are ignored; a rule with an unusable value is skipped (DEBUG). Later rules of
    the same type win, except ``pii_redact_keys``, whose keys accumulate.
    """
    try:
        document = json.loads(body)
    except (ValueError, TypeError):
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
    redact_keys: list[str] | None = None
    log_level: str | None = None
    for rule in rules:
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
                keys = _redact_keys(rule)
                if redact_keys is None:
                    redact_keys = []
                for key in keys:
                    if key not in redact_keys:
                        redact_keys.append(key)
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
        pii_redact_keys=None if redact_keys is None else tuple(redact_keys),
        log_level=log_level,
    )


# Live pollers, so that a forked child starts with fresh locks, no phantom in-flight fetch and no
# session whose sockets it shares with the parent.
_live_pollers: weakref.WeakSet[RemoteConfigPoller] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for poller in list(_live_pollers):
        poller._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class RemoteConfigPoller:
    """Fetches ``GET {base_url}/v1/sdk/config`` in the background when a higher ``cv`` is observed.

    At most one fetch is in flight; :meth:`observe_cv` never blocks. ``on_update`` runs in the fetch
    thread. A fetch that fails or returns a malformed body changes nothing and leaves the ``cv``
    unrecorded, so a later :meth:`observe_cv` retries, but not within ``retry_interval_s`` of the failure.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        timeout_s: float,
        on_update: Callable[[ConfigUpdate], None],
        user_agent: str,
        retry_interval_s: float = DEFAULT_RETRY_INTERVAL_S,
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
        self._on_update = on_update
        self._retry_interval_s = retry_interval_s
        self._clock = clock

        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._in_flight = False
        self._closed = False
        self._last_seen: int | None = None
        self._last_failure: float | None = None
        _live_pollers.add(self)

    @property
    def last_seen_cv(self) -> int | None:
        """The highest ``cv`` whose config was fetched and applied."""
        return self._last_seen

    def observe_cv(self, cv: int) -> None:
        """Note an ingest answer's ``cv``; start one background fetch if it is above the last applied."""
        if isinstance(cv, bool) or not isinstance(cv, int):
            return
        with self._lock:
            if self._closed or self._in_flight:
                return
            if self._last_seen is not None and cv <= self._last_seen:
                return
            if self._last_failure is not None and self._clock() - self._last_failure < self._retry_interval_s:
                return
            self._in_flight = True
            self._idle.clear()
        thread = threading.Thread(target=self._run, args=(cv,), name="lumiqtrace-remote-config", daemon=True)
        try:
            thread.start()
        except RuntimeError:
            # Interpreter shutting down: no new threads.
            self._finish(cv, None)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no fetch is in flight; True if idle within ``timeout`` seconds."""
        return self._idle.wait(timeout)

    def close(self) -> None:
        """Start no new fetches and close the HTTP client if it is this poller's own."""
        with self._lock:
            self._closed = True
        if self._owns_transport:
            self._transport.close()

    def _run(self, cv: int) -> None:
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
                self._finish(cv, update)
            finally:
                detach(token)

    def _finish(self, cv: int, update: ConfigUpdate | None) -> None:
        with self._lock:
            if update is None:
                self._last_failure = self._clock()
            else:
                self._last_failure = None
                seen = cv if update.cv is None else max(cv, update.cv)
                if self._last_seen is None or seen > self._last_seen:
                    self._last_seen = seen
        if update is not None:
            try:
                self._on_update(update)
            except Exception:
                _logger.warning("Applying remote config failed", exc_info=True)
        with self._lock:
            self._in_flight = False
            self._idle.set()

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
        # The parent's fetch thread does not exist here (the transport renews its own sockets after a fork).
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._in_flight = False

# SPDX-License-Identifier: Apache-2.0
"""Configuration: every setting, its environment variable, default, parser and check, in one table.

Every setting is resolved once, in the exporter's ``__init__``, by one rule: explicit keyword argument >
``LUMIQTRACE_*`` environment variable > ``DEFAULT_*`` constant. A value that cannot be parsed logs one
warning naming the variable and falls back to the default; it never raises into the application. The base URL is
the exception: an unusable one makes the exporter inert (one error) instead of sending to the default.

This module is the single source of every default: the ``DEFAULT_*`` constants below are what ``RetryPolicy``, the
sampler, the remote-config poller and the disk spool use, and :data:`SETTINGS` lists the ones a user can set (the
keyword, its variable, default, parser and check), in the manner of Logfire's ``config_params.py``.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import requests.utils

from opentelemetry_exporter_lumiqtrace.mapping.redaction import scrub_secrets

_logger = logging.getLogger(__name__)

# Environment variables (the vendor's own prefix; LUMIQTRACE_API_KEY and LUMIQTRACE_SAMPLE_RATE are documented by
# LumiqTrace itself, the others are this exporter's). tests/test_settings.py keeps them equal to the table's.
LUMIQTRACE_API_KEY = "LUMIQTRACE_API_KEY"
LUMIQTRACE_BASE_URL = "LUMIQTRACE_BASE_URL"
LUMIQTRACE_TIMEOUT = "LUMIQTRACE_TIMEOUT"
LUMIQTRACE_COMPRESSION = "LUMIQTRACE_COMPRESSION"
LUMIQTRACE_ENVIRONMENT = "LUMIQTRACE_ENVIRONMENT"
LUMIQTRACE_SAMPLE_RATE = "LUMIQTRACE_SAMPLE_RATE"
LUMIQTRACE_CAPTURE_CONTENT = "LUMIQTRACE_CAPTURE_CONTENT"
LUMIQTRACE_REDACT_KEYS = "LUMIQTRACE_REDACT_KEYS"
LUMIQTRACE_AI_ONLY = "LUMIQTRACE_AI_ONLY"
LUMIQTRACE_BUFFER_MAX_EVENTS = "LUMIQTRACE_BUFFER_MAX_EVENTS"
LUMIQTRACE_BUFFER_MAX_BYTES = "LUMIQTRACE_BUFFER_MAX_BYTES"
LUMIQTRACE_AUTH_PROBE_INTERVAL = "LUMIQTRACE_AUTH_PROBE_INTERVAL"
LUMIQTRACE_QUOTA_PROBE_INTERVAL = "LUMIQTRACE_QUOTA_PROBE_INTERVAL"
LUMIQTRACE_QUOTA_RATE_FACTOR = "LUMIQTRACE_QUOTA_RATE_FACTOR"
LUMIQTRACE_QUOTA_RATE_FLOOR = "LUMIQTRACE_QUOTA_RATE_FLOOR"
LUMIQTRACE_SPOOL_DIR = "LUMIQTRACE_SPOOL_DIR"
LUMIQTRACE_SPOOL_MAX_BYTES = "LUMIQTRACE_SPOOL_MAX_BYTES"
LUMIQTRACE_LINGER = "LUMIQTRACE_LINGER"
LUMIQTRACE_CONFIG_POLL_INTERVAL = "LUMIQTRACE_CONFIG_POLL_INTERVAL"
LUMIQTRACE_ALLOW_INSECURE_HTTP = "LUMIQTRACE_ALLOW_INSECURE_HTTP"

DEFAULT_BASE_URL = "https://api.lumiqtrace.com"
INGEST_PATH = "/v1/ingest"
CONFIG_PATH = "/v1/sdk/config"
DEFAULT_TIMEOUT_S = 10.0
# One request may not outlive this even when the export deadline is longer: a hung server must not eat a whole
# deadline on one attempt when other slices are waiting.
DEFAULT_MAX_REQUEST_TIMEOUT_S = 10.0
COMPRESSION_GZIP = "gzip"
COMPRESSION_NONE = "none"
DEFAULT_COMPRESSION = COMPRESSION_GZIP
MAX_EVENTS_PER_REQUEST = 100  # LumiqTrace answers 400 "Max 100 events per batch" above this
# The body size limit is undocumented; stay far below any plausible proxy limit (uncompressed bytes).
DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024
DEFAULT_BUFFER_MAX_EVENTS = 10_000
DEFAULT_BUFFER_MAX_BYTES = 32 * 1024 * 1024
DEFAULT_AUTH_PROBE_INTERVAL_S = 300.0
DEFAULT_QUOTA_PROBE_INTERVAL_S = 3600.0
DEFAULT_QUOTA_RATE_FACTOR = 0.5
DEFAULT_QUOTA_RATE_FLOOR = 1.0 / 1024
DEFAULT_LINGER_S = 2.0
DEFAULT_SAMPLE_RATE = 1.0
DEFAULT_CAPTURE_CONTENT = False
DEFAULT_AI_ONLY = False
DEFAULT_ALLOW_INSECURE_HTTP = False

# The retry loop (``delivery.RetryPolicy``).
# LumiqTrace's guidance for 5xx: back off starting at 1 second, doubling.
DEFAULT_INITIAL_BACKOFF_S = 1.0
DEFAULT_MAX_BACKOFF_S = 8.0
# A 429 without a usable Retry-After still gets a pause: retrying at once only burns the per-key limit.
DEFAULT_RETRY_AFTER_S = 5.0
# Retry-After 0, negative, NaN or in the past still holds this long.
DEFAULT_MIN_RETRY_AFTER_S = 1.0
DEFAULT_MAX_RETRY_AFTER_S = 120.0
# The key's documented budget, paced client-side: 1,000 requests a minute.
DEFAULT_MAX_REQUESTS_PER_WINDOW = 1000
DEFAULT_PACING_WINDOW_S = 60.0
# Slices of one export call in flight at once (a distant API's round trip otherwise caps throughput).
DEFAULT_MAX_CONCURRENT_REQUESTS = 4
# ...but only while the last request took at least this long, wall clock. A request answered sooner keeps its
# connection busy mostly with CPU (building the body, parsing the answer): a second connection then buys no time and
# costs thread hand-offs (~100 us of CPU per request on loopback, benchmarks/suite.py). A distant API takes 20 ms and
# more.
DEFAULT_PARALLEL_MIN_LATENCY_S = 0.01

# Remote config (``remote_config.RemoteConfigPoller``, ``remote_config.parse_config``).
# While tracing is disabled or the rate is 0 nothing is sent, so no cv comes back: poll this often instead.
DEFAULT_CONFIG_POLL_INTERVAL_S = 60.0
# At most one fetch per this many seconds, however often cv rises, and after a failed or malformed fetch.
DEFAULT_CONFIG_MIN_FETCH_INTERVAL_S = 30.0
# A fetch still running this long after its timeout is abandoned (its result ignored): the poller is free again.
DEFAULT_CONFIG_ABANDON_GRACE_S = 1.0
# A config document is a few rules; everything beyond these caps is ignored (keeps parse cost and memory bounded).
DEFAULT_MAX_CONFIG_BYTES = 64 * 1024
DEFAULT_MAX_CONFIG_RULES = 256
DEFAULT_MAX_REMOTE_REDACT_KEYS = 1024
DEFAULT_MAX_REDACT_KEY_CHARS = 256

# The disk spool (``spool.DiskSpool``).
DEFAULT_SPOOL_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_SPOOL_MAX_AGE_S = 7 * 24 * 3600.0
# Far longer than one export deadline, so only a hung or dead holder loses its lease.
DEFAULT_SPOOL_LEASE_TIMEOUT_S = 600.0
# Matches the exporter's drain batch, so a claim normally takes whole files and never has to split one.
DEFAULT_SPOOL_LINES_PER_FILE = 500

API_KEY_PATTERN = re.compile(r"^lqt_[0-9a-fA-F]{64}$")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})

T = TypeVar("T")


def _warn_bad(name: str, raw: object, default: object, why: str) -> None:
    _logger.warning("Invalid value %r for %s (%s); using the default %r.", raw, name, why, default)


def _from_env(
    arg: T | None, env_name: str, default: T, parse: Callable[[str], T], *, check: Callable[[T], str | None]
) -> T:
    """Argument > environment variable > default, with one warning for a bad value."""
    if arg is not None:
        problem = check(arg)
        if problem is None:
            return arg
        _warn_bad(f"argument for {env_name}", arg, default, problem)
        return default
    raw = os.environ.get(env_name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = parse(raw.strip())
    except (TypeError, ValueError) as exc:
        _warn_bad(env_name, raw, default, str(exc) or type(exc).__name__)
        return default
    problem = check(value)
    if problem is not None:
        _warn_bad(env_name, raw, default, problem)
        return default
    return value


def _no_check(_: object) -> str | None:
    return None


def _range_check(low: float, high: float, *, low_open: bool = False) -> Callable[[float], str | None]:
    def check(value: float) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return "not a finite number"
        if value < low or (low_open and value == low) or value > high:
            return f"must be {'>' if low_open else '>='} {low:g} and <= {high:g}"
        return None

    return check


def _parse_bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected true or false")


def resolve_api_key(arg: str | None) -> str | None:
    key = arg if arg is not None else os.environ.get(LUMIQTRACE_API_KEY)
    if key is None or not key.strip():
        return None
    key = key.strip()
    if not API_KEY_PATTERN.match(key):
        # Not fatal: the documented format is lqt_ + 64 hex, but a typo here is the commonest set-up mistake, so say
        # so up front instead of leaving the user to decode a 401. Never echo the key itself.
        _logger.warning(
            "The LumiqTrace API key does not look like a project key (expected 'lqt_' followed by 64 hex "
            "characters, got %d characters%s); requests will likely be rejected with 401.",
            len(key),
            "" if key.startswith("lqt_") else " without the 'lqt_' prefix",
        )
    return key


def resolve_base_url(arg: str | None, *, allow_insecure_http: bool = False) -> str | None:
    """The API base URL (keyword > ``LUMIQTRACE_BASE_URL`` > default), or None when the given one is unusable.

    Unlike other settings, an unusable value does not fall back to the default: a typo in a staging URL must not
    send staging data and its key to production. One ERROR names the variable (or keyword) and the exporter stays
    inert, as without a key. Credentials in the URL are refused (requests would send them as Basic auth) and never
    printed. ``http://`` to a host that is not loopback logs one WARNING (the key would travel in clear) unless
    ``allow_insecure_http``.
    """
    source = "base_url" if arg is not None else LUMIQTRACE_BASE_URL
    value: object = arg
    if arg is None:
        raw = os.environ.get(LUMIQTRACE_BASE_URL)
        if raw is None or not raw.strip():
            return DEFAULT_BASE_URL
        value = raw
    problem = base_url_problem(value)
    if problem is not None:
        _logger.error(
            "%s=%s is not a usable LumiqTrace API URL: %s. The LumiqTrace exporter is inert and will send nothing "
            "(it does not fall back to %s).",
            source,
            _display_url(value),
            problem,
            DEFAULT_BASE_URL,
        )
        return None
    assert isinstance(value, str)
    url = value.strip().rstrip("/")
    hop = None if allow_insecure_http else cleartext_hop(url)
    if hop is not None:
        _logger.warning(
            "%s uses http:// to %s, which is not a loopback address: the API key and the span data travel "
            "unencrypted. Use https://, or set allow_insecure_http=True (%s=true) if this network path is trusted.",
            source,
            hop,
            LUMIQTRACE_ALLOW_INSECURE_HTTP,
        )
    return url


def cleartext_hop(url: str) -> str | None:
    """A host that would receive the key in clear from ``url`` (its own or an ``HTTP_PROXY``'s), unless loopback.

    Decided from names alone (nothing is resolved or sent). ``https://`` gives None: through a proxy it is tunnelled.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() != "http":
        return None
    host = parts.hostname or ""
    if not is_loopback_host(host):
        return host  # a forwarding proxy on the way passes it on in clear too
    proxy = requests.utils.get_environ_proxies(url)
    proxy_url = proxy.get("http") or proxy.get("all")
    if proxy_url:
        proxy_host = urllib.parse.urlsplit(proxy_url if "://" in proxy_url else "http://" + proxy_url).hostname or ""
        if not is_loopback_host(proxy_host):
            return f"{proxy_host} (the proxy in HTTP_PROXY)"
    return None


def base_url_problem(value: object) -> str | None:
    """Why ``value`` cannot be the API base URL (never quoting credentials), or None when it can."""
    if not isinstance(value, str):
        return f"expected a string, got {type(value).__name__}"
    text = value.strip()
    if not text:
        return "it is empty"
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in text):
        return "it contains whitespace or control characters"
    scheme, sep, _ = text.partition("://")
    if not sep or not scheme:
        return "expected an https:// URL such as " + DEFAULT_BASE_URL
    if scheme.lower() not in ("https", "http"):
        return "the scheme must be https:// (or http:// for a local server)"
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError:  # an unbalanced "[" (IPv6 literal)
        return "its host is not a valid host name or IP address"
    if "@" in parts.netloc:
        return (
            "it contains credentials (user:password@ before the host), which are refused: they would be sent as "
            "Basic auth. The API key belongs in " + LUMIQTRACE_API_KEY
        )
    if "?" in text or "#" in text:
        return "a base URL takes no query (?...) or fragment (#...)"
    host = parts.hostname
    if not host:
        return "it has no host"
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        return "its port is not a number from 1 to 65535"
    if not _valid_host(host, bracketed="[" in parts.netloc):
        return "its host is not a valid host name or IP address"
    return None


_HOST_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")


def _valid_host(host: str, *, bracketed: bool) -> bool:
    if bracketed:
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return False
        return True
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    labels = ascii_host.lower().removesuffix(".").split(".")
    return all(_HOST_LABEL.fullmatch(label) for label in labels)


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals. Decided from the name alone: nothing is resolved or sent."""
    name = host.strip("[]").lower().removesuffix(".")
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _display_url(value: object) -> str:
    """A configured URL as it may be printed: userinfo and obvious secrets removed, length capped."""
    if not isinstance(value, str):
        return f"<{type(value).__name__}>"
    text = value.strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    end = min([i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0] or [len(rest)])
    authority = rest[:end]
    if "@" in authority:
        rest = "***@" + rest[authority.rindex("@") + 1 :]
    text = scrub_secrets(scheme + sep + rest)
    return repr(text if len(text) <= 200 else text[:200] + "...")


def resolve_timeout(arg: float | None) -> float:
    """Seconds for one whole export call (retries and waits included)."""
    return TIMEOUT.resolve(arg)


def resolve_compression(arg: str | None) -> str:
    return COMPRESSION.resolve(arg).lower()


def resolve_optional_str(arg: str | None, env_name: str) -> str | None:
    if arg is not None:
        return arg or None
    raw = os.environ.get(env_name, "").strip()
    return raw or None


def resolve_keys(arg: Iterable[str] | None, env_name: str) -> frozenset[str]:
    """A comma-separated list in the environment, any iterable of strings as an argument."""
    if arg is not None:
        return frozenset(str(k).strip() for k in arg if str(k).strip())
    return _parse_keys(os.environ.get(env_name, ""))


def mask_key(key: str | None) -> str:
    """How a key may appear in output: the prefix LumiqTrace's own key listings show, never more."""
    if not key:
        return "<none>"
    return key[:8] + "..." if len(key) > 12 else "***"


def _positive_float_check(value: float) -> str | None:
    return _range_check(0.0, 10.0**9, low_open=True)(value)


def _positive_int_check(value: int) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return "expected a whole number > 0"
    return None


def _compression_check(value: str) -> str | None:
    if not isinstance(value, str) or value.lower() not in (COMPRESSION_GZIP, COMPRESSION_NONE):
        return "expected 'gzip' or 'none'"
    return None


def _parse_keys(raw: str) -> frozenset[str]:
    return frozenset(k.strip() for k in raw.split(",") if k.strip())


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One user-settable value: its keyword, its ``LUMIQTRACE_*`` variable, default, parser and check.

    ``check`` returns why a value is unusable (or None); it guards keyword arguments and parsed variables alike.
    """

    keyword: str
    variable: str
    default: T
    parse: Callable[[str], T]
    check: Callable[[T], str | None]
    help: str

    def resolve(self, arg: T | None, *, default: T | None = None) -> T:
        """Keyword > variable > ``default`` (this setting's own default unless given), one warning if unusable."""
        fallback = self.default if default is None else default
        return _from_env(arg, self.variable, fallback, self.parse, check=self.check)


def _setting(
    keyword: str, default: Any, parse: Callable[[str], Any], check: Callable[[Any], str | None], help: str
) -> Any:
    return Setting(keyword, "LUMIQTRACE_" + keyword.upper(), default, parse, check, help)


# The table. api_key, base_url, environment, redact_keys and spool_dir have resolvers of their own below (a missing
# key makes the exporter inert, a URL is validated as a whole, empty strings mean "unset"); the table still names
# their variable and default.
API_KEY: Setting[str | None] = _setting("api_key", None, str, _no_check, "project key, lqt_...")
BASE_URL: Setting[str] = _setting("base_url", DEFAULT_BASE_URL, str, _no_check, "API base URL")
TIMEOUT: Setting[float] = _setting(
    "timeout", DEFAULT_TIMEOUT_S, float, _range_check(0.0, 3600.0, low_open=True), "seconds for one export call"
)
COMPRESSION: Setting[str] = _setting("compression", DEFAULT_COMPRESSION, str.lower, _compression_check, "gzip or none")
ENVIRONMENT: Setting[str | None] = _setting("environment", None, str, _no_check, "environment field default")
CAPTURE_CONTENT: Setting[bool] = _setting(
    "capture_content", DEFAULT_CAPTURE_CONTENT, _parse_bool, _no_check, "send prompt and response text"
)
REDACT_KEYS: Setting[frozenset[str]] = _setting(
    "redact_keys", frozenset(), _parse_keys, _no_check, "comma-separated keys to redact, beyond the default list"
)
AI_ONLY: Setting[bool] = _setting("ai_only", DEFAULT_AI_ONLY, _parse_bool, _no_check, "export only AI spans")
ALLOW_INSECURE_HTTP: Setting[bool] = _setting(
    "allow_insecure_http", DEFAULT_ALLOW_INSECURE_HTTP, _parse_bool, _no_check, "no warning for http:// off loopback"
)
BUFFER_MAX_EVENTS: Setting[int] = _setting(
    "buffer_max_events", DEFAULT_BUFFER_MAX_EVENTS, int, _positive_int_check, "retry buffer bound, events"
)
BUFFER_MAX_BYTES: Setting[int] = _setting(
    "buffer_max_bytes", DEFAULT_BUFFER_MAX_BYTES, int, _positive_int_check, "retry buffer bound, bytes"
)
AUTH_PROBE_INTERVAL: Setting[float] = _setting(
    "auth_probe_interval", DEFAULT_AUTH_PROBE_INTERVAL_S, float, _positive_float_check, "seconds between 401 probes"
)
QUOTA_PROBE_INTERVAL: Setting[float] = _setting(
    "quota_probe_interval", DEFAULT_QUOTA_PROBE_INTERVAL_S, float, _positive_float_check, "seconds between quota probes"
)
QUOTA_RATE_FACTOR: Setting[float] = _setting(
    "quota_rate_factor", DEFAULT_QUOTA_RATE_FACTOR, float, _range_check(0.0, 1.0), "rate multiplier on quota"
)
QUOTA_RATE_FLOOR: Setting[float] = _setting(
    "quota_rate_floor", DEFAULT_QUOTA_RATE_FLOOR, float, _range_check(0.0, 1.0), "lowest rate the ratchet reaches"
)
LINGER: Setting[float] = _setting(
    "linger", DEFAULT_LINGER_S, float, _range_check(0.0, 60.0), "seconds an undersized tail may wait"
)
SPOOL_DIR: Setting[str | None] = _setting("spool_dir", None, str, _no_check, "disk spool directory (off if unset)")
SPOOL_MAX_BYTES: Setting[int] = _setting(
    "spool_max_bytes", DEFAULT_SPOOL_MAX_BYTES, int, _positive_int_check, "disk spool bound, bytes"
)
SAMPLE_RATE: Setting[float] = _setting(
    "sample_rate", DEFAULT_SAMPLE_RATE, float, _range_check(0.0, 1.0), "sampler rate, 0.0-1.0"
)
CONFIG_POLL_INTERVAL: Setting[float] = _setting(
    "config_poll_interval",
    DEFAULT_CONFIG_POLL_INTERVAL_S,
    float,
    _positive_float_check,
    "seconds between remote-config polls while tracing is disabled or the rate is 0",
)

SETTINGS: Mapping[str, Setting[Any]] = {
    s.keyword: s
    for s in (
        API_KEY,
        BASE_URL,
        TIMEOUT,
        COMPRESSION,
        ENVIRONMENT,
        CAPTURE_CONTENT,
        REDACT_KEYS,
        AI_ONLY,
        ALLOW_INSECURE_HTTP,
        BUFFER_MAX_EVENTS,
        BUFFER_MAX_BYTES,
        AUTH_PROBE_INTERVAL,
        QUOTA_PROBE_INTERVAL,
        QUOTA_RATE_FACTOR,
        QUOTA_RATE_FLOOR,
        LINGER,
        SPOOL_DIR,
        SPOOL_MAX_BYTES,
        SAMPLE_RATE,
        CONFIG_POLL_INTERVAL,
    )
}

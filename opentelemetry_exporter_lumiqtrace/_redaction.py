# SPDX-License-Identifier: Apache-2.0
"""Tag redaction by key name and scrubbing of obvious secrets in error messages.

Tag redaction follows LumiqTrace's documented PII rules: a tag whose key matches a redaction key gets the value
``[REDACTED]`` (the key is kept). Keys are compared after lower-casing and removing ``_`` and ``-``, so ``api_key``
matches ``apiKey``, ``API-KEY`` and ``apikey``. A dotted tag key (``metadata.password``,
``http.request.header.authorization``) matches when the whole key or its last dotted segment matches; a key that
merely contains a redaction word (``tokens.reasoning``) does not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[REDACTED]"

# The always-on default list of LumiqTrace's PII redaction.
DEFAULT_REDACT_KEYS = frozenset(
    {
        "password",
        "secret",
        "token",
        "api_key",
        "apikey",
        "auth",
        "authorization",
        "access_token",
        "refresh_token",
        "private_key",
        "credential",
        "ssn",
        "social_security",
        "credit_card",
        "card_number",
        "cvv",
    }
)

_STRIP = str.maketrans("", "", "_-")
_MAX_MEMO = 4096


def normalise_key(key: str) -> str:
    """Return the form redaction keys are compared in: lower case, without ``_`` and ``-``."""
    return key.lower().translate(_STRIP)


class Redactor:
    """Decides whether a tag key is redacted; decisions are memoised because tag keys repeat across spans."""

    __slots__ = ("_keys", "memo", "plain_tag_keys")

    def __init__(self, extra_keys: Iterable[str] = ()) -> None:
        keys = {normalise_key(k) for k in DEFAULT_REDACT_KEYS}
        keys.update(normalise_key(k) for k in extra_keys if isinstance(k, str) and k)
        self._keys = frozenset(keys)
        # Read directly by the mapping's hot path (a hit skips a method call); filled by matches().
        self.memo: dict[str, bool] = {}
        # Raw tag key -> the key as sent (capped, cleaned), for keys that are not redacted; read by the mapping.
        self.plain_tag_keys: dict[str, str] = {}

    def matches(self, key: str) -> bool:
        hit = self.memo.get(key)
        if hit is not None:
            return hit
        norm = normalise_key(key)
        hit = norm in self._keys or ("." in norm and norm.rsplit(".", 1)[1] in self._keys)
        if len(self.memo) >= _MAX_MEMO:
            # Unbounded tag key spaces (user metadata) must not grow memory forever.
            self.memo.clear()
        self.memo[key] = hit
        return hit

    def remember_plain_tag_key(self, raw_key: str, tag_key: str) -> None:
        """Record that ``raw_key`` is sent as ``tag_key`` unredacted (bounded like the match memo)."""
        if len(self.plain_tag_keys) >= _MAX_MEMO:
            self.plain_tag_keys.clear()
        self.plain_tag_keys[raw_key] = tag_key

    def scrub_json(self, value: object, depth: int = 0) -> object:
        """Return ``value`` with the values of matching keys in nested dicts replaced by ``[REDACTED]``."""
        if depth > 20:
            return value
        if isinstance(value, dict):
            return {
                k: (REDACTED if isinstance(k, str) and self.matches(k) else self.scrub_json(v, depth + 1))
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.scrub_json(v, depth + 1) for v in value]
        return value


# Obvious credentials that exception messages sometimes echo (request headers, client config reprs).
_SECRET_RE = re.compile(
    r"sk-(?:proj-|ant-|svcacct-|admin-)?[A-Za-z0-9_\-]{8,}"
    r"|\blqtp?_[A-Za-z0-9]{8,}"
    r"|\bAIza[0-9A-Za-z_\-]{20,}"
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"
    r"|\bxox[abposr]-[A-Za-z0-9\-]{8,}"
    r"|\bgh[pousr]_[A-Za-z0-9]{20,}"
    r"|\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]+"
)
_BEARER_RE = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}")
_KV_RE = re.compile(
    r"(?i)((?:api[_-]?key|x-api-key|password|passwd|secret|access[_-]?token|refresh[_-]?token|token)"
    r"[\"']?\s*[:=]\s*[\"']?)[^\"'\s,;}&]{4,}"
)


def scrub_secrets(text: str) -> str:
    """Replace obvious secrets (``sk-…``/``lqt_…`` keys, bearer tokens, ``password=…``) with ``[REDACTED]``."""
    text = _SECRET_RE.sub(REDACTED, text)
    text = _BEARER_RE.sub(r"\1 " + REDACTED, text)
    return _KV_RE.sub(r"\1" + REDACTED, text)

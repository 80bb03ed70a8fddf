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

from opentelemetry_exporter_lumiqtrace.mapping.cache import GenerationalMemo

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
# Bounds of the memos of tag keys (user metadata keys are an open set).
DEFAULT_MAX_MEMO_KEYS = 4096
DEFAULT_MAX_MEMO_BYTES = 256 * 1024


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
        self.memo: GenerationalMemo[str, bool] = GenerationalMemo(
            max_entries=DEFAULT_MAX_MEMO_KEYS, max_bytes=DEFAULT_MAX_MEMO_BYTES, weigh=len, max_entry_bytes=256
        )
        # Raw tag key -> the key as sent (capped, cleaned), for keys that are not redacted. Its young generation is
        # read directly by fill_tags (a dict lookup per tag instead of a call).
        self.plain_tag_keys: GenerationalMemo[str, str] = GenerationalMemo(
            max_entries=DEFAULT_MAX_MEMO_KEYS, max_bytes=DEFAULT_MAX_MEMO_BYTES, weigh=len, max_entry_bytes=256
        )

    def matches(self, key: str) -> bool:
        hit = self.memo.get(key)
        if hit is not None:
            return hit
        norm = normalise_key(key)
        hit = norm in self._keys or ("." in norm and norm.rsplit(".", 1)[1] in self._keys)
        self.memo.put(key, hit)
        return hit

    def plain_tag_key(self, raw_key: str) -> str | None:
        """The key ``raw_key`` is sent as when it is known not to be redacted, else ``None``."""
        return self.plain_tag_keys.get(raw_key)

    def remember_plain_tag_key(self, raw_key: str, tag_key: str) -> None:
        """Record that ``raw_key`` is sent as ``tag_key`` unredacted."""
        self.plain_tag_keys.put(raw_key, tag_key)

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


# What each pattern cannot match without (a literal of every alternative): most texts have none, and one C-level
# search for these costs a fraction of the patterns' own scan, which tries every alternative at every position.
_SECRET_HINT_RE = re.compile(r"sk-|lqt|AIza|A[KS]IA|xox|gh[pousr]_|eyJ")
# (?i) patterns: their literals, lowered, are in the hint text (below) of every text they match.
_BEARER_HINTS = ("bearer", "basic")
_KV_HINTS = ("key", "pass", "secret", "token")
# Besides the ASCII letters, the only characters Python's re matches to an ASCII letter case-insensitively (every code
# point tried): U+0130 and U+0131 (dotted capital and dotless small I), U+017F (long s), and U+212A (KELVIN SIGN),
# which lower() already makes k.
_ASCII_FOLDS = (("\u0130", "i"), ("\u0131", "i"), ("\u017f", "s"))


def _hint_text(text: str) -> str:
    """``text`` lowered, with every character a (?i) pattern matches to an ASCII letter made that letter: a pattern's
    literal matches only where its lowered form is a substring of this."""
    if not text.isascii():
        for char, letter in _ASCII_FOLDS:
            if char in text:
                text = text.replace(char, letter)
    return text.lower()


def scrub_secrets(text: str) -> str:
    """Replace obvious secrets (``sk-…``/``lqt_…`` keys, bearer tokens, ``password=…``) with ``[REDACTED]``."""
    if _SECRET_HINT_RE.search(text) is not None:
        text = _SECRET_RE.sub(REDACTED, text)
    low = _hint_text(text)
    if _BEARER_HINTS[0] in low or _BEARER_HINTS[1] in low:
        text = _BEARER_RE.sub(r"\1 " + REDACTED, text)
        low = _hint_text(text)
    if ("=" in text or ":" in text) and any(hint in low for hint in _KV_HINTS):
        text = _KV_RE.sub(r"\1" + REDACTED, text)
    return text

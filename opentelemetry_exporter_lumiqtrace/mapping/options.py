# SPDX-License-Identifier: Apache-2.0
"""Settings of the span -> event mapping."""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry_exporter_lumiqtrace.mapping.values import DEFAULT_MAX_CONTENT_CHARS, DEFAULT_MAX_TAG_VALUE_CHARS
from opentelemetry_exporter_lumiqtrace.version import __version__

DEFAULT_MAX_TAGS = 64


@dataclass(frozen=True)
class MappingOptions:
    """Settings of the span -> event mapping (built by the exporter, rebuilt when remote config changes).

    Plain values only: the memos that depend on them (redaction decisions, identity tags) belong to the
    :class:`~opentelemetry_exporter_lumiqtrace.mapping.Mapper`.
    """

    environment: str | None = None
    capture_content: bool = False
    max_content_chars: int = DEFAULT_MAX_CONTENT_CHARS
    redact_keys: frozenset[str] = frozenset()
    max_tags: int = DEFAULT_MAX_TAGS
    max_tag_value_chars: int = DEFAULT_MAX_TAG_VALUE_CHARS
    ai_only: bool = False
    compute_cost: bool = True
    sdk_version: str = __version__

    def __post_init__(self) -> None:
        keys = self.redact_keys
        if not isinstance(keys, frozenset):
            object.__setattr__(self, "redact_keys", frozenset(k for k in (keys or ()) if isinstance(k, str)))

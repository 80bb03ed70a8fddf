# SPDX-License-Identifier: Apache-2.0
"""The one pass over a span's attributes: which fields have keys, prefix families, context tags, AI or not.

Each key is classified once (:func:`classify`, memoised per distinct key by the mapper); the pass ORs the field bits
of the keys present, collects the prefix families as ``(suffix, value)`` in attribute order and the context tag keys.
A field is then read only when its bit is set, by walking its keys in precedence order (:meth:`Scan.first`), so
precedence and fall-through on unusable values do not depend on the order or the set of the span's keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opentelemetry_exporter_lumiqtrace.mapping import conventions as c
from opentelemetry_exporter_lumiqtrace.mapping.cache import GenerationalMemo
from opentelemetry_exporter_lumiqtrace.mapping.flat import FlatPart, flat_part

_FIELD_BITS: dict[str, int] = {}
for _f in c.FIELDS.values():
    for _key in _f.keys:
        _FIELD_BITS[_key] = _FIELD_BITS.get(_key, 0) | _f.bit
_CONTEXT_RANK = {key: rank for rank, key in enumerate(c.CONTEXT_TAG_KEYS)}
_FAMILY_PREFIXES = tuple(prefix for prefix, _family in c.PREFIX_FAMILIES)
_MESSAGE_FAMILIES = frozenset((*c.PROMPT_FAMILIES, *c.RESPONSE_FAMILIES))
_IDENTITY_KEYS = frozenset(key for name in c.IDENTITY_FIELDS for key in c.FIELDS[name].keys)
# A key with none of these prefixes that is no exact key of a field or context tag is ignored (most new keys).
_NOTABLE_PREFIXES = (*_FAMILY_PREFIXES, c.LQT_PREFIX, *c.AI_PREFIXES)
_EXACT_KEYS = frozenset((*_FIELD_BITS, *_CONTEXT_RANK))


# Set in a scan's bits when a key makes the span an AI span (above every field bit).
AI_BIT = 1 << len(c.FIELDS)


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What the pass does with one attribute key."""

    bits: int  # the fields the key belongs to, and AI_BIT when the key makes the span an AI span
    identity: bool  # the key is read to identify model, provider or kind (see Mapper's identity memo)
    family: c.Family | None  # the prefix family of tags and association properties, with the suffix after the prefix
    suffix: str
    part: FlatPart | None  # a flattened message key: the part it names (parsed here, once per distinct key)
    context_rank: int  # position in CONTEXT_TAG_KEYS, or -1
    # What else the pass does with the key's value (a ROUTE_*): most keys only set bits, and most of the others are
    # only an identity key or only a context tag key, each one test away.
    route: int


ROUTE_IGNORED = 0  # nothing: most keys of most spans (and no OR of a multi-digit int for them)
ROUTE_BITS_ONLY = 1
ROUTE_IDENTITY = 2
ROUTE_CONTEXT = 3
# A flattened message key, a prefix family, or several of identity and context tag (server.address is both).
ROUTE_ANY = 4

IGNORED = KeyInfo(bits=0, identity=False, family=None, suffix="", part=None, context_rank=-1, route=ROUTE_IGNORED)


def classify(key: Any) -> KeyInfo:
    """The conventions' rules for one key (exact keys of the field table, prefix families, AI prefixes)."""
    if not isinstance(key, str) or not (key.startswith(_NOTABLE_PREFIXES) or key in _EXACT_KEYS):
        return IGNORED
    family: c.Family | None = None
    suffix = ""
    if key.startswith(_FAMILY_PREFIXES):  # one C call for the usual key, which is in no family
        for prefix, candidate in c.PREFIX_FAMILIES:
            if key.startswith(prefix):
                family, suffix = candidate, key[len(prefix) :]
                break
    if key.startswith(c.LQT_PREFIX):
        ai = family is None and key not in c.LQT_CONTEXT_KEYS
    else:
        ai = key.startswith(c.AI_PREFIXES)
    part: FlatPart | None = None
    if family is not None and family in _MESSAGE_FAMILIES:
        # A flattened message key the message reader ignores (gen_ai.completion.0.finish_reason) is no part.
        part = flat_part(family, suffix)
        family, suffix = None, ""
    bits = _FIELD_BITS.get(key, 0) | (AI_BIT if ai else 0)
    rank = _CONTEXT_RANK.get(key, -1)
    if not (bits or family is not None or part is not None or rank >= 0):
        return IGNORED
    identity = key in _IDENTITY_KEYS
    if part is not None or family is not None or (identity and rank >= 0):
        route = ROUTE_ANY
    elif identity:
        route = ROUTE_IDENTITY
    elif rank >= 0:
        route = ROUTE_CONTEXT
    else:
        route = ROUTE_BITS_ONLY
    return KeyInfo(
        bits=bits,
        identity=identity,
        family=family,
        suffix=suffix,
        part=part,
        context_rank=rank,
        route=route,
    )


def new_key_memo(*, max_entries: int, max_bytes: int) -> GenerationalMemo[str, KeyInfo]:
    """The memo of :func:`classify` per distinct key; str keys only (weighed by ``len``, a C call)."""
    return GenerationalMemo(max_entries=max_entries, max_bytes=max_bytes, weigh=len, max_entry_bytes=256)


def _learn(memo: GenerationalMemo[str, KeyInfo], key: Any) -> KeyInfo:
    """What the pass does with a key the memo's young generation does not have: from the old generation, else
    classified; remembered in the young one either way. A key that is not a str (no SDK span has one) is classified
    each time instead, as it is ignored anyway."""
    if key.__class__ is not str:
        return classify(key)
    info = memo.old.pop(key, None)
    if info is None:
        info = classify(key)
    memo.put(key, info)
    return info


class Scan:
    """One span's attributes after the pass, which ``Scan(attrs, memo)`` makes (one call per span: the pass is the
    constructor, not a function that then builds the object)."""

    __slots__ = ("ai", "attrs", "context", "families", "identity_items", "messages", "present")

    attrs: dict[Any, Any]
    present: int  # OR of the field bits of the keys present
    ai: bool
    identity_items: list[Any]  # key, value, key, value, ... of the identity keys, in attribute order
    families: dict[c.Family, list[tuple[str, Any]]] | None  # (suffix, value) per prefix family, in attribute order
    messages: dict[c.Family, list[tuple[FlatPart, Any]]] | None  # (part, value) per message family, attribute order
    # (position in CONTEXT_TAG_KEYS, key, value) of the context tag keys present, in attribute order.
    context: list[tuple[int, str, Any]]

    def __init__(self, attrs: dict[Any, Any], memo: GenerationalMemo[str, KeyInfo]) -> None:
        present = 0
        identity_items: list[Any] = []
        families: dict[c.Family, list[tuple[str, Any]]] | None = None
        messages: dict[c.Family, list[tuple[FlatPart, Any]]] | None = None
        context: list[tuple[int, str, Any]] = []
        # The message family of the previous flattened message key and its list: a family's keys usually come
        # together.
        message_family: c.Family | None = None
        message_items: list[tuple[FlatPart, Any]] = []
        known = memo.young
        for key, value in attrs.items():
            try:
                # A subscript, not get(): the usual key is known, and a miss costs no more than classifying it does.
                info = known[key]
            except KeyError:
                info = _learn(memo, key)
                known = memo.young  # a put may start a new generation
            route = info.route
            if not route:  # ROUTE_IGNORED
                continue
            present |= info.bits
            if route == ROUTE_BITS_ONLY:
                continue
            if route == ROUTE_IDENTITY:
                identity_items += (key, value)
            elif route == ROUTE_CONTEXT:
                context.append((info.context_rank, key, value))
            else:
                part = info.part
                if part is not None:
                    # A flattened message key (the most keys of a span with messages) is nothing else.
                    if part.family is not message_family:
                        if messages is None:
                            messages = {}
                        message_family = part.family
                        found = messages.get(message_family)
                        if found is None:
                            found = messages[message_family] = []
                        message_items = found
                    message_items.append((part, value))
                    continue
                if info.identity:
                    identity_items += (key, value)
                family = info.family
                if family is not None:
                    if families is None:
                        families = {}
                    items = families.get(family)
                    if items is None:
                        families[family] = [(info.suffix, value)]
                    else:
                        items.append((info.suffix, value))
                if info.context_rank >= 0:
                    context.append((info.context_rank, key, value))
        self.attrs = attrs
        self.present = present
        self.ai = bool(present & AI_BIT)
        self.identity_items = identity_items
        self.families = families
        self.messages = messages
        self.context = context

    def has(self, f: c.Field) -> bool:
        return bool(self.present & f.bit)

    def first(self, f: c.Field) -> Any:
        """The field's first usable value in precedence order, or ``None``."""
        if not self.present & f.bit:
            return None
        attrs = self.attrs
        for key in f.keys:
            value = attrs.get(key)
            if value is not None:
                parsed = f.parse(value)
                if parsed is not None:
                    return parsed
        return None

    def family(self, family: c.Family) -> list[tuple[str, Any]] | None:
        return self.families.get(family) if self.families is not None else None

    def message_parts(self, family: c.Family) -> list[tuple[FlatPart, Any]] | None:
        return self.messages.get(family) if self.messages is not None else None

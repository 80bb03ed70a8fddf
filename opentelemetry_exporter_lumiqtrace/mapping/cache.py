# SPDX-License-Identifier: Apache-2.0
"""A memo bounded in entries and in bytes that forgets gradually (two generations).

New entries go into the young generation; a hit in the old one moves the entry back into the young one. When the
young generation is full (entries or bytes), it becomes the old one and the previous old one is dropped: what is
still in use survives the turn, and memory stays below twice the limits. The bytes of an entry are those of the
strings its key keeps alive (values are made from the key's strings); an entry heavier than ``max_entry_bytes`` is
never stored, so a memo never pins a long string.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class GenerationalMemo(Generic[K, V]):
    __slots__ = ("_bytes", "_max_bytes", "_max_entries", "_weigh", "max_entry_bytes", "old", "young")

    def __init__(
        self, *, max_entries: int, max_bytes: int, weigh: Callable[[K], int], max_entry_bytes: int = 1_024
    ) -> None:
        # Each generation holds half of the limits.
        self._max_entries = max(max_entries // 2, 1)
        self._max_bytes = max(max_bytes // 2, 1)
        self._weigh = weigh
        self.max_entry_bytes = max_entry_bytes
        # The young generation is read directly by hot loops (a dict lookup instead of a method call).
        self.young: dict[K, V] = {}
        self.old: dict[K, V] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self.young) + len(self.old)

    @property
    def bytes(self) -> int:
        """The weight of the young generation (the old one weighs at most the limit)."""
        return self._bytes

    def get(self, key: K) -> V | None:
        value = self.young.get(key)
        if value is None:
            value = self.old.pop(key, None)
            if value is not None:
                self.put(key, value)
        return value

    def put(self, key: K, value: V) -> None:
        weight = self._weigh(key)
        if weight > self.max_entry_bytes:
            return
        if len(self.young) >= self._max_entries or self._bytes + weight > self._max_bytes:
            self.old = self.young
            self.young = {}
            self._bytes = 0
        self.young[key] = value
        self._bytes += weight

"""Bytes-bounded LRU segment cache: the readable specification of the native twin.

Why a cache of our own: segments are large immutable ``bytes`` shared by many viewers, so the
bound must be in bytes (not entries), values must never be copied, and every operation O(1).

Semantics both twins share exactly:
- An entry costs ``len(key) + len(value)`` bytes (keys are short ASCII hex digests; counting them
  keeps the accounting honest for many small values).
- ``put`` of a value whose cost exceeds ``max_bytes`` stores nothing, drops any older value under
  that key (it is superseded) and returns ``False``; otherwise it stores, becomes most recent,
  evicts least-recent entries until the total fits, and returns ``True``.
- ``get`` of a present key counts a hit and makes it most recent; a missing key counts a miss.
- ``pop``, ``__contains__`` and ``__len__`` change neither recency nor the hit/miss counters.
- Evictions (by ``put``, by shrinking ``max_bytes``, ``evict_to`` or ``evict_aged``) remove
  least-recent first and are all counted in ``stats()["evictions"]``.
- Each entry remembers when it was stored (monotonic clock) so that memory pressure can spare
  entries younger than a retention time (``evict_aged``); a hit does not change that time.
"""
from __future__ import annotations

import time
from collections import OrderedDict

__all__ = ["SegmentCache"]


class SegmentCache:
    __slots__ = ("_data", "_stored", "_max_bytes", "_nbytes", "_hits", "_misses", "_evictions")

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self._data: OrderedDict[str, bytes] = OrderedDict()
        self._stored: dict[str, float] = {}
        self._max_bytes = int(max_bytes)
        self._nbytes = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0

    def get(self, key: str) -> bytes | None:
        if not isinstance(key, str):
            raise TypeError("key must be str")
        value = self._data.get(key)
        if value is None:
            self._misses += 1
            return None
        self._data.move_to_end(key)
        self._hits += 1
        return value

    def put(self, key: str, value: bytes) -> bool:
        if not isinstance(key, str):
            raise TypeError("key must be str")
        if not isinstance(value, bytes):
            raise TypeError("value must be bytes")
        cost = len(key) + len(value)
        old = self._data.pop(key, None)
        if old is not None:
            self._nbytes -= len(key) + len(old)
            del self._stored[key]
        if cost > self._max_bytes:
            return False
        self._data[key] = value
        self._stored[key] = time.monotonic()
        self._nbytes += cost
        self._evict_until(self._max_bytes)
        return True

    def pop(self, key: str) -> bytes | None:
        if not isinstance(key, str):
            raise TypeError("key must be str")
        value = self._data.pop(key, None)
        if value is not None:
            self._nbytes -= len(key) + len(value)
            del self._stored[key]
        return value

    def evict_to(self, target_bytes: int) -> int:
        """Evict least-recent entries until at most ``target_bytes`` remain; returns how many."""
        return self._evict_until(max(0, int(target_bytes)))

    def evict_aged(self, target_bytes: int, stored_before: float) -> int:
        """Like ``evict_to``, but only entries stored at or before ``stored_before`` (monotonic
        seconds) are eligible; younger ones are skipped and stay. Returns how many were evicted."""
        target = max(0, int(target_bytes))
        victims = []
        excess = self._nbytes - target
        for key, value in self._data.items():
            if excess <= 0:
                break
            if self._stored[key] <= stored_before:
                victims.append(key)
                excess -= len(key) + len(value)
        for key in victims:
            self._nbytes -= len(key) + len(self._data.pop(key))
            del self._stored[key]
        self._evictions += len(victims)
        return len(victims)

    def _evict_until(self, limit: int) -> int:
        evicted = 0
        data = self._data
        while self._nbytes > limit and data:
            key, value = data.popitem(last=False)
            del self._stored[key]
            self._nbytes -= len(key) + len(value)
            evicted += 1
        self._evictions += evicted
        return evicted

    def keys(self) -> list[str]:
        """Keys from least to most recent (for tests and debugging; O(n))."""
        return list(self._data)

    def clear(self) -> None:
        self._data.clear()
        self._stored.clear()
        self._nbytes = 0

    @property
    def nbytes(self) -> int:
        return self._nbytes

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    @max_bytes.setter
    def max_bytes(self, value: int) -> None:
        if value < 0:
            raise ValueError("max_bytes must be >= 0")
        self._max_bytes = int(value)
        self._evict_until(self._max_bytes)

    def stats(self) -> dict[str, int]:
        return {
            "hits": self._hits,
            "misses": self._misses,
            "evictions": self._evictions,
            "bytes": self._nbytes,
            "entries": len(self._data),
            "max_bytes": self._max_bytes,
        }

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

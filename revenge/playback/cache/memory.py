"""The in-process segment cache: the native ``SegmentCache`` plus the policy around it.

Policy lives here, mechanism in ``_native``: entries too large for memory are refused (they go to
the disk cache instead), inserts are refused while memory pressure is critical, and every
eviction is counted by reason (``size`` when an insert makes room, ``pressure`` when the monitor
shrinks the cache).
"""
from __future__ import annotations

import time

import psutil

from ..._native.segcache import SegmentCache
from ...core.config.schema import MemoryCacheConfig
from ...observability.instruments import Instruments

MIN_AUTO = 64 * 1024**2
MAX_AUTO = 4 * 1024**3


def auto_max_bytes(cfg: MemoryCacheConfig, total_memory: int | None = None) -> int:
    if cfg.max_bytes:
        return cfg.max_bytes
    total = total_memory if total_memory is not None else psutil.virtual_memory().total
    return int(min(MAX_AUTO, max(MIN_AUTO, total * cfg.auto_fraction)))


class MemorySegmentCache:
    def __init__(self, cfg: MemoryCacheConfig, metrics: Instruments | None = None) -> None:
        self._cache = SegmentCache(auto_max_bytes(cfg))
        self._max_entry = cfg.max_entry_bytes or self._cache.max_bytes // 8
        self.refuse_inserts = False
        self._m = metrics
        if metrics is not None:
            metrics.segment_cache_bytes.set_function(lambda: float(self._cache.nbytes))
            metrics.segment_cache_entries.set_function(lambda: float(len(self._cache)))
            metrics.segment_cache_max_bytes.set_function(lambda: float(self._cache.max_bytes))
            self._hits = metrics.segment_cache_hits._only()
            self._misses = metrics.segment_cache_misses._only()
            self._ev_size = metrics.segment_cache_evictions.labels("size")
            self._ev_pressure = metrics.segment_cache_evictions.labels("pressure")

    def get(self, key: str) -> bytes | None:
        value = self._cache.get(key)
        if self._m is not None:
            (self._hits if value is not None else self._misses).inc()
        return value

    def put(self, key: str, value: bytes) -> bool:
        if self.refuse_inserts or len(value) > self._max_entry:
            self._cache.pop(key)  # a newer value exists; never serve the superseded one
            return False
        before = self._cache.stats()["evictions"]
        stored = self._cache.put(key, value)
        evicted = self._cache.stats()["evictions"] - before
        if evicted and self._m is not None:
            self._ev_size.inc(evicted)
        return stored

    def pop(self, key: str) -> bytes | None:
        return self._cache.pop(key)

    def __contains__(self, key: str) -> bool:
        return key in self._cache

    def __len__(self) -> int:
        return len(self._cache)

    @property
    def max_bytes(self) -> int:
        return self._cache.max_bytes

    @property
    def nbytes(self) -> int:
        return self._cache.nbytes

    def reconfigure(self, cfg: MemoryCacheConfig) -> None:
        """Hot reload: a lower bound evicts at once (counted as size evictions)."""
        before = self._cache.stats()["evictions"]
        self._cache.max_bytes = auto_max_bytes(cfg)
        self._max_entry = cfg.max_entry_bytes or self._cache.max_bytes // 8
        evicted = self._cache.stats()["evictions"] - before
        if evicted and self._m is not None:
            self._ev_size.inc(evicted)

    def shed(self, target_bytes: int, min_age: float) -> int:
        """Pressure eviction: LRU entries older than ``min_age`` seconds, down to ``target_bytes``."""
        n = self._cache.evict_aged(target_bytes, time.monotonic() - min_age) if min_age > 0 else self._cache.evict_to(target_bytes)
        if n and self._m is not None:
            self._ev_pressure.inc(n)
        return n

    def stats(self) -> dict[str, int]:
        return self._cache.stats()

    def clear(self) -> None:
        self._cache.clear()

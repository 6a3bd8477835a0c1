"""Memory segment cache policy and the pressure monitor (playback.md §7), with a fake sampler."""
from __future__ import annotations

import time

from revenge.core.config.schema import MemoryCacheConfig
from revenge.observability.instruments import Instruments
from revenge.observability.metrics import Registry
from revenge.playback.cache.memory import MIN_AUTO, MemorySegmentCache, auto_max_bytes
from revenge.playback.cache.pressure import CRITICAL, HIGH, NORMAL, MemoryPressureMonitor


def make(max_bytes=10_000, **kw):
    reg = Registry()
    m = Instruments(reg)
    cfg = MemoryCacheConfig(max_bytes=max_bytes, **kw)
    return MemorySegmentCache(cfg, m), cfg, reg


def test_auto_size_is_clamped():
    assert auto_max_bytes(MemoryCacheConfig(), total_memory=100) == MIN_AUTO
    assert auto_max_bytes(MemoryCacheConfig(), total_memory=10 * 1024**3) == 1024**3
    assert auto_max_bytes(MemoryCacheConfig(), total_memory=1024**4) == 4 * 1024**3
    assert auto_max_bytes(MemoryCacheConfig(max_bytes=5000)) == 5000


def test_large_entries_refused_and_metrics_exported():
    cache, _, reg = make(8000)  # max entry = 1000
    assert cache.put("small", b"x" * 500)
    assert not cache.put("big", b"x" * 1001)
    assert cache.get("small") and cache.get("nope") is None
    text = reg.render().decode()
    assert "revenge_segment_cache_hits_total 1\n" in text
    assert "revenge_segment_cache_misses_total 1\n" in text
    assert "revenge_segment_cache_max_bytes 8000.0\n" in text
    assert "revenge_segment_cache_entries 1.0\n" in text


def test_size_evictions_counted_and_reload_shrinks():
    cache, cfg, reg = make(8000)
    for i in range(20):
        cache.put(f"k{i:02d}", b"x" * 797)  # 800 bytes each → 10 fit
    assert len(cache) == 10
    assert 'revenge_segment_cache_evictions_total{reason="size"} 10\n' in reg.render().decode()
    cache.reconfigure(MemoryCacheConfig(max_bytes=4000))
    assert len(cache) == 5 and cache.max_bytes == 4000


def test_pressure_levels_shed_and_refuse():
    cache, cfg, reg = make(8000, min_retention_seconds=0.05)
    ratio = [0.5]
    mon = MemoryPressureMonitor(cache, cfg, cache._m, sampler=lambda: ratio[0])
    for i in range(8):
        cache.put(f"old{i}", b"x" * 996)  # 1000 bytes each
    time.sleep(0.06)
    for i in range(2):
        cache.put(f"new{i}", b"x" * 996)
    assert len(cache) == 8 and mon.check() == 0 and mon.level == NORMAL
    ratio[0] = 0.9
    n = mon.check()  # high: old entries only, down to 4000 bytes
    assert mon.level == HIGH and n == 4 and cache.nbytes <= 4000
    assert "new0" in cache and "new1" in cache
    ratio[0] = 0.97
    n = mon.check()  # critical: regardless of age, down to 2000, refuse inserts
    assert mon.level == CRITICAL and cache.nbytes <= 2000
    assert not cache.put("fresh", b"x")
    text = reg.render().decode()
    assert "revenge_memory_pressure_level 2.0\n" in text
    assert f'revenge_segment_cache_evictions_total{{reason="pressure"}} {4 + n}\n' in text
    ratio[0] = 0.2
    mon.check()
    assert mon.level == NORMAL and cache.put("fresh", b"x")

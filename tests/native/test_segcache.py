"""SegmentCache semantics, run against both twins."""
from __future__ import annotations

import sys

import pytest


def cost(key: str, value: bytes) -> int:
    return len(key) + len(value)


def test_put_get_counts_hits_and_misses(segcache):
    c = segcache.SegmentCache(1000)
    assert c.put("a", b"x" * 10) is True
    assert c.get("a") == b"x" * 10
    assert c.get("missing") is None
    s = c.stats()
    assert (s["hits"], s["misses"], s["entries"], s["bytes"]) == (1, 1, 1, cost("a", b"x" * 10))


def test_values_are_not_copied(segcache):
    c = segcache.SegmentCache(1 << 20)
    value = b"segment" * 1000
    c.put("k", value)
    assert c.get("k") is value


def test_evicts_least_recently_used_first(segcache):
    c = segcache.SegmentCache(3 * cost("a", b"1" * 10))
    for k in "abc":
        c.put(k, b"1" * 10)
    c.get("a")  # a becomes most recent; b is now least recent
    c.put("d", b"1" * 10)
    assert "b" not in c
    assert c.keys() == ["c", "a", "d"]
    assert c.stats()["evictions"] == 1


def test_bound_counts_bytes_not_entries(segcache):
    c = segcache.SegmentCache(100)
    c.put("big", b"x" * 90)
    c.put("s1", b"x" * 5)  # 93 + 7 = 100 fits exactly
    assert len(c) == 2 and c.nbytes == 100
    c.put("s2", b"x")  # 103 > 100 → evict "big"
    assert c.keys() == ["s1", "s2"]
    assert c.nbytes == 7 + 3


def test_oversized_value_is_refused_and_supersedes_old_value(segcache):
    c = segcache.SegmentCache(50)
    assert c.put("k", b"small")
    assert c.put("k", b"x" * 100) is False
    assert "k" not in c and c.nbytes == 0 and len(c) == 0


def test_replacing_a_key_updates_bytes(segcache):
    c = segcache.SegmentCache(1000)
    c.put("k", b"x" * 100)
    c.put("k", b"y" * 10)
    assert c.nbytes == cost("k", b"y" * 10) and len(c) == 1
    assert c.get("k") == b"y" * 10


def test_pop_and_contains_do_not_touch_counters_or_recency(segcache):
    c = segcache.SegmentCache(1000)
    c.put("a", b"1")
    c.put("b", b"2")
    assert "a" in c
    assert c.keys() == ["a", "b"]
    assert c.pop("a") == b"1"
    assert c.pop("a") is None
    assert c.stats()["hits"] == 0 and c.stats()["misses"] == 0
    assert c.nbytes == cost("b", b"2")


def test_shrinking_max_bytes_evicts_at_once(segcache):
    c = segcache.SegmentCache(1000)
    for i in range(10):
        c.put(f"k{i}", b"x" * 50)
    c.max_bytes = 110
    assert c.nbytes <= 110 and c.keys() == ["k8", "k9"]
    assert c.max_bytes == 110
    with pytest.raises(ValueError):
        c.max_bytes = -1


def test_evict_to_returns_count_and_keeps_most_recent(segcache):
    c = segcache.SegmentCache(10_000)
    for i in range(10):
        c.put(f"k{i}", b"x" * 98)  # 100 bytes each
    assert c.evict_to(350) == 7
    assert c.keys() == ["k7", "k8", "k9"]
    assert c.evict_to(-5) == 3 and len(c) == 0
    assert c.stats()["evictions"] == 10


def test_type_errors(segcache):
    c = segcache.SegmentCache(100)
    with pytest.raises(TypeError):
        c.put("k", "not bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        c.put(1, b"x")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        segcache.SegmentCache(-1)


def test_clear(segcache):
    c = segcache.SegmentCache(100)
    c.put("a", b"1")
    c.clear()
    assert len(c) == 0 and c.nbytes == 0 and c.get("a") is None


def test_evicted_values_are_released(segcache):
    c = segcache.SegmentCache(100)
    value = bytes(60)
    base = sys.getrefcount(value)
    c.put("a", value)
    assert sys.getrefcount(value) == base + 1
    c.put("b", bytes(60))  # evicts a
    assert sys.getrefcount(value) == base


def test_evict_aged_spares_young_entries(segcache):
    import time

    c = segcache.SegmentCache(10_000)
    c.put("old1", b"x" * 96)
    c.put("old2", b"x" * 96)
    cutoff = time.monotonic()
    time.sleep(0.01)
    c.put("young", b"x" * 95)
    c.get("old1")  # recency does not make an entry younger
    assert c.evict_aged(0, cutoff) == 2
    assert c.keys() == ["young"]
    assert c.stats()["evictions"] == 2
    c.put("a", b"1")
    assert c.evict_aged(0, float("-inf")) == 0
    assert c.evict_aged(0, float("inf")) == 2 and len(c) == 0


def test_evict_aged_stops_at_target(segcache):
    c = segcache.SegmentCache(10_000)
    for i in range(10):
        c.put(f"k{i}", b"x" * 98)
    assert c.evict_aged(500, float("inf")) == 5
    assert c.keys()[0] == "k5"

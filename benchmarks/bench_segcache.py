"""Bytes-bounded LRU: revenge SegmentCache vs cachebox, cachetools, lru-dict, functools.lru_cache."""
from __future__ import annotations

import functools
import random

import pytest

from conftest import BATCH, twin

N = 10_000
VALUE = b"x" * 1024
KEYS = [f"{i:040x}" for i in range(N)]
random.seed(7)
HOT = [random.choice(KEYS) for _ in range(BATCH)]
FRESH = [f"new{i:037x}" for i in range(BATCH)]
BOUND = N * (1024 + 40)


@pytest.mark.parametrize("impl", ["native", "pure"])
def test_get_hit_revenge(record, impl):
    c = twin("segcache", impl).SegmentCache(BOUND * 2)
    for k in KEYS:
        c.put(k, VALUE)
    get = c.get

    def run():
        for k in HOT:
            get(k)

    record("cache get (hit), 10k entries", f"revenge-{impl}", run)


def test_get_hit_cachebox(record):
    cachebox = pytest.importorskip("cachebox")
    c = cachebox.LRUCache(BOUND * 2, getsizeof=lambda k, v: len(k) + len(v))
    for k in KEYS:
        c[k] = VALUE
    get = c.get

    def run():
        for k in HOT:
            get(k)

    record("cache get (hit), 10k entries", "cachebox", run)


def test_get_hit_cachetools(record):
    cachetools = pytest.importorskip("cachetools")
    c = cachetools.LRUCache(BOUND * 2, getsizeof=len)
    for k in KEYS:
        c[k] = VALUE
    get = c.get

    def run():
        for k in HOT:
            get(k)

    record("cache get (hit), 10k entries", "cachetools", run)


def test_get_hit_lru_dict(record):
    lru = pytest.importorskip("lru")
    c = lru.LRU(N * 2)  # count-bounded only: not comparable on semantics, shown for speed
    for k in KEYS:
        c[k] = VALUE
    get = c.get

    def run():
        for k in HOT:
            get(k)

    record("cache get (hit), 10k entries", "lru-dict", run)


def test_get_hit_functools(record):
    @functools.lru_cache(maxsize=N * 2)
    def load(k):
        return VALUE

    for k in KEYS:
        load(k)

    def run():
        for k in HOT:
            load(k)

    record("cache get (hit), 10k entries", "functools", run)


@pytest.mark.parametrize("impl", ["native", "pure"])
def test_put_evict_revenge(record, impl):
    c = twin("segcache", impl).SegmentCache(BOUND)
    for k in KEYS:
        c.put(k, VALUE)
    put = c.put

    def run():
        for k in FRESH:
            put(k, VALUE)

    record("cache put with eviction", f"revenge-{impl}", run)


def test_put_evict_cachebox(record):
    cachebox = pytest.importorskip("cachebox")
    c = cachebox.LRUCache(BOUND, getsizeof=lambda k, v: len(k) + len(v))
    for k in KEYS:
        c[k] = VALUE

    def run():
        for k in FRESH:
            c[k] = VALUE

    record("cache put with eviction", "cachebox", run)


def test_put_evict_cachetools(record):
    cachetools = pytest.importorskip("cachetools")
    c = cachetools.LRUCache(BOUND, getsizeof=len)
    for k in KEYS:
        c[k] = VALUE

    def run():
        for k in FRESH:
            c[k] = VALUE

    record("cache put with eviction", "cachetools", run)


def test_put_evict_lru_dict(record):
    lru = pytest.importorskip("lru")
    c = lru.LRU(N)
    for k in KEYS:
        c[k] = VALUE

    def run():
        for k in FRESH:
            c[k] = VALUE

    record("cache put with eviction", "lru-dict", run)

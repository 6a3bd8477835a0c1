"""Scaling: cache get/put must stay flat from 1e3 to 1e6 entries; render linear in series."""
from __future__ import annotations

import random

import pytest

from conftest import BATCH, twin


@pytest.mark.parametrize("entries", [1_000, 100_000, 1_000_000])
def test_cache_ops_flat(record, entries):
    c = twin("segcache", "native").SegmentCache(entries * 60)
    value = b"v" * 16
    keys = [f"{i:040x}" for i in range(entries)]
    for k in keys:
        c.put(k, value)
    rnd = random.Random(1)
    hot = [rnd.choice(keys) for _ in range(BATCH)]
    fresh = [f"n{i:039x}" for i in range(BATCH)]
    get, put = c.get, c.put

    def run():
        for k in hot:
            get(k)
        for k in fresh:
            put(k, value)

    record(f"scaling: cache get+put at {entries:,} entries", "revenge-native", run, batch=2 * BATCH)


@pytest.mark.parametrize("series", [100, 400, 1600])
def test_render_linear(record, series):
    from bench_metrics import _fill_revenge

    r = _fill_revenge(series)
    record(f"scaling: render at {series} hist+counter series", "revenge-native", r.render, batch=series)

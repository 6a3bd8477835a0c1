"""Keyed token bucket over 10k client keys: revenge vs token-bucket, limits, aiolimiter."""
from __future__ import annotations

import random

import pytest

from conftest import BATCH, twin

KEYS = [f"10.0.{i // 256}.{i % 256}" for i in range(10_000)]
random.seed(3)
SEQ = [random.choice(KEYS) for _ in range(BATCH)]


@pytest.mark.parametrize("impl", ["native", "pure"])
def test_keyed_revenge(record, impl):
    lim = twin("ratelimit", impl).KeyedLimiter(1e9, 1e9, max_keys=20_000)
    allow = lim.allow
    for k in KEYS:
        allow(k)

    def run():
        for k in SEQ:
            allow(k)

    record("keyed limiter, 10k keys", f"revenge-{impl}", run)


def test_keyed_token_bucket(record):
    tb = pytest.importorskip("token_bucket")
    lim = tb.Limiter(1e9, 10**9, tb.MemoryStorage())
    consume = lim.consume
    for k in KEYS:
        consume(k)

    def run():
        for k in SEQ:
            consume(k)

    record("keyed limiter, 10k keys", "token-bucket", run)


def test_keyed_limits_fixed_window(record):
    limits = pytest.importorskip("limits")
    from limits.storage import MemoryStorage
    from limits.strategies import FixedWindowRateLimiter

    storage = MemoryStorage()
    lim = FixedWindowRateLimiter(storage)
    item = limits.parse("1000000000/second")
    hit = lim.hit
    for k in KEYS:
        hit(item, k)

    def run():
        for k in SEQ:
            hit(item, k)

    record("keyed limiter, 10k keys", "limits (fixed window)", run)
    storage.reset()


def test_keyed_aiolimiter(record):
    import asyncio

    aiolimiter = pytest.importorskip("aiolimiter")
    loop = asyncio.new_event_loop()
    table = {k: aiolimiter.AsyncLimiter(1e9, 1e9) for k in KEYS}

    # aiolimiter is async-only: the batch awaits acquire() inside one event loop run, which never
    # waits at this rate, so the time is its bucket bookkeeping plus the coroutine call
    async def batch():
        for k in SEQ:
            await table[k].acquire()

    try:
        record("keyed limiter, 10k keys", "aiolimiter", lambda: loop.run_until_complete(batch()))
    finally:
        loop.close()

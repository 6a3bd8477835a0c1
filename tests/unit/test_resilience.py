"""Breaker, retry and bulkhead rules (resilience.md §1–3) with fake clocks, no sleeping."""
from __future__ import annotations

import asyncio
import random

import pytest

from revenge.core.config.schema import BreakerConfig, RetryConfig
from revenge.resilience.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from revenge.resilience.bulkhead import Bulkhead
from revenge.resilience.errors import BulkheadFullError, BulkheadTimeoutError, CircuitOpenError, DependencyError
from revenge.resilience.retry import Retry


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def ok():
    return "ok"


async def boom():
    raise DependencyError("down", status=503)


async def not_found():
    raise DependencyError("nope", status=404)


def run(coro):
    return asyncio.run(coro)


async def outcome(b: CircuitBreaker, fn) -> str:
    try:
        await b.call(fn)
        return "ok"
    except CircuitOpenError:
        return "rejected"
    except DependencyError:
        return "error"


def test_consecutive_rule():
    async def main():
        b = CircuitBreaker("t", BreakerConfig(failure_ratio=0), clock=Clock())
        for fn in [boom] * 4 + [ok] + [boom] * 4:
            await outcome(b, fn)
        assert b.state == CLOSED
        await outcome(b, boom)
        assert b.state == OPEN
        called = []

        async def spy():
            called.append(1)

        with pytest.raises(CircuitOpenError) as info:
            await b.call(spy)
        assert not called and 29 < info.value.retry_after <= 30

    run(main())


def test_ratio_rule_window_forgets():
    async def main():
        clock = Clock()
        b = CircuitBreaker("t", BreakerConfig(failure_threshold=0, failure_ratio=0.5, min_calls=10), clock=clock)
        for i in range(1000):
            clock.now = 1000 + i * 0.05
            await outcome(b, ok)
        clock.now = 1120
        for _ in range(6):
            await outcome(b, ok)
        for _ in range(6):
            await outcome(b, boom)
        assert b.state == OPEN
        b2 = CircuitBreaker("t2", BreakerConfig(failure_threshold=0, failure_ratio=0.5, min_calls=10), clock=Clock())
        for _ in range(9):
            await outcome(b2, boom)
        assert b2.state == CLOSED

    run(main())


def test_half_open_probes_close_or_reopen_and_listener_order():
    async def main():
        clock = Clock()
        b = CircuitBreaker("t", BreakerConfig(failure_threshold=1, failure_ratio=0), clock=clock)
        seen = []
        b.add_listener(lambda name, old, new: seen.append((old, new)))
        await outcome(b, boom)
        clock.now += 30
        gate = asyncio.Event()

        async def slow():
            await gate.wait()

        probes = [asyncio.ensure_future(b.call(slow)) for _ in range(3)]
        await asyncio.sleep(0)
        assert b.state == HALF_OPEN
        with pytest.raises(CircuitOpenError):
            await b.call(ok)  # the fourth concurrent call
        probes[0].cancel()  # a cancelled probe frees its slot
        await asyncio.sleep(0)
        fourth = asyncio.ensure_future(b.call(slow))
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(*probes[1:], fourth)
        assert b.state == CLOSED
        assert seen == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]

    run(main())


def test_probe_failure_reopens_and_hanging_probes_time_out():
    async def main():
        clock = Clock()
        b = CircuitBreaker("t", BreakerConfig(failure_threshold=1, failure_ratio=0, half_open_timeout=5), clock=clock)
        await outcome(b, boom)
        clock.now += 30
        assert await outcome(b, boom) == "error" and b.state == OPEN
        clock.now += 30
        hang = asyncio.ensure_future(b.call(asyncio.Event().wait))
        await asyncio.sleep(0)
        clock.now += 6
        assert await outcome(b, ok) == "rejected" and b.state == OPEN
        hang.cancel()

    run(main())


def test_stragglers_reads_cancellation_and_4xx():
    async def main():
        clock = Clock()
        b = CircuitBreaker("t", BreakerConfig(failure_threshold=1, failure_ratio=0), clock=clock)
        gate = asyncio.Event()

        async def slow_ok():
            await gate.wait()

        straggler = asyncio.ensure_future(b.call(slow_ok))
        await asyncio.sleep(0)
        await outcome(b, boom)
        gate.set()
        await straggler
        assert b.state == OPEN  # a call admitted before the trip cannot close it
        clock.now += 100
        for _ in range(1000):
            assert b.state == OPEN
        b.reset()
        tasks = [asyncio.ensure_future(b.call(asyncio.Event().wait)) for _ in range(10)]
        await asyncio.sleep(0)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert b.snapshot()["window_failures"] == 0 and b.snapshot()["failure_rate"] is None
        for _ in range(5):
            await outcome(b, not_found)
        assert b.state == CLOSED and b.snapshot()["window_successes"] == 5

    run(main())


def make_retry(**kw) -> tuple[Retry, list[float]]:
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    return Retry("op", RetryConfig(**kw), rng=random.Random(1), sleep=sleep), waits


def test_retry_backoff_and_last_error():
    r, waits = make_retry(jitter=0)
    calls = []
    err = DependencyError("down", status=503)

    async def fail():
        calls.append(1)
        raise err

    with pytest.raises(DependencyError) as info:
        run(r.call(fail))
    assert info.value is err and len(calls) == 3 and waits == [0.1, 0.2]
    r0, _ = make_retry(max_attempts=0)
    calls.clear()
    with pytest.raises(DependencyError):
        run(r0.call(fail))
    assert len(calls) == 1


def test_retry_jitter_retry_after_and_never_retried():
    r, waits = make_retry(max_attempts=5, jitter=1)
    with pytest.raises(DependencyError):
        run(r.call(boom))
    assert all(0 <= w <= 0.1 * 2 ** i for i, w in enumerate(waits))
    r2, waits2 = make_retry()

    async def slow_down():
        raise DependencyError("busy", status=429, retry_after=2)

    with pytest.raises(DependencyError):
        run(r2.call(slow_down))
    assert all(w >= 2 for w in waits2)
    r3, waits3 = make_retry()
    calls = []

    async def far():
        calls.append(1)
        raise DependencyError("busy", status=503, retry_after=60)

    with pytest.raises(DependencyError):
        run(r3.call(far))
    assert len(calls) == 1 and waits3 == []
    for exc in (CircuitOpenError("x", 1), DependencyError("nf", status=404)):
        calls.clear()

        async def once(exc=exc):
            calls.append(1)
            raise exc

        with pytest.raises(type(exc)):
            run(make_retry()[0].call(once))
        assert len(calls) == 1


def test_retry_non_idempotent_only_when_not_processed():
    calls = []

    async def failed_after_send():
        calls.append(1)
        raise DependencyError("reset", status=None, sent=True)

    with pytest.raises(DependencyError):
        run(make_retry()[0].call(failed_after_send, idempotent=False))
    assert len(calls) == 1


def test_bulkhead_queue_full_fifo_and_cancel():
    async def main():
        b = Bulkhead("t", 2, 1, 5.0)
        gate = asyncio.Event()

        async def work():
            await gate.wait()

        running = [asyncio.ensure_future(b.run(work)) for _ in range(2)]
        await asyncio.sleep(0)
        waiter = asyncio.ensure_future(b.run(work))
        await asyncio.sleep(0)
        assert (b.active, b.queued) == (2, 1)
        with pytest.raises(BulkheadFullError):
            await b.run(work)
        gate.set()
        await asyncio.gather(*running, waiter)
        assert (b.active, b.queued) == (0, 0)

        order = []
        b2 = Bulkhead("t2", 1, 10, 5.0)
        gate2 = asyncio.Event()
        first = asyncio.ensure_future(b2.run(gate2.wait))
        await asyncio.sleep(0)

        async def rec(i):
            order.append(i)

        waiters = [asyncio.ensure_future(b2.run(rec, i)) for i in range(5)]
        await asyncio.sleep(0)
        cancelled = asyncio.ensure_future(b2.run(rec, 99))
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.sleep(0)
        gate2.set()
        await asyncio.gather(first, *waiters)
        assert order == [0, 1, 2, 3, 4] and b2.rejected == {"full": 0, "timeout": 0} and b2.active == 0

        b3 = Bulkhead("t3", 1, 0, 5.0)
        hold = asyncio.ensure_future(b3.run(asyncio.Event().wait))
        await asyncio.sleep(0)
        with pytest.raises(BulkheadFullError):
            await b3.run(work)
        hold.cancel()
        await asyncio.gather(hold, return_exceptions=True)
        assert b3.active == 0

        b4 = Bulkhead("t4", 1, 1, 0.05)
        hold = asyncio.ensure_future(b4.run(asyncio.Event().wait))
        await asyncio.sleep(0)
        with pytest.raises(BulkheadTimeoutError):
            await b4.run(work)
        hold.cancel()

        async def raising():
            raise ValueError("x")

        b5 = Bulkhead("t5", 1, 0, 1.0)
        with pytest.raises(ValueError):
            await b5.run(raising)
        assert b5.active == 0

    run(main())

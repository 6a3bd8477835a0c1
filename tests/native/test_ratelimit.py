"""Token buckets under a fake clock, run against both twins."""
from __future__ import annotations

import math

import pytest


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_starts_full_and_refills(ratelimit):
    clock = FakeClock()
    b = ratelimit.TokenBucket(rate=2.0, burst=4.0, clock=clock)
    assert [b.try_acquire() for _ in range(5)] == [True] * 4 + [False]
    assert b.retry_after() == pytest.approx(0.5)
    clock.now += 0.5
    assert b.try_acquire() is True
    clock.now += 100
    assert b.tokens == 4.0


def test_retry_after_for_impossible_requests_is_infinite(ratelimit):
    b = ratelimit.TokenBucket(rate=1.0, burst=2.0, clock=FakeClock())
    assert b.retry_after(3.0) == math.inf
    assert b.retry_after(1.0) == 0.0


def test_clock_going_backwards_refills_nothing(ratelimit):
    clock = FakeClock()
    b = ratelimit.TokenBucket(rate=10.0, burst=1.0, clock=clock)
    assert b.try_acquire()
    clock.now -= 50
    assert not b.try_acquire()


def test_invalid_parameters(ratelimit):
    for rate, burst in [(-1, 1), (1, 0), (float("nan"), 1), (1, float("inf"))]:
        with pytest.raises(ValueError):
            ratelimit.TokenBucket(rate, burst)
    with pytest.raises(ValueError):
        ratelimit.KeyedLimiter(1, 1, max_keys=0)


def test_keyed_limiter_isolates_keys(ratelimit):
    clock = FakeClock()
    k = ratelimit.KeyedLimiter(rate=1.0, burst=2.0, max_keys=10, clock=clock)
    assert [k.allow("a") for _ in range(3)] == [True, True, False]
    assert k.allow("b") is True
    assert k.retry_after("a") == pytest.approx(1.0)
    clock.now += 1.0
    assert k.allow("a") is True


def test_keyed_limiter_is_bounded_lru(ratelimit):
    clock = FakeClock()
    k = ratelimit.KeyedLimiter(rate=1.0, burst=1.0, max_keys=3, clock=clock)
    for key in "abc":
        assert k.allow(key)
    k.allow("a")  # a most recent; b least recent
    assert k.allow("d")
    assert len(k) == 3 and "b" not in k and "a" in k
    assert k.evicted == 1
    # b comes back as a fresh (full) bucket: evicting lost nothing it could not regain
    assert k.allow("b")


def test_sweep_drops_only_full_buckets(ratelimit):
    clock = FakeClock()
    k = ratelimit.KeyedLimiter(rate=1.0, burst=2.0, max_keys=100, clock=clock)
    k.allow("idle")
    k.allow("busy")
    k.allow("busy")
    clock.now += 1.0  # idle: 1 + 1 = 2 (full); busy: 0 + 1 = 1
    assert k.sweep() == 1
    assert "idle" not in k and "busy" in k


def test_reconfigure_applies_to_every_key(ratelimit):
    clock = FakeClock()
    k = ratelimit.KeyedLimiter(rate=1.0, burst=10.0, max_keys=100, clock=clock)
    k.allow("a")
    k.reconfigure(rate=5.0, burst=3.0)
    assert (k.rate, k.burst) == (5.0, 3.0)
    assert [k.allow("a") for _ in range(4)] == [True, True, True, False]
    assert k.retry_after("a") == pytest.approx(0.2)
    b = ratelimit.TokenBucket(1.0, 10.0, clock=clock)
    b.reconfigure(2.0, 4.0)
    assert b.tokens == 4.0 and b.rate == 2.0


def test_default_clock_is_monotonic(ratelimit):
    k = ratelimit.KeyedLimiter(rate=1000.0, burst=1.0)
    assert k.allow("x")
    assert 0.0 < k.retry_after("x") <= 0.001 or k.allow("x")

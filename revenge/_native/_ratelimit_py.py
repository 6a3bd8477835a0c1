"""Token buckets: the readable specification of the native twin.

Why buckets start full: a client's first burst after start-up or after being idle is legitimate
(aiolimiter users keep tripping over empty-start buckets). Why a bounded keyed table: one entry per
client address must not grow without limit under a scan or a spoofing attempt.

Shared semantics:
- ``rate`` tokens per second refill up to ``burst``; time comes from ``clock`` (default
  ``time.monotonic``), so tests can inject a fake one. A clock going backwards refills nothing.
- ``try_acquire(n)`` takes ``n`` tokens if present; ``retry_after(n)`` is the seconds until ``n``
  tokens will be present (0 if now; ``inf`` if ``n > burst`` or ``rate == 0``).
- ``KeyedLimiter`` keeps one bucket per key, most-recently-used last. A new key beyond ``max_keys``
  evicts the least recently used one. ``sweep()`` drops keys whose bucket has refilled to ``burst``:
  such a bucket is indistinguishable from a fresh one, so dropping it changes no decision.
- ``reconfigure(rate, burst)`` applies to every key at once; tokens are first refilled at the old
  rate, then capped at the new burst.
"""
from __future__ import annotations

import math
import time
from collections import OrderedDict
from typing import Callable

__all__ = ["TokenBucket", "KeyedLimiter"]


def _check(rate: float, burst: float) -> tuple[float, float]:
    rate = float(rate)
    burst = float(burst)
    if not (rate >= 0.0) or math.isinf(rate):
        raise ValueError("rate must be a finite number >= 0")
    if not (burst >= 1.0) or math.isinf(burst):
        raise ValueError("burst must be a finite number >= 1")
    return rate, burst


class TokenBucket:
    __slots__ = ("_rate", "_burst", "_tokens", "_last", "_clock")

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] | None = None) -> None:
        self._rate, self._burst = _check(rate, burst)
        self._clock = clock if clock is not None else time.monotonic
        self._tokens = self._burst
        self._last = self._clock()

    def _refill(self, now: float) -> None:
        elapsed = now - self._last
        if elapsed > 0.0:
            self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
            self._last = now

    def try_acquire(self, n: float = 1.0) -> bool:
        self._refill(self._clock())
        if self._tokens >= n:
            self._tokens -= n
            return True
        return False

    def retry_after(self, n: float = 1.0) -> float:
        self._refill(self._clock())
        missing = n - self._tokens
        if missing <= 0.0:
            return 0.0
        if n > self._burst or self._rate == 0.0:
            return math.inf
        return missing / self._rate

    @property
    def tokens(self) -> float:
        self._refill(self._clock())
        return self._tokens

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def burst(self) -> float:
        return self._burst

    def reconfigure(self, rate: float, burst: float) -> None:
        new_rate, new_burst = _check(rate, burst)
        self._refill(self._clock())
        self._rate, self._burst = new_rate, new_burst
        self._tokens = min(self._tokens, new_burst)


class KeyedLimiter:
    __slots__ = ("_rate", "_burst", "_max_keys", "_clock", "_table", "_evicted")

    def __init__(
        self, rate: float, burst: float, max_keys: int = 100_000, clock: Callable[[], float] | None = None
    ) -> None:
        self._rate, self._burst = _check(rate, burst)
        if max_keys < 1:
            raise ValueError("max_keys must be >= 1")
        self._max_keys = int(max_keys)
        self._clock = clock if clock is not None else time.monotonic
        # key -> [tokens, last]
        self._table: OrderedDict[str, list[float]] = OrderedDict()
        self._evicted = 0

    def _bucket(self, key: str, now: float) -> list[float]:
        b = self._table.get(key)
        if b is None:
            if len(self._table) >= self._max_keys:
                self._table.popitem(last=False)
                self._evicted += 1
            b = [self._burst, now]
            self._table[key] = b
        else:
            self._table.move_to_end(key)
            elapsed = now - b[1]
            if elapsed > 0.0:
                b[0] = min(self._burst, b[0] + elapsed * self._rate)
                b[1] = now
        return b

    def allow(self, key: str, n: float = 1.0) -> bool:
        b = self._bucket(key, self._clock())
        if b[0] >= n:
            b[0] -= n
            return True
        return False

    def retry_after(self, key: str, n: float = 1.0) -> float:
        b = self._bucket(key, self._clock())
        missing = n - b[0]
        if missing <= 0.0:
            return 0.0
        if n > self._burst or self._rate == 0.0:
            return math.inf
        return missing / self._rate

    def sweep(self) -> int:
        """Drop keys whose buckets are full again; returns how many were dropped."""
        now = self._clock()
        rate, burst = self._rate, self._burst
        idle = [k for k, (tokens, last) in self._table.items() if tokens + max(0.0, now - last) * rate >= burst]
        for k in idle:
            del self._table[k]
        return len(idle)

    def reconfigure(self, rate: float, burst: float) -> None:
        new_rate, new_burst = _check(rate, burst)
        now = self._clock()
        for b in self._table.values():
            elapsed = now - b[1]
            if elapsed > 0.0:
                b[0] = min(self._burst, b[0] + elapsed * self._rate)
                b[1] = now
            b[0] = min(b[0], new_burst)
        self._rate, self._burst = new_rate, new_burst

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def burst(self) -> float:
        return self._burst

    @property
    def max_keys(self) -> int:
        return self._max_keys

    @property
    def evicted(self) -> int:
        return self._evicted

    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, key: object) -> bool:
        return key in self._table

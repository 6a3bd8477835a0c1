"""A fair, reserving token bucket for outgoing calls (resilience.md §4 rule 4).

The keyed limiter of the HTTP API only ever answers yes or no; a client of a rate-limited service
must instead *wait its turn*. ``acquire(n, max_wait)`` computes the wait, refuses at once when it
exceeds ``max_wait`` (nothing taken), otherwise reserves the tokens — the balance may go negative,
so later callers queue behind the reservation — and sleeps exactly that long. Cancellation during
the sleep refunds the reservation. ``hold(seconds)`` pushes the next token at least ``seconds``
away (a provider's ``429`` with ``Retry-After``). Clock and sleep are injectable for tests.
"""
from __future__ import annotations

import asyncio
import math
import time
from typing import Awaitable, Callable

from .errors import BulkheadError


class BucketWaitError(BulkheadError):
    """The wait for a token would pass ``max_wait``: a local rejection (never retried, ignored by
    a breaker, like a bulkhead's)."""

    reason = "rate_limit"


class AsyncTokenBucket:
    def __init__(self, name: str, rate: float, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if not rate > 0 or math.isinf(rate):
            raise ValueError("rate must be a finite number > 0")
        self.name = name
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1, math.ceil(rate)))
        if self.burst < 1:
            raise ValueError("burst must be at least 1")
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        if now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens

    def try_acquire(self, n: float = 1.0) -> tuple[bool, float | None]:
        """(allowed, retry_after); ``retry_after`` None when ``n > burst`` (it never can succeed)."""
        if n <= 0:
            raise ValueError("n must be positive")
        if n > self.burst:
            return False, None
        self._refill()
        if self._tokens >= n:
            self._tokens -= n
            return True, 0.0
        return False, (n - self._tokens) / self.rate

    async def acquire(self, n: float = 1.0, max_wait: float = math.inf) -> None:
        if n <= 0:
            raise ValueError("n must be positive")
        if n > self.burst:
            raise BucketWaitError(self.name, 1.0)
        self._refill()
        wait = max(0.0, (n - self._tokens) / self.rate)
        if wait > max_wait:
            raise BucketWaitError(self.name, wait)
        self._tokens -= n  # reserved: later callers wait behind this one
        if wait <= 0:
            return
        try:
            await self._sleep(wait)
        except asyncio.CancelledError:
            self._tokens += n
            raise

    def hold(self, seconds: float) -> None:
        """No token before ``seconds`` from now (the service asked us to back off)."""
        self._refill()
        self._tokens = min(self._tokens, 1.0 - seconds * self.rate)

    def reconfigure(self, rate: float, burst: float) -> None:
        self._refill()
        self.rate, self.burst = float(rate), float(burst)
        self._tokens = min(self._tokens, self.burst)

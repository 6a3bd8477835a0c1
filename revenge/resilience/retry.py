"""Retry with exponential backoff and full jitter (resilience.md §2). The last error is raised
unchanged, so callers' handlers keep working; an open breaker, a bulkhead rejection or a 4xx is
never retried."""
from __future__ import annotations

import asyncio
import random
import time
from typing import Any, Awaitable, Callable, TypeVar

from ..core.config.schema import RetryConfig
from .errors import BulkheadError, CircuitOpenError, DependencyError

T = TypeVar("T")


def default_retryable(exc: BaseException, idempotent: bool) -> bool:
    if isinstance(exc, (CircuitOpenError, BulkheadError, asyncio.CancelledError, TypeError, ValueError,
                        AssertionError)):
        return False
    if isinstance(exc, DependencyError):
        if exc.status is None:  # no answer: connection error or our own timeout
            return idempotent or not exc.sent
        if exc.status in (429, 503):
            return True
        if exc.status in (408, 502, 504):
            return idempotent
        if exc.status == 500:
            return idempotent
        return False
    return isinstance(exc, (ConnectionError, TimeoutError, asyncio.TimeoutError, OSError)) and idempotent


class Retry:
    def __init__(self, operation: str, cfg: RetryConfig, on_retry: Callable[[str], None] | None = None,
                 rng: random.Random | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.operation = operation
        self.cfg = cfg
        self._on_retry = on_retry
        self._rng = rng or random.Random()
        self._clock = clock
        self._sleep = sleep

    def delay(self, attempt: int) -> float:
        """The drawn wait after ``attempt`` (1-based) failed."""
        c = self.cfg
        base = min(c.max_delay, c.initial_delay * c.multiplier ** (attempt - 1))
        return self._rng.uniform(base * (1 - c.jitter), base)

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, idempotent: bool = True,
                   deadline: float | None = None, **kwargs: Any) -> T:
        attempts = max(1, self.cfg.max_attempts)
        end = None if deadline is None else self._clock() + deadline
        attempt = 0
        while True:
            attempt += 1
            try:
                return await fn(*args, **kwargs)
            except BaseException as exc:
                if attempt >= attempts or not default_retryable(exc, idempotent):
                    raise
                wait = self.delay(attempt)
                ra = getattr(exc, "retry_after", None)
                if isinstance(exc, DependencyError) and ra is not None:
                    if ra > self.cfg.max_delay:
                        raise
                    wait = max(wait, ra)
                if end is not None and self._clock() + wait >= end:
                    raise
                if self._on_retry is not None:
                    self._on_retry(self.operation)
                await self._sleep(wait)

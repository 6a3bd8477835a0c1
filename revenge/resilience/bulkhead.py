"""Bulkhead: at most ``max_concurrent`` running, a bounded FIFO queue with a wait limit
(resilience.md §3). Slots can be held for a call (``run``) or for a long-lived resource such as
an encoder process (``acquire`` / ``release``)."""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Awaitable, Callable, TypeVar

from .errors import BulkheadFullError, BulkheadTimeoutError

T = TypeVar("T")


class Bulkhead:
    def __init__(self, name: str, max_concurrent: int, max_queue: int, max_wait: float,
                 on_reject: Callable[[str, str], None] | None = None) -> None:
        self.name = name
        self.max_concurrent = max(1, max_concurrent)
        self.max_queue = max(0, max_queue)
        self.max_wait = max_wait
        self.active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._on_reject = on_reject
        self.rejected = {"full": 0, "timeout": 0}

    @property
    def queued(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    def _reject(self, exc_type: type) -> None:
        reason = exc_type.reason  # type: ignore[attr-defined]
        self.rejected[reason] += 1
        if self._on_reject is not None:
            self._on_reject(self.name, reason)
        raise exc_type(self.name, max(1.0, self.max_wait))

    async def acquire(self, max_wait: float | None = None) -> None:
        if self.active < self.max_concurrent and not self.queued:
            self.active += 1
            return
        if self.queued >= self.max_queue:
            self._reject(BulkheadFullError)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await asyncio.wait_for(asyncio.shield(fut), self.max_wait if max_wait is None else max_wait)
        except asyncio.TimeoutError:
            if fut.done() and not fut.cancelled():
                return  # the slot arrived at the last moment: keep it
            fut.cancel()
            self._reject(BulkheadTimeoutError)
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # a slot was handed to us as we were cancelled: pass it on
            else:
                fut.cancel()
            raise
        finally:
            try:
                self._waiters.remove(fut)
            except ValueError:
                pass

    def try_acquire(self) -> bool:
        """A slot now or nothing (work nobody waits on, e.g. an encoder prewarm): never waits, never
        barges past waiters and is not counted as a rejection."""
        if self.active < self.max_concurrent and not self.queued:
            self.active += 1
            return True
        return False

    def reject(self) -> None:
        """Counts and raises a timeout decided by the caller's own admission rule (the encoder
        manager's measured capacity), exactly as a queue timeout here would be."""
        self._reject(BulkheadTimeoutError)

    def release(self) -> None:
        if self.active <= self.max_concurrent:
            while self._waiters:
                w = self._waiters.popleft()
                if not w.done():
                    w.set_result(None)  # hand the slot over directly: active stays the same
                    return
        self.active -= 1
        self._wake()

    def _wake(self) -> None:
        while self.active < self.max_concurrent and self._waiters:
            w = self._waiters.popleft()
            if not w.done():
                self.active += 1
                w.set_result(None)

    def resize(self, max_concurrent: int, max_queue: int | None = None, max_wait: float | None = None) -> None:
        self.max_concurrent = max(1, max_concurrent)
        if max_queue is not None:
            self.max_queue = max(0, max_queue)
        if max_wait is not None:
            self.max_wait = max_wait
        self._wake()

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        await self.acquire()
        try:
            return await fn(*args, **kwargs)
        finally:
            self.release()

    def stats(self) -> dict[str, Any]:
        return {"name": self.name, "active": self.active, "queued": self.queued, "max_concurrent": self.max_concurrent,
                "max_queue": self.max_queue, "rejected": dict(self.rejected)}
